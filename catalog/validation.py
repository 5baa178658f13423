"""Checks of catalog text fields: codes, texts, field names, region codes.

One rule holds for every text the catalog stores, and so writes into the append-only
ledger: it is bounded, and it holds no character that changes how the text is shown
rather than what it says. Those are control characters (C0, DEL, C1: terminal escapes,
line breaks, tabs), lone surrogates, the line and paragraph separators U+2028 and
U+2029, and the bidirectional controls (U+061C, U+200E, U+200F, U+202A-U+202E,
U+2066-U+2069), which can make a text read differently from what it holds.
"""

from __future__ import annotations

import re

from envelope.errors import InvalidArgument, Reason

NAME_LIMIT = 200
REASON_LIMIT = 2000
KEY_VALUE_LIMIT = 256
MAX_KEY_FIELDS = 16
FIELD_NAME_LIMIT = 128

_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_REGION = re.compile(r"[0-9]{6}(?:[0-9]{3}){0,2}")
_DIGITS = re.compile(r"[0-9]+")
_AVRO_NAME = re.compile(rf"[A-Za-z_][A-Za-z0-9_]{{0,{FIELD_NAME_LIMIT - 1}}}")
_FORBIDDEN = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]"
)
_SHOWN = 32


def _shown(value: str) -> str:
    """The caller's value for a refusal message, cut so a message stays short."""
    return repr(value if len(value) <= _SHOWN else value[:_SHOWN] + "...")


def forbidden_character(value: str) -> str | None:
    """Returns the first character of ``value`` no stored text may hold, or None."""
    found = _FORBIDDEN.search(value)
    return found.group() if found else None


def code(field: str, value: str) -> str:
    """Checks an identifier code: letters, digits, '.', '-', '_', 1-64 characters."""
    if not _CODE.fullmatch(value):
        raise InvalidArgument(
            Reason.INVALID_FIELD,
            f"{field} {_shown(value)} must be 1-64 letters, digits, '.', '-' or '_', "
            "starting with a letter or digit",
            {"field": field},
        )
    return value


def text(
    field: str,
    value: str,
    *,
    required: bool = True,
    limit: int = NAME_LIMIT,
    strip: bool = True,
) -> str:
    """Checks a text the catalog stores: bounded, one line, no control characters.

    Args:
        field: The request field, named in a refusal.
        value: The caller's text.
        required: Refuse an empty (or all-blank) text.
        limit: The most characters allowed.
        strip: Drop leading and trailing whitespace (keep it for values that identify
            something, such as a record's key).

    Returns:
        The text, stripped when ``strip``.

    Raises:
        InvalidArgument: INVALID_FIELD naming ``field``, if the text is missing, longer
            than ``limit``, or holds a control character (C0, DEL, C1, so also line
            breaks, tabs and terminal escapes), a bidirectional control, a line or
            paragraph separator or a lone surrogate.
    """
    if strip:
        value = value.strip()
    if required and not value.strip():
        raise InvalidArgument(Reason.INVALID_FIELD, f"{field} is required", {"field": field})
    if len(value) > limit:
        raise InvalidArgument(
            Reason.INVALID_FIELD,
            f"{field} must be at most {limit} characters, got {len(value)}",
            {"field": field},
        )
    found = _FORBIDDEN.search(value)
    if found is not None:
        raise InvalidArgument(
            Reason.INVALID_FIELD,
            f"{field} (at most {limit} characters) must not hold control characters "
            "(line breaks, tabs, escapes), bidirectional controls or line separators; "
            f"character {found.start() + 1} is U+{ord(found.group()):04X}",
            {"field": field},
        )
    return value


def field_name(value: str) -> bool:
    """Whether ``value`` is an Avro name (``[A-Za-z_][A-Za-z0-9_]*``) of at most
    ``FIELD_NAME_LIMIT`` characters."""
    return _AVRO_NAME.fullmatch(value) is not None


def region_code(field: str, value: str) -> str:
    """Checks an administrative region code (行政区划代码): 6, 9 or 12 ASCII digits.

    Other scripts' digits (fullwidth ``５``, Arabic-Indic ``٥``, Devanagari ``५``) are
    refused: a filter of them would match no real row, or rows a publisher chose to
    label with lookalikes.
    """
    if not _REGION.fullmatch(value):
        raise InvalidArgument(
            Reason.INVALID_FIELD,
            f"{field} {_shown(value)} must be a 6-digit region code (e.g. 510104) of "
            "ASCII digits, optionally followed by 3-digit town and village parts",
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
    """Whether ``candidate`` lies in ``region`` or one of its sub-regions.

    Spaces around the candidate are ignored (a fixed-width ``CHAR(12)`` column pads
    with them); a candidate that is not otherwise all ASCII digits lies in no region.
    """
    candidate = candidate.strip(" ")
    return _DIGITS.fullmatch(candidate) is not None and candidate.startswith(region_prefix(region))
