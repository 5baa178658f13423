"""The file formats the ``files`` source reads, and the checks every record passes.

A file's records are read from CSV, JSON Lines or an Avro object container file, their
text converted to the schema's types, completed with defaults and checked against the
resource schema. The first problem raises :class:`Rejected`, whose message says where
(``line 3``, ``record 7``) and what is wrong.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import stat
from collections.abc import Iterator
from datetime import date, datetime
from datetime import time as clock
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import fastavro
from fastavro.validation import ValidationError, validate

from adapters.contract import AdapterError
from envelope import schemas
from envelope.errors import InvalidArgument

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".avro": "avro"}
_TRUE, _FALSE = {"true", "1", "yes", "t", "y"}, {"false", "0", "no", "f", "n"}
AVRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class Rejected(Exception):
    """A file the source refuses; the message is the reason."""


def parse_schema(schema: Any) -> schemas.ParsedSchema:
    """Parses the resource schema; an unusable one, or not a record, is an AdapterError."""
    try:
        parsed = schemas.parse(schema)
    except InvalidArgument as exc:
        raise AdapterError(f"the resource schema is not usable: {exc}", "schema") from exc
    if not parsed.top_level_fields():
        raise AdapterError("the resource schema must be an Avro record", "schema")
    return parsed


def _branch(avro_type: Any) -> tuple[Any, bool]:
    """Returns the type a value takes (first non-null branch) and whether null is allowed."""
    if isinstance(avro_type, list):
        others = [t for t in avro_type if t != "null"]
        return (others[0] if others else "null"), len(others) < len(avro_type)
    return avro_type, avro_type == "null"


def _type_name(avro_type: Any) -> str:
    kind = _branch(avro_type)[0]
    if isinstance(kind, dict):
        return str(kind.get("logicalType") or kind.get("type"))
    return str(kind)


def _convert(value: Any, avro_type: Any, from_text: bool) -> Any:
    """Turns text into the value ``avro_type`` takes (JSON: only for logical types, bytes)."""
    kind, nullable = _branch(avro_type)
    base = kind.get("type") if isinstance(kind, dict) else kind
    logical = kind.get("logicalType", "") if isinstance(kind, dict) else ""
    if not isinstance(value, str) or not (from_text or logical or base in ("bytes", "fixed")):
        return value
    if value == "" and nullable:
        return None
    if logical == "decimal":
        return Decimal(value)
    if logical == "date":
        return date.fromisoformat(value)
    if logical.startswith(("timestamp-", "local-timestamp-")):
        return datetime.fromisoformat(value)
    if logical.startswith("time-"):
        return clock.fromisoformat(value)
    if base in ("int", "long"):
        return int(value)
    if base in ("float", "double"):
        return float(value)
    if base == "boolean":
        if value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError("expected true or false")
    if base in ("bytes", "fixed"):
        return base64.b64decode(value, validate=True)
    if base in ("record", "array", "map"):
        return json.loads(value)
    return value


def record_problem(parsed: Any, record: Any) -> str | None:
    """Says why ``record`` does not encode with the parsed schema (None: it does)."""
    try:
        validate(record, parsed, raise_errors=True)
        fastavro.schemaless_writer(io.BytesIO(), parsed, record)
    except ValidationError as exc:
        return "; ".join(
            f"field {e.field.partition('.')[2] or e.field!r} is {e.datum!r}, "
            f"not a valid {_type_name(e.schema)}"
            for e in exc.errors
        )
    except (ValueError, TypeError, AttributeError, KeyError, OverflowError) as exc:
        return str(exc) or type(exc).__name__
    return None


class Checker:
    """Completes records with defaults and checks them against the resource schema."""

    def __init__(self, schema: Any) -> None:
        self.parsed = parse_schema(schema).parsed
        self.fields: dict[str, Any] = {f["name"]: f for f in schema["fields"]}

    def complete(self, record: dict[str, Any], where: str) -> dict[str, Any]:
        """Fills in missing fields (default, else null) and checks the record; raises
        :class:`Rejected` on an unknown or missing field or a value the schema refuses."""
        unknown = sorted(set(record) - set(self.fields))
        if unknown:
            raise Rejected(f"{where}: {unknown[0]!r} is not a field of the schema")
        for name, spec in self.fields.items():
            if name in record:
                continue
            if "default" in spec:
                record[name] = spec["default"]
            elif _branch(spec["type"])[1]:
                record[name] = None
            else:
                raise Rejected(f"{where}: required field {name!r} is missing")
        problem = record_problem(self.parsed, record)
        if problem:
            raise Rejected(f"{where}: {problem}")
        return record

    def convert(self, name: str, value: Any, where: str, from_text: bool) -> Any:
        """Converts one read value to the type of field ``name``; raises :class:`Rejected`."""
        if name not in self.fields:
            return value  # complete() refuses it
        avro_type = self.fields[name]["type"]
        try:
            return _convert(value, avro_type, from_text)
        except (ValueError, ArithmeticError) as exc:
            raise Rejected(
                f"{where}: field {name!r}: {value!r} is not a valid {_type_name(avro_type)}"
            ) from exc


def open_regular(path: Path) -> IO[bytes]:
    """Opens a regular file without following a symbolic link."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Rejected("not a regular file")
    return os.fdopen(fd, "rb")


def read_records(path: Path, checker: Checker) -> Iterator[dict[str, Any]]:
    """Yields a file's records, checked; raises :class:`Rejected` at the first problem."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise Rejected(f"unsupported file type {path.suffix!r}; use .csv, .jsonl or .avro")
    try:
        with open_regular(path) as raw:
            if kind == "avro":
                yield from _avro(raw, checker)
            else:
                text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
                yield from (_csv if kind == "csv" else _jsonl)(text, checker)
    except UnicodeDecodeError as exc:
        raise Rejected(f"the file is not UTF-8 text: {exc}") from exc
    except OSError as exc:
        raise Rejected(f"the file cannot be read: {exc.strerror or exc}") from exc


def count_records(path: Path, checker: Checker) -> int:
    """Checks every record of a file; returns how many it holds."""
    return sum(1 for _ in read_records(path, checker))


def _csv(text: IO[str], checker: Checker) -> Iterator[dict[str, Any]]:
    rows = csv.DictReader(text, strict=True)
    try:
        header = list(rows.fieldnames or [])
        if len(set(header)) < len(header):
            raise Rejected("line 1: a column is named twice")
        for name in header:
            if name not in checker.fields:
                raise Rejected(f"line 1: column {name!r} is not a field of the schema")
        for row in rows:
            where = f"line {rows.line_num}"
            if None in row:
                raise Rejected(f"{where}: more values than the {len(header)} columns")
            if any(value is None for value in row.values()):
                raise Rejected(f"{where}: fewer values than the {len(header)} columns")
            record = {name: checker.convert(name, cell, where, True) for name, cell in row.items()}
            yield checker.complete(record, where)
    except csv.Error as exc:
        raise Rejected(f"line {rows.line_num + 1}: malformed CSV: {exc}") from exc


def _jsonl(text: IO[str], checker: Checker) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise Rejected(f"{where}: not JSON: {exc.msg} at column {exc.colno}") from exc
        if not isinstance(value, dict):
            raise Rejected(f"{where}: not a JSON object")
        record = {k: checker.convert(k, v, where, False) for k, v in value.items()}
        yield checker.complete(record, where)


def _avro(raw: IO[bytes], checker: Checker) -> Iterator[dict[str, Any]]:
    number = 0
    try:
        for number, record in enumerate(fastavro.reader(raw), start=1):
            yield checker.complete(dict(record), f"record {number}")  # type: ignore[arg-type]
    except Rejected:
        raise
    except Exception as exc:  # fastavro raises many kinds on corrupt input
        raise Rejected(
            f"after record {number}: truncated or corrupt Avro file ({type(exc).__name__}: {exc})"
        ) from exc


def infer_fields(text: IO[str], kind: str) -> list[dict[str, Any]]:
    """Fields proposed by a CSV header (all text) or a first JSON object's value types."""
    if kind == "csv":
        names: list[tuple[str, str]] = [(n, "string") for n in next(csv.reader(text, strict=True))]
    else:
        first = json.loads(next(line for line in text if line.strip()))
        if not isinstance(first, dict):
            raise ValueError("not a JSON object")
        kinds = {bool: "boolean", int: "long", float: "double", str: "string", type(None): "string"}
        nested = [k for k, v in first.items() if type(v) not in kinds]
        if nested:
            raise AdapterError(f"field {nested[0]!r} is nested; give option 'schema'", "schema")
        names = [(k, kinds[type(v)]) for k, v in first.items()]
    return [{"name": n, "type": ["null", t], "default": None} for n, t in names]
