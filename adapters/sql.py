"""The ``sql`` adapter: any database SQLAlchemy reaches, as a source and as a sink.

The source reads one table (or view) incrementally: rows ordered by a cursor column (an
updated-at timestamp or an increasing id) with the key columns as tie-breaker, starting
with a full snapshot. Its cursor is the JSON list ``[cursor value, *key values]`` of the
last row read; rows whose cursor column is NULL cannot be ordered and are not read.

The sink upserts delivered records by key (``INSERT ... ON CONFLICT DO UPDATE``, SQLite
and PostgreSQL) in one transaction per batch, and can create its table from the schema.

Example config::

    [adapter.options]
    url = "postgresql+psycopg://market@db.internal/market"
    table = "licences"
    cursor = "updated_at"
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import NullType

from adapters.contract import AdapterError, Option, ReadBatch, Sink, Source, Stream, WriteResult

log = logging.getLogger(__name__)

_AVRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_UPSERT_INSERTS: dict[str, Callable[[sa.Table], Any]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}
_CURSOR_TAGS: dict[str, Callable[[str], Any]] = {
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "time": time.fromisoformat,
    "decimal": Decimal,
    "bytes": bytes.fromhex,
    "uuid": uuid.UUID,
}
Converter = Callable[[Any], Any]


class _Database:
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


def avro_name(name: str) -> str:
    """Turns a table name into a valid Avro record name."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return cleaned if _AVRO_NAME.match(cleaned) else f"_{cleaned}"


def avro_type(column: sa.Column[Any]) -> Any:
    """The Avro type of a column's values, without the null branch.

    Raises:
        AdapterError: The column's SQL type has no Avro mapping; ``key`` is ``table``.
    """
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return "boolean"
    if isinstance(kind, sa.SmallInteger):
        return "int"
    if isinstance(kind, sa.Integer):
        return "long"
    if isinstance(kind, sa.Float):
        return "double"
    if isinstance(kind, sa.Numeric) and kind.precision is not None:
        scale = kind.scale or 0
        return {"type": "bytes", "logicalType": "decimal", "precision": kind.precision,
                "scale": scale}  # fmt: skip
    if isinstance(kind, sa.String | sa.JSON):
        return "string"
    if isinstance(kind, sa.DateTime):
        return {"type": "long", "logicalType": "timestamp-micros"}
    if isinstance(kind, sa.Date):
        return {"type": "int", "logicalType": "date"}
    if isinstance(kind, sa.Time):
        return {"type": "long", "logicalType": "time-micros"}
    if isinstance(kind, sa.LargeBinary):
        return "bytes"
    hint = " (declare NUMERIC(precision, scale))" if isinstance(kind, sa.Numeric) else ""
    raise AdapterError(
        f"column {column.table.name}.{column.name} has SQL type {kind} that the sql adapter "
        f"cannot map to Avro{hint}; read a view that casts it",
        "table",
    )


def record_schema(table: sa.Table, namespace: str) -> dict[str, Any]:
    """Proposes an Avro record schema for a table: nullable columns default to null.

    Raises:
        AdapterError: A column's name is not a valid Avro name, or its type has no mapping.
    """
    fields: list[dict[str, Any]] = []
    for column in table.columns:
        if not _AVRO_NAME.match(column.name):
            raise AdapterError(
                f"column {table.name}.{column.name} is not a valid Avro field name "
                "(letters, digits, _); read a view that renames it",
                "table",
            )
        kind = avro_type(column)
        if column.nullable:
            fields.append({"name": column.name, "type": ["null", kind], "default": None})
        else:
            fields.append({"name": column.name, "type": kind})
    return {"type": "record", "name": avro_name(table.name), "namespace": namespace,
            "fields": fields}  # fmt: skip


def _non_null(kind: Any) -> tuple[Any, bool]:
    """Splits ``["null", T]`` into ``(T, True)``; any other type into ``(type, False)``."""
    if isinstance(kind, list):
        branches = [k for k in kind if k != "null"]
        return (branches[0] if len(branches) == 1 else branches), len(branches) < len(kind)
    return kind, False


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json_text(value: Any) -> str:
    def fallback(item: Any) -> Any:
        if isinstance(item, datetime | date | time):
            return item.isoformat()
        if isinstance(item, bytes):
            return base64.b64encode(item).decode("ascii")
        if isinstance(item, Decimal | uuid.UUID):
            return str(item)
        raise TypeError(f"{type(item).__name__} is not JSON serialisable")

    return json.dumps(value, ensure_ascii=False, default=fallback)


def _identity(value: Any) -> Any:
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _to_date(value: Any) -> Any:
    return value.date() if isinstance(value, datetime) else value


def _decimal_with_scale(scale: int) -> Converter:
    step = Decimal(1).scaleb(-scale)
    return lambda value: Decimal(str(value)).quantize(step)


def _nullable(convert: Converter) -> Converter:
    return lambda value: None if value is None else convert(value)


def _to_avro(kind: Any, column: sa.Column[Any]) -> Converter:
    """How a value read from ``column`` becomes what Avro type ``kind`` expects."""
    kind, _ = _non_null(kind)
    logical = kind.get("logicalType", "") if isinstance(kind, dict) else ""
    if isinstance(column.type, sa.JSON):
        return _nullable(_json_text)
    if logical == "decimal":
        return _nullable(_decimal_with_scale(int(kind.get("scale", 0))))
    if logical.startswith("timestamp-"):
        return _nullable(_utc)
    if logical == "date":
        return _nullable(_to_date)
    simple: dict[Any, Converter] = {
        "int": int, "long": int, "double": float, "float": float, "boolean": bool,
        "bytes": bytes, "string": _text,
    }  # fmt: skip
    return _nullable(simple.get(kind, _identity) if isinstance(kind, str) else _identity)


def _encode_cursor_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date | time):
        return {"date" if isinstance(value, date) else "time": value.isoformat()}
    if isinstance(value, Decimal | uuid.UUID):
        return {"decimal" if isinstance(value, Decimal) else "uuid": str(value)}
    if isinstance(value, bytes | memoryview):
        return {"bytes": bytes(value).hex()}
    raise AdapterError(f"a {type(value).__name__} value cannot be kept in a cursor", "cursor")


def _decode_cursor_value(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((tag, text),) = value.items()
        if tag in _CURSOR_TAGS:
            return _CURSOR_TAGS[tag](text)
    return value


def _after(columns: Sequence[Any], values: Sequence[Any]) -> Any:
    """``(c1, c2, ...) > (v1, v2, ...)``, written portably: ``c1 > v1 OR (c1 = v1 AND ...)``."""
    value = sa.bindparam(None, values[0], type_=NullType())
    if len(columns) == 1:
        return columns[0] > value
    return sa.or_(columns[0] > value, sa.and_(columns[0] == value, _after(columns[1:], values[1:])))


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
        self._db = _Database(self.config["url"], self.config["schema_name"])

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
        position = self._position(cursor, order)
        while True:
            records, last = await asyncio.to_thread(
                self._fetch, table, order, schema, position, batch_size
            )
            if not records:
                return
            position = last
            yield ReadBatch(records, [_encode_cursor_value(v) for v in last])
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

    def _position(self, cursor: Any, order: list[sa.Column[Any]]) -> list[Any] | None:
        if cursor is None:
            return None
        if not isinstance(cursor, list) or len(cursor) != len(order):
            raise AdapterError(
                f"cursor {cursor!r} does not fit table {self.config['table']!r}: expected "
                f"the values of {[c.name for c in order]}",
                "cursor",
            )
        return [_decode_cursor_value(value) for value in cursor]

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
            fields.append((field["name"], column, _to_avro(field["type"], column)))
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
            query = query.where(_after(raw, position))
        with self._db.connect() as connection, self._db.failures(f"cannot read {self._db}"):
            rows = connection.execute(query).all()
        records = [
            {name: convert(row[i]) for i, (name, _, convert) in enumerate(fields)} for row in rows
        ]
        last = list(rows[-1][len(fields) :]) if rows else []
        return records, last


def _sql_type(kind: Any) -> sa.types.TypeEngine[Any]:
    """The column type :class:`SqlSink` creates for an Avro type (without null)."""
    logical = kind.get("logicalType") if isinstance(kind, dict) else None
    if logical == "decimal":
        return sa.Numeric(int(kind["precision"]), int(kind.get("scale", 0)))
    if logical in ("timestamp-millis", "timestamp-micros"):
        return sa.DateTime(timezone=True)
    if logical in ("local-timestamp-millis", "local-timestamp-micros"):
        return sa.DateTime()
    if logical == "date":
        return sa.Date()
    if logical in ("time-millis", "time-micros"):
        return sa.Time()
    base = kind.get("type") if isinstance(kind, dict) else kind
    simple: dict[Any, sa.types.TypeEngine[Any]] = {
        "boolean": sa.Boolean(), "int": sa.Integer(), "long": sa.BigInteger(),
        "float": sa.Float(), "double": sa.Double(), "bytes": sa.LargeBinary(),
        "fixed": sa.LargeBinary(),
    }  # fmt: skip
    return simple.get(base, sa.Text())  # strings, enums; records, arrays, maps as JSON


def _from_json_text(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return _json_text(value) if isinstance(value, dict | list) else str(value)


def _to_utc(aware: bool) -> Converter:
    def convert(value: Any) -> Any:
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(UTC)
            return value if aware else value.replace(tzinfo=None)
        return value

    return convert


def _to_column(column: sa.Column[Any]) -> Converter:
    """How a decoded Avro value becomes what ``column`` stores.

    Nested records, arrays and maps go into a text column as JSON text; timestamps go in
    as UTC (naive for a column without time zone).
    """
    kind = column.type
    if isinstance(kind, sa.JSON):
        return _nullable(_from_json_text)
    if isinstance(kind, sa.DateTime):
        return _nullable(_to_utc(bool(kind.timezone)))
    if isinstance(kind, sa.String):
        return _nullable(_to_text)
    return _identity


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
        self._db = _Database(self.config["url"], self.config["schema_name"])
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
            kind, nullable = _non_null(field["type"])
            key = field["name"] in keys
            columns.append(
                sa.Column(
                    field["name"],
                    _sql_type(kind),
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
        return table, {name: _to_column(table.c[name]) for name in fields}

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
