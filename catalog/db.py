"""Opening the catalog database, and keeping its schema at the newest migration.

The schema is Alembic's (``catalog/migrations``): :func:`upgrade` brings a database to
the newest revision; :func:`open_catalog` does it by default, so a new database is
ready at once, and refuses a database behind the code when told not to migrate.
"""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.orm import Session, sessionmaker

from catalog.changes import record_changes
from catalog.ledger import ensure_head
from catalog.models import Base


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class SchemaBehind(Exception):
    """The database is at an older revision than the code and migrating is off."""


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", "catalog:migrations")
    return config


def head_revision() -> str:
    """The newest migration of this code."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision a database is at (None: no schema yet)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Brings the database to the newest revision; returns (before, after).

    A new, empty database gets the whole schema at once and is stamped at the newest
    revision (Alembic's recipe for building from scratch); the migrations are applied
    to databases that have a schema.
    """
    before = current_revision(engine)
    head = head_revision()
    if before == head:
        return before, head
    config = _config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        if before is None and not inspect(conn).get_table_names():
            Base.metadata.create_all(conn)
            ensure_head(conn)
            command.stamp(config, "head")
        else:
            command.upgrade(config, "head")
    return before, head


def open_catalog(url: str, *, migrate: bool = True) -> sessionmaker[Session]:
    """Opens the catalog at a SQLAlchemy URL, migrating it to the newest revision.

    SQLite gets WAL journaling, full fsync and foreign keys. Every change made through
    the returned sessions is also written to the audit ledger (catalog.changes).

    Raises:
        SchemaBehind: ``migrate`` is off and the database is not at the newest revision.
    """
    engine: Engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if migrate:
        upgrade(engine)
    else:
        current, head = current_revision(engine), head_revision()
        if current != head:
            engine.dispose()
            raise SchemaBehind(
                f"the catalog database is at revision {current or 'none'}, this gateway "
                f"needs {head}: run lijiao db upgrade (or start without --no-migrate)"
            )
    sessions = sessionmaker(engine, expire_on_commit=False)
    record_changes(sessions)
    return sessions


def close_catalog(sessions: sessionmaker[Session]) -> None:
    """Closes the connections of a catalog opened with :func:`open_catalog`."""
    sessions.kw["bind"].dispose()
