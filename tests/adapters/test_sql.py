"""The `sql` adapter against real SQLite files and the real PostgreSQL server."""

from __future__ import annotations

import io
import json
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from fastavro import schemaless_reader

from adapters.conformance import SinkCase, SinkConformance, SourceCase, SourceConformance
from adapters.contract import AdapterError, ReadBatch
from adapters.publisher import encode_records
from adapters.sql import SqlSink, SqlSource
from envelope import schemas

pytestmark = pytest.mark.filterwarnings(
    r"ignore:Dialect sqlite\+pysqlite does \*not\* support Decimal:sqlalchemy.exc.SAWarning"
)

SECRET = "Sup3rS3cretPassw0rd"
T0 = datetime(2024, 3, 1, 9, 0, 0, 250000)


@dataclass
class Backend:
    """A real database with an empty schema for one test."""

    name: str
    url: str  # what the adapters get (PostgreSQL: no search path, so schema_name counts)
    schema: str | None
    engine: sa.Engine

    def options(self, **more: Any) -> dict[str, Any]:
        schema = {"schema_name": self.schema} if self.schema else {}
        return {"url": self.url, **schema, **more}

    def create(self, *tables: Any) -> list[sa.Table]:
        metadata = sa.MetaData(schema=self.schema)
        made = [make(metadata) for make in tables]
        metadata.create_all(self.engine)
        return made

    def insert(self, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as connection:
            connection.execute(table.insert(), rows)

    def reflect(self, name: str) -> sa.Table:
        return sa.Table(name, sa.MetaData(), schema=self.schema, autoload_with=self.engine)

    def rows(self, name: str, order_by: str) -> list[dict[str, Any]]:
        table = self.reflect(name)
        with self.engine.connect() as connection:
            result = connection.execute(sa.select(table).order_by(table.c[order_by]))
            return [dict(row._mapping) for row in result]

    def raw_ddl(self, sql: str) -> None:
        with self.engine.begin() as connection:
            connection.exec_driver_sql(sql)

    def qualified(self, name: str) -> str:
        return f'"{self.schema}"."{name}"' if self.schema else f'"{name}"'


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "sqlite":
        url = request.getfixturevalue("sqlite_url")
        found = Backend("sqlite", url, None, sa.create_engine(url))
    else:
        url = request.getfixturevalue("postgres_url")
        schema = request.getfixturevalue("postgres_schema")
        plain = sa.make_url(url).difference_update_query(["options"])
        found = Backend(
            "postgresql", plain.render_as_string(hide_password=False), schema, sa.create_engine(url)
        )
    yield found
    found.engine.dispose()


def licences(metadata: sa.MetaData, name: str = "licences") -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("holder", sa.String(100), nullable=False),
        sa.Column("fee", sa.Numeric(10, 2)),
        sa.Column("issued", sa.Date),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )


def licence(ident: int, minutes: int, holder: str = "") -> dict[str, Any]:
    return {
        "id": ident,
        "holder": holder or f"holder {ident}",
        "fee": Decimal(f"{ident}.50") if ident % 3 else None,
        "issued": date(2023, 1, 1) + timedelta(days=ident),
        "updated_at": T0 + timedelta(minutes=minutes),
    }


def as_record(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the source yields it: timestamps in UTC."""
    return {**row, "updated_at": row["updated_at"].replace(tzinfo=UTC)}


def seed_licences(backend: Backend, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stores rows; returns them as records in read order (updated_at, then id)."""
    (table,) = backend.create(licences)
    backend.insert(table, rows)
    return [as_record(r) for r in sorted(rows, key=lambda r: (r["updated_at"], r["id"]))]


def source(backend: Backend, **options: Any) -> SqlSource:
    return SqlSource(backend.options(**{"table": "licences", "cursor": "updated_at", **options}))


async def read(source: SqlSource, cursor: Any, size: int) -> list[ReadBatch]:
    schema = {s.name: s for s in await source.discover()}[source.config["table"]].schema
    return [batch async for batch in source.read(schema, cursor, size)]


def ids(batches: list[ReadBatch]) -> list[int]:
    return [r["id"] for b in batches for r in b.records]


class TestSqlSourceConformance(SourceConformance):
    @pytest.fixture
    def case(self, backend: Backend) -> SourceCase:
        # Thirteen rows whose change order is not their id order, with ties.
        rows = seed_licences(backend, [licence(i, (i * 7) % 5) for i in range(1, 14)])
        return SourceCase(source(backend), "licences", rows)


PERMIT = {
    "type": "record",
    "name": "Permit",
    "namespace": "lijiao.test",
    "fields": [
        {"name": "code", "type": "string"},
        {"name": "holder", "type": "string"},
        {
            "name": "fee",
            "type": [
                "null",
                {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2},
            ],
            "default": None,
        },
        {"name": "valid_from", "type": {"type": "int", "logicalType": "date"}},
        {
            "name": "checked_at",
            "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}],
            "default": None,
        },
        {"name": "sites", "type": {"type": "array", "items": "string"}},
    ],
}
PERMITS = [
    {
        "code": f"P-{n}",
        "holder": f"holder {n}",
        "fee": Decimal(f"{n}0.25") if n != 2 else None,
        "valid_from": date(2024, 1, n),
        "checked_at": datetime(2024, 2, n, 8, 30, 0, 125, tzinfo=UTC) if n != 3 else None,
        "sites": [f"site {n}", "depot"],
    }
    for n in range(1, 5)
]


def stored_permits(backend: Backend, table: str = "permits") -> list[dict[str, Any]]:
    """The permits table read back as decoded Avro records."""
    try:
        rows = backend.rows(table, "code")
    except sa.exc.NoSuchTableError:
        return []
    for row in rows:
        if row["checked_at"] is not None and row["checked_at"].tzinfo is None:
            row["checked_at"] = row["checked_at"].replace(tzinfo=UTC)
        row["sites"] = json.loads(row["sites"])
    return rows


class TestSqlSinkConformance(SinkConformance):
    @pytest.fixture
    def case(self, backend: Backend) -> SinkCase:
        return SinkCase(
            sink=SqlSink(backend.options(table="permits", create_table=True, batch_rows=3)),
            schema=PERMIT,
            key_fields=["code"],
            rows=PERMITS,
            read_back=lambda: stored_permits(backend),
            update=lambda record: {**record, "holder": record["holder"] + " (renamed)"},
        )


def everything(metadata: sa.MetaData, name: str = "everything") -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("big", sa.BigInteger, nullable=False),
        sa.Column("small", sa.SmallInteger),
        sa.Column("flag", sa.Boolean),
        sa.Column("ratio", sa.Float),
        sa.Column("single", sa.REAL),
        sa.Column("double", sa.Double),
        sa.Column("amount", sa.Numeric(12, 3)),
        sa.Column("code", sa.String(20)),
        sa.Column("body", sa.Text),
        sa.Column("letters", sa.CHAR(3)),
        sa.Column("day", sa.Date),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("clock", sa.Time),
        sa.Column("blob", sa.LargeBinary),
        sa.Column("doc", sa.JSON),
    )


def _nullable(kind: Any) -> list[Any]:
    return ["null", kind]


EVERYTHING_TYPES = {
    "id": "long",
    "big": "long",
    "small": _nullable("int"),
    "flag": _nullable("boolean"),
    "ratio": _nullable("double"),
    "single": _nullable("double"),
    "double": _nullable("double"),
    "amount": _nullable({"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 3}),
    "code": _nullable("string"),
    "body": _nullable("string"),
    "letters": _nullable("string"),
    "day": _nullable({"type": "int", "logicalType": "date"}),
    "at": {"type": "long", "logicalType": "timestamp-micros"},
    "clock": _nullable({"type": "long", "logicalType": "time-micros"}),
    "blob": _nullable("bytes"),
    "doc": _nullable("string"),
}
FULL_ROW: dict[str, Any] = {
    "id": 1,
    "big": 2**53 + 1,
    "small": -7,
    "flag": True,
    "ratio": 0.1,
    "single": 1.5,
    "double": -2.25e100,
    "amount": Decimal("123456789.012"),
    "code": "SAMR-01",
    "body": "市场监督管理局 licence",
    "letters": "ABC",
    "day": date(2024, 2, 29),
    "at": datetime(2024, 2, 29, 23, 59, 59, 123456),
    "clock": time(8, 30, 15, 250),
    "blob": b"\x00\xff\x10",
    "doc": {"a": [1, 2], "b": "x"},
}
EMPTY_ROW: dict[str, Any] = {"id": 2, "big": -1, "at": datetime(2024, 3, 1)} | {
    name: None for name in EVERYTHING_TYPES if name not in ("id", "big", "at")
}


async def test_discovery_maps_each_sql_type_to_its_avro_type(backend: Backend) -> None:
    backend.create(everything)
    (stream,) = await source(backend, table="everything", cursor="at").discover()
    fields = stream.schema["fields"]
    assert {f["name"]: f["type"] for f in fields} == EVERYTHING_TYPES
    assert all(f["default"] is None for f in fields if isinstance(f["type"], list))
    assert (stream.name, stream.key_fields, stream.cursor_field) == ("everything", ("id",), "at")
    assert stream.schema["name"] == "everything"
    assert stream.schema["namespace"] == "lijiao.sql"
    schemas.parse(stream.schema)


async def test_a_row_round_trips_from_source_through_avro_to_sink_unchanged(
    backend: Backend,
) -> None:
    original, _ = backend.create(everything, lambda m: everything(m, "everything_copy"))
    backend.insert(original, [FULL_ROW, EMPTY_ROW])
    reader = source(backend, table="everything", cursor="id")
    (stream,) = [s for s in await reader.discover() if s.name == "everything"]
    (batch,) = await read(reader, None, 10)
    full, empty = batch.records
    assert full == FULL_ROW | {
        "at": FULL_ROW["at"].replace(tzinfo=UTC),
        "doc": '{"a": [1, 2], "b": "x"}',
    }
    assert empty == EMPTY_ROW | {"at": EMPTY_ROW["at"].replace(tzinfo=UTC)}

    schema = schemas.parse(stream.schema)
    decoded: list[Any] = [
        schemaless_reader(io.BytesIO(raw), schema.parsed, None)
        for raw in encode_records(schema, batch.records)
    ]
    sink = SqlSink(backend.options(table="everything_copy"))
    result = await sink.write(stream.schema, ["id"], decoded, "b-1")
    assert (result.written, list(result.rejected)) == (2, [])

    (copied,) = await read(source(backend, table="everything_copy", cursor="id"), None, 10)
    assert copied.records == batch.records
    assert backend.rows("everything_copy", "id")[0]["doc"] == FULL_ROW["doc"]


async def test_an_unmappable_column_type_is_an_error_naming_the_column(backend: Backend) -> None:
    columns = ["amount NUMERIC"] + (
        ["span INTERVAL", "ident UUID"] if backend.name == "postgresql" else []
    )
    for n, column in enumerate(columns):
        backend.raw_ddl(
            f"CREATE TABLE {backend.qualified(f'odd_{n}')} (id INTEGER PRIMARY KEY, {column})"
        )
        with pytest.raises(AdapterError) as error:
            await source(backend, table=f"odd_{n}", cursor="id").check()
        assert error.value.key == "table"
        assert f"odd_{n}.{column.split()[0]}" in str(error.value)
    # Another table's odd column does not hide the configured table.
    seed_licences(backend, [licence(1, 0)])
    streams = await source(backend).discover()
    assert [s.name for s in streams] == ["licences"]


async def test_incremental_reads_order_by_updated_at_and_break_ties_by_key(
    backend: Backend,
) -> None:
    seed_licences(backend, [licence(5, 0), licence(2, 0), licence(9, 0), licence(1, 3)])
    batches = await read(source(backend), None, 2)
    assert [[r["id"] for r in b.records] for b in batches] == [[2, 5], [9, 1]]
    cursor = json.loads(json.dumps(batches[0].cursor))  # the cursor is plain JSON
    assert ids(await read(source(backend), cursor, 2)) == [9, 1]
    assert ids(await read(source(backend), json.loads(json.dumps(batches[-1].cursor)), 2)) == []


async def test_rows_changed_after_a_snapshot_are_read_incrementally(backend: Backend) -> None:
    rows = seed_licences(backend, [licence(i, i) for i in range(1, 5)])
    snapshot = await read(source(backend), None, 10)
    assert [r for b in snapshot for r in b.records] == rows
    table = backend.reflect("licences")
    backend.insert(table, [licence(10, 20)])
    with backend.engine.begin() as connection:
        connection.execute(
            table.update()
            .where(table.c.id == 2)
            .values(holder="renamed", updated_at=T0 + timedelta(minutes=30))
        )
    cursor = json.loads(json.dumps(snapshot[-1].cursor))
    changes = await read(source(backend), cursor, 10)
    assert [(r["id"], r["holder"]) for b in changes for r in b.records] == [
        (10, "holder 10"),
        (2, "renamed"),
    ]
    assert await read(source(backend), changes[-1].cursor, 10) == []


async def test_the_initial_snapshot_reads_every_row(backend: Backend) -> None:
    seed_licences(backend, [licence(i, i % 17) for i in range(1, 251)])
    batches = await read(source(backend), None, 100)
    assert [len(b.records) for b in batches] == [100, 100, 50]
    assert sorted(ids(batches)) == list(range(1, 251))
    by_id = await read(source(backend, cursor="id"), None, 100)  # id is cursor and key
    assert ids(by_id) == list(range(1, 251))
    assert by_id[0].cursor == [100]


async def test_an_unknown_table_or_column_is_an_error_naming_the_option(backend: Backend) -> None:
    seed_licences(backend, [licence(1, 0)])
    wrong: list[tuple[dict[str, Any], str, str]] = [
        ({"table": "nope"}, "table", "nope' not found in "),
        ({"table": "licences", "cursor": "nope"}, "cursor", "'nope' not found"),
        ({"key": ["nope"]}, "key", "key column 'nope' not found"),
    ]
    for options, key, message in wrong:
        with pytest.raises(AdapterError) as error:
            await source(backend, **options).check()
        assert (error.value.key, message in str(error.value)) == (key, True), error.value
    with pytest.raises(AdapterError) as error:
        await SqlSink(backend.options(table="nope")).check()
    assert error.value.key == "table"
    assert "nope' not found in " in str(error.value)
    with pytest.raises(AdapterError) as error:
        await SqlSink(backend.options(table="nope")).write(PERMIT, ["code"], PERMITS, "b-1")
    assert error.value.key == "table"


async def test_a_missing_sqlite_file_is_an_error_not_a_new_file(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'market.db'}"
    with pytest.raises(AdapterError) as error:
        await SqlSource({"url": url, "table": "licences", "cursor": "id"}).check()
    assert error.value.key == "url"
    assert not (tmp_path / "market.db").exists()


def _assert_secret_hidden(error: AdapterError) -> None:
    shown = "".join(traceback.format_exception(error))
    assert SECRET not in shown
    assert SECRET not in repr(error.args)


async def test_a_password_in_the_url_never_appears_in_an_error() -> None:
    unreachable = f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:1/test"
    for adapter in (
        SqlSource({"url": unreachable, "table": "t", "cursor": "id"}),
        SqlSink({"url": unreachable, "table": "t"}),
    ):
        with pytest.raises(AdapterError) as error:
            await adapter.check()
        assert error.value.key == "url"
        assert "postgres:***@127.0.0.1:1" in str(error.value)
        _assert_secret_hidden(error.value)
    for url in (f"mssql+pyodbc://sa:{SECRET}@db/x", f"not a url {SECRET}"):
        with pytest.raises(AdapterError) as error:
            SqlSink({"url": url, "table": "t"})
        assert error.value.key == "url"
        _assert_secret_hidden(error.value)


async def test_a_password_is_hidden_in_errors_from_a_reachable_server(
    postgres_url: str, postgres_schema: str
) -> None:
    url = sa.make_url(postgres_url).set(password=SECRET)  # trust auth: any password will do
    options = {"url": url.render_as_string(hide_password=False), "schema_name": postgres_schema}
    with pytest.raises(AdapterError) as error:
        await SqlSource({**options, "table": "nope", "cursor": "id"}).check()
    assert f"not found in {url.render_as_string(hide_password=True)}" in str(error.value)
    assert ":***@" in str(error.value)
    _assert_secret_hidden(error.value)
    with pytest.raises(AdapterError) as error:
        await SqlSink({**options, "table": "nope"}).write(PERMIT, ["code"], PERMITS, "b-1")
    _assert_secret_hidden(error.value)


async def test_create_table_creates_a_table_that_the_next_write_fills(backend: Backend) -> None:
    sink = SqlSink(backend.options(table="permits", create_table=True))
    await sink.check()
    result = await sink.write(PERMIT, ["code"], PERMITS, "b-1")
    assert (result.written, list(result.rejected)) == (4, [])
    table = backend.reflect("permits")
    assert [c.name for c in table.primary_key.columns] == ["code"]
    assert {c.name: c.nullable for c in table.columns} == {
        "code": False,
        "holder": False,
        "fee": True,
        "valid_from": False,
        "checked_at": True,
        "sites": False,
    }
    fee = table.c.fee.type
    assert isinstance(fee, sa.Numeric)
    assert (fee.precision, fee.scale) == (10, 2)
    assert stored_permits(backend) == PERMITS
    again = SqlSink(backend.options(table="permits"))  # now it exists
    changed = {**PERMITS[0], "sites": []}
    await again.write(PERMIT, ["code"], [changed], "b-2")
    assert stored_permits(backend) == [changed, *PERMITS[1:]]


async def test_a_row_violating_not_null_is_rejected_and_the_others_committed(
    backend: Backend,
) -> None:
    def permits(metadata: sa.MetaData) -> sa.Table:
        return sa.Table(
            "permits",
            metadata,
            sa.Column("code", sa.String(20), primary_key=True),
            sa.Column("holder", sa.Text, nullable=False),
            sa.Column("fee", sa.Numeric(10, 2)),
            sa.Column("valid_from", sa.Date, nullable=False),
            sa.Column("checked_at", sa.DateTime(timezone=True)),
            sa.Column("sites", sa.Text, nullable=False),
        )

    backend.create(permits)
    loose = json.loads(json.dumps(PERMIT))
    loose["fields"][1]["type"] = ["null", "string"]  # the store is stricter than the schema
    records = [PERMITS[0], {**PERMITS[1], "holder": None}, PERMITS[2]]
    result = await SqlSink(backend.options(table="permits", batch_rows=2)).write(
        loose, ["code"], records, "b-1"
    )
    assert result.written == 2
    assert [index for index, _ in result.rejected] == [1]
    assert "holder" in result.rejected[0][1] or "NOT NULL" in result.rejected[0][1]
    assert stored_permits(backend) == [PERMITS[0], PERMITS[2]]


async def test_a_batch_holding_one_key_twice_keeps_the_last(backend: Backend) -> None:
    sink = SqlSink(backend.options(table="permits", create_table=True))
    later = {**PERMITS[0], "holder": "later"}
    result = await sink.write(PERMIT, ["code"], [PERMITS[0], PERMITS[1], later], "b-1")
    assert result.written == 3
    assert stored_permits(backend) == [later, PERMITS[1]]


async def test_the_sink_needs_a_unique_constraint_on_the_key(backend: Backend) -> None:
    backend.raw_ddl(f"CREATE TABLE {backend.qualified('nokey')} (code TEXT, holder TEXT)")
    schema = {"type": "record", "name": "R", "fields": [
        {"name": "code", "type": "string"}, {"name": "holder", "type": "string"}]}  # fmt: skip
    with pytest.raises(AdapterError) as error:
        await SqlSink(backend.options(table="nokey")).write(schema, ["code"], [], "b-1")
    assert error.value.key == "table"
    assert "no primary key or unique constraint" in str(error.value)
