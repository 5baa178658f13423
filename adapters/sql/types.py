"""Column types and Avro types of the ``sql`` adapter, and their values both ways.

The source maps a column to an Avro type (:func:`avro_type`, :func:`record_schema`) and
converts what the database returns with :func:`to_avro`; the sink maps an Avro type to
the column it creates (:func:`sql_type`) and converts a decoded record's values with
:func:`to_column`.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from adapters.contract import AdapterError

_AVRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
Converter = Callable[[Any], Any]


def avro_name(name: str) -> str:
    """Turns a table name into a valid Avro record name."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return cleaned if _AVRO_NAME.match(cleaned) else f"_{cleaned}"


def avro_type(column: sa.Column[Any]) -> Any:
    """The Avro type of a column's values, without the null branch.

    Raises:
        AdapterError: The column's SQL type has no Avro mapping; ``key`` is ``table``.
    """
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return "boolean"
    if isinstance(kind, sa.SmallInteger):
        return "int"
    if isinstance(kind, sa.Integer):
        return "long"
    if isinstance(kind, sa.Float):
        return "double"
    if isinstance(kind, sa.Numeric) and kind.precision is not None:
        scale = kind.scale or 0
        return {"type": "bytes", "logicalType": "decimal", "precision": kind.precision,
                "scale": scale}  # fmt: skip
    if isinstance(kind, sa.String | sa.JSON):
        return "string"
    if isinstance(kind, sa.DateTime):
        return {"type": "long", "logicalType": "timestamp-micros"}
    if isinstance(kind, sa.Date):
        return {"type": "int", "logicalType": "date"}
    if isinstance(kind, sa.Time):
        return {"type": "long", "logicalType": "time-micros"}
    if isinstance(kind, sa.LargeBinary):
        return "bytes"
    hint = " (declare NUMERIC(precision, scale))" if isinstance(kind, sa.Numeric) else ""
    raise AdapterError(
        f"column {column.table.name}.{column.name} has SQL type {kind} that the sql adapter "
        f"cannot map to Avro{hint}; read a view that casts it",
        "table",
    )


def record_schema(table: sa.Table, namespace: str) -> dict[str, Any]:
    """Proposes an Avro record schema for a table: nullable columns default to null.

    Raises:
        AdapterError: A column's name is not a valid Avro name, or its type has no mapping.
    """
    fields: list[dict[str, Any]] = []
    for column in table.columns:
        if not _AVRO_NAME.match(column.name):
            raise AdapterError(
                f"column {table.name}.{column.name} is not a valid Avro field name "
                "(letters, digits, _); read a view that renames it",
                "table",
            )
        kind = avro_type(column)
        if column.nullable:
            fields.append({"name": column.name, "type": ["null", kind], "default": None})
        else:
            fields.append({"name": column.name, "type": kind})
    return {"type": "record", "name": avro_name(table.name), "namespace": namespace,
            "fields": fields}  # fmt: skip


def non_null(kind: Any) -> tuple[Any, bool]:
    """Splits ``["null", T]`` into ``(T, True)``; any other type into ``(type, False)``."""
    if isinstance(kind, list):
        branches = [k for k in kind if k != "null"]
        return (branches[0] if len(branches) == 1 else branches), len(branches) < len(kind)
    return kind, False


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json_text(value: Any) -> str:
    def fallback(item: Any) -> Any:
        if isinstance(item, datetime | date | time):
            return item.isoformat()
        if isinstance(item, bytes):
            return base64.b64encode(item).decode("ascii")
        if isinstance(item, Decimal | uuid.UUID):
            return str(item)
        raise TypeError(f"{type(item).__name__} is not JSON serialisable")

    return json.dumps(value, ensure_ascii=False, default=fallback)


def _identity(value: Any) -> Any:
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _to_date(value: Any) -> Any:
    return value.date() if isinstance(value, datetime) else value


def _decimal_with_scale(scale: int) -> Converter:
    step = Decimal(1).scaleb(-scale)
    return lambda value: Decimal(str(value)).quantize(step)


def _nullable(convert: Converter) -> Converter:
    return lambda value: None if value is None else convert(value)


def to_avro(kind: Any, column: sa.Column[Any]) -> Converter:
    """How a value read from ``column`` becomes what Avro type ``kind`` expects."""
    kind, _ = non_null(kind)
    logical = kind.get("logicalType", "") if isinstance(kind, dict) else ""
    if isinstance(column.type, sa.JSON):
        return _nullable(_json_text)
    if logical == "decimal":
        return _nullable(_decimal_with_scale(int(kind.get("scale", 0))))
    if logical.startswith("timestamp-"):
        return _nullable(_utc)
    if logical == "date":
        return _nullable(_to_date)
    simple: dict[Any, Converter] = {
        "int": int, "long": int, "double": float, "float": float, "boolean": bool,
        "bytes": bytes, "string": _text,
    }  # fmt: skip
    return _nullable(simple.get(kind, _identity) if isinstance(kind, str) else _identity)


def sql_type(kind: Any) -> sa.types.TypeEngine[Any]:
    """The column type the sink creates for an Avro type (without null)."""
    logical = kind.get("logicalType") if isinstance(kind, dict) else None
    if logical == "decimal":
        return sa.Numeric(int(kind["precision"]), int(kind.get("scale", 0)))
    if logical in ("timestamp-millis", "timestamp-micros"):
        return sa.DateTime(timezone=True)
    if logical in ("local-timestamp-millis", "local-timestamp-micros"):
        return sa.DateTime()
    if logical == "date":
        return sa.Date()
    if logical in ("time-millis", "time-micros"):
        return sa.Time()
    base = kind.get("type") if isinstance(kind, dict) else kind
    simple: dict[Any, sa.types.TypeEngine[Any]] = {
        "boolean": sa.Boolean(), "int": sa.Integer(), "long": sa.BigInteger(),
        "float": sa.Float(), "double": sa.Double(), "bytes": sa.LargeBinary(),
        "fixed": sa.LargeBinary(),
    }  # fmt: skip
    return simple.get(base, sa.Text())  # strings, enums; records, arrays, maps as JSON


def _from_json_text(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return _json_text(value) if isinstance(value, dict | list) else str(value)


def _to_utc(aware: bool) -> Converter:
    def convert(value: Any) -> Any:
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(UTC)
            return value if aware else value.replace(tzinfo=None)
        return value

    return convert


def to_column(column: sa.Column[Any]) -> Converter:
    """How a decoded Avro value becomes what ``column`` stores.

    Nested records, arrays and maps go into a text column as JSON text; timestamps go in
    as UTC (naive for a column without time zone).
    """
    kind = column.type
    if isinstance(kind, sa.JSON):
        return _nullable(_from_json_text)
    if isinstance(kind, sa.DateTime):
        return _nullable(_to_utc(bool(kind.timezone)))
    if isinstance(kind, sa.String):
        return _nullable(_to_text)
    return _identity
