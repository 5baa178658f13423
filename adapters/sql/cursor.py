"""The ``sql`` source's incremental position, kept as JSON between reads.

A position is the values of the order columns (the cursor column, then the key
columns) of the last row read, as the database holds them. Kept in the runner's state
file, it is the JSON list ``[cursor value, *key values]``: values JSON lacks (datetimes,
dates, times, decimals, bytes, UUIDs) are tagged, e.g. ``{"datetime": "2025-03-01T09:00"}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import NullType

from adapters.contract import AdapterError

_CURSOR_TAGS: dict[str, Callable[[str], Any]] = {
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "time": time.fromisoformat,
    "decimal": Decimal,
    "bytes": bytes.fromhex,
    "uuid": uuid.UUID,
}


def _encode_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date | time):
        return {"date" if isinstance(value, date) else "time": value.isoformat()}
    if isinstance(value, Decimal | uuid.UUID):
        return {"decimal" if isinstance(value, Decimal) else "uuid": str(value)}
    if isinstance(value, bytes | memoryview):
        return {"bytes": bytes(value).hex()}
    raise AdapterError(f"a {type(value).__name__} value cannot be kept in a cursor", "cursor")


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((tag, text),) = value.items()
        if tag in _CURSOR_TAGS:
            return _CURSOR_TAGS[tag](text)
    return value


def cursor_of(position: Sequence[Any]) -> list[Any]:
    """The cursor (JSON-able) of a position.

    Raises:
        AdapterError: A value has a type no cursor can keep; ``key`` is ``cursor``.
    """
    return [_encode_value(value) for value in position]


def position_of(cursor: Any, order: Sequence[sa.Column[Any]], table: str) -> list[Any] | None:
    """The position a cursor stands for (None: read from the start).

    Raises:
        AdapterError: The cursor is not a list of one value per order column.
    """
    if cursor is None:
        return None
    if not isinstance(cursor, list) or len(cursor) != len(order):
        raise AdapterError(
            f"cursor {cursor!r} does not fit table {table!r}: expected "
            f"the values of {[c.name for c in order]}",
            "cursor",
        )
    return [_decode_value(value) for value in cursor]


def after(columns: Sequence[Any], values: Sequence[Any]) -> Any:
    """``(c1, c2, ...) > (v1, v2, ...)``, written portably: ``c1 > v1 OR (c1 = v1 AND ...)``."""
    value = sa.bindparam(None, values[0], type_=NullType())
    if len(columns) == 1:
        return columns[0] > value
    return sa.or_(columns[0] > value, sa.and_(columns[0] == value, after(columns[1:], values[1:])))
