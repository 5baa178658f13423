"""Exact Avro: a record is accepted only if it is the one encoding of what it means.

Avro binary leaves a reader room: a union or enum index of -1 (fastavro takes the last
branch, Apache Avro refuses it), a boolean byte of 2 (true to fastavro, false to
Apache Avro), an ``int`` of more than 32 bits, a decimal beyond its precision, a map
with a key twice, a varint with padding bytes, arrays split into odd blocks. A
signature over such bytes vouches for something different readers read differently.

So the gateway decodes each record with its logical types left out, encodes the value
again with the same schema and requires the very same bytes; it checks what the
encoder does not (an ``int`` within 32 bits, a decimal's bytes within its precision);
and a record of a schema with logical types must also read with them. This module has
no state and no I/O; :mod:`exchange.publish.record_checker` runs it off the event loop.
"""

from __future__ import annotations

import io
import json
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from envelope import schemas

INT_MIN, INT_MAX = -(2**31), 2**31 - 1

Check = Callable[[Any], None]


class NotExact(Exception):
    """A record decodes, but its bytes are not the canonical encoding of its value."""


@dataclass(frozen=True)
class Refusal:
    """Why a record was refused: its index in the batch and a short explanation."""

    index: int
    message: str


class ExactReader:
    """Reads records of one schema exactly (see the module's description).

    The bytes are checked against the schema with its logical types left out (a
    decimal is its two's-complement bytes, a date its int), so no conversion runs on
    unchecked input; then every logical value is checked to read as its type does
    (a decimal within its precision, a date or timestamp within years 1-9999, a time
    within a day, a uuid string a uuid), as every reader, the gateway's projections
    too, will read it. A logical type these checks do not know is checked by reading
    the record with it.

    Args:
        definition: The registered schema, as JSON text or object: the definition as
            registered, not its canonical form (which drops logical types).
    """

    def __init__(self, definition: str | Any) -> None:
        if isinstance(definition, str):
            definition = json.loads(definition)
        plain = _without_logical_types(definition)
        self.schema = parse_schema(plain)
        self._logical = parse_schema(definition) if _needs_logical_pass(definition) else None
        self._check = _value_check(parse_schema(definition, _write_hint=False))

    def read(self, record: bytes) -> Any:
        """Decodes one record (logical types left out: decimals as bytes, dates as ints).

        Raises:
            NotExact: The record is not the canonical encoding of its value, or holds a
                value its logical type does not allow.
            Exception: Whatever the decoder raises on bytes that do not decode.
        """
        buffer = io.BytesIO(record)
        value = schemaless_reader(buffer, self.schema, None, return_named_type=True)
        left = len(record) - buffer.tell()
        if left:
            raise NotExact(f"{left} bytes are left after the record")
        if self._check is not None:
            self._check(value)
        again = io.BytesIO()
        try:
            schemaless_writer(again, self.schema, value)
        except Exception as exc:  # a value the decoder made but no writer may write
            raise NotExact(f"its value cannot be written back ({type(exc).__name__})") from exc
        if again.getvalue() != record:
            raise NotExact(
                "it is not the canonical encoding of its value (a union or enum index out "
                "of range, a boolean byte other than 0 or 1, a map key twice, a padded "
                "number, or an array or map in more than one block)"
            )
        if self._logical is not None:
            try:
                schemaless_reader(io.BytesIO(record), self._logical, None)
            except Exception as exc:
                raise NotExact(
                    f"a value does not read with its logical type (a date, time, "
                    f"timestamp or uuid out of its range: {type(exc).__name__})"
                ) from exc
        return value

    def first_refusal(self, records: Sequence[bytes], first_index: int = 0) -> Refusal | None:
        """Checks records in order; returns the first one refused, or None."""
        for offset, record in enumerate(records):
            index = first_index + offset
            try:
                self.read(record)
            except NotExact as exc:
                return Refusal(index, f"record {index} is not exact Avro: {exc}")
            except Exception as exc:  # fastavro raises many kinds on garbage input
                return Refusal(
                    index, f"record {index} does not decode with the schema: {type(exc).__name__}"
                )
        return None


def _without_logical_types(node: Any) -> Any:
    """The schema with every ``logicalType`` left out (a copy)."""
    if isinstance(node, list):
        return [_without_logical_types(item) for item in node]
    if isinstance(node, dict):
        return {k: _without_logical_types(v) for k, v in node.items() if k != "logicalType"}
    return node


def _value_check(node: Any) -> Check | None:
    """A check of what decoding and encoding again let through, for a parsed schema:
    an ``int`` beyond 32 bits, a decimal beyond its precision (read as its bytes); None
    when the schema has neither. In a union the writer matches a plain value to a
    branch by checking it (an out-of-range int matches no ``int`` branch); a named
    type's value comes as (name, value) and is checked here, and bytes by the first
    ``bytes`` branch, which is the one a writer writes them with.
    """
    named: dict[str, Any] = {}
    schemas.collect_named(node, named)
    built: dict[str, Check | None] = {}

    def build(node: Any) -> Check | None:
        if isinstance(node, str):
            if node == "int":
                return _check_int
            if node in named:
                if node not in built:
                    built[node] = None  # a schema that got past registration is not recursive
                    built[node] = build_type(named[node])
                return built[node]
            return None
        if isinstance(node, dict):
            if node.get("type") in ("record", "error", "enum", "fixed") and "name" in node:
                return build(node["name"])
            return build_type(node)
        if isinstance(node, list):
            branches = {}
            for branch in node:
                name = branch if isinstance(branch, str) else branch.get("name")
                check = build(branch) if name in named else None
                if check is not None:
                    branches[name] = check
            by_kind = {}
            for kind in ("bytes", "int", "long", "string"):
                first = next((b for b in node if _kind(b) == kind), None)
                check = build(first) if first is not None else None
                if check is not None:
                    by_kind[kind] = check
            if not branches and not by_kind:
                return None
            return _union_check(branches, by_kind)
        return None

    def build_type(node: dict[str, Any]) -> Check | None:
        kind = node.get("type")
        logical = node.get("logicalType")
        if logical == "decimal" and kind in ("bytes", "fixed"):
            return _decimal_check(node.get("precision"))
        if isinstance(kind, str) and isinstance(logical, str):
            if (kind, logical) in _LOGICAL_RANGES:
                return _range_check(logical, *_LOGICAL_RANGES[(kind, logical)])
            if (kind, logical) == ("string", "uuid"):
                return _uuid_check
        if kind in ("record", "error"):
            checks = [(f["name"], build(f["type"])) for f in node.get("fields", [])]
            present = [(name, check) for name, check in checks if check is not None]
            return _record_check(present) if present else None
        if kind == "array":
            item = build(node.get("items"))
            return _each(item) if item is not None else None
        if kind == "map":
            value = build(node.get("values"))
            return _each_value(value) if value is not None else None
        if kind == "int":
            return _check_int
        if isinstance(kind, (str, dict)):
            return build(kind)
        return None

    return build(node)


def _check_int(value: Any) -> None:
    if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
        raise NotExact(f"the int {value} does not fit in 32 bits")


def _union_check(branches: dict[str, Check], by_kind: dict[str, Check]) -> Check:
    """A union's check: a named type's value by its branch; bytes, numbers and strings
    by the first branch of their kind, the one a writer matches them to first (a
    schema with two such branches carrying logical types is read with them instead:
    see :func:`_needs_logical_pass`)."""
    as_bytes, as_string = by_kind.get("bytes"), by_kind.get("string")
    as_number = by_kind.get("int") or by_kind.get("long")

    def check(value: Any) -> None:
        if isinstance(value, tuple) and len(value) == 2 and value[0] in branches:
            branches[value[0]](value[1])
        elif isinstance(value, bytes):
            if as_bytes is not None:
                as_bytes(value)
        elif isinstance(value, bool):
            return
        elif isinstance(value, int):
            if as_number is not None:
                as_number(value)
        elif isinstance(value, str) and as_string is not None:
            as_string(value)

    return check


# (type, logicalType) -> the values a reader turns into a date, time or timestamp
_LOGICAL_RANGES: dict[tuple[str, str], tuple[int, int]] = {
    ("int", "date"): (-719_162, 2_932_896),  # 0001-01-01 .. 9999-12-31
    ("int", "time-millis"): (0, 86_400_000 - 1),
    ("long", "time-micros"): (0, 86_400_000_000 - 1),
    ("long", "timestamp-millis"): (-62_135_596_800_000, 253_402_300_799_999),
    ("long", "timestamp-micros"): (-62_135_596_800_000_000, 253_402_300_799_999_999),
    ("long", "local-timestamp-millis"): (-62_135_596_800_000, 253_402_300_799_999),
    ("long", "local-timestamp-micros"): (-62_135_596_800_000_000, 253_402_300_799_999_999),
}
_CHECKED_LOGICAL = {"decimal", "uuid"} | {logical for _, logical in _LOGICAL_RANGES}


def _range_check(logical: str, low: int, high: int) -> Check:
    def check(value: Any) -> None:
        if isinstance(value, int) and not low <= value <= high:
            raise NotExact(f"a {logical} of {value} is outside years 1-9999 (or a day)")

    return check


def _uuid_check(value: Any) -> None:
    if isinstance(value, str):
        try:
            uuid.UUID(value)
        except ValueError as exc:
            raise NotExact(f"a uuid string {value[:40]!r} is not a uuid") from exc


def _needs_logical_pass(node: Any) -> bool:
    """Whether records must also be read with their logical types: a logical type the
    value checks do not know, or a union with two branches of one kind where a
    logical type would make the first-branch rule guess."""
    if isinstance(node, list):  # a union
        kinds = [_kind(b) if isinstance(_kind(b), str) else "" for b in node]
        kinds = ["int" if k == "long" else k for k in kinds]
        logical = [isinstance(b, dict) and "logicalType" in b for b in node]
        for kind in {k for k in kinds if k}:
            same = [i for i, k in enumerate(kinds) if k == kind]
            if len(same) > 1 and any(logical[i] for i in same):
                return True
        return any(_needs_logical_pass(b) for b in node)
    if isinstance(node, dict):
        if "logicalType" in node and node["logicalType"] not in _CHECKED_LOGICAL:
            return True
        if any(_needs_logical_pass(f.get("type")) for f in node.get("fields", [])):
            return True
        return any(_needs_logical_pass(node.get(key)) for key in ("type", "items", "values"))
    return False


def _kind(node: Any) -> Any:
    return node.get("type") if isinstance(node, dict) else node


def _decimal_check(precision: Any) -> Check:
    """Checks a decimal's two's-complement bytes against its precision: first their
    length (so no conversion of unbounded input runs), then the number of digits."""
    digits = min(int(precision), schemas.MAX_DECIMAL_PRECISION) if precision else 1
    # a sign bit, digits * log2(10) bits, and one byte more for writers that pad
    most_bytes = math.ceil((digits * math.log2(10) + 1) / 8) + 1
    limit = 10**digits

    def check(value: Any) -> None:
        if not isinstance(value, bytes):
            return
        if not value:
            raise NotExact("a decimal has no bytes (a Java reader refuses them)")
        if len(value) > most_bytes or abs(int.from_bytes(value, "big", signed=True)) >= limit:
            raise NotExact(f"a decimal has more than the {digits} digits of its precision")

    return check


def _record_check(fields: list[tuple[str, Check]]) -> Check:
    def check(value: Any) -> None:
        for name, field_check in fields:
            field_check(value[name])

    return check


def _each(item: Check) -> Check:
    def check(values: Any) -> None:
        for value in values:
            item(value)

    return check


def _each_value(item: Check) -> Check:
    def check(values: Any) -> None:
        for value in values.values():
            item(value)

    return check
