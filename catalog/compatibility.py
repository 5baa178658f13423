"""Avro schema compatibility checking.

Implements the reader/writer "Schema Resolution" rules of the Avro 1.11
specification, in the style of Avro Java's ``SchemaCompatibility`` and the
Confluent Schema Registry compatibility modes.

Schemas are plain JSON-like Python objects (``dict``/``list``/``str``) as
written by users. They are normalised with :func:`fastavro.parse_schema`,
which qualifies every name and replaces repeated uses of a named type by its
full name; a name -> definition map is kept for each side so that references
(including recursive ones) can be followed.

Example:
    >>> old = {"type": "record", "name": "P", "fields": [{"name": "a", "type": "int"}]}
    >>> new = {"type": "record", "name": "P", "fields": [{"name": "a", "type": "long"}]}
    >>> check(new, [old], CompatibilityMode.BACKWARD)
    []
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import fastavro
from fastavro.schema import SchemaParseException

__all__ = ["CompatibilityMode", "Incompatibility", "can_read", "check"]

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})
# writer type -> reader types it may be promoted to (Avro 1.11 "Schema Resolution").
_PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


class CompatibilityMode(enum.StrEnum):
    """Schema Registry compatibility modes."""

    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"


@dataclass(frozen=True)
class Incompatibility:
    """One reason why a reader schema cannot read data of a writer schema.

    Attributes:
        path: JSON-pointer-like location in the reader schema, using field
            names for record fields and indices for union branches, e.g.
            ``"/fields/phone/type"``. The root is ``"/"``.
        message: Human readable explanation saying what to fix.
    """

    path: str
    message: str


def _parse(schema: object) -> tuple[Any, dict[str, Any]]:
    """Normalise a user schema and collect its named type definitions.

    Args:
        schema: Schema as a JSON-like Python object.

    Returns:
        The parsed schema and a map of full name -> parsed definition.

    Raises:
        TypeError: If the schema is not a ``str``, ``list`` or ``dict``.
        ValueError: If the schema is not valid Avro.
    """
    if not isinstance(schema, str | list | dict):
        raise TypeError(f"an Avro schema must be a str, list or dict, not {type(schema).__name__}")
    names: dict[str, Any] = {}
    try:
        parsed = fastavro.parse_schema(schema, named_schemas=names, _write_hint=False)
    except (SchemaParseException, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"invalid Avro schema: {exc!r}") from exc
    return parsed, names


def _simple(name: str) -> str:
    """Return the unqualified part of a full Avro name."""
    return name.rpartition(".")[2]


def _kind(schema: Any) -> str:
    """Return the Avro type of a resolved schema ("union" for lists)."""
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return "record" if schema["type"] == "error" else str(schema["type"])
    return str(schema)


def _describe(schema: Any) -> str:
    """Return a short human readable description of a resolved schema."""
    kind = _kind(schema)
    if kind in _NAMED:
        return f"{kind} '{schema['name']}'"
    return f"'{kind}'"


class _Checker:
    """Walks a reader and a writer schema in parallel, collecting problems."""

    def __init__(self, reader_names: dict[str, Any], writer_names: dict[str, Any]) -> None:
        self._names = (reader_names, writer_names)
        self._in_progress: set[tuple[str, str]] = set()

    def _resolve(self, schema: Any, side: int) -> Any:
        """Replace a named-type reference by its definition."""
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            return self._names[side][schema]
        return schema

    def check(self, reader: Any, writer: Any, path: str) -> list[Incompatibility]:
        """Return the problems reading ``writer`` data with ``reader`` at ``path``."""
        reader, writer = self._resolve(reader, 0), self._resolve(writer, 1)
        r_kind, w_kind = _kind(reader), _kind(writer)
        if w_kind == "union":
            return [err for branch in writer for err in self.check(reader, branch, path)]
        if r_kind == "union":
            return self._check_reader_union(reader, writer, path)
        if r_kind != w_kind:
            if r_kind in _PROMOTIONS.get(w_kind, frozenset()):
                return []
            msg = f"reader type {_describe(reader)} cannot read writer type "
            return _fail(path, msg + f"{_describe(writer)}; use a legal promotion")
        if r_kind in _NAMED:
            key = (reader["name"], writer["name"])
            if key in self._in_progress:  # recursion: assume compatible
                return []
            self._in_progress.add(key)
            try:
                return self._check_named(reader, writer, path)
            finally:
                self._in_progress.discard(key)
        if r_kind == "array":
            return self.check(reader["items"], writer["items"], f"{path}/items")
        if r_kind == "map":
            return self.check(reader["values"], writer["values"], f"{path}/values")
        return _check_decimal(reader, writer, path)

    def _check_reader_union(
        self, reader: list[Any], writer: Any, path: str
    ) -> list[Incompatibility]:
        """A non-union writer must be readable by at least one reader branch."""
        candidate: list[Incompatibility] | None = None
        for index, branch in enumerate(reader):
            errors = self.check(branch, writer, f"{path}/{index}")
            if not errors:
                return []
            resolved = self._resolve(branch, 0)
            if (
                candidate is None
                and _kind(resolved) == _kind(writer)
                and (_kind(writer) not in _NAMED or _names_match(resolved, writer))
            ):
                candidate = errors  # same kind of branch: most useful details
        if candidate is not None:
            return candidate
        msg = f"writer type {_describe(writer)} does not match any branch of the "
        return _fail(path, msg + "reader union; add a compatible branch to the union")

    def _check_named(
        self, reader: dict[str, Any], writer: dict[str, Any], path: str
    ) -> list[Incompatibility]:
        """Check records, enums and fixed types whose kinds already agree."""
        if not _names_match(reader, writer):
            r_name, w_name = reader["name"], writer["name"]
            msg = f"reader {_kind(reader)} name '{r_name}' does not match writer name "
            msg += f"'{w_name}'; rename it back or add '{w_name}' to the reader's aliases"
            return _fail(f"{path}/name", msg)
        kind = _kind(reader)
        if kind == "fixed":
            if reader["size"] != writer["size"]:
                msg = f"reader fixed '{reader['name']}' has size {reader['size']} "
                return _fail(f"{path}/size", msg + f"but writer has {writer['size']}")
            return _check_decimal(reader, writer, path)
        if kind == "enum":
            missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
            if missing and "default" not in reader:
                msg = f"reader enum '{reader['name']}' is missing writer symbol(s) "
                msg += f"{', '.join(missing)}; add them or give the enum a default"
                return _fail(f"{path}/symbols", msg)
            return []
        errors: list[Incompatibility] = []
        writer_fields = {field["name"]: field for field in writer["fields"]}
        for field in reader["fields"]:
            name = field["name"]
            field_path = f"{path}/fields/{name}"
            match = writer_fields.get(name)
            for alias in field.get("aliases", []):
                match = match or writer_fields.get(alias)
            if match is None:
                if "default" not in field:
                    msg = f"reader field '{name}' has no default and is missing from "
                    errors += _fail(field_path, msg + "the writer schema; add a default")
                continue
            errors += self.check(field["type"], match["type"], f"{field_path}/type")
        return errors


def _names_match(reader: dict[str, Any], writer: dict[str, Any]) -> bool:
    """Match named types by unqualified name or reader alias, like Avro Java."""
    candidates = [reader["name"], *reader.get("aliases", [])]
    return _simple(writer["name"]) in {_simple(name) for name in candidates}


def _check_decimal(reader: Any, writer: Any, path: str) -> list[Incompatibility]:
    """Ignore logical types, except that decimals must agree on precision/scale."""
    if not (isinstance(reader, dict) and isinstance(writer, dict)):
        return []
    if reader.get("logicalType") != "decimal" or writer.get("logicalType") != "decimal":
        return []
    r_ps = (reader.get("precision"), reader.get("scale", 0))
    w_ps = (writer.get("precision"), writer.get("scale", 0))
    if r_ps == w_ps:
        return []
    msg = f"reader decimal(precision, scale)={r_ps} does not match the writer's "
    return _fail(path, msg + f"{w_ps}; use the same precision and scale")


def _fail(path: str, message: str) -> list[Incompatibility]:
    """Build a one-element problem list, rendering the root path as ``"/"``."""
    return [Incompatibility(path or "/", message)]


def can_read(reader: object, writer: object) -> list[Incompatibility]:
    """Check whether data written with one schema can be read with another.

    Args:
        reader: The reader's schema as a JSON-like Python object.
        writer: The writer's schema as a JSON-like Python object.

    Returns:
        Empty list when data written with ``writer`` can be read with
        ``reader``; otherwise every problem found, located in the reader.

    Raises:
        TypeError: If a schema is not a ``str``, ``list`` or ``dict``.
        ValueError: If a schema is not valid Avro.
    """
    reader_schema, reader_names = _parse(reader)
    writer_schema, writer_names = _parse(writer)
    return _Checker(reader_names, writer_names).check(reader_schema, writer_schema, "")


def check(
    new: object, previous: Sequence[object], mode: CompatibilityMode
) -> list[Incompatibility]:
    """Check a new schema version against previously registered versions.

    ``BACKWARD``: ``new`` reads data written by the latest previous version.
    ``FORWARD``: the latest previous version reads data written by ``new``.
    ``FULL``: both. The ``*_TRANSITIVE`` variants check against every previous
    version. ``NONE`` accepts anything.

    Args:
        new: The proposed schema.
        previous: Registered schemas ordered oldest -> newest; version numbers
            are 1-based positions in this sequence.
        mode: The compatibility mode to enforce.

    Returns:
        Every incompatibility found, each message prefixed with the version it
        conflicts with and the direction; empty when ``new`` is acceptable.

    Raises:
        TypeError: If a schema is not a ``str``, ``list`` or ``dict``.
        ValueError: If a schema is not valid Avro or ``mode`` is unknown.
    """
    mode = CompatibilityMode(mode)
    if mode is CompatibilityMode.NONE or not previous:
        return []
    versions = list(enumerate(previous, start=1))
    if not mode.endswith("_TRANSITIVE"):
        versions = versions[-1:]
    backward = mode.startswith(("BACKWARD", "FULL"))
    forward = mode.startswith(("FORWARD", "FULL"))
    problems: list[Incompatibility] = []
    for number, old in versions:
        if backward:
            prefix = f"new schema cannot read data written by version {number}"
            problems.extend(
                Incompatibility(p.path, f"{prefix}: {p.message}") for p in can_read(new, old)
            )
        if forward:
            prefix = f"version {number} cannot read data written by the new schema"
            problems.extend(
                Incompatibility(p.path, f"{prefix}: {p.message}") for p in can_read(old, new)
            )
    return problems
