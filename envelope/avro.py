"""Exact Avro: a record is accepted only if it is the one encoding of what it means.

Avro binary leaves a reader room: a union or enum index of -1 (fastavro takes the last
branch, Apache Avro refuses it), a boolean byte of 2 (true to fastavro, false to
Apache Avro), an ``int`` of more than 32 bits, a decimal beyond its precision, a map
with a key twice, a varint with padding bytes, arrays split into odd blocks. A
signature over such bytes vouches for something different readers read differently.

So the gateway decodes each record, encodes the value again with the same schema (what
the SDK's publisher does when it writes a record) and requires the very same bytes, and
it checks the ranges the encoder does not (``int``). This module has no state and no
I/O; :mod:`exchange.record_checker` runs it off the event loop.
"""

from __future__ import annotations

import io
import json
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

    Args:
        definition: The registered schema, as JSON text or object. Logical types matter
            (a decimal's precision is checked), so this is the definition as
            registered, not its canonical form.
    """

    def __init__(self, definition: str | Any) -> None:
        if isinstance(definition, str):
            definition = json.loads(definition)
        self.schema = parse_schema(definition)
        self._range_check = _range_check(parse_schema(definition, _write_hint=False))

    def read(self, record: bytes) -> Any:
        """Decodes one record.

        Raises:
            NotExact: The record is not the canonical encoding of its value.
            Exception: Whatever the decoder raises on bytes that do not decode.
        """
        buffer = io.BytesIO(record)
        value = schemaless_reader(buffer, self.schema, None, return_named_type=True)
        left = len(record) - buffer.tell()
        if left:
            raise NotExact(f"{left} bytes are left after the record")
        if self._range_check is not None:
            self._range_check(value)
        again = io.BytesIO()
        try:
            schemaless_writer(again, self.schema, value)
        except Exception as exc:  # a value the decoder made but no writer may write
            raise NotExact(f"its value cannot be written back ({type(exc).__name__})") from exc
        if again.getvalue() != record:
            raise NotExact(
                "it is not the canonical encoding of its value (a union or enum index, a "
                "boolean, a decimal, a repeated map key, a padded number or an array "
                "block differs from what an Avro writer writes)"
            )
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


def _range_check(node: Any) -> Check | None:
    """A check of what decoding and encoding again let through (an ``int`` beyond 32
    bits) for a parsed schema, or None when the schema has no such value. In a union
    the writer matches a plain value to a branch by checking it (an out-of-range int
    matches no ``int`` branch); a named type's value comes as (name, value) and is
    checked here.
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
            return _union_check(branches) if branches else None
        return None

    def build_type(node: dict[str, Any]) -> Check | None:
        kind = node.get("type")
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
            # date and time-millis decode to objects that cannot hold a wider number
            return None if node.get("logicalType") in ("date", "time-millis") else _check_int
        if isinstance(kind, (str, dict)):
            return build(kind)
        return None

    return build(node)


def _check_int(value: Any) -> None:
    if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
        raise NotExact(f"the int {value} does not fit in 32 bits")


def _union_check(branches: dict[str, Check]) -> Check:
    def check(value: Any) -> None:
        if isinstance(value, tuple) and len(value) == 2 and value[0] in branches:
            branches[value[0]](value[1])

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
