"""The ``sql`` sink: upserts delivered records by key into one SQLite or PostgreSQL table."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from adapters.contract import AdapterError, Option, Sink, WriteResult
from adapters.sql.connector import Database
from adapters.sql.types import Converter, non_null, sql_type, to_column

_UPSERT_INSERTS: dict[str, Callable[[sa.Table], Any]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}


class SqlSink(Sink):
    """Upserts records by key into one table of a SQLite or PostgreSQL database."""

    name = "sql"
    options = (
        Option("url", str, required=True, help="SQLAlchemy URL of the database"),
        Option("table", str, required=True, help="table to upsert into"),
        Option("schema_name", str, default="", help="database schema (e.g. PostgreSQL)"),
        Option("create_table", bool, default=False,
               help="create the table from the schema when missing (key = primary key)"),
        Option("batch_rows", int, default=500, help="rows per INSERT statement"),
    )  # fmt: skip

    def __init__(self, options: Any) -> None:
        super().__init__(options)
        self._db = Database(self.config["url"], self.config["schema_name"])
        dialect = self._db.url.get_backend_name()
        if dialect not in _UPSERT_INSERTS:
            raise AdapterError(
                f"the sql sink upserts into {' and '.join(sorted(_UPSERT_INSERTS))} only, "
                f"not {dialect} ({self._db})",
                "url",
            )
        if self.config["batch_rows"] < 1:
            raise AdapterError("option 'batch_rows' must be at least 1", "batch_rows")
        self._insert = _UPSERT_INSERTS[dialect]
        self._table: sa.Table | None = None

    async def check(self) -> None:
        """Connects, and checks the table exists unless ``create_table`` is set."""
        await asyncio.to_thread(self._check)

    async def write(
        self,
        schema: dict[str, Any],
        key_fields: Sequence[str],
        records: Sequence[dict[str, Any]],
        batch_id: str,
    ) -> WriteResult:
        """Upserts ``records`` in one transaction; on a constraint or data error, row by row.

        Every record is then either committed or reported as rejected with its reason.
        """
        return await asyncio.to_thread(self._write, schema, list(key_fields), list(records))

    async def close(self) -> None:
        """Closes pooled connections."""
        self._db.dispose()

    def _check(self) -> None:
        create = self.config["create_table"]
        with self._db.connect(may_create=create) as connection:
            if not create:
                self._db.reflect(connection, self.config["table"])

    def _target(self, schema: dict[str, Any], keys: list[str], fresh: bool) -> sa.Table:
        if self._table is not None and not fresh:
            return self._table
        name = self.config["table"]
        create = self.config["create_table"]
        with self._db.connect(may_create=create) as connection:
            try:
                table = self._db.reflect(connection, name)
            except AdapterError as missing:
                if not create or missing.key != "table":
                    raise
                table = self._table_for(schema, keys)
                with self._db.failures(f"cannot create table {name!r} in {self._db}"):
                    table.create(connection, checkfirst=True)
                    connection.commit()
        self._table = table
        return table

    def _table_for(self, schema: dict[str, Any], keys: list[str]) -> sa.Table:
        columns = []
        for field in schema.get("fields", []):
            kind, nullable = non_null(field["type"])
            key = field["name"] in keys
            columns.append(
                sa.Column(
                    field["name"],
                    sql_type(kind),
                    primary_key=key,
                    nullable=nullable and not key,
                    autoincrement=False,
                )
            )
        return sa.Table(self.config["table"], sa.MetaData(), *columns, schema=self._db.schema)

    def _columns(
        self, schema: dict[str, Any], keys: list[str]
    ) -> tuple[sa.Table, dict[str, Converter]]:
        fields = [f["name"] for f in schema.get("fields", [])]
        table = self._target(schema, keys, fresh=False)
        if not set(fields) <= set(table.c.keys()):
            table = self._target(schema, keys, fresh=True)  # the table may have changed
        where = f"table {self._db.qualified(table.name)!r} of {self._db}"
        for name in fields:
            if name not in table.c:
                raise AdapterError(f"field {name!r} has no column in {where}", "table")
        for key in keys:
            if key not in fields:
                raise AdapterError(f"key field {key!r} is not a field of the schema", "table")
        unique = [{c.name for c in table.primary_key.columns}]
        unique += [{c.name for c in i.columns} for i in table.indexes if i.unique]
        unique += [
            {c.name for c in u.columns} for u in table.constraints
            if isinstance(u, sa.UniqueConstraint)
        ]  # fmt: skip
        if set(keys) not in unique:
            raise AdapterError(
                f"{where} has no primary key or unique constraint on {keys}; "
                "the sink upserts by it",
                "table",
            )
        return table, {name: to_column(table.c[name]) for name in fields}

    def _write(
        self, schema: dict[str, Any], keys: list[str], records: list[dict[str, Any]]
    ) -> WriteResult:
        table, converters = self._columns(schema, keys)
        rejected: list[tuple[int, str]] = []
        rows: list[tuple[int, dict[str, Any]]] = []
        for index, record in enumerate(records):
            try:
                rows.append((index, {n: c(record.get(n)) for n, c in converters.items()}))
            except (TypeError, ValueError) as exc:
                rejected.append((index, f"cannot convert the record: {exc}"))
        insert = self._insert(table)
        updates = {n: insert.excluded[n] for n in converters if n not in keys}
        statement = (
            insert.on_conflict_do_update(index_elements=keys, set_=updates)
            if updates
            else insert.on_conflict_do_nothing(index_elements=keys)
        )
        # One statement must not touch a key twice (PostgreSQL refuses): the last wins.
        latest = list({tuple(row[k] for k in keys): row for _, row in rows}.values())
        size = self.config["batch_rows"]
        try:
            with self._db.connect() as connection, connection.begin():
                for start in range(0, len(latest), size):
                    connection.execute(statement, latest[start : start + size])
        except sa_exc.StatementError as exc:
            self._row_fault(exc)  # a fault of the database itself raises here
            rejected += self._write_one_by_one(statement, rows)
        return WriteResult(len(records) - len(rejected), sorted(rejected))

    def _write_one_by_one(
        self, statement: Any, rows: list[tuple[int, dict[str, Any]]]
    ) -> list[tuple[int, str]]:
        rejected = []
        for index, row in rows:
            try:
                with self._db.connect() as connection, connection.begin():
                    connection.execute(statement, [row])
            except sa_exc.StatementError as exc:
                rejected.append((index, self._row_fault(exc)))
        return rejected

    def _row_fault(self, exc: sa_exc.StatementError) -> str:
        """What a row did wrong (a constraint, a value); a database fault raises instead.

        Raises:
            AdapterError: The database failed for another reason (unreachable, locked,
                a column of another type): retrying row by row would not help.
        """
        rows_at_fault = sa_exc.IntegrityError | sa_exc.DataError
        if isinstance(exc, sa_exc.DBAPIError) and not isinstance(exc, rows_at_fault):
            raise AdapterError(
                f"cannot write to {self._db}: {self._db.reason(exc)}", "url"
            ) from None
        return self._db.reason(exc)
