"""An adapter's own durable state: cursors, an outbox of signed batches, dead letters.

It lives in one small SQLite file beside the adapter. The outbox makes a crash at any
moment harmless: a batch is written here, signed, *before* it is sent; the source's
cursor moves only when the gateway acknowledged it. After a crash the adapter sends the
outbox again, byte for byte (same batch id, same signature), so the gateway stores each
batch once, and the source resumes after the last acknowledged cursor.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cursors (
    stream     TEXT PRIMARY KEY,
    cursor     TEXT NOT NULL,
    updated_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    stream     TEXT NOT NULL,
    batch      BLOB,
    cursor     TEXT NOT NULL,
    note       TEXT NOT NULL,
    created_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    stream     TEXT NOT NULL,
    batch_id   TEXT NOT NULL,
    reason     TEXT NOT NULL,
    detail     TEXT NOT NULL,
    created_ns INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class Staged:
    """A batch written to the outbox and not yet acknowledged.

    Attributes:
        id: Outbox row id (orders the outbox).
        stream: The publish entry it belongs to.
        batch: The serialized, signed ``RecordBatch`` (None for a read that carried no
            records, e.g. only rejected files, which still moves the cursor).
        cursor: Where the source resumes once this batch is acknowledged.
        note: The source's ``on_commit`` note.
    """

    id: int
    stream: str
    batch: bytes | None
    cursor: Any
    note: Any


class AdapterState:
    """The state file. Thread-safe; every change is one committed transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        path.chmod(0o600)

    def cursor(self, stream: str) -> Any:
        """The last acknowledged cursor of a stream (None: read from the beginning)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT cursor FROM cursors WHERE stream = ?", (stream,)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def stage(self, stream: str, batch: bytes | None, cursor: Any, note: Any) -> Staged:
        """Writes a batch to the outbox durably, before it is sent."""
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO outbox (stream, batch, cursor, note, created_ns) "
                "VALUES (?, ?, ?, ?, ?)",
                (stream, batch, json.dumps(cursor), json.dumps(note), time.time_ns()),
            )
        return Staged(int(cur.lastrowid or 0), stream, batch, cursor, note)

    def outbox(self, stream: str) -> list[Staged]:
        """Batches of a stream staged but not acknowledged, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, stream, batch, cursor, note FROM outbox WHERE stream = ? ORDER BY id",
                (stream,),
            ).fetchall()
        return [Staged(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4])) for r in rows]

    def acknowledged(self, staged: Staged) -> None:
        """Moves the stream's cursor past an acknowledged batch and clears it from the outbox."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "INSERT INTO cursors (stream, cursor, updated_ns) VALUES (?, ?, ?) "
                    "ON CONFLICT (stream) DO UPDATE SET cursor = excluded.cursor, "
                    "updated_ns = excluded.updated_ns",
                    (staged.stream, json.dumps(staged.cursor), time.time_ns()),
                )
                self._conn.execute("DELETE FROM outbox WHERE id = ?", (staged.id,))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def dead_letter(self, stream: str, batch_id: str, reason: str, detail: Any) -> None:
        """Records something that will not go through (a refused batch, rejected rows)."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO dead_letters (stream, batch_id, reason, detail, created_ns) "
                "VALUES (?, ?, ?, ?, ?)",
                (stream, batch_id, reason, json.dumps(detail, default=str), time.time_ns()),
            )

    def dead_letters(self) -> list[dict[str, Any]]:
        """Every dead letter, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT stream, batch_id, reason, detail, created_ns FROM dead_letters ORDER BY id"
            ).fetchall()
        return [
            {
                "stream": r[0],
                "batch_id": r[1],
                "reason": r[2],
                "detail": json.loads(r[3]),
                "time_ns": r[4],
            }
            for r in rows
        ]

    def close(self) -> None:
        """Closes the file."""
        with self._lock:
            self._conn.close()
