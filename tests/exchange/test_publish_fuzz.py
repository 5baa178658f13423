"""Fuzzing the publish path's checks against independent implementations.

- The record checker (:class:`envelope.avro.ExactReader`) against a strict Avro
  reader written here from the specification: for valid records and for mutations of
  them (bytes flipped, inserted, removed, cut), both must accept exactly the same
  records, and read the same values.
- The batch digest against the byte layout documented in ``docs/adapters.md``.
- The batch shape checks against the documented limits.

``.ci/run`` runs this file once more with the ``fuzz`` profile (more examples).
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import given
from hypothesis import strategies as st

from envelope.avro import ExactReader
from envelope.digest import digest_of_batch
from envelope.errors import LijiaoError
from exchange.publish.path import MAX_BATCH_ID_LENGTH, MAX_SEQUENCE, BatchLimits, PublishPath
from exchange.v1 import exchange_pb2

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Licence",
    "namespace": "gov.fuzz",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "active", "type": "boolean"},
        {"name": "rooms", "type": "int"},
        {"name": "serial", "type": "long"},
        {"name": "area", "type": "double"},
        {"name": "photo", "type": "bytes"},
        {"name": "code", "type": {"type": "fixed", "name": "Code", "size": 3}},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B", "C"]}},
        {"name": "note", "type": ["null", "string", "long"]},
        {
            "name": "fee",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2},
        },
        {"name": "tags", "type": {"type": "map", "values": "int"}},
        {
            "name": "owners",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Owner",
                    "fields": [
                        {"name": "name", "type": "string"},
                        {"name": "share", "type": "int"},
                    ],
                },
            },
        },
    ],
}

# --- the strict reader: Avro's binary encoding, read the one way a writer writes it --


class Refused(Exception):
    """The bytes are not the canonical encoding of a value of the schema."""


@dataclass
class Cursor:
    data: bytes
    at: int = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.at + n > len(self.data):
            raise Refused("past the end")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def varint(self, bits: int) -> int:
        """A zigzag varint of a ``bits``-bit signed number, in its shortest form."""
        shift = raw = 0
        while True:
            (byte,) = self.take(1)
            raw |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                if byte == 0 and shift > 7:
                    raise Refused("a padded varint")
                break
            if shift >= 70:
                raise Refused("a varint too long")
        if raw >= 1 << bits:
            raise Refused("a number too wide")
        return (raw >> 1) ^ -(raw & 1)


def strict_read(schema: Any, data: bytes) -> Any:
    """Reads one record exactly, or raises Refused."""
    cursor = Cursor(data)
    value = _read(schema, cursor, {})
    if cursor.at != len(data):
        raise Refused("bytes left over")
    return value


def _read(node: Any, cursor: Cursor, named: dict[str, Any]) -> Any:
    if isinstance(node, list):
        index = cursor.varint(64)
        if not 0 <= index < len(node):
            raise Refused("a union index out of range")
        return _read(node[index], cursor, named)
    if isinstance(node, str):
        if node in named:
            return _read(named[node], cursor, named)
        node = {"type": node}
    kind = node["type"]
    if isinstance(kind, (dict, list)):
        return _read(kind, cursor, named)
    if kind == "null":
        return None
    if kind == "boolean":
        (byte,) = cursor.take(1)
        if byte > 1:
            raise Refused("a boolean byte other than 0 or 1")
        return byte == 1
    if kind == "int":
        return cursor.varint(32)
    if kind == "long":
        return cursor.varint(64)
    if kind == "double":
        return struct.unpack("<d", cursor.take(8))[0]
    if kind in ("bytes", "string"):
        raw = cursor.take(cursor.varint(64))
        if node.get("logicalType") == "decimal":
            return _decimal(raw, node)
        if kind == "bytes":
            return raw
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Refused("a string that is not UTF-8") from exc
    if kind == "fixed":
        named[node["name"]] = node
        return cursor.take(node["size"])
    if kind == "enum":
        named[node["name"]] = node
        index = cursor.varint(32)
        if not 0 <= index < len(node["symbols"]):
            raise Refused("an enum index out of range")
        return node["symbols"][index]
    if kind == "record":
        named[node["name"]] = node
        return {f["name"]: _read(f["type"], cursor, named) for f in node["fields"]}
    if kind == "array":
        count = _block(cursor)
        items = [_read(node["items"], cursor, named) for _ in range(count)]
        _end(cursor, count)
        return items
    if kind == "map":
        out: dict[str, Any] = {}
        count = _block(cursor)
        for _ in range(count):
            key = _read("string", cursor, named)
            if key in out:
                raise Refused("a map key twice")
            out[key] = _read(node["values"], cursor, named)
        _end(cursor, count)
        return out
    raise AssertionError(f"the fuzz schema has no {kind}")


def _block(cursor: Cursor) -> int:
    """A writer writes an array or map as one block of items then 0, or 0 alone."""
    count = cursor.varint(64)
    if count < 0:
        raise Refused("a block with a byte size")
    if count > len(cursor.data):
        raise Refused("more items than bytes")
    return count


def _end(cursor: Cursor, count: int) -> None:
    if count and cursor.varint(64) != 0:
        raise Refused("more than one block")


def _decimal(raw: bytes, node: dict[str, Any]) -> Decimal:
    """Two's complement, big-endian (the specification); at most ``precision`` digits,
    in at most the bytes they need plus one (writers differ: Java writes -128 as 80,
    fastavro as ff 80)."""
    if not raw:
        raise Refused("a decimal without bytes")
    unscaled = int.from_bytes(raw, "big", signed=True)
    needed = math.ceil((node["precision"] * math.log2(10) + 1) / 8)
    if len(raw) > needed + 1 or len(str(abs(unscaled))) > node["precision"]:
        raise Refused("a decimal beyond its precision")
    return Decimal(unscaled).scaleb(-node["scale"])


# --- values and mutations ------------------------------------------------------------

INT32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
records = st.fixed_dictionaries(
    {
        "id": st.text(max_size=12),
        "active": st.booleans(),
        "rooms": INT32,
        "serial": st.integers(min_value=-(2**63), max_value=2**63 - 1),
        "area": st.floats(allow_nan=False),
        "photo": st.binary(max_size=12),
        "code": st.binary(min_size=3, max_size=3),
        "kind": st.sampled_from(["A", "B", "C"]),
        "note": st.one_of(st.none(), st.text(max_size=8)),
        "fee": st.integers(min_value=-999_999, max_value=999_999).map(
            lambda u: Decimal(u).scaleb(-2)
        ),
        "tags": st.dictionaries(st.text(max_size=4), INT32, max_size=3),
        "owners": st.lists(
            st.fixed_dictionaries({"name": st.text(max_size=6), "share": INT32}), max_size=3
        ),
    }
)
PARSED = parse_schema(SCHEMA)
READER = ExactReader(SCHEMA)


def _logical_read(data: bytes) -> Any:
    """What a reader with logical types (a subscriber's SDK) reads from accepted bytes."""
    return schemaless_reader(io.BytesIO(data), PARSED, None)


def _encode(value: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    schemaless_writer(buffer, PARSED, value)
    return buffer.getvalue()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(_encode(draw(records)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        how = draw(st.sampled_from(["flip", "set", "insert", "delete", "cut"]))
        at = draw(st.integers(min_value=0, max_value=max(0, len(data) - 1)))
        if how == "flip" and data:
            data[at] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif how == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0x01, 0x02, 0x7F, 0x80, 0xFF]))
        elif how == "insert":
            data.insert(at, draw(st.integers(min_value=0, max_value=255)))
        elif how == "delete" and data:
            del data[at]
        elif how == "cut":
            del data[at:]
    return bytes(data)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    return bool(a == b)


@given(records)
def test_every_record_a_writer_writes_is_accepted_as_it_was_written(value: dict[str, Any]) -> None:
    data = _encode(value)
    assert READER.first_refusal([data]) is None
    assert _same(strict_read(SCHEMA, data), _logical_read(data))


@given(mutated())
def test_the_checker_accepts_exactly_what_the_strict_reader_accepts(data: bytes) -> None:
    try:
        expected = strict_read(SCHEMA, data)
    except Refused:
        expected = Refused
    refusal = READER.first_refusal([data])
    if expected is Refused:
        assert refusal is not None, f"accepted {data.hex()}, which the strict reader refuses"
    else:
        assert refusal is None, f"{refusal}: the strict reader reads {expected!r}"
        assert _same(expected, _logical_read(data))


# --- the digest against its documented layout ------------------------------------------


def _documented_digest(batch: exchange_pb2.RecordBatch) -> bytes:
    def text(value: str) -> bytes:
        raw = value.encode("utf-8")
        return struct.pack(">I", len(raw)) + raw

    parts = [
        b"lijiao.batch.v1\x00",
        text(batch.resource),
        struct.pack(">I", len(batch.schema_fingerprint)) + batch.schema_fingerprint,
        text(batch.batch_id),
        struct.pack(">Q", batch.sequence),
        struct.pack(">q", batch.create_time.seconds),
        struct.pack(">I", batch.create_time.nanos),
        struct.pack(">Q", len(batch.records)),
        *(hashlib.sha256(r).digest() for r in batch.records),
    ]
    return hashlib.sha256(b"".join(parts)).digest()


batches = st.builds(
    exchange_pb2.RecordBatch,
    resource=st.text(max_size=70),
    schema_fingerprint=st.binary(max_size=10),
    batch_id=st.text(max_size=140),
    sequence=st.integers(min_value=0, max_value=2**64 - 1),
    records=st.lists(st.binary(max_size=40), max_size=6),
    signing_key_id=st.text(max_size=20),
)


@given(batches, st.integers(-(2**40), 2**40), st.integers(0, 2**31 - 1))
def test_the_digest_is_the_documented_one(
    batch: exchange_pb2.RecordBatch, seconds: int, nanos: int
) -> None:
    batch.create_time.seconds, batch.create_time.nanos = seconds, nanos
    assert digest_of_batch(batch) == _documented_digest(batch)


# --- the shape checks against the documented limits ------------------------------------

LIMITS = BatchLimits(max_batch_records=5, max_record_bytes=32, max_batch_bytes=100)
SHAPE = PublishPath.__new__(PublishPath)
SHAPE.limits = LIMITS


def _documented_shape_refusal(batch: exchange_pb2.RecordBatch) -> str | None:
    texts = (batch.resource, batch.batch_id, batch.signing_key_id)
    if any("\x00" in t for t in texts):
        return "INVALID_FIELD"
    if not batch.resource or not 1 <= len(batch.batch_id) <= MAX_BATCH_ID_LENGTH:
        return "INVALID_BATCH"
    if len(batch.schema_fingerprint) != 8 or batch.sequence > MAX_SEQUENCE:
        return "INVALID_BATCH"
    stamp = batch.create_time
    if not (-62_135_596_800 <= stamp.seconds <= 253_402_300_799 and 0 <= stamp.nanos < 10**9):
        return "INVALID_BATCH"
    if not batch.records:
        return "INVALID_BATCH"
    if len(batch.records) > LIMITS.max_batch_records:
        return "BATCH_TOO_LARGE"
    if any(len(r) > LIMITS.max_record_bytes for r in batch.records):
        return "RECORD_TOO_LARGE"
    if sum(map(len, batch.records)) > LIMITS.max_batch_bytes:
        return "BATCH_TOO_LARGE"
    return None


@given(
    batches,
    st.integers(-(2**36), 2**36),
    st.integers(-5, 10**9 + 5),
)
def test_the_shape_checks_refuse_exactly_what_the_limits_say(
    batch: exchange_pb2.RecordBatch, seconds: int, nanos: int
) -> None:
    batch.create_time.seconds, batch.create_time.nanos = seconds, nanos
    try:
        SHAPE._check_shape(batch)
        reason = None
    except LijiaoError as refusal:
        reason = refusal.reason
    assert reason == _documented_shape_refusal(batch)


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("00" * 40),
        b"",
        b"\xff" * 64,
    ],
)
def test_both_readers_refuse_obvious_garbage(data: bytes) -> None:
    with pytest.raises(Refused):
        strict_read(SCHEMA, data)
    assert READER.first_refusal([data]) is not None


@pytest.mark.parametrize(
    ("raw", "accepted"),
    [
        (b"\x80", True),  # -128 as Java writes it (minimal two's complement)
        (b"\xff\x80", True),  # -128 as fastavro writes it
        (b"\x0f\x42\x3f", True),  # 999999: six digits, the precision
        (b"\x0f\x42\x40", False),  # 1000000: seven digits
        (b"\x00\x00\x00\x00\x01", False),  # padded past what six digits need
        (b"", False),  # no bytes: Java's BigInteger refuses them
    ],
)
def test_a_decimal_is_read_by_its_precision_not_one_writers_length(
    raw: bytes, accepted: bool
) -> None:
    value = {**_base_value(), "fee": Decimal(0)}
    data = _encode(value)
    fee_at = data.index(b"\x02\x00\x00", len(data) - 6)  # fee: length 1, byte 0; tags: 0
    hostile = data[:fee_at] + _zigzag(len(raw)) + raw + data[fee_at + 2 :]
    assert (READER.first_refusal([hostile]) is None) is accepted
    try:
        strict_read(SCHEMA, hostile)
        strictly = True
    except Refused:
        strictly = False
    assert strictly is accepted


def _zigzag(value: int) -> bytes:
    raw = (value << 1) ^ (value >> 63)
    out = bytearray()
    while raw > 0x7F:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)
    return bytes(out)


def _base_value() -> dict[str, Any]:
    return {
        "id": "",
        "active": False,
        "rooms": 0,
        "serial": 0,
        "area": 0.0,
        "photo": b"",
        "code": b"abc",
        "kind": "A",
        "note": None,
        "fee": Decimal(0),
        "tags": {},
        "owners": [],
    }


LOGICAL = {
    "type": "record",
    "name": "When",
    "fields": [
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "at", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "at_us", "type": {"type": "long", "logicalType": "time-micros"}},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "ts_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "maybe", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}]},
    ],
}
PLAIN_LOGICAL = parse_schema(
    {
        "type": "record",
        "name": "When",
        "fields": [
            {"name": "day", "type": "int"},
            {"name": "at", "type": "int"},
            {"name": "at_us", "type": "long"},
            {"name": "ts", "type": "long"},
            {"name": "ts_us", "type": "long"},
            {"name": "maybe", "type": ["null", "long"]},
        ],
    }
)
LOGICAL_READER = ExactReader(LOGICAL)
LOGICAL_PARSED = parse_schema(LOGICAL)
LONG = st.integers(min_value=-(2**63), max_value=2**63 - 1)
EDGES = st.sampled_from(
    [
        *(0, -1, 86_400_000, 86_399_999, -719_162, -719_163, 2_932_896, 2_932_897),
        *(-62_135_596_800_000, -62_135_596_800_001, 253_402_300_799_999, 253_402_300_800_000),
    ]
)


@given(
    st.fixed_dictionaries(
        {
            "day": st.one_of(EDGES.filter(lambda v: abs(v) < 2**31), INT32),
            "at": st.one_of(EDGES.filter(lambda v: abs(v) < 2**31), INT32),
            "at_us": st.one_of(EDGES, LONG),
            "ts": st.one_of(EDGES, LONG),
            "ts_us": st.one_of(EDGES.map(lambda v: v * 1000), LONG),
            "maybe": st.one_of(st.none(), EDGES, LONG),
        }
    )
)
def test_a_logical_value_is_accepted_when_it_is_in_its_range_and_then_reads(
    plain: dict[str, Any],
) -> None:
    """The checks on plain values (no second decode) accept a date, time or timestamp
    exactly when the specification's range holds it (years 1-9999, a time within a
    day), and whatever they accept reads with fastavro's logical readers, which the
    gateway's projections and the SDK use."""
    buffer = io.BytesIO()
    schemaless_writer(buffer, PLAIN_LOGICAL, plain)
    data = buffer.getvalue()
    try:
        schemaless_reader(io.BytesIO(data), LOGICAL_PARSED, None)
        readable = True
    except (ValueError, OverflowError, OSError):
        readable = False
    accepted = LOGICAL_READER.first_refusal([data]) is None
    assert accepted is _in_range(plain)
    assert readable or not accepted


def _in_range(plain: dict[str, Any]) -> bool:
    first, last = -719_162, 2_932_896  # days from 1970 of 0001-01-01 and 9999-12-31
    ms_first, ms_last = first * 86_400_000, (last + 1) * 86_400_000 - 1
    ts = (plain["ts"], plain["maybe"] if plain["maybe"] is not None else 0)
    return (
        first <= plain["day"] <= last
        and 0 <= plain["at"] < 86_400_000
        and 0 <= plain["at_us"] < 86_400_000_000
        and all(ms_first <= value <= ms_last for value in ts)
        and ms_first * 1000 <= plain["ts_us"] <= ms_last * 1000 + 999
    )
