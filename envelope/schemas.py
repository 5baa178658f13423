"""Avro schemas of resources: parsing, Parsing Canonical Form and fingerprints.

A schema is also the bound on a reader's work: records of a schema nested at most
:data:`MAX_DEPTH` levels, with no named type inside itself, cannot nest deeper than
that, so no decoder (fastavro's compiled one recurses on the C stack) can be driven
into a stack overflow by a record. Both rules are checked at registration.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from fastavro import parse_schema
from fastavro.schema import SchemaParseException, to_parsing_canonical_form
from fastavro.schema import fingerprint as _fingerprint

from envelope.errors import InvalidArgument, Reason

MAX_DEPTH = 32  # records, arrays, maps and unions inside one another
MAX_JSON_DEPTH = 200  # nesting of the schema's JSON text, checked before it is parsed
MAX_SCHEMA_CHARACTERS = 256 << 10  # of a schema's JSON text
MAX_DECIMAL_PRECISION = 1000  # digits (PostgreSQL's numeric holds up to 1000)


@dataclass(frozen=True)
class ParsedSchema:
    """A schema checked for validity, with its canonical form and fingerprint.

    Attributes:
        definition: The schema as JSON object, as registered.
        canonical_form: Avro Parsing Canonical Form.
        fingerprint: CRC-64-AVRO fingerprint, 8 bytes little endian (as on the wire).
        parsed: fastavro's parsed form, ready for reading and writing records.
        depth: How deeply a record of the schema can nest (records, arrays, maps and
            unions), or None for a recursive schema, whose records can nest without
            end. Registration refuses both None and more than :data:`MAX_DEPTH`; a
            version stored before that rule is read, but its records are refused.
    """

    definition: Any
    canonical_form: str
    fingerprint: bytes
    parsed: Any
    depth: int | None = None

    @property
    def decodable(self) -> bool:
        """Whether records of this schema are safe to decode (bounded nesting)."""
        return self.depth is not None and self.depth <= MAX_DEPTH

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


def _too_deep() -> InvalidArgument:
    return InvalidArgument(
        Reason.INVALID_SCHEMA,
        f"the schema is nested too deeply: records, arrays, maps and unions may be "
        f"nested at most {MAX_DEPTH} levels",
        {"limit": str(MAX_DEPTH)},
    )


def parse(definition: str | Any, *, stored: bool = False) -> ParsedSchema:
    """Parses and validates an Avro schema given as JSON text or object.

    Args:
        definition: The schema, as JSON text or the object it decodes to.
        stored: The schema is a registered version read back from the catalog: a
            recursive or too deeply nested one registered before those rules is
            returned (with :attr:`ParsedSchema.decodable` False) instead of refused.

    Raises:
        InvalidArgument: The text is not JSON, not a valid Avro schema (the message
            says what fastavro objected to), recursive, or nested too deeply.
    """
    if isinstance(definition, str):
        if len(definition) > MAX_SCHEMA_CHARACTERS:
            raise InvalidArgument(
                Reason.INVALID_SCHEMA,
                f"the schema has {len(definition):,} characters; at most "
                f"{MAX_SCHEMA_CHARACTERS:,} are allowed",
                {"limit": str(MAX_SCHEMA_CHARACTERS)},
            )
        if _json_depth(definition) > MAX_JSON_DEPTH:
            raise _too_deep()
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
        _bounded_decimals(parsed)
        depth = nesting_depth(parsed)
    except RecursionError as exc:
        raise _too_deep() from exc
    except (SchemaParseException, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidArgument(
            Reason.INVALID_SCHEMA, f"the schema is not a valid Avro schema: {exc}"
        ) from exc
    if not stored:
        if depth is None:
            raise InvalidArgument(
                Reason.INVALID_SCHEMA,
                "the schema is recursive (a named type contains itself): its records could "
                "nest without end; give the nested levels types of their own, or carry the "
                "tree as a list of rows with parent keys",
            )
        if depth > MAX_DEPTH:
            raise _too_deep()
    return ParsedSchema(
        definition, canonical, fingerprint_of(canonical), parse_schema(definition), depth
    )


def _json_depth(text: str) -> int:
    """The deepest nesting of brackets and braces in JSON text (strings skipped), in
    one pass."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


_NAMED = ("record", "error", "enum", "fixed")


class _Recursive(Exception):
    """A named type was met inside itself."""


def nesting_depth(parsed: Any) -> int | None:
    """How deeply records of a (fastavro-parsed) schema nest, or None if a named type
    contains itself. Records, arrays, maps and unions count a level each. Each named
    type is measured once, so a schema that refers to types many times costs no more."""
    named: dict[str, Any] = {}
    collect_named(parsed, named)
    measured: dict[str, int] = {}

    def depth(node: Any, visiting: frozenset[str]) -> int:
        if isinstance(node, list):
            return 1 + max((depth(branch, visiting) for branch in node), default=0)
        if isinstance(node, dict):
            name = node.get("name")
            if node.get("type") in _NAMED and isinstance(name, str):
                node = name
            else:
                return body(node, visiting)
        if not isinstance(node, str) or node not in named:
            return 0
        if node in visiting:
            raise _Recursive(node)
        if node not in measured:
            measured[node] = body(named[node], visiting | {node})
        return measured[node]

    def body(node: dict[str, Any], visiting: frozenset[str]) -> int:
        kind = node.get("type")
        if kind in ("record", "error"):
            fields = node.get("fields", [])
            return 1 + max((depth(f.get("type"), visiting) for f in fields), default=0)
        if kind == "array":
            return 1 + depth(node.get("items"), visiting)
        if kind == "map":
            return 1 + depth(node.get("values"), visiting)
        if isinstance(kind, (list, dict)) or (isinstance(kind, str) and kind in named):
            return depth(kind, visiting)
        return 0

    try:
        return depth(parsed, frozenset())
    except _Recursive:
        return None


def collect_named(node: Any, named: dict[str, Any]) -> None:
    """Collects every named type defined in a parsed schema, by full name."""
    if isinstance(node, list):
        for item in node:
            collect_named(item, named)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") in _NAMED and isinstance(node.get("name"), str):
        named.setdefault(node["name"], node)
    for key, value in node.items():
        if key in ("type", "items", "values", "fields"):
            collect_named(value, named)


def _bounded_decimals(node: Any) -> None:
    """Refuses a decimal whose precision is not 1 to MAX_DECIMAL_PRECISION digits:
    checking a value of it would be unbounded work."""
    if isinstance(node, list):
        for item in node:
            _bounded_decimals(item)
    elif isinstance(node, dict):
        if node.get("logicalType") == "decimal":
            precision = node.get("precision")
            if not isinstance(precision, int) or not 1 <= precision <= MAX_DECIMAL_PRECISION:
                raise ValueError(
                    f"a decimal's precision must be 1 to {MAX_DECIMAL_PRECISION} digits, "
                    f"not {precision!r}"
                )
        for key, value in node.items():
            if key != "default":
                _bounded_decimals(value)


def _no_duplicate_fields(node: Any) -> None:
    """Refuses records with two fields of one name (fastavro accepts them)."""
    if isinstance(node, list):
        for item in node:
            _no_duplicate_fields(item)
    elif isinstance(node, dict):
        if node.get("type") == "record" and isinstance(node.get("fields"), list):
            names = Counter(f.get("name") for f in node["fields"] if isinstance(f, dict))
            twice = sorted(n for n, count in names.items() if count > 1 and isinstance(n, str))
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
