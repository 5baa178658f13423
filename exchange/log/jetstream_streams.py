"""Where the JetStream log keeps batches: the URL's options, the connection, the names
and the streams (made on first use, found past JetStream's pages, read by scans).

Codes become subject tokens and keys by keeping ``[A-Za-z0-9_-]`` and writing any other
byte as ``=XX``: ``PSB.RESIDENT`` is ``PSB=2ERESIDENT``.

The URL: ``nats://host:4222[,host2:4222]?prefix=lijiao&replicas=1&duplicate_window=691200
&max_age_days=0``; ``tls://`` with ``ca=``, ``cert=`` and ``key=`` file paths for TLS to
NATS, and ``user:password@`` or ``creds=`` for its credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import nats
from nats.errors import Error as NatsError
from nats.js import api
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.errors import Error as JetStreamError

from envelope.errors import Reason, Unavailable
from exchange.metrics import family_of

log = logging.getLogger(__name__)

_PLAIN = re.compile(r"[A-Za-z0-9_-]")
_ESCAPED = re.compile(r"=([0-9A-F]{2})")
# Batch ids are remembered (deduplicated) for 8 days: longer than the oldest batch the
# gateway accepts (LIJIAO_MAX_BATCH_AGE_SECONDS, 7 days), so an outbox resending after
# an outage cannot store a batch twice.
DEDUP_SECONDS = 8 * 86_400.0
CONNECT_TIMEOUT = 10.0  # seconds a gateway start waits for NATS
STORE_ERRORS = (NatsError, JetStreamError, TimeoutError, OSError)


def message_id(publisher: str, batch_id: str) -> str:
    """The ``Nats-Msg-Id`` JetStream deduplicates a publisher's batch by."""
    return f"{publisher}/" + hashlib.sha256(batch_id.encode()).hexdigest()[:40]


@functools.lru_cache(maxsize=4096)
def token(text: str) -> str:
    """A code as one subject token or key part (reversible)."""
    return "".join(
        ch if _PLAIN.fullmatch(ch) else "".join(f"={b:02X}" for b in ch.encode()) for ch in text
    )


def untoken(text: str) -> str:
    """The code a :func:`token` came from."""
    raw = bytearray()
    last = 0
    for match in _ESCAPED.finditer(text):
        raw += text[last : match.start()].encode()
        raw.append(int(match.group(1), 16))
        last = match.end()
    raw += text[last:].encode()
    return raw.decode()


def stream_of(prefix: str, resource: str) -> str:
    """The stream that holds a resource's batches."""
    return f"{prefix}_{token(family_of(resource))}"


def subject_of(prefix: str, resource: str, publisher: str = "*") -> str:
    """The subject of a publisher's batches of a resource (``*``: every publisher's)."""
    family = token(family_of(resource))
    tail = publisher if publisher == "*" else token(publisher)
    return f"{prefix}.rec.{family}.{token(resource)}.{tail}"


@dataclass(frozen=True)
class JetStreamOptions:
    """What a ``LIJIAO_LOG_URL`` of NATS says."""

    servers: list[str]
    prefix: str = "lijiao"
    replicas: int = 1
    duplicate_window: float = DEDUP_SECONDS
    max_age_days: float = 0.0  # 0: keep batches until an operator removes them
    tls: ssl.SSLContext | None = None
    creds: str | None = None

    @classmethod
    def parse(cls, url: str) -> JetStreamOptions:
        """Reads the URL; raises ValueError naming what is wrong."""
        parts = urlsplit(url)
        if parts.scheme not in ("nats", "tls") or not parts.netloc:
            raise ValueError(f"LIJIAO_LOG_URL must look like nats://host:4222, not {url!r}")
        auth, _, hosts = parts.netloc.rpartition("@")
        servers = [
            f"{parts.scheme}://{auth + '@' if auth else ''}{host}" for host in hosts.split(",")
        ]
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        known = {"prefix", "replicas", "duplicate_window", "max_age_days", "ca", "cert", "key"}
        unknown = set(query) - known - {"creds"}
        if unknown:
            raise ValueError(
                f"LIJIAO_LOG_URL: unknown setting {sorted(unknown)[0]!r}; known: "
                + ", ".join(sorted(known | {"creds"}))
            )
        prefix = query.get("prefix", "lijiao")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,31}", prefix):
            raise ValueError("LIJIAO_LOG_URL: prefix must be 1-32 letters, digits, '_' or '-'")
        try:
            replicas = int(query.get("replicas", "1"))
            window = float(query.get("duplicate_window", str(DEDUP_SECONDS)))
            max_age = float(query.get("max_age_days", "0"))
        except ValueError as exc:
            raise ValueError(f"LIJIAO_LOG_URL: {exc}") from exc
        if not 1 <= replicas <= 5 or window <= 0 or max_age < 0:
            raise ValueError(
                "LIJIAO_LOG_URL: replicas must be 1-5, duplicate_window above 0 seconds, "
                "max_age_days 0 (keep) or more"
            )
        if max_age and max_age * 86_400 < window:
            raise ValueError(
                "LIJIAO_LOG_URL: max_age_days must cover duplicate_window "
                f"({window:.0f} s): JetStream refuses a shorter age"
            )
        context = None
        if parts.scheme == "tls" or "ca" in query:
            context = ssl.create_default_context(cafile=query.get("ca"))
            if "cert" in query:
                context.load_cert_chain(query["cert"], query.get("key"))
        creds = unquote(query["creds"]) if "creds" in query else None
        return cls(servers, prefix, replicas, window, max_age, context, creds)


async def connect_nats(o: JetStreamOptions, closing: Callable[[], bool]) -> Any:
    """A NATS connection that reconnects forever once made.

    Args:
        o: The URL's options.
        closing: Whether the log is closing (its disconnection is then no news).

    Raises:
        ValueError: NATS out of reach.
    """

    async def disconnected() -> None:
        if not closing():
            log.warning("record log: disconnected from NATS; reconnecting")

    async def reconnected() -> None:
        log.warning("record log: reconnected to NATS")

    async def error(exc: Exception) -> None:
        log.warning("record log: NATS: %s", exc)

    servers = ", ".join(s.rsplit("@", 1)[-1] for s in o.servers)  # no password
    if not await _any_listening(o.servers):
        raise ValueError(
            f"cannot reach NATS at {servers}: nothing accepts connections there; is "
            "nats-server running with JetStream (-js)?"
        )
    try:
        # nats-py keeps retrying a first connection it is told to reconnect forever:
        # bound it, so a gateway without NATS says so instead of hanging
        return await asyncio.wait_for(
            nats.connect(
                servers=o.servers,
                name="lijiao-gateway",
                tls=o.tls,
                user_credentials=o.creds,
                connect_timeout=5,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                # a half-open connection (a server gone without a reset) is noticed
                # within 20 s, and a flush never waits more than 5 s
                ping_interval=10,
                max_outstanding_pings=2,
                flush_timeout=5,
                no_echo=True,  # this replica's own announcements are not for it
                disconnected_cb=disconnected,
                reconnected_cb=reconnected,
                error_cb=error,
            ),
            CONNECT_TIMEOUT,
        )
    except (NatsError, OSError, TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        raise ValueError(
            f"cannot reach NATS at {servers} within {CONNECT_TIMEOUT:.0f} s: {reason}; "
            "is nats-server running with JetStream (-js)?"
        ) from exc


class Streams:
    """The streams of one prefix: one per resource family, made on first use."""

    def __init__(self, options: JetStreamOptions, js: Any) -> None:
        self.options = options
        self._js = js
        self._made: dict[str, asyncio.Future[None]] = {}
        self._existing: set[str] = set()  # streams known to exist (direct gets need one)
        self._looked: dict[str, float] = {}  # when a missing stream was last looked for

    async def ready(self, resource: str) -> str:
        """The name of a resource's stream, made first if it is not there yet."""
        name = stream_of(self.options.prefix, resource)
        ready = self._made.get(name)
        if ready is None or (ready.done() and ready.exception() is not None):
            ready = asyncio.ensure_future(self._make(resource, name))
            self._made[name] = ready
        await asyncio.shield(ready)
        return name

    async def exists(self, name: str) -> bool:
        """Whether a stream exists; a missing one is looked for at most once a second
        (another replica may make it)."""
        if name in self._existing:
            return True
        if time.monotonic() - self._looked.get(name, -10.0) < 1.0:
            return False
        self._looked[name] = time.monotonic()
        try:
            await self._js.stream_info(name)
        except NotFoundError:
            return False
        self._existing.add(name)
        return True

    def seen(self, resource: str) -> None:
        """Notes that a resource's stream exists (another replica stored a batch in it)."""
        self._existing.add(stream_of(self.options.prefix, resource))

    async def _make(self, resource: str, name: str) -> None:
        o = self.options
        config = api.StreamConfig(
            name=name,
            subjects=[f"{o.prefix}.rec.{token(family_of(resource))}.>"],
            storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS,
            discard=api.DiscardPolicy.OLD,
            num_replicas=o.replicas,
            duplicate_window=o.duplicate_window,
            max_age=o.max_age_days * 86_400 if o.max_age_days else None,
            allow_direct=True,
        )
        try:
            await self._js.add_stream(config)
            self._existing.add(name)
        except BadRequestError as exc:
            # another replica made it first (or an operator changed its limits): use it
            info = await self._js.stream_info(name)
            if info.config.subjects != config.subjects:
                raise Unavailable(
                    Reason.LOG_UNAVAILABLE,
                    f"JetStream stream {name} exists with other subjects: {exc}",
                ) from exc
            self._existing.add(name)

    async def of_prefix(self) -> list[Any]:
        """The stream infos of this prefix's streams."""
        prefix = f"{self.options.prefix}_"
        return [info for info in await all_streams(self._js) if info.config.name.startswith(prefix)]

    async def get(
        self, stream: str, seq: int, subject: str | None = None
    ) -> api.RawStreamMsg | None:
        """The message at ``seq`` (or the first of ``subject`` from ``seq``), or None."""
        try:
            msg: api.RawStreamMsg = await self._js.get_msg(
                stream, seq=seq, subject=subject, next=subject is not None, direct=True
            )
        except NotFoundError:
            return None
        return msg

    async def leader_get(self, stream: str, seq: int) -> api.RawStreamMsg:
        """The message at ``seq``, from the stream's leader."""
        msg: api.RawStreamMsg = await self._js.get_msg(stream, seq=seq)
        return msg

    async def scan(
        self,
        stream: str,
        subject: str | None,
        count: int,
        *,
        start: datetime | None = None,
        after: int = 0,
        headers_only: bool = False,
    ) -> list[Any]:
        """Up to ``count`` messages from a throwaway consumer, oldest first.

        Raises:
            nats.errors.TimeoutError: JetStream said messages were there but did not send
                them in time.
        """
        config = api.ConsumerConfig(
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=30.0,
            mem_storage=True,
            headers_only=headers_only,
            filter_subject=subject,
        )
        if start is not None:
            config.deliver_policy = api.DeliverPolicy.BY_START_TIME
            config.opt_start_time = start
        elif after:
            config.deliver_policy = api.DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = after + 1
        made = await self._js.add_consumer(stream, config)
        out: list[Any] = []
        try:
            wanted = min(count, made.num_pending or 0)
            if not wanted:
                return out
            sub = await self._js.pull_subscribe_bind(consumer=made.name, stream=stream)
            try:
                while len(out) < wanted:
                    got = await sub.fetch(min(500, wanted - len(out)), timeout=5.0)
                    out.extend(got)
                    if got[-1].metadata.num_pending == 0:
                        break
            finally:
                with contextlib.suppress(*STORE_ERRORS):
                    await sub.unsubscribe()
        finally:
            with contextlib.suppress(*STORE_ERRORS):
                await self._js.delete_consumer(stream, made.name)
        return out

    async def newest(self, count: int, since_ns: int) -> list[tuple[str, int, int]]:
        """Per stream, the newest ``count`` batches stored at or after ``since_ns``, as
        (resource, position, stored_ns): their headers only."""
        out: list[tuple[str, int, int]] = []
        for info in await self.of_prefix():
            state = info.state
            if not state.messages:
                continue
            if since_ns:
                newest = await self.get(info.config.name, int(state.last_seq))
                if newest is not None and stamp(newest) < since_ns:
                    continue  # nothing stored in the stream since then
            first = max(int(state.first_seq), int(state.last_seq) - count + 1)
            for msg in await self.scan(
                info.config.name, None, count, after=first - 1, headers_only=True
            ):
                stored_ns = nanoseconds(msg.metadata.timestamp)
                if stored_ns >= since_ns:
                    resource = untoken(msg.subject.split(".")[3])
                    out.append((resource, int(msg.metadata.sequence.stream), stored_ns))
        return out


async def all_streams(js: Any) -> list[Any]:
    """Every stream of the account. JetStream lists them a page at a time (256), and the
    log's own may sort after other applications' or other prefixes' streams."""
    out: list[Any] = []
    while True:
        page = await js.streams_info_iterator(offset=len(out))
        infos = list(page)
        out += infos
        if not infos or len(out) >= page.total:
            return out


async def _any_listening(servers: list[str]) -> bool:
    """Whether any of the servers takes a TCP connection (within 3 s)."""
    for server in servers:
        parts = urlsplit(server)
        try:
            _reader, writer = await asyncio.wait_for(
                asyncio.open_connection(parts.hostname, parts.port or 4222), 3
            )
        except (OSError, TimeoutError):
            continue
        writer.close()
        return True
    return False


def stamp(msg: Any) -> int:
    """When JetStream stored a message, in ns since the epoch."""
    return time.time_ns() if msg.time is None else nanoseconds(msg.time)


def nanoseconds(when: datetime) -> int:
    """A JetStream timestamp in ns since the epoch."""
    return int(when.timestamp() * 1_000_000) * 1000
