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

The URL, the names and the streams are in :mod:`exchange.log.jetstream_streams`; the
cursors and the lag figures in :mod:`exchange.log.jetstream_cursors`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from nats.errors import Error as NatsError
from nats.js import api
from nats.js.errors import Error as JetStreamError
from nats.js.errors import NotFoundError

from envelope.errors import AlreadyExists, Reason, ResourceExhausted, Unavailable
from exchange.log.base import Appended, CursorLag, NewBatch, StoredBatch
from exchange.log.jetstream_cursors import Cursors, cursor_bucket
from exchange.log.jetstream_streams import (
    STORE_ERRORS,
    JetStreamOptions,
    Streams,
    connect_nats,
    message_id,
    stamp,
    stream_of,
    subject_of,
    token,
    untoken,
)
from exchange.v1 import exchange_pb2

T = TypeVar("T")

HEADER_ROOM = 4096  # bytes of a message's headers and subject, below max_payload
PUBLISH_TIMEOUT = 10.0  # seconds JetStream has to acknowledge a batch


class JetStreamLog:
    """The record log in NATS JetStream (see the module's description)."""

    _streams: Streams  # both made once connected
    _cursors: Cursors

    def __init__(self, options: JetStreamOptions) -> None:
        self.options = options
        self._nc: Any = None
        self._js: Any = None
        self._kv: Any = None  # the cursor bucket
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchers: dict[str, set[asyncio.Event]] = defaultdict(set)
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
        self._nc = await connect_nats(o, closing=lambda: self._closed)
        self._js = self._nc.jetstream(timeout=10)
        self._kv = await cursor_bucket(self._nc, self._js, o)
        self._streams = Streams(o, self._js)
        self._cursors = Cursors(self._kv, self._nc, self._loop)
        await self._nc.subscribe(f"{o.prefix}.new.*", cb=self._on_new)

    def stream_of(self, resource: str) -> str:
        """The stream that holds a resource's batches."""
        return stream_of(self.options.prefix, resource)

    def _subject(self, resource: str, publisher: str = "*") -> str:
        return subject_of(self.options.prefix, resource, publisher)

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
            found = await self._guard(self._streams.get(stream, ack.seq))
            if found is None:  # a direct get may reach a follower that lacks it yet
                found = await self._guard(self._streams.leader_get(stream, ack.seq))
            if (found.headers or {}).get("Lijiao-Digest") != batch.digest.hex():
                raise AlreadyExists(
                    Reason.BATCH_ID_REUSED,
                    f"batch id {batch.batch_id!r} is already stored with different content; "
                    "use a new batch id for new records",
                    {"batch_id": batch.batch_id},
                )
            return Appended(ack.seq, True, stamp(found))
        self._notify(batch.resource)
        with contextlib.suppress(*STORE_ERRORS):
            await self._nc.publish(f"{self.options.prefix}.new.{token(batch.resource)}", b"")
        return Appended(ack.seq, False, stored)

    async def _handoff(self, batch: NewBatch, headers: dict[str, str]) -> Awaitable[api.PubAck]:
        """Sends a batch in its publish stream's order (bounded: never a frozen path)."""
        async with asyncio.timeout(PUBLISH_TIMEOUT), self._order:
            stream = await self._streams.ready(batch.resource)
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
        self._streams.seen(resource)  # made by the replica that stored it
        self._notify(resource)

    def watch(self, resource: str, event: asyncio.Event) -> None:
        """Sets ``event`` whenever a batch of ``resource`` is stored, by any replica."""
        self._watchers[resource].add(event)

    def unwatch(self, resource: str, event: asyncio.Event) -> None:
        """Stops setting ``event``."""
        self._watchers[resource].discard(event)

    # -- reading -------------------------------------------------------------------

    async def read_after(self, resource: str, position: int, limit: int) -> list[StoredBatch]:
        """Up to ``limit`` batches of a resource after ``position``, in order."""
        stream = self.stream_of(resource)
        subject = self._subject(resource)
        out: list[StoredBatch] = []
        if not self._nc.is_connected:
            return out  # the stream idles and reads again once NATS is back
        try:
            if not await self._streams.exists(stream):
                return out
            while len(out) < limit:
                msg = await self._streams.get(stream, position + 1, subject)
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
            if not await self._streams.exists(self.stream_of(resource)):
                return None
            msg = await self._js.get_msg(
                self.stream_of(resource), subject=self._subject(resource, publisher), direct=True
            )
        except NotFoundError:
            return None
        except STORE_ERRORS:
            return None  # only the anomaly check needs it: skip it rather than refuse
        return int(msg.headers.get("Lijiao-Sequence", "0"))

    async def position_at(self, resource: str, time_ns: int) -> int:
        """The position before the resource's first batch stored at or after ``time_ns``
        (the stream's last position when there is none)."""
        stream = self.stream_of(resource)
        try:
            if not await self._streams.exists(stream):
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
        """Up to ``count`` messages from a throwaway consumer, oldest first."""
        return await self._streams.scan(
            stream, subject, count, start=start, after=after, headers_only=headers_only
        )

    async def _streams_of_prefix(self) -> list[Any]:
        return await self._streams.of_prefix()

    # -- cursors -------------------------------------------------------------------

    async def cursor(self, system: str, resource: str, subscription: str) -> int:
        """The last acknowledged position of a subscription (0 when new)."""
        return await self._cursors.cursor(system, resource, subscription)

    def move_cursor(self, system: str, resource: str, subscription: str, position: int) -> None:
        """Moves a cursor forward; written to the bucket by a task on the event loop.

        Callable from any thread. A crash before the write only means the batches are
        delivered again.
        """
        self._cursors.move(system, resource, subscription, position)

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

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def recent(self, count: int, since_ns: int = 0) -> list[tuple[str, int, int]]:
        """Per stream, the newest ``count`` batches stored at or after ``since_ns``, as
        (resource, position, stored_ns): their headers only. From a worker thread (the
        ledger's reconciliation)."""
        return self._call(lambda: self._streams.newest(count, since_ns), timeout=300)

    def batch_at(self, resource: str, position: int) -> tuple[NewBatch, int] | None:
        """The batch at a position with its stored_ns. From a worker thread."""
        return self._call(lambda: self._batch_at(resource, position))

    async def _batch_at(self, resource: str, position: int) -> tuple[NewBatch, int] | None:
        msg = await self._streams.get(self.stream_of(resource), position)
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
        return stored, stamp(msg)

    def lag(self) -> list[CursorLag]:
        """Every subscription's unacknowledged records and oldest unacknowledged batch.

        The records of the first 1,000 pending batches are counted; beyond that they are
        estimated from those. From a worker thread (a metrics scrape); on the event
        loop's own thread (the collector's registration) it reports nothing."""
        if self._on_loop():
            return []
        return self._call(lambda: self._cursors.lag(self._streams), timeout=30)

    # -- closing -------------------------------------------------------------------

    async def close(self) -> None:
        """Writes the cursors still queued (for up to 5 s) and closes the connection."""
        if self._closed or self._nc is None:
            return
        self._closed = True
        await self._cursors.close()
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


async def _awaited(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


def _stored(resource: str, msg: Any) -> StoredBatch:
    headers = msg.headers or {}
    return StoredBatch(
        position=int(msg.seq or 0),
        resource=resource,
        publisher=untoken(msg.subject.rsplit(".", 1)[-1]),
        digest=bytes.fromhex(headers.get("Lijiao-Digest", "")),
        received_ns=int(headers.get("Lijiao-Received", "0")),
        stored_ns=stamp(msg),
        payload=msg.data or b"",
    )
