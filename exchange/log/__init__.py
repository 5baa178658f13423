"""The durable record log: accepted batches and subscription cursors.

:class:`RecordLog` is what the publish and delivery paths need of a log; two stores
implement it. :class:`SqliteLog` (:mod:`exchange.log.sqlite`) is the embedded default;
:class:`~exchange.log.jetstream.JetStreamLog` (:mod:`exchange.log.jetstream`) keeps the
log in NATS JetStream for several gateway replicas. :func:`open_log` picks one from the
``LIJIAO_LOG_URL`` setting.

The protocol and its data classes live in :mod:`exchange.log.base`, which imports no
store; the stores import it, and this package imports the stores, never the reverse.
"""

from __future__ import annotations

from pathlib import Path

from exchange.log.base import Appended, CursorLag, NewBatch, RecordLog, StoredBatch, settle
from exchange.log.sqlite import SqliteLog

__all__ = [
    "Appended",
    "CursorLag",
    "NewBatch",
    "RecordLog",
    "SqliteLog",
    "StoredBatch",
    "open_log",
    "settle",
]


async def open_log(url: str, sqlite_path: Path, *, synchronous: str = "FULL") -> RecordLog:
    """The record log a ``LIJIAO_LOG_URL`` names: empty for the embedded SQLite log at
    ``sqlite_path``, ``nats://host:port[,host:port]?prefix=..`` for NATS JetStream.

    Raises:
        ValueError: An unknown scheme or a bad setting in the URL.
    """
    if not url:
        return SqliteLog(sqlite_path, synchronous=synchronous)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("nats", "tls"):
        # nats-py is the optional ``nats`` extra: imported only where it is used
        from exchange.log.jetstream import JetStreamLog

        return await JetStreamLog.connect(url)
    raise ValueError(
        f"LIJIAO_LOG_URL {url!r}: give nats://host:4222 for NATS JetStream, or leave it "
        "empty for the embedded SQLite log"
    )
