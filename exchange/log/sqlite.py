"""The embedded record log in SQLite: the default, for one gateway process.

One writer thread owns the write connection, so appends never block the event loop and
a batch is acknowledged only after its transaction is committed (WAL journal,
``synchronous=FULL`` by default: durable across power loss). A reader thread serves
deliveries. Storage grows on disk, not in memory.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envelope.errors import AlreadyExists, Reason
from exchange.log.base import Appended, CursorLag, NewBatch, StoredBatch, settle

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    position     INTEGER PRIMARY KEY AUTOINCREMENT,
    resource     TEXT    NOT NULL,
    batch_id     TEXT    NOT NULL,
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
CREATE UNIQUE INDEX IF NOT EXISTS batches_by_publisher_id ON batches (publisher, batch_id);
CREATE INDEX IF NOT EXISTS batches_by_resource ON batches (resource, position);
CREATE INDEX IF NOT EXISTS batches_by_sequence ON batches (publisher, resource, sequence);
CREATE TABLE IF NOT EXISTS cursors (
    system       TEXT    NOT NULL,
    resource     TEXT    NOT NULL,
    subscription TEXT    NOT NULL,
    position     INTEGER NOT NULL,
    updated_ns   INTEGER NOT NULL,
    PRIMARY KEY (system, resource, subscription)
);
"""


# Pragmas take no bound parameters: the two allowed statements are spelled out.
_SYNCHRONOUS = {"FULL": "PRAGMA synchronous=FULL", "NORMAL": "PRAGMA synchronous=NORMAL"}


@dataclass
class _Append:
    batch: NewBatch
    future: asyncio.Future[Appended]
    loop: asyncio.AbstractEventLoop


_STOP = object()
_WAKE = object()
GROUP_LIMIT = 256


class SqliteLog:
    """SQLite record log with group commit and per-resource change notification.

    Appends and cursor moves queued while the writer thread commits are written
    together in the next transaction: one fsync for many batches when publishers are
    busy, and still one transaction per batch when they are not.
    """

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._synchronous = synchronous
        self._write_conn = self._connect()
        self._write_conn.executescript(_SCHEMA)
        self._read_conn = self._connect()
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="lijiao-log-reader")
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._cursor_lock = threading.Lock()
        self._pending_cursors: dict[tuple[str, str, str], int] = {}
        self._committing_cursors: dict[tuple[str, str, str], int] = {}  # in the commit under way
        self._writer = threading.Thread(
            target=self._write_loop, name="lijiao-log-writer", daemon=True
        )
        self._writer.start()
        self._watchers: dict[str, set[asyncio.Event]] = defaultdict(set)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(_SYNCHRONOUS[self._synchronous])
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    async def _run(self, pool: ThreadPoolExecutor, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def append(self, batch: NewBatch) -> Appended:
        """Appends a batch durably, or finds the identical batch already stored.

        Raises:
            AlreadyExists: BATCH_ID_REUSED when the batch id is stored with other content.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Appended] = loop.create_future()
        self._jobs.put(_Append(batch, future, loop))
        result = await future
        if not result.duplicate:
            for event in self._watchers.get(batch.resource, ()):
                event.set()
        return result

    def watch(self, resource: str, event: asyncio.Event) -> None:
        """Sets ``event`` whenever a new batch of ``resource`` is appended."""
        self._watchers[resource].add(event)

    def unwatch(self, resource: str, event: asyncio.Event) -> None:
        """Stops setting ``event``."""
        self._watchers[resource].discard(event)

    def _write_loop(self) -> None:
        while True:
            jobs = [self._jobs.get()]
            while len(jobs) < GROUP_LIMIT:
                try:
                    jobs.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            appends = [job for job in jobs if isinstance(job, _Append)]
            with self._cursor_lock:
                cursors, self._pending_cursors = self._pending_cursors, {}
                self._committing_cursors = cursors
            if appends or cursors:
                self._commit_group(appends, cursors)
            with self._cursor_lock:
                self._committing_cursors = {}
            if any(job is _STOP for job in jobs):
                return

    def _commit_group(
        self, appends: list[_Append], cursors: dict[tuple[str, str, str], int]
    ) -> None:
        conn = self._write_conn
        outcomes: list[Appended | BaseException] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in appends:
                conn.execute("SAVEPOINT batch")
                try:
                    outcomes.append(self._insert(conn, job.batch))
                    conn.execute("RELEASE batch")
                except (AlreadyExists, sqlite3.IntegrityError, OverflowError, ValueError) as exc:
                    # one bad batch fails alone; the rest of the group still commits
                    conn.execute("ROLLBACK TO batch")
                    conn.execute("RELEASE batch")
                    outcomes.append(exc)
            now = time.time_ns()
            conn.executemany(
                "INSERT INTO cursors (system, resource, subscription, position, updated_ns) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (system, resource, subscription) DO UPDATE "
                "SET position = max(position, excluded.position), "
                "updated_ns = excluded.updated_ns",
                [(*key, position, now) for key, position in cursors.items()],
            )
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [exc] * len(appends)
            with self._cursor_lock:  # keep the moves for the next try
                for key, position in cursors.items():
                    self._pending_cursors[key] = max(position, self._pending_cursors.get(key, 0))
        for job, outcome in zip(appends, outcomes, strict=True):
            job.loop.call_soon_threadsafe(settle, job.future, outcome)

    @staticmethod
    def _insert(conn: sqlite3.Connection, b: NewBatch) -> Appended:
        existing = conn.execute(
            "SELECT position, digest, stored_ns FROM batches WHERE publisher = ? AND batch_id = ?",
            (b.publisher, b.batch_id),
        ).fetchone()
        if existing is not None:
            return SqliteLog._duplicate(b, existing)
        stored = time.time_ns()
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

    async def read_after(self, resource: str, position: int, limit: int) -> list[StoredBatch]:
        """Returns up to ``limit`` batches of a resource after ``position``, in order."""
        rows = await self._run(self._reader, self._read_after, resource, position, limit)
        return [StoredBatch(*row) for row in rows]

    def _read_after(self, resource: str, position: int, limit: int) -> list[tuple[Any, ...]]:
        return self._read_conn.execute(
            "SELECT position, resource, publisher, digest, received_ns, stored_ns, payload "
            "FROM batches WHERE resource = ? AND position > ? ORDER BY position LIMIT ?",
            (resource, position, limit),
        ).fetchall()

    async def last_sequence(self, publisher: str, resource: str, before: int) -> int | None:
        """The highest sequence a publisher used for a resource in batches before a position."""
        row = await self._run(
            self._reader,
            lambda: self._read_conn.execute(
                "SELECT MAX(sequence) FROM batches WHERE publisher = ? AND resource = ? "
                "AND position < ?",
                (publisher, resource, before),
            ).fetchone(),
        )
        return None if row is None or row[0] is None else int(row[0])

    async def cursor(self, system: str, resource: str, subscription: str) -> int:
        """Returns the last acknowledged position of a subscription (0 when new).

        The moves not yet committed are read first, then the table: a commit that ends
        in between is then in the table, so no move is missed.
        """
        key = (system, resource, subscription)
        with self._cursor_lock:
            pending = max(self._pending_cursors.get(key, 0), self._committing_cursors.get(key, 0))
        row = await self._run(
            self._reader,
            lambda: self._read_conn.execute(
                "SELECT position FROM cursors WHERE system = ? AND resource = ? "
                "AND subscription = ?",
                (system, resource, subscription),
            ).fetchone(),
        )
        return max(int(row[0]) if row else 0, pending)

    async def position_at(self, resource: str, time_ns: int) -> int:
        """The last position of a resource stored before ``time_ns`` (0 if none)."""
        row = await self._run(
            self._reader,
            lambda: self._read_conn.execute(
                "SELECT MAX(position) FROM batches WHERE resource = ? AND stored_ns < ?",
                (resource, time_ns),
            ).fetchone(),
        )
        return 0 if row is None or row[0] is None else int(row[0])

    def move_cursor(self, system: str, resource: str, subscription: str, position: int) -> None:
        """Moves a subscription's cursor forward; committed with the writer's next group.

        A crash before that commit only means the batches are delivered again.
        """
        key = (system, resource, subscription)
        with self._cursor_lock:
            self._pending_cursors[key] = max(position, self._pending_cursors.get(key, 0))
        self._jobs.put(_WAKE)

    def recent(self, count: int, since_ns: int = 0) -> list[tuple[str, int, int]]:
        """The newest ``count`` batches stored at or after ``since_ns``, oldest first, as
        (resource, position, stored_ns). Uses its own connection (the ledger's
        reconciliation, beside serving)."""
        conn = self._connect()
        try:
            rows = conn.execute(
                "SELECT resource, position, stored_ns FROM batches WHERE stored_ns >= ? "
                "ORDER BY position DESC LIMIT ?",
                (since_ns, count),
            ).fetchall()
        finally:
            conn.close()
        return [(str(r), int(p), int(s)) for r, p, s in reversed(rows)]

    def batch_at(self, resource: str, position: int) -> tuple[NewBatch, int] | None:
        """The batch at ``position`` with its stored_ns (its own connection)."""
        conn = self._connect()
        try:
            row = conn.execute(
                "SELECT resource, batch_id, publisher, sequence, fingerprint, digest, "
                "record_count, byte_count, received_ns, payload, stored_ns "
                "FROM batches WHERE position = ? AND resource = ?",
                (position, resource),
            ).fetchone()
        finally:
            conn.close()
        return None if row is None else (NewBatch(*row[:10]), int(row[10]))

    def lag(self) -> list[CursorLag]:
        """Every subscription's unacknowledged records and oldest unacknowledged batch.

        Uses its own connection, so a scrape does not queue behind deliveries.
        """
        conn = self._connect()
        try:
            cursors = conn.execute(
                "SELECT system, resource, subscription, position FROM cursors"
            ).fetchall()
            with self._cursor_lock:
                pending = dict(self._pending_cursors)
            out = []
            for system, resource, subscription, position in cursors:
                position = max(position, pending.get((system, resource, subscription), 0))
                records, oldest = conn.execute(
                    "SELECT COALESCE(SUM(record_count), 0), COALESCE(MIN(stored_ns), 0) "
                    "FROM batches WHERE resource = ? AND position > ?",
                    (resource, position),
                ).fetchone()
                out.append(CursorLag(system, resource, subscription, records, oldest))
            return out
        finally:
            conn.close()

    async def close(self) -> None:
        """Commits what is queued and closes the database."""
        await asyncio.to_thread(self.close_now)

    def close_now(self) -> None:
        """:meth:`close` from a thread that is not running the event loop."""
        self._jobs.put(_STOP)
        self._writer.join()
        self._reader.shutdown(wait=True)
        self._write_conn.close()
        self._read_conn.close()
