"""The durable record log: accepted batches and subscription cursors in SQLite.

One writer thread owns the write connection, so appends never block the event loop
and a batch is acknowledged only after its transaction is committed (WAL journal,
``synchronous=FULL`` by default: durable across power loss). A reader thread serves
deliveries. Storage grows on disk, not in memory.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from catalog.errors import AlreadyExists, Reason

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    position     INTEGER PRIMARY KEY AUTOINCREMENT,
    resource     TEXT    NOT NULL,
    batch_id     TEXT    NOT NULL UNIQUE,
    publisher    TEXT    NOT NULL,
    sequence     INTEGER NOT NULL,
    fingerprint  BLOB    NOT NULL,
    digest       BLOB    NOT NULL,
    record_count INTEGER NOT NULL,
    byte_count   INTEGER NOT NULL,
    received_ns  INTEGER NOT NULL,
    stored_ns    INTEGER NOT NULL,
    payload      BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_by_resource ON batches (resource, position);
CREATE TABLE IF NOT EXISTS cursors (
    system       TEXT    NOT NULL,
    resource     TEXT    NOT NULL,
    subscription TEXT    NOT NULL,
    position     INTEGER NOT NULL,
    updated_ns   INTEGER NOT NULL,
    PRIMARY KEY (system, resource, subscription)
);
"""


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
    stored_ns: int
    payload: bytes


class RecordLog:
    """SQLite record log with per-resource change notification."""

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="lijiao-log-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="lijiao-log-reader")
        self._synchronous = synchronous
        self._write_conn = self._connect()
        self._write_conn.executescript(_SCHEMA)
        self._read_conn = self._connect()
        self._generations: dict[str, int] = defaultdict(int)
        self._events: dict[str, asyncio.Event] = {}

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    async def _run(self, pool: ThreadPoolExecutor, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def append(self, batch: NewBatch) -> Appended:
        """Appends a batch durably, or finds the identical batch already stored.

        Raises:
            AlreadyExists: BATCH_ID_REUSED when the batch id is stored with other content.
        """
        result: Appended = await self._run(self._writer, self._append, batch)
        if not result.duplicate:
            self._generations[batch.resource] += 1
            event = self._events.pop(batch.resource, None)
            if event is not None:
                event.set()
        return result

    def _append(self, b: NewBatch) -> Appended:
        conn = self._write_conn
        existing = conn.execute(
            "SELECT position, digest, stored_ns FROM batches WHERE batch_id = ?", (b.batch_id,)
        ).fetchone()
        if existing is not None:
            return self._duplicate(b, existing)
        stored = time.time_ns()
        conn.execute("BEGIN IMMEDIATE")
        try:
            cur = conn.execute(
                "INSERT INTO batches (resource, batch_id, publisher, sequence, fingerprint, "
                "digest, record_count, byte_count, received_ns, stored_ns, payload) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    b.resource,
                    b.batch_id,
                    b.publisher,
                    b.sequence,
                    b.fingerprint,
                    b.digest,
                    b.record_count,
                    b.byte_count,
                    b.received_ns,
                    stored,
                    b.payload,
                ),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return Appended(int(cur.lastrowid or 0), False, stored)

    @staticmethod
    def _duplicate(b: NewBatch, existing: tuple[int, bytes, int]) -> Appended:
        position, digest, stored = existing
        if digest != b.digest:
            raise AlreadyExists(
                Reason.BATCH_ID_REUSED,
                f"batch id {b.batch_id!r} is already stored with different content; "
                "use a new batch id for new records",
                {"batch_id": b.batch_id},
            )
        return Appended(position, True, stored)

    async def find(self, batch_id: str) -> tuple[int, bytes, int] | None:
        """Returns (position, digest, stored_ns) of a stored batch id, if any."""
        row: tuple[int, bytes, int] | None = await self._run(
            self._reader,
            lambda: self._read_conn.execute(
                "SELECT position, digest, stored_ns FROM batches WHERE batch_id = ?", (batch_id,)
            ).fetchone(),
        )
        return row

    async def read_after(self, resource: str, position: int, limit: int) -> list[StoredBatch]:
        """Returns up to ``limit`` batches of a resource after ``position``, in order."""
        rows = await self._run(self._reader, self._read_after, resource, position, limit)
        return [StoredBatch(*row) for row in rows]

    def _read_after(self, resource: str, position: int, limit: int) -> list[tuple[Any, ...]]:
        return self._read_conn.execute(
            "SELECT position, resource, publisher, digest, stored_ns, payload FROM batches "
            "WHERE resource = ? AND position > ? ORDER BY position LIMIT ?",
            (resource, position, limit),
        ).fetchall()

    def generation(self, resource: str) -> int:
        """Counts the appends of ``resource`` by this process (for change waiting)."""
        return self._generations[resource]

    async def wait_for_append(self, resource: str, generation: int, seconds: float) -> None:
        """Waits until ``resource`` has moved past ``generation`` or ``seconds`` pass."""
        if self._generations[resource] != generation:
            return
        event = self._events.setdefault(resource, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            return

    async def cursor(self, system: str, resource: str, subscription: str) -> int:
        """Returns the last acknowledged position of a subscription (0 when new)."""
        row = await self._run(
            self._reader,
            lambda: self._read_conn.execute(
                "SELECT position FROM cursors WHERE system = ? AND resource = ? "
                "AND subscription = ?",
                (system, resource, subscription),
            ).fetchone(),
        )
        return int(row[0]) if row else 0

    async def commit_cursor(
        self, system: str, resource: str, subscription: str, position: int
    ) -> None:
        """Durably moves a subscription's cursor forward to ``position``."""
        await self._run(self._writer, self._commit_cursor, system, resource, subscription, position)

    def _commit_cursor(self, system: str, resource: str, subscription: str, position: int) -> None:
        self._write_conn.execute(
            "INSERT INTO cursors (system, resource, subscription, position, updated_ns) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (system, resource, subscription) DO UPDATE "
            "SET position = max(position, excluded.position), updated_ns = excluded.updated_ns",
            (system, resource, subscription, position, time.time_ns()),
        )

    async def stats(self) -> dict[str, int]:
        """Counts of stored batches and records (for summaries and tests)."""
        row = await self._run(
            self._reader,
            lambda: self._read_conn.execute(
                "SELECT count(*), coalesce(sum(record_count), 0) FROM batches"
            ).fetchone(),
        )
        return {"batches": int(row[0]), "records": int(row[1])}

    def close(self) -> None:
        """Finishes pending work and closes the database."""
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)
        self._write_conn.close()
        self._read_conn.close()
