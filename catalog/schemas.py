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
