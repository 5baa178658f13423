"""The database behind the ``sql`` adapter: its URL, its engine, and its errors.

Every error it raises is an :class:`~adapters.contract.AdapterError` whose message never
shows the URL's password, in any spelling.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, quote_plus

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from adapters.contract import AdapterError


class Database:
    """One database named by a URL: its engine, errors that never show the password."""

    def __init__(self, url: str, schema_name: str) -> None:
        try:
            self.url = sa.make_url(url)
        except sa_exc.ArgumentError:
            raise AdapterError(
                "option 'url' is not a SQLAlchemy URL (dialect+driver://user@host/database)",
                "url",
            ) from None
        self.schema = schema_name or None
        self._engine: sa.Engine | None = None
        self._engine_lock = threading.Lock()

    def __str__(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def scrub(self, text: str) -> str:
        """Returns ``text`` with the URL's password, in any spelling, replaced by ``***``."""
        password = self.url.password
        if password:
            for form in {str(password), quote(str(password)), quote_plus(str(password))}:
                text = text.replace(form, "***")
        return text

    def qualified(self, table: str) -> str:
        """The table's name as the operator wrote it, with its schema if any."""
        return f"{self.schema}.{table}" if self.schema else table

    @contextmanager
    def connect(self, *, may_create: bool = False) -> Iterator[sa.Connection]:
        """Yields a connection; failing to connect is an :class:`AdapterError` on ``url``.

        Args:
            may_create: Whether a missing SQLite file may be created (else it is an error).
        """
        database = self.url.database or ""
        if (
            self.url.get_backend_name() == "sqlite"
            and not may_create
            and database not in ("", ":memory:")
            and not database.startswith("file:")
            and not Path(database).exists()
        ):
            raise AdapterError(f"database file {database!r} not found ({self})", "url")
        with self.failures(f"cannot connect to {self}"):
            with self._engine_lock:
                if self._engine is None:
                    self._engine = sa.create_engine(self.url)
            connection = self._engine.connect()
        try:
            yield connection
        finally:
            connection.close()

    @contextmanager
    def failures(self, doing: str) -> Iterator[None]:
        """Turns SQLAlchemy and driver errors into an :class:`AdapterError` on ``url``."""
        try:
            yield
        except (sa_exc.SQLAlchemyError, ImportError) as exc:
            raise AdapterError(f"{doing}: {self.reason(exc)}", "url") from None

    def reason(self, exc: BaseException) -> str:
        """The first line of what the database said, without the password."""
        original = getattr(exc, "orig", None) or exc
        text = str(original).strip().splitlines() or [type(original).__name__]
        return self.scrub(text[0])

    def reflect(self, connection: sa.Connection, table: str) -> sa.Table:
        """Reflects ``table`` (or a view of that name).

        Raises:
            AdapterError: There is no such table; ``key`` is ``table``.
        """
        with self.failures(f"cannot reflect table {self.qualified(table)!r} of {self}"):
            try:
                return sa.Table(table, sa.MetaData(), schema=self.schema, autoload_with=connection)
            except sa_exc.NoSuchTableError:
                raise AdapterError(
                    f"table {self.qualified(table)!r} not found in {self}", "table"
                ) from None

    def dispose(self) -> None:
        """Closes pooled connections."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
