"""Schema parsing, canonical form, fingerprints and the gateway's record validator."""

from __future__ import annotations

import io
import json
import uuid

import pytest
from fastavro import schemaless_reader, schemaless_writer
from hypothesis import given
from hypothesis import strategies as st

from envelope import schemas
from envelope.avro import ExactReader
from envelope.errors import InvalidArgument
from exchange.demo.main import RESIDENT_SCHEMA, resident


def encode(parsed: schemas.ParsedSchema, record: dict[str, object]) -> bytes:
    buffer = io.BytesIO()
    schemaless_writer(buffer, parsed.parsed, record)
    return buffer.getvalue()


def test_the_fingerprint_ignores_formatting_docs_and_field_order_of_keys() -> None:
    compact = schemas.parse(json.dumps(RESIDENT_SCHEMA))
    reordered = dict(reversed(list(RESIDENT_SCHEMA.items())))
    undocumented = {k: v for k, v in RESIDENT_SCHEMA.items() if k != "doc"}
    for other in (json.dumps(RESIDENT_SCHEMA, indent=4), reordered, undocumented):
        assert schemas.parse(other).fingerprint == compact.fingerprint
    assert len(compact.fingerprint) == 8


def test_a_different_schema_has_a_different_fingerprint() -> None:
    changed = json.loads(json.dumps(RESIDENT_SCHEMA))
    changed["fields"][0]["type"] = "int"
    assert schemas.parse(changed).fingerprint != schemas.parse(RESIDENT_SCHEMA).fingerprint


@given(st.integers(min_value=0, max_value=10**9))
def test_the_validator_accepts_every_record_the_schema_writes(serial: int) -> None:
    parsed = schemas.parse(RESIDENT_SCHEMA)
    raw = encode(parsed, resident(serial))
    assert ExactReader(parsed.definition).first_refusal([raw]) is None
    assert ExactReader(parsed.definition).read(raw)["serial"] == serial
    assert schemaless_reader(io.BytesIO(raw), parsed.parsed, None) == resident(serial)


@given(st.binary(max_size=64))
def test_the_validator_never_crashes_on_garbage(garbage: bytes) -> None:
    parsed = schemas.parse(RESIDENT_SCHEMA)
    refusal = ExactReader(parsed.definition).first_refusal([garbage])
    assert refusal is None or refusal.index == 0


def test_values_a_subscriber_could_not_decode_are_refused() -> None:
    schema = {
        "type": "record",
        "name": "T",
        "fields": [{"name": "day", "type": {"type": "int", "logicalType": "date"}}],
    }
    parsed = schemas.parse(schema)
    structural = schemas.parse(
        {"type": "record", "name": "T", "fields": [{"name": "day", "type": "int"}]}
    )
    refusal = ExactReader(parsed.definition).first_refusal([encode(structural, {"day": 10**8})])
    assert refusal is not None


def test_the_validator_checks_uuid_strings() -> None:
    schema = {
        "type": "record",
        "name": "T",
        "fields": [{"name": "id", "type": {"type": "string", "logicalType": "uuid"}}],
    }
    parsed = schemas.parse(schema)
    good = encode(parsed, {"id": uuid.uuid4()})
    assert ExactReader(parsed.definition).first_refusal([good]) is None
    structural = schemas.parse(
        {"type": "record", "name": "T", "fields": [{"name": "id", "type": "string"}]}
    )
    bad = encode(structural, {"id": "not-a-uuid"})
    assert ExactReader(parsed.definition).first_refusal([bad]) is not None


def test_truncated_records_are_refused() -> None:
    parsed = schemas.parse(RESIDENT_SCHEMA)
    raw = encode(parsed, resident(42))
    for cut in (1, len(raw) // 2, len(raw) - 1):
        refusal = ExactReader(parsed.definition).first_refusal([raw, raw[:cut]])
        assert refusal is not None
        assert refusal.index == 1


@pytest.mark.parametrize(
    "items",
    [
        "null",
        {"type": "record", "name": "Empty", "fields": []},
        {"type": "fixed", "name": "Nothing", "size": 0},
    ],
)
def test_arrays_of_items_that_take_no_bytes_are_refused(items: object) -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "xs", "type": {"type": "array", "items": items}}],
    }
    with pytest.raises(InvalidArgument) as refusal:
        schemas.parse(schema)
    assert "take no bytes" in refusal.value.message


def test_arrays_and_maps_of_real_items_are_fine() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "xs", "type": {"type": "array", "items": ["null", "string"]}},
            {"name": "m", "type": {"type": "map", "values": "null"}},
        ],
    }
    assert schemas.parse(schema).top_level_fields() == ["xs", "m"]
