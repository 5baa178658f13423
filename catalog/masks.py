"""Masks of sensitive personal fields (PIPL §28, GB/T 39786).

A mask is a function ``str -> str``. Sensitive fields are masked unless the grant explicitly
allows clear text; a :class:`MaskPolicy` says which mask each :class:`Sensitivity` gets.
Every mask is deterministic and never returns the clear value of a value long enough to mask.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from catalog.models import Sensitivity

Mask = Callable[[str], str]

FULL_MASK = "****"
COMPOUND_SURNAMES = frozenset(
    {"欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容"}
    | {"长孙", "宇文", "司徒", "夏侯", "轩辕", "令狐", "钟离", "端木"}
)
_PHONE_SEPARATORS = frozenset(" -().")
_PLUS_86 = re.compile(r"\s*\+86")
_BARE_86 = re.compile(r"\s*86")
_BELOW_DISTRICT = re.compile("[路街巷弄镇乡村号栋楼室]")
_KEEP_FIRST_LAST = re.compile(r"keep_first_last:([0-9]+):([0-9]+)")


def keep_first_last(first: int, last: int, fill: str = "*") -> Mask:
    """Builds a mask keeping the first and last characters of a value.

    Args:
        first: How many leading characters to keep.
        last: How many trailing characters to keep.
        fill: The single character that replaces each masked character.

    Returns:
        A mask keeping the length of its value. A value of at most ``first + last``
        characters (too short to hide anything between the ends) is masked entirely.

    Raises:
        ValueError: If ``first`` or ``last`` is negative or ``fill`` is not one character.
    """
    if first < 0 or last < 0:
        raise ValueError(f"keep_first_last needs non-negative counts, got {first}, {last}")
    if len(fill) != 1:
        raise ValueError(f"the fill must be one character, got {fill!r}")

    def mask(value: str) -> str:
        if len(value) <= first + last:
            return fill * len(value)
        return value[:first] + fill * (len(value) - first - last) + value[len(value) - last :]

    return mask


def full(value: str) -> str:
    """Masks everything: returns ``****`` whatever the value, so its length does not leak."""
    return FULL_MASK


def clear(value: str) -> str:
    """Returns the value unchanged (no mask)."""
    return value


def phone(value: str) -> str:
    """Masks a phone number, keeping the 3 digits after any country code and the last 4.

    Separators (space, ``-``, ``(``, ``)``, ``.``) are kept; every other character counts
    as a digit. A leading ``+86`` is kept, and so is a leading ``86`` when the number has
    13 digits (86 and an 11-digit mobile). With 7 digits or fewer every digit is masked:
    ``13812345678`` -> ``138****5678``, ``+86 138-1234-5678`` -> ``+86 138-****-5678``.
    """
    prefix = _PLUS_86.match(value)
    if prefix is None and sum(ch not in _PHONE_SEPARATORS for ch in value) == 13:
        prefix = _BARE_86.match(value)
    head = prefix.group() if prefix else ""
    rest = value[len(head) :]
    digits = [i for i, ch in enumerate(rest) if ch not in _PHONE_SEPARATORS]
    kept = set(digits[:3] + digits[-4:]) if len(digits) > 7 else set()
    return head + "".join(
        ch if ch in _PHONE_SEPARATORS or i in kept else "*" for i, ch in enumerate(rest)
    )


def name(value: str) -> str:
    """Masks a personal name, keeping the surname: ``张三`` -> ``张*``, ``欧阳娜娜`` -> ``欧阳**``.

    The first non-space character is kept (for a Latin-script name, the first letter of the
    first word: ``Zhang San`` -> ``Z********``, spaces masked too), or the first two when the
    name starts with a compound surname and is longer than it. Every other character becomes
    one ``*``; a name no longer than the kept part is masked entirely.
    """
    body = value.lstrip()
    keep = 2 if body[:2] in COMPOUND_SURNAMES and len(body) > 2 else 1
    if len(body) <= keep:
        return "*" * len(value)
    return value[: len(value) - len(body) + keep] + "*" * (len(body) - keep)


def address(value: str) -> str:
    """Masks an address after its district: ``四川省成都市锦江区人民南路1号`` -> ``…锦江区****``.

    Only the text before the first street-level marker (路 街 巷 弄 镇 乡 村 号 栋 楼 室) is
    searched. The kept prefix ends at its first 区, 县 or 旗; failing that at its first 市
    after position 2 (so ``北京市`` alone does not count); failing that it is its first
    6 characters. The rest becomes a fixed ``****`` so the length does not leak.
    """
    street = _BELOW_DISTRICT.search(value)
    head = value[: street.start()] if street else value
    end = next((i + 1 for i, ch in enumerate(head) if ch in "区县旗"), None)
    if end is None:
        end = next((i + 1 for i, ch in enumerate(head) if ch == "市" and i > 2), None)
    return value[: end if end is not None else min(6, len(head))] + FULL_MASK


ID_NUMBER: Mask = keep_first_last(6, 4)
PHONE: Mask = phone
NAME: Mask = name
ADDRESS: Mask = address
PERSONAL: Mask = full
NONE: Mask = clear
DEFAULT_MASKS: Mapping[Sensitivity, Mask] = {
    Sensitivity.NONE: NONE,
    Sensitivity.ID_NUMBER: ID_NUMBER,
    Sensitivity.NAME: NAME,
    Sensitivity.PHONE: PHONE,
    Sensitivity.ADDRESS: ADDRESS,
    Sensitivity.PERSONAL: PERSONAL,
}


def parse_spec(tag: Sensitivity, spec: str) -> Mask:
    """Parses a mask spec: ``default``, ``full``, ``none`` or ``keep_first_last:F:L``.

    Raises:
        ValueError: Naming the tag and the spec, if the spec is not one of these, or if a
            ``NONE`` field is given any mask (``NONE`` fields are never masked).
    """
    if spec == "default":
        return DEFAULT_MASKS[tag]
    if tag is Sensitivity.NONE and spec != "none":
        raise ValueError(f"mask spec {spec!r} for {tag}: NONE fields are never masked")
    if spec == "none":
        return clear
    if spec == "full":
        return full
    matched = _KEEP_FIRST_LAST.fullmatch(spec)
    if matched is None:
        raise ValueError(
            f"mask spec {spec!r} for {tag} is not 'default', 'full', 'none' "
            "or 'keep_first_last:F:L' with non-negative integers F and L"
        )
    return keep_first_last(int(matched.group(1)), int(matched.group(2)))


@dataclass(frozen=True)
class MaskPolicy:
    """Which mask each sensitivity tag gets, by mask spec (see :func:`parse_spec`).

    Tags missing from ``masks`` get ``default``. Specs are checked when the policy is made.
    """

    masks: dict[Sensitivity, str] = field(default_factory=dict)
    _resolved: dict[Sensitivity, Mask] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = [tag for tag in self.masks if tag not in set(Sensitivity)]
        if unknown:
            raise ValueError(f"unknown sensitivity tags {unknown!r} in a mask policy")
        specs = {tag: self.masks.get(tag, "default") for tag in Sensitivity}
        object.__setattr__(self, "masks", specs)
        object.__setattr__(self, "_resolved", {t: parse_spec(t, s) for t, s in specs.items()})

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, str]) -> MaskPolicy:
        """Builds a policy from tag names to specs, e.g. ``{"PHONE": "keep_first_last:3:4"}``.

        Raises:
            ValueError: If a tag is unknown or a spec is bad, naming both.
        """
        masks: dict[Sensitivity, str] = {}
        for tag, spec in mapping.items():
            if tag not in Sensitivity.__members__:
                raise ValueError(f"unknown sensitivity tag {tag!r} (mask spec {spec!r})")
            masks[Sensitivity[tag]] = spec
        return cls(masks)

    def mask(self, sensitivity: Sensitivity, value: object) -> object:
        """Masks one field value.

        Returns:
            ``None`` for ``None``; the value unchanged for a ``NONE`` tag; else the masked
            string.

        Raises:
            TypeError: If a sensitive field holds something other than a string, since a
                mask must never pass clear data silently.
        """
        if value is None or sensitivity == Sensitivity.NONE:
            return value
        if not isinstance(value, str):
            raise TypeError(f"a {sensitivity} field holds a {type(value).__name__}, not a str")
        return self._resolved[Sensitivity(sensitivity)](value)


DEFAULT_POLICY = MaskPolicy()


def mask_record(
    record: dict[str, Any],
    tags: Mapping[str, Sensitivity],
    clear: Collection[str],
    policy: MaskPolicy = DEFAULT_POLICY,
) -> dict[str, Any]:
    """Returns a copy of ``record`` with every tagged top-level field not in ``clear`` masked.

    A masked field that holds a record, an array or a map has every string inside it
    masked; a union branch read with its name (``(name, value)``) keeps its name. Fields
    tagged ``NONE``, untagged fields and fields in ``clear`` are copied unchanged; the
    input is never mutated.

    Raises:
        TypeError: If a masked field holds, at any depth, something other than a string
            or ``None`` (see :meth:`MaskPolicy.mask`).
    """
    masked = dict(record)
    for field_name, tag in tags.items():
        if tag != Sensitivity.NONE and field_name in masked and field_name not in clear:
            masked[field_name] = _mask_nested(policy, tag, masked[field_name])
    return masked


def _mask_nested(policy: MaskPolicy, tag: Sensitivity, value: Any) -> Any:
    """Masks a value and every string inside it (records, arrays, maps of strings)."""
    if isinstance(value, dict):
        return {key: _mask_nested(policy, tag, item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask_nested(policy, tag, item) for item in value]
    if isinstance(value, tuple):  # (record name, record) of a union branch
        return (value[0], _mask_nested(policy, tag, value[1]))
    return policy.mask(tag, value)
