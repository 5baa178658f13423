"""Checks of catalog text fields: codes, names, region codes."""

from __future__ import annotations

import re

from catalog.errors import InvalidArgument, Reason

_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_REGION = re.compile(r"\d{6}(\d{3})?(\d{3})?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def code(field: str, value: str) -> str:
    """Checks an identifier code: letters, digits, '.', '-', '_', 1-64 characters."""
    if not _CODE.fullmatch(value):
        raise InvalidArgument(
            Reason.INVALID_FIELD,
            f"{field} {value!r} must be 1-64 letters, digits, '.', '-' or '_', "
            "starting with a letter or digit",
            {"field": field},
        )
    return value


def text(field: str, value: str, *, required: bool = True, limit: int = 200) -> str:
    """Checks a display text: no control characters, at most ``limit`` characters."""
    value = value.strip()
    if required and not value:
        raise InvalidArgument(Reason.INVALID_FIELD, f"{field} is required", {"field": field})
    if len(value) > limit or _CONTROL.search(value):
        raise InvalidArgument(
            Reason.INVALID_FIELD,
            f"{field} must be at most {limit} characters without control characters",
            {"field": field},
        )
    return value


def region_code(field: str, value: str) -> str:
    """Checks an administrative region code (行政区划代码): 6, 9 or 12 digits."""
    if not _REGION.fullmatch(value):
        raise InvalidArgument(
            Reason.INVALID_FIELD,
            f"{field} {value!r} must be a 6-digit region code (e.g. 510104), "
            "optionally followed by 3-digit town and village parts",
            {"field": field},
        )
    return value


def region_prefix(region: str) -> str:
    """Returns the prefix shared by a region code and all its sub-regions.

    Region codes are hierarchical: 510000 province, 510100 city, 510104 district,
    510104001 town, 510104001002 village. A part of zeros stands for "the whole level
    above": 510104000 is the district 510104, 510100 the city 5101.
    """
    code = region
    if len(code) == 12 and code.endswith("000"):
        code = code[:9]
    if len(code) == 9 and code.endswith("000"):
        code = code[:6]
    if len(code) == 6 and code.endswith("00"):
        code = code[:4]
        if code.endswith("00"):
            code = code[:2]
    return code


def region_contains(region: str, candidate: str) -> bool:
    """Whether ``candidate`` lies in ``region`` or one of its sub-regions."""
    return candidate.startswith(region_prefix(region))
