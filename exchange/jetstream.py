"""The record log in NATS JetStream: for several gateway replicas.

Layout, for a prefix ``p`` (default ``lijiao``):

- one stream ``p_FAMILY`` per resource family (the code up to the first '-' or '.',
  as in the metrics), with subjects ``p.rec.FAMILY.RESOURCE.PUBLISHER``; file storage;
- deduplication by batch id: every batch carries ``Nats-Msg-Id: publisher/sha256(batch
  id)``, and a duplicate acknowledgement is checked against the stored batch's digest,
  so the same id with other content is still BATCH_ID_REUSED. JetStream remembers ids
  for the stream's duplicate window (``duplicate_window``, default 8 days: longer than
  the oldest batch the gateway accepts);
- a batch's position is its stream sequence: increasing per resource, the offset a
  subscriber acknowledges;
- cursors in the key-value bucket ``p_cursors``, moved forward only (compare-and-set on
  the entry's revision), so replicas serving the same subscription one after the other
  never move it back;
- ``p.new.RESOURCE`` (core NATS, not stored) tells every replica that a batch arrived,
  so a subscriber on one replica hears of a batch published on another at once.

Codes become subject tokens and keys by keeping ``[A-Za-z0-9_-]`` and writing any other
byte as ``=XX``: ``PSB.RESIDENT`` is ``PSB=2ERESIDENT``.

The URL: ``nats://host:4222[,host2:4222]?prefix=lijiao&replicas=1&duplicate_window=691200
&max_age_days=0``; ``tls://`` with ``ca=``, ``cert=`` and ``key=`` file paths for TLS to
NATS, and ``user:password@`` or ``creds=`` for its credentials.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import hashlib
import json
import logging
import re
import ssl
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import nats
from nats.errors import Error as NatsError
from nats.js import api
from nats.js.errors import (
    BadRequestError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
    NotFoundError,
)
from nats.js.errors import Error as JetStreamError

from envelope.errors import AlreadyExists, Reason, ResourceExhausted, Unavailable
from exchange.log import Appended, CursorLag, NewBatch, StoredBatch
from exchange.metrics import family_of
from exchange.v1 import exchange_pb2

log = logging.getLogger(__name__)
T = TypeVar("T")

_PLAIN = re.compile(r"[A-Za-z0-9_-]")
_ESCAPED = re.compile(r"=([0-9A-F]{2})")
# Batch ids are remembered (deduplicated) for 8 days: longer than the oldest batch the
# gateway accepts (LIJIAO_MAX_BATCH_AGE_SECONDS, 7 days), so an outbox resending after
# an outage cannot store a batch twice.
DEDUP_SECONDS = 8 * 86_400.0
HEADER_ROOM = 4096  # bytes of a message's headers and subject, below max_payload
CONNECT_TIMEOUT = 10.0  # seconds a gateway start waits for NATS
PUBLISH_TIMEOUT = 10.0  # seconds JetStream has to acknowledge a batch
LAG_SAMPLE = 1000  # pending batches whose record counts are read for the lag metric
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


class JetStreamLog:
    """The record log in NATS JetStream (see the module's description)."""

    def __init__(self, options: JetStreamOptions) -> None:
        self.options = options
        self._nc: Any = None
        self._js: Any = None
        self._kv: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._streams: dict[str, asyncio.Future[None]] = {}
        self._existing: set[str] = set()  # streams known to exist (direct gets need one)
        self._looked: dict[str, float] = {}  # when a missing stream was last looked for
        self._watchers: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._pending: dict[tuple[str, str, str], int] = {}
        self._pending_lock = threading.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False
        self._order = asyncio.Lock()
        self._acks: dict[str, asyncio.Future[api.PubAck]] = {}  # by reply token
        self._replies: Any = None
        self._reply_prefix = ""
        self._tokens = 0

    @classmethod
    async def connect(cls, url: str) -> JetStreamLog:
        """Connects to NATS and makes the cursor bucket.

        Raises:
            ValueError: A bad URL, or NATS without JetStream or out of reach.
        """
        self = cls(JetStreamOptions.parse(url))
        await self._connect()
        return self

    async def _connect(self) -> None:
        o = self.options
        self._loop = asyncio.get_running_loop()

        async def disconnected() -> None:
            if not self._closed:
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
            self._nc = await asyncio.wait_for(
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
        self._js = self._nc.jetstream(timeout=10)
        bucket = f"{o.prefix}_cursors"
        try:
            self._kv = await self._js.create_key_value(
                api.KeyValueConfig(
                    bucket=bucket,
                    history=1,
                    storage=api.StorageType.FILE,
                    replicas=o.replicas,
                )
            )
        except BadRequestError:  # made by another replica with other settings
            self._kv = await self._js.key_value(bucket)
        except (JetStreamError, NatsError) as exc:
            await self._nc.close()
            raise ValueError(
                f"NATS answers but JetStream does not ({exc}): start nats-server with -js"
            ) from exc
        await self._nc.subscribe(f"{o.prefix}.new.*", cb=self._on_new)

    # -- names ---------------------------------------------------------------------

    def stream_of(self, resource: str) -> str:
        """The stream that holds a resource's batches."""
        return f"{self.options.prefix}_{token(family_of(resource))}"

    def _subject(self, resource: str, publisher: str = "*") -> str:
        family = token(family_of(resource))
        tail = publisher if publisher == "*" else token(publisher)
        return f"{self.options.prefix}.rec.{family}.{token(resource)}.{tail}"

    def _key(self, system: str, resource: str, subscription: str) -> str:
        return f"{token(system)}.{token(resource)}.{token(subscription)}"

    # -- streams -------------------------------------------------------------------

    async def _stream(self, resource: str) -> str:
        name = self.stream_of(resource)
        ready = self._streams.get(name)
        if ready is None or (ready.done() and ready.exception() is not None):
            ready = asyncio.ensure_future(self._make_stream(resource, name))
            self._streams[name] = ready
        await asyncio.shield(ready)
        return name

    async def _exists(self, name: str) -> bool:
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

    async def _make_stream(self, resource: str, name: str) -> None:
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

    # -- publishing ----------------------------------------------------------------

    async def append(self, batch: NewBatch) -> Appended:
        """Stores a batch and waits for JetStream's acknowledgement.

        Raises:
            AlreadyExists: BATCH_ID_REUSED for the same id with other content.
            Unavailable: LOG_UNAVAILABLE when JetStream does not acknowledge.
            ResourceExhausted: BATCH_TOO_LARGE above NATS's max_payload.
        """
        limit = self._nc.max_payload - HEADER_ROOM
        if len(batch.payload) > limit:
            raise ResourceExhausted(
                Reason.BATCH_TOO_LARGE,
                f"the batch is {len(batch.payload)} bytes; the record log (NATS max_payload) "
                f"takes at most {limit}: send smaller batches",
                {"limit": str(limit)},
            )
        headers = {
            "Nats-Msg-Id": message_id(batch.publisher, batch.batch_id),
            "Lijiao-Digest": batch.digest.hex(),
            "Lijiao-Received": str(batch.received_ns),
            "Lijiao-Records": str(batch.record_count),
            "Lijiao-Bytes": str(batch.byte_count),
            "Lijiao-Sequence": str(batch.sequence),
        }
        pending = await self._guard(self._handoff(batch, headers))
        ack = await self._guard(pending)
        stored = time.time_ns()
        if ack.duplicate:
            stream = self.stream_of(batch.resource)
            found = await self._guard(self._get(stream, ack.seq))
            if found is None:  # a direct get may reach a follower that lacks it yet
                found = await self._guard(self._leader_get(stream, ack.seq))
            if (found.headers or {}).get("Lijiao-Digest") != batch.digest.hex():
                raise AlreadyExists(
                    Reason.BATCH_ID_REUSED,
                    f"batch id {batch.batch_id!r} is already stored with different content; "
                    "use a new batch id for new records",
                    {"batch_id": batch.batch_id},
                )
            return Appended(ack.seq, True, _stamp(found))
        self._notify(batch.resource)
        with contextlib.suppress(*STORE_ERRORS):
            await self._nc.publish(f"{self.options.prefix}.new.{token(batch.resource)}", b"")
        return Appended(ack.seq, False, stored)

    async def _handoff(self, batch: NewBatch, headers: dict[str, str]) -> Awaitable[api.PubAck]:
        """Sends a batch in its publish stream's order (bounded: never a frozen path)."""
        async with asyncio.timeout(PUBLISH_TIMEOUT), self._order:
            stream = await self._stream(batch.resource)
            headers[api.Header.EXPECTED_STREAM] = stream
            return await self._send(
                self._subject(batch.resource, batch.publisher), batch.payload, headers
            )

    async def _send(
        self, subject: str, payload: bytes, headers: dict[str, str]
    ) -> Awaitable[api.PubAck]:
        """Hands a message to the connection in call order; returns its acknowledgement
        (bounded by PUBLISH_TIMEOUT). Refuses at once while NATS is disconnected rather
        than buffering: a buffered batch would be stored after the refusal of its turn."""
        if not self._nc.is_connected:
            raise NatsError("not connected to NATS")
        if self._replies is None:
            self._reply_prefix = self._nc.new_inbox()
            self._replies = await self._nc.subscribe(f"{self._reply_prefix}.*", cb=self._reply)
        self._tokens += 1
        token = str(self._tokens)
        future: asyncio.Future[api.PubAck] = asyncio.get_running_loop().create_future()
        self._acks[token] = future
        try:
            await self._nc.publish(
                subject, payload, reply=f"{self._reply_prefix}.{token}", headers=headers
            )
        except BaseException:
            self._acks.pop(token, None)
            raise
        return self._acknowledged(token, future)

    async def _acknowledged(self, token: str, future: asyncio.Future[api.PubAck]) -> api.PubAck:
        try:
            return await asyncio.wait_for(future, PUBLISH_TIMEOUT)
        finally:
            self._acks.pop(token, None)

    async def _reply(self, msg: Any) -> None:
        future = self._acks.get(msg.subject.rsplit(".", 1)[-1])
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get("Status") == "503":
            future.set_exception(NatsError("no JetStream stream answered"))
            return
        try:
            reply = json.loads(msg.data)
            if "error" in reply:
                future.set_exception(JetStreamError(str(reply["error"])))
            else:
                future.set_result(api.PubAck.from_response(reply))
        except (ValueError, KeyError, TypeError) as exc:
            future.set_exception(NatsError(f"a malformed acknowledgement: {exc}"))

    async def _guard(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except STORE_ERRORS as exc:
            raise Unavailable(
                Reason.LOG_UNAVAILABLE,
                "the record log (NATS JetStream) did not take the batch "
                f"({str(exc) or type(exc).__name__}); send it again: if it was stored after "
                "all, the batch id makes the resend a duplicate",
            ) from exc

    def _notify(self, resource: str) -> None:
        for event in self._watchers.get(resource, ()):
            event.set()

    async def _on_new(self, msg: Any) -> None:
        resource = untoken(msg.subject.rsplit(".", 1)[-1])
        self._existing.add(self.stream_of(resource))  # made by the replica that stored it
        self._notify(resource)

    def watch(self, resource: str, event: asyncio.Event) -> None:
        """Sets ``event`` whenever a batch of ``resource`` is stored, by any replica."""
        self._watchers[resource].add(event)

    def unwatch(self, resource: str, event: asyncio.Event) -> None:
        """Stops setting ``event``."""
        self._watchers[resource].discard(event)

    # -- reading -------------------------------------------------------------------

    async def _get(
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

    async def _leader_get(self, stream: str, seq: int) -> api.RawStreamMsg:
        msg: api.RawStreamMsg = await self._js.get_msg(stream, seq=seq)
        return msg

    async def read_after(self, resource: str, position: int, limit: int) -> list[StoredBatch]:
        """Up to ``limit`` batches of a resource after ``position``, in order."""
        stream = self.stream_of(resource)
        subject = self._subject(resource)
        out: list[StoredBatch] = []
        if not self._nc.is_connected:
            return out  # the stream idles and reads again once NATS is back
        try:
            if not await self._exists(stream):
                return out
            while len(out) < limit:
                msg = await self._get(stream, position + 1, subject)
                if msg is None:
                    break
                position = int(msg.seq or 0)
                out.append(_stored(resource, msg))
        except STORE_ERRORS as exc:
            if out:
                return out  # deliver what was read; the next read tries again
            raise Unavailable(
                Reason.LOG_UNAVAILABLE, f"the record log (NATS JetStream) did not answer: {exc}"
            ) from exc
        return out

    async def last_sequence(self, publisher: str, resource: str, before: int) -> int | None:
        """The highest sequence a publisher used for a resource (its newest batch's)."""
        if not self._nc.is_connected:
            return None  # only the anomaly check needs it: never wait for it
        try:
            if not await self._exists(self.stream_of(resource)):
                return None
            msg = await self._js.get_msg(
                self.stream_of(resource), subject=self._subject(resource, publisher), direct=True
            )
        except NotFoundError:
            return None
        except STORE_ERRORS:
            return None  # only the anomaly check needs it: skip it rather than refuse
        return int(msg.headers.get("Lijiao-Sequence", "0"))

    # -- cursors -------------------------------------------------------------------

    async def cursor(self, system: str, resource: str, subscription: str) -> int:
        """The last acknowledged position of a subscription (0 when new)."""
        key = self._key(system, resource, subscription)
        try:
            if not self._nc.is_connected:
                raise NatsError("not connected to NATS")
            entry = await self._kv.get(key)
            stored = int(entry.value or b"0")
        except KeyNotFoundError:
            stored = 0
        except STORE_ERRORS as exc:
            raise Unavailable(
                Reason.LOG_UNAVAILABLE, f"the cursor store (NATS JetStream) did not answer: {exc}"
            ) from exc
        with self._pending_lock:
            return max(stored, self._pending.get((system, resource, subscription), 0))

    async def position_at(self, resource: str, time_ns: int) -> int:
        """The position before the resource's first batch stored at or after ``time_ns``
        (the stream's last position when there is none)."""
        stream = self.stream_of(resource)
        try:
            if not await self._exists(stream):
                return 0
            start = datetime.fromtimestamp(time_ns / 1e9, UTC)
            first = await self._scan(stream, self._subject(resource), 1, start=start)
            if first:
                return int(first[0].metadata.sequence.stream) - 1
            info = await self._js.stream_info(stream)
            return int(info.state.last_seq)
        except STORE_ERRORS as exc:
            raise Unavailable(
                Reason.LOG_UNAVAILABLE, f"the record log (NATS JetStream) did not answer: {exc}"
            ) from exc

    def move_cursor(self, system: str, resource: str, subscription: str, position: int) -> None:
        """Moves a cursor forward; written to the bucket by a task on the event loop.

        Callable from any thread. A crash before the write only means the batches are
        delivered again.
        """
        key = (system, resource, subscription)
        with self._pending_lock:
            self._pending[key] = max(position, self._pending.get(key, 0))
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._kick)

    def _kick(self) -> None:
        if self._closed:
            return
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        while not self._nc.is_closed:
            with self._pending_lock:
                moves = dict(self._pending)
            if not moves:
                return
            for key, position in moves.items():
                try:
                    await self._forward(self._key(*key), position)
                except STORE_ERRORS as exc:
                    log.warning("record log: cursor not written yet (%s); retrying", exc)
                    await asyncio.sleep(0.5)
                    break
                with self._pending_lock:
                    if self._pending.get(key) == position:
                        del self._pending[key]

    async def _forward(self, key: str, position: int) -> None:
        """Sets a cursor to ``position`` unless it is there or further already."""
        value = str(position).encode()
        while True:
            try:
                entry = await self._kv.get(key)
            except KeyNotFoundError:
                try:
                    await self._kv.create(key, value)
                    return
                except (KeyWrongLastSequenceError, BadRequestError):
                    continue  # another replica created it: compare with that
            if int(entry.value or b"0") >= position:
                return
            try:
                await self._kv.update(key, value, last=entry.revision)
                return
            except (KeyWrongLastSequenceError, BadRequestError):
                continue

    # -- worker-thread reads (start-up check, metrics) ------------------------------

    def _call(self, make: Callable[[], Awaitable[T]], timeout: float = 60.0) -> T:
        assert self._loop is not None
        assert not self._on_loop(), "would wait on itself"
        future = asyncio.run_coroutine_threadsafe(_awaited(make), self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()  # do not leave the work running on the loop
            raise

    async def _streams_of_prefix(self) -> list[Any]:
        prefix = f"{self.options.prefix}_"
        return [info for info in await all_streams(self._js) if info.config.name.startswith(prefix)]

    def recent(self, count: int, since_ns: int = 0) -> list[tuple[str, int, int]]:
        """Per stream, the newest ``count`` batches stored at or after ``since_ns``, as
        (resource, position, stored_ns): their headers only. From a worker thread (the
        ledger's reconciliation)."""
        return self._call(lambda: self._recent(count, since_ns), timeout=300)

    async def _recent(self, count: int, since_ns: int) -> list[tuple[str, int, int]]:
        out: list[tuple[str, int, int]] = []
        for info in await self._streams_of_prefix():
            state = info.state
            if not state.messages:
                continue
            if since_ns:
                newest = await self._get(info.config.name, int(state.last_seq))
                if newest is not None and _stamp(newest) < since_ns:
                    continue  # nothing stored in the stream since then
            first = max(int(state.first_seq), int(state.last_seq) - count + 1)
            for msg in await self._scan(
                info.config.name, None, count, after=first - 1, headers_only=True
            ):
                stored_ns = _ns(msg.metadata.timestamp)
                if stored_ns >= since_ns:
                    resource = untoken(msg.subject.split(".")[3])
                    out.append((resource, int(msg.metadata.sequence.stream), stored_ns))
        return out

    def batch_at(self, resource: str, position: int) -> tuple[NewBatch, int] | None:
        """The batch at a position with its stored_ns. From a worker thread."""
        return self._call(lambda: self._batch_at(resource, position))

    async def _batch_at(self, resource: str, position: int) -> tuple[NewBatch, int] | None:
        msg = await self._get(self.stream_of(resource), position)
        if msg is None or msg.data is None:
            return None
        headers = msg.headers or {}
        batch = exchange_pb2.RecordBatch.FromString(msg.data)
        stored = NewBatch(
            resource=resource,
            batch_id=batch.batch_id,
            publisher=untoken(str(msg.subject).rsplit(".", 1)[-1]),
            sequence=batch.sequence,
            fingerprint=batch.schema_fingerprint,
            digest=bytes.fromhex(headers["Lijiao-Digest"]),
            record_count=int(headers["Lijiao-Records"]),
            byte_count=int(headers["Lijiao-Bytes"]),
            received_ns=int(headers["Lijiao-Received"]),
            payload=msg.data,
        )
        return stored, _stamp(msg)

    async def _scan(
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

    def lag(self) -> list[CursorLag]:
        """Every subscription's unacknowledged records and oldest unacknowledged batch.

        The records of the first 1,000 pending batches are counted; beyond that they are
        estimated from those. From a worker thread (a metrics scrape); on the event
        loop's own thread (the collector's registration) it reports nothing."""
        if self._on_loop():
            return []
        return self._call(self._lag, timeout=30)

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    async def _lag(self) -> list[CursorLag]:
        try:
            keys = await self._kv.keys()
        except NoKeysError:
            return []
        out = []
        for key in keys:
            system, resource, subscription = (untoken(part) for part in key.split("."))
            position = await self.cursor(system, resource, subscription)
            stream = self.stream_of(resource)
            try:
                if not await self._exists(stream):
                    continue
                pending = await self._scan(
                    stream, self._subject(resource), LAG_SAMPLE, after=position, headers_only=True
                )
            except STORE_ERRORS as exc:  # this subscription's figure waits for the next scrape
                log.warning("record log: lag of %s/%s not read: %s", system, resource, exc)
                continue
            records = sum(int(m.headers.get("Lijiao-Records", "0")) for m in pending)
            oldest = _ns(pending[0].metadata.timestamp) if pending else 0
            if pending and pending[-1].metadata.num_pending:
                more = pending[-1].metadata.num_pending
                records += round(records / len(pending) * more)
            out.append(CursorLag(system, resource, subscription, records, oldest))
        return out

    async def close(self) -> None:
        """Writes the cursors still queued (for up to 5 s) and closes the connection."""
        if self._closed or self._nc is None:
            return
        self._closed = True
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._flusher), 5)
            self._flusher.cancel()
        if self._pending:
            log.warning(
                "record log: %d cursor moves not written at close; those batches will be "
                "delivered again",
                len(self._pending),
            )
        with contextlib.suppress(*STORE_ERRORS):
            await self._nc.drain()
        if not self._nc.is_closed:
            await self._nc.close()

    async def delete_streams(self) -> None:
        """Removes this prefix's streams and cursor bucket (tests, and ``lijiao log``)."""
        for info in await self._streams_of_prefix():
            await self._js.delete_stream(info.config.name)
        with contextlib.suppress(NotFoundError):
            await self._js.delete_key_value(f"{self.options.prefix}_cursors")


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


async def _awaited(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


def _stamp(msg: Any) -> int:
    """When JetStream stored a message, in ns since the epoch."""
    return time.time_ns() if msg.time is None else _ns(msg.time)


def _stored(resource: str, msg: Any) -> StoredBatch:
    headers = msg.headers or {}
    return StoredBatch(
        position=int(msg.seq or 0),
        resource=resource,
        publisher=untoken(msg.subject.rsplit(".", 1)[-1]),
        digest=bytes.fromhex(headers.get("Lijiao-Digest", "")),
        received_ns=int(headers.get("Lijiao-Received", "0")),
        stored_ns=_stamp(msg),
        payload=msg.data or b"",
    )


def _ns(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000) * 1000
