"""What every record log shares: the :class:`RecordLog` protocol and its data classes.

A leaf of :mod:`exchange.log`: the stores (:mod:`exchange.log.sqlite`,
:mod:`exchange.log.jetstream`) import it, and it imports none of them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from dataclasses import dataclass
from typing import Any, Protocol


def settle(future: asyncio.Future[Any] | concurrent.futures.Future[Any], outcome: Any) -> None:
    """Completes a future with a result or an exception, unless its waiter cancelled it."""
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


@dataclass(frozen=True)
class NewBatch:
    """A verified, validated batch ready to append.

    Attributes:
        resource: Resource code.
        batch_id: Publisher's batch id.
        publisher: Publishing system code.
        sequence: Publisher's sequence number.
        fingerprint: Writer schema fingerprint (8 bytes).
        digest: The batch digest the publisher signed.
        record_count: Number of records.
        byte_count: Total encoded record bytes.
        received_ns: When the gateway received the batch (ns since the epoch).
        payload: The serialized ``RecordBatch`` message, signature included.
    """

    resource: str
    batch_id: str
    publisher: str
    sequence: int
    fingerprint: bytes
    digest: bytes
    record_count: int
    byte_count: int
    received_ns: int
    payload: bytes


@dataclass(frozen=True)
class Appended:
    """Outcome of an append: where the batch is and whether it was there already."""

    position: int
    duplicate: bool
    stored_ns: int


@dataclass(frozen=True)
class StoredBatch:
    """A batch read back from the log."""

    position: int
    resource: str
    publisher: str
    digest: bytes
    received_ns: int
    stored_ns: int
    payload: bytes


@dataclass(frozen=True)
class CursorLag:
    """What a subscription has not acknowledged yet."""

    system: str
    resource: str
    subscription: str
    records: int
    oldest_stored_ns: int  # 0 when caught up


class RecordLog(Protocol):
    """What the gateway needs of a record log.

    Positions are per resource: increasing, never reused, and the offset a subscriber
    acknowledges. Cursors are per (subscriber system, resource, subscription).
    """

    async def append(self, batch: NewBatch) -> Appended:
        """Stores a batch durably (or finds the same batch id with the same digest);
        raises AlreadyExists(BATCH_ID_REUSED) for the same id with other content."""
        ...

    def watch(self, resource: str, event: asyncio.Event) -> None:
        """Sets ``event`` whenever a new batch of ``resource`` is stored."""
        ...

    def unwatch(self, resource: str, event: asyncio.Event) -> None:
        """Stops setting ``event``."""
        ...

    async def read_after(self, resource: str, position: int, limit: int) -> list[StoredBatch]:
        """Up to ``limit`` batches of a resource after ``position``, in order."""
        ...

    async def last_sequence(self, publisher: str, resource: str, before: int) -> int | None:
        """The highest sequence a publisher used for a resource before a position."""
        ...

    async def cursor(self, system: str, resource: str, subscription: str) -> int:
        """The last acknowledged position of a subscription (0 when new)."""
        ...

    async def position_at(self, resource: str, time_ns: int) -> int:
        """The position after which a resource's batches stored at or after ``time_ns``
        begin (where a replay from that time starts)."""
        ...

    def move_cursor(self, system: str, resource: str, subscription: str, position: int) -> None:
        """Moves a cursor forward, durably soon after; callable from any thread."""
        ...

    def recent(self, count: int, since_ns: int = 0) -> list[tuple[str, int, int]]:
        """The newest ``count`` batches stored at or after ``since_ns`` (per stream, where
        the log has several), as (resource, position, stored_ns); from a worker thread."""
        ...

    def batch_at(self, resource: str, position: int) -> tuple[NewBatch, int] | None:
        """The stored batch at a position, with its stored_ns; from a worker thread."""
        ...

    def lag(self) -> list[CursorLag]:
        """Every subscription's unacknowledged records; from a worker thread."""
        ...

    async def close(self) -> None:
        """Writes what is queued and releases the store."""
        ...
