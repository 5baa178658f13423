"""The ``sql`` source: one table or view, read incrementally by a cursor column."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import NullType

from adapters.contract import AdapterError, Option, ReadBatch, Source, Stream
from adapters.sql.connector import Database
from adapters.sql.cursor import after, cursor_of, position_of
from adapters.sql.types import record_schema, to_avro

log = logging.getLogger(__name__)


class SqlSource(Source):
    """Reads one table incrementally by a cursor column, after a full first snapshot."""

    name = "sql"
    options = (
        Option("url", str, required=True, help="SQLAlchemy URL of the database"),
        Option("table", str, required=True, help="table or view to read"),
        Option("cursor", str, required=True,
               help="column ordering changes: an increasing id or an updated-at timestamp"),
        Option("key", list, help="key columns (default: the table's primary key)"),
        Option("schema_name", str, default="", help="database schema (e.g. PostgreSQL)"),
        Option("namespace", str, default="lijiao.sql", help="Avro namespace of the records"),
    )  # fmt: skip

    def __init__(self, options: Any) -> None:
        super().__init__(options)
        self._db = Database(self.config["url"], self.config["schema_name"])

    async def check(self) -> None:
        """Connects, and checks the table, its cursor and key columns and their types."""
        await asyncio.to_thread(self._configured_stream)

    async def discover(self) -> list[Stream]:
        """Lists every table and view of the schema; one with unmappable columns is left
        out with a warning, unless it is the configured table (then it is an error)."""
        return await asyncio.to_thread(self._discover)

    async def read(
        self, schema: dict[str, Any], cursor: Any, batch_size: int
    ) -> AsyncIterator[ReadBatch]:
        """Yields rows ordered by (cursor, key...) after ``cursor`` (None: everything)."""
        table, order = await asyncio.to_thread(self._reflect)
        position = position_of(cursor, order, self.config["table"])
        while True:
            records, last = await asyncio.to_thread(
                self._fetch, table, order, schema, position, batch_size
            )
            if not records:
                return
            position = last
            yield ReadBatch(records, cursor_of(last))
            if len(records) < batch_size:
                return

    async def close(self) -> None:
        """Closes pooled connections."""
        self._db.dispose()

    def _reflect(self) -> tuple[sa.Table, list[sa.Column[Any]]]:
        with self._db.connect() as connection:
            table = self._db.reflect(connection, self.config["table"])
        return table, self._order_columns(table)

    def _order_columns(self, table: sa.Table) -> list[sa.Column[Any]]:
        """The cursor column, then the key columns not already in it."""
        where = f"table {self._db.qualified(table.name)!r} of {self._db}"
        cursor = self.config["cursor"]
        if cursor not in table.c:
            raise AdapterError(f"cursor column {cursor!r} not found in {where}", "cursor")
        keys = self.config["key"] or [c.name for c in table.primary_key.columns]
        if not keys:
            raise AdapterError(f"{where} has no primary key; set option 'key'", "key")
        for key in keys:
            if not isinstance(key, str) or key not in table.c:
                raise AdapterError(f"key column {key!r} not found in {where}", "key")
        return [table.c[cursor], *(table.c[k] for k in keys if k != cursor)]

    def _configured_stream(self) -> Stream:
        table, order = self._reflect()
        return self._stream(table, order)

    def _stream(self, table: sa.Table, order: list[sa.Column[Any]]) -> Stream:
        return Stream(
            table.name,
            record_schema(table, self.config["namespace"]),
            tuple(self.config["key"] or (c.name for c in table.primary_key.columns)),
            order[0].name,
        )

    def _discover(self) -> list[Stream]:
        metadata = sa.MetaData()
        with self._db.connect() as connection, self._db.failures(f"cannot reflect {self._db}"):
            metadata.reflect(connection, schema=self._db.schema, views=True)
        streams = []
        for table in sorted(metadata.tables.values(), key=lambda t: t.name):
            if table.name == self.config["table"]:
                streams.append(self._stream(table, self._order_columns(table)))
                continue
            try:
                schema = record_schema(table, self.config["namespace"])
            except AdapterError as exc:
                log.warning("sql source: leaving out table %s: %s", table.name, exc)
                continue
            keys = tuple(c.name for c in table.primary_key.columns)
            streams.append(Stream(table.name, schema, keys))
        if self.config["table"] not in {s.name for s in streams}:
            self._reflect()  # raises the precise "not found" error
        return streams

    def _fetch(
        self,
        table: sa.Table,
        order: list[sa.Column[Any]],
        schema: dict[str, Any],
        position: list[Any] | None,
        batch_size: int,
    ) -> tuple[list[dict[str, Any]], list[Any]]:
        fields = []
        for field in schema.get("fields", []):
            if field["name"] not in table.c:
                raise AdapterError(
                    f"field {field['name']!r} of the schema is not a column of table "
                    f"{self._db.qualified(table.name)!r}",
                    "table",
                )
            column = table.c[field["name"]]
            fields.append((field["name"], column, to_avro(field["type"], column)))
        # Compare and remember order values as the database holds them (no type
        # processing): SQLite keeps datetimes as text, which must round-trip exactly.
        raw = [sa.type_coerce(column, NullType()) for column in order]
        query = (
            sa.select(*(column for _, column, _ in fields),
                      *(r.label(f"lijiao_order_{i}") for i, r in enumerate(raw)))
            .where(order[0].is_not(None))
            .order_by(*order)
            .limit(batch_size)
        )  # fmt: skip
        if position is not None:
            query = query.where(after(raw, position))
        with self._db.connect() as connection, self._db.failures(f"cannot read {self._db}"):
            rows = connection.execute(query).all()
        records = [
            {name: convert(row[i]) for i, (name, _, convert) in enumerate(fields)} for row in rows
        ]
        last = list(rows[-1][len(fields) :]) if rows else []
        return records, last
