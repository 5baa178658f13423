"""Avro schemas of resources: parsing, Parsing Canonical Form and fingerprints."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastavro import parse_schema
from fastavro.schema import SchemaParseException, to_parsing_canonical_form
from fastavro.schema import fingerprint as _fingerprint

from catalog.errors import InvalidArgument, Reason


@dataclass(frozen=True)
class ParsedSchema:
    """A schema checked for validity, with its canonical form and fingerprint.

    Attributes:
        definition: The schema as JSON object, as registered.
        canonical_form: Avro Parsing Canonical Form.
        fingerprint: CRC-64-AVRO fingerprint, 8 bytes little endian (as on the wire).
        parsed: fastavro's parsed form, ready for reading and writing records.
    """

    definition: Any
    canonical_form: str
    fingerprint: bytes
    parsed: Any

    @property
    def fingerprint_hex(self) -> str:
        """Fingerprint as 16 hex digits."""
        return self.fingerprint.hex()

    def top_level_fields(self) -> list[str]:
        """Names of the record's top-level fields (empty for a non-record schema)."""
        if isinstance(self.definition, dict) and self.definition.get("type") == "record":
            return [f["name"] for f in self.definition.get("fields", [])]
        return []


def fingerprint_of(canonical_form: str) -> bytes:
    """Returns the CRC-64-AVRO fingerprint (8 bytes, little endian) of a canonical form."""
    return bytes.fromhex(_fingerprint(canonical_form, "CRC-64-AVRO"))


def parse(definition: str | Any) -> ParsedSchema:
    """Parses and validates an Avro schema given as JSON text or object.

    Raises:
        InvalidArgument: The text is not JSON, or not a valid Avro schema; the message
            says what fastavro objected to.
    """
    if isinstance(definition, str):
        try:
            definition = json.loads(definition)
        except json.JSONDecodeError as exc:
            raise InvalidArgument(
                Reason.INVALID_SCHEMA, f"the schema is not valid JSON: {exc}"
            ) from exc
    try:
        _no_duplicate_fields(definition)
        parsed = parse_schema(definition, _write_hint=False)
        canonical = to_parsing_canonical_form(parsed)
        _no_zero_byte_items(parsed, {})
    except RecursionError as exc:
        raise InvalidArgument(Reason.INVALID_SCHEMA, "the schema is nested too deeply") from exc
    except (SchemaParseException, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidArgument(
            Reason.INVALID_SCHEMA, f"the schema is not a valid Avro schema: {exc}"
        ) from exc
    return ParsedSchema(definition, canonical, fingerprint_of(canonical), parse_schema(definition))


def _no_duplicate_fields(node: Any) -> None:
    """Refuses records with two fields of one name (fastavro accepts them)."""
    if isinstance(node, list):
        for item in node:
            _no_duplicate_fields(item)
    elif isinstance(node, dict):
        if node.get("type") == "record" and isinstance(node.get("fields"), list):
            names = [f.get("name") for f in node["fields"] if isinstance(f, dict)]
            twice = sorted({n for n in names if names.count(n) > 1 and isinstance(n, str)})
            if twice:
                raise ValueError(f"record {node.get('name')!r} has fields named twice: {twice}")
        for value in node.values():
            _no_duplicate_fields(value)


_FIXED_SIZES = {
    "boolean": 1,
    "int": 1,
    "long": 1,
    "float": 4,
    "double": 8,
    "bytes": 1,
    "string": 1,
    "enum": 1,
    "array": 1,
    "map": 1,
}


def _min_bytes(node: Any, named: dict[str, Any], seen: frozenset[str] = frozenset()) -> int:
    """The fewest bytes a value of a (parsed) type can take in Avro binary."""
    if isinstance(node, list):
        return 1  # the branch index
    if isinstance(node, str):
        if node == "null":
            return 0
        if node in _FIXED_SIZES:
            return _FIXED_SIZES[node]
        if node in named and node not in seen:
            return _min_bytes(named[node], named, seen | {node})
        return 1
    kind = node.get("type")
    if kind == "record":
        return sum(_min_bytes(f["type"], named, seen) for f in node.get("fields", []))
    if kind == "fixed":
        return int(node.get("size", 0))
    if isinstance(kind, (str, list, dict)) and kind not in ("enum", "array", "map"):
        return _min_bytes(kind, named, seen)
    return 1


def _no_zero_byte_items(node: Any, named: dict[str, Any]) -> None:
    """Refuses arrays whose items can take no bytes at all.

    Their block count would then be the only bound on a reader's work: a few bytes of
    hostile input could declare 2^62 empty items and keep the gateway busy for ever.
    (Map entries always carry a key, so maps are bounded by their input.)
    """
    if isinstance(node, list):
        for item in node:
            _no_zero_byte_items(item, named)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") in ("record", "enum", "fixed") and "name" in node:
        named[node["name"]] = node
    if node.get("type") == "array" and _min_bytes(node.get("items"), named) == 0:
        raise ValueError(
            f"array items of type {node.get('items')!r} take no bytes; give them content "
            "(a count of empty items is unbounded work for a reader)"
        )
    for key, value in node.items():
        if key != "default":
            _no_zero_byte_items(value, named)
