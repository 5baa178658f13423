"""Opening the catalog database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from catalog.changes import record_changes
from catalog.models import Base


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def open_catalog(url: str) -> sessionmaker[Session]:
    """Opens (and creates when new) the catalog at a SQLAlchemy URL.

    SQLite gets WAL journaling, full fsync and foreign keys. Every change made through
    the returned sessions is also written to the audit ledger (catalog.changes).
    """
    engine: Engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    Base.metadata.create_all(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    record_changes(sessions)
    return sessions


def close_catalog(sessions: sessionmaker[Session]) -> None:
    """Closes the connections of a catalog opened with :func:`open_catalog`."""
    sessions.kw["bind"].dispose()
