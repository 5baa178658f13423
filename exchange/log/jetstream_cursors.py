"""The JetStream log's subscription cursors, and what each subscription has not
acknowledged yet (the lag figures of the metrics).

Cursors live in the key-value bucket ``p_cursors``, one key ``SYSTEM.RESOURCE.
SUBSCRIPTION`` (as subject tokens) each, and move forward only: compare-and-set on the
entry's revision, so replicas serving the same subscription one after the other never
move a cursor back. A move is queued and written by a task on the event loop; a crash
before the write only means the batches are delivered again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from nats.errors import Error as NatsError
from nats.js import api
from nats.js.errors import (
    BadRequestError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
)
from nats.js.errors import Error as JetStreamError

from envelope.errors import Reason, Unavailable
from exchange.log.base import CursorLag
from exchange.log.jetstream_streams import (
    STORE_ERRORS,
    JetStreamOptions,
    Streams,
    nanoseconds,
    stream_of,
    subject_of,
    token,
    untoken,
)

log = logging.getLogger(__name__)

LAG_SAMPLE = 1000  # pending batches whose record counts are read for the lag metric


async def cursor_bucket(nc: Any, js: Any, o: JetStreamOptions) -> Any:
    """The bucket ``p_cursors``, made unless another replica made it.

    Raises:
        ValueError: NATS answers but JetStream does not (the connection is then closed).
    """
    bucket = f"{o.prefix}_cursors"
    try:
        return await js.create_key_value(
            api.KeyValueConfig(
                bucket=bucket,
                history=1,
                storage=api.StorageType.FILE,
                replicas=o.replicas,
            )
        )
    except BadRequestError:  # made by another replica with other settings
        return await js.key_value(bucket)
    except (JetStreamError, NatsError) as exc:
        await nc.close()
        raise ValueError(
            f"NATS answers but JetStream does not ({exc}): start nats-server with -js"
        ) from exc


class Cursors:
    """The cursors of one bucket, with the moves not written yet."""

    def __init__(self, kv: Any, nc: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._kv = kv
        self._nc = nc
        self._loop = loop
        self._pending: dict[tuple[str, str, str], int] = {}
        self._pending_lock = threading.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    @staticmethod
    def _key(system: str, resource: str, subscription: str) -> str:
        return f"{token(system)}.{token(resource)}.{token(subscription)}"

    async def cursor(self, system: str, resource: str, subscription: str) -> int:
        """The last acknowledged position of a subscription (0 when new).

        Raises:
            Unavailable: LOG_UNAVAILABLE when the bucket does not answer.
        """
        key = self._key(system, resource, subscription)
        with self._pending_lock:  # first: a write that ends meanwhile is then in the bucket
            pending = self._pending.get((system, resource, subscription), 0)
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
        return max(stored, pending)

    def move(self, system: str, resource: str, subscription: str, position: int) -> None:
        """Moves a cursor forward; written to the bucket by a task on the event loop.

        Callable from any thread.
        """
        key = (system, resource, subscription)
        with self._pending_lock:
            self._pending[key] = max(position, self._pending.get(key, 0))
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

    async def close(self) -> None:
        """Writes the moves still queued, for up to 5 s, and takes no more."""
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

    async def lag(self, streams: Streams) -> list[CursorLag]:
        """Every subscription's unacknowledged records and oldest unacknowledged batch.

        The records of the first :data:`LAG_SAMPLE` pending batches are counted; beyond
        that they are estimated from those.
        """
        try:
            keys = await self._kv.keys()
        except NoKeysError:
            return []
        prefix = streams.options.prefix
        out = []
        for key in keys:
            system, resource, subscription = (untoken(part) for part in key.split("."))
            position = await self.cursor(system, resource, subscription)
            stream = stream_of(prefix, resource)
            try:
                if not await streams.exists(stream):
                    continue
                pending = await streams.scan(
                    stream,
                    subject_of(prefix, resource),
                    LAG_SAMPLE,
                    after=position,
                    headers_only=True,
                )
            except STORE_ERRORS as exc:  # this subscription's figure waits for the next scrape
                log.warning("record log: lag of %s/%s not read: %s", system, resource, exc)
                continue
            records = sum(int(m.headers.get("Lijiao-Records", "0")) for m in pending)
            oldest = nanoseconds(pending[0].metadata.timestamp) if pending else 0
            if pending and pending[-1].metadata.num_pending:
                more = pending[-1].metadata.num_pending
                records += round(records / len(pending) * more)
            out.append(CursorLag(system, resource, subscription, records, oldest))
        return out
