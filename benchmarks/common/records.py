"""The benchmark's records: residents as a public security bureau shares them.

Every process builds the same records from their numbers, so nothing but the counts
crosses a process boundary; batches are numbered and their ids carry the run's tag.
"""

from __future__ import annotations

import datetime
import time
from decimal import Decimal
from typing import Any

RESIDENT_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Resident",
    "namespace": "gov.bench.psb",
    "doc": "A registered resident (户籍人口), as a public security bureau shares it.",
    "fields": [
        {"name": "id_number", "type": "string", "doc": "身份证号, 18 characters"},
        {"name": "name", "type": "string"},
        {"name": "phone", "type": ["null", "string"], "default": None},
        {
            "name": "address",
            "type": {
                "type": "record",
                "name": "Address",
                "fields": [
                    {"name": "province", "type": "string"},
                    {"name": "city", "type": "string"},
                    {"name": "district", "type": "string"},
                    {"name": "street", "type": "string"},
                    {"name": "postcode", "type": ["null", "string"], "default": None},
                ],
            },
        },
        {"name": "region_code", "type": "string"},
        {"name": "registered_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {
            "name": "monthly_subsidy",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
        },
        {
            "name": "residency",
            "type": {
                "type": "enum",
                "name": "Residency",
                "symbols": ["PERMANENT", "TEMPORARY", "MOVED_OUT", "DECEASED"],
            },
        },
        {"name": "tags", "type": {"type": "array", "items": "string"}},
    ],
}

_DISTRICTS = (
    ("510104", "锦江区", "春熙路街道"),
    ("510105", "青羊区", "草市街街道"),
    ("510106", "金牛区", "抚琴街道"),
    ("510107", "武侯区", "玉林街道"),
    ("510108", "成华区", "猛追湾街道"),
    ("510112", "龙泉驿区", "龙泉街道"),
)
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
_TAGS = ("低保", "退役军人", "独生子女", "残疾人", "高龄")
_RESIDENCY = ("PERMANENT", "PERMANENT", "PERMANENT", "TEMPORARY", "MOVED_OUT", "DECEASED")
_EPOCH = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
_BIRTH = datetime.date(1950, 1, 1)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_number(i: int) -> str:
    """The 18-character citizen ID of resident ``i`` (GB 11643, with its check digit)."""
    region = _DISTRICTS[i % len(_DISTRICTS)][0]
    birth = (_BIRTH + datetime.timedelta(days=i // 997 % 25_000)).strftime("%Y%m%d")
    body = f"{region}{birth}{i % 997:03d}"
    total = sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS, strict=True))
    return body + _ID_CHECK[total % 11]


def make_record(i: int) -> dict[str, Any]:
    """Resident number ``i``: deterministic, so every process builds the same records."""
    region, district, street = _DISTRICTS[i % len(_DISTRICTS)]
    given = _GIVEN[i % len(_GIVEN)] + ("" if i % 3 else _GIVEN[(i // 7) % len(_GIVEN)])
    return {
        "id_number": id_number(i),
        "name": _SURNAMES[(i // 5) % len(_SURNAMES)] + given,
        "phone": None if i % 4 == 0 else f"13{i % 10}{(i * 7919) % 100_000_000:08d}",
        "address": {
            "province": "四川省",
            "city": "成都市",
            "district": district,
            "street": f"{street}{i % 300 + 1}号{i % 20 + 1}栋",
            "postcode": None if i % 5 == 0 else "6100" + f"{i % 100:02d}",
        },
        "region_code": region,
        "registered_at": _EPOCH + datetime.timedelta(seconds=i * 37),
        "monthly_subsidy": Decimal((i * 7793) % 500_000).scaleb(-2),
        "residency": _RESIDENCY[i % len(_RESIDENCY)],
        "tags": list(_TAGS[: i % 4]),
    }


def make_records(count: int) -> list[dict[str, Any]]:
    """Records 0..count-1."""
    return [make_record(i) for i in range(count)]


def batch_bounds(records: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, end) of every batch; the last may be short."""
    return [(s, min(s + batch_size, records)) for s in range(0, records, batch_size)]


def batch_id(tag: str, index: int) -> str:
    """Batch id of batch ``index`` of a run."""
    return f"{tag}-{index:08d}"


def batch_index(tag: str, value: str) -> int | None:
    """Inverse of :func:`batch_id`; None for an id of another run."""
    prefix, _, number = value.rpartition("-")
    if prefix != tag or not number.isdigit():
        return None
    return int(number)


def now_ns() -> int:
    """The benchmark's clock: CLOCK_MONOTONIC, comparable across processes on Linux."""
    return time.monotonic_ns()
