"""Top-level field descriptions: names, sensitivity tags, and whether a tag can hold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from catalog import validation
from catalog.models import Sensitivity
from envelope.errors import InvalidArgument, Reason


@dataclass(frozen=True)
class FieldSpec:
    """Description and sensitivity tag of one top-level field."""

    name: str
    description: str = ""
    sensitivity: Sensitivity = Sensitivity.NONE


def maskable(avro_type: Any) -> bool:
    """Whether every value of a type is built from strings and nulls only (maps are not:
    their keys would go out unmasked)."""
    if isinstance(avro_type, list):
        return all(maskable(branch) for branch in avro_type)
    if isinstance(avro_type, dict):
        kind = avro_type.get("type")
        if kind == "record":
            return all(maskable(f["type"]) for f in avro_type.get("fields", []))
        if kind == "array":
            return maskable(avro_type.get("items"))
        return maskable(kind)
    return avro_type in ("string", "null")


def check_field_names(names: Sequence[str], request_field: str) -> None:
    """Refuses a schema whose top-level field names the catalog would store are not Avro
    names: they enter the catalog's rows and the ledger as text."""
    for name in names:
        if not validation.field_name(name):
            raise InvalidArgument(
                Reason.INVALID_SCHEMA,
                f"top-level field {name[:32]!r} is not an Avro name: 1-"
                f"{validation.FIELD_NAME_LIMIT} ASCII letters, digits or '_', not starting "
                "with a digit",
                {"field": request_field},
            )
