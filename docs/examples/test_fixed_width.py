"""The conformance suite, run against the fixed-width example source.

Run from the repository root: PYTHONPATH=docs/examples python -m pytest docs/examples
"""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fixed_width import FixedWidthSource

from adapters.conformance import SourceCase, SourceConformance

COLUMNS = ["licence_no:18", "holder:40", "region_code:6", "capital:12:int", "issued_on:8:date"]


def line(row: dict[str, Any]) -> bytes:
    """A row as the legacy export writes it: GB18030, each field padded to its width."""
    cells = [row["licence_no"], row["holder"], row["region_code"],
             "" if row["capital"] is None else str(row["capital"]),
             row["issued_on"].strftime("%Y%m%d")]  # fmt: skip
    widths = [int(spec.split(":")[1]) for spec in COLUMNS]
    return b"".join(c.encode("gb18030").ljust(w) for c, w in zip(cells, widths, strict=True))


ROWS = [
    {
        "licence_no": f"91510104MA{i:08d}",
        "holder": f"成都锦江某某商贸有限公司{i}",
        "region_code": ("510104", "510105", "510107")[i % 3],
        "capital": None if i % 4 == 0 else 100_000 + i,
        "issued_on": date(2025, 3, 1 + i // 8),
    }
    for i in range(21)
]


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """Three daily files (8, 8 and 5 rows); the second also holds a blank and a bad line."""
    folder = tmp_path / "licence-export"
    folder.mkdir()
    for day, start in ((1, 0), (2, 8), (3, 16)):
        lines = [line(row) for row in ROWS[start : start + 8]]
        if day == 2:
            lines[3:3] = [b"", b"91510104MA99999999 short line"]
        (folder / f"2025030{day}.txt").write_bytes(b"\r\n".join(lines) + b"\r\n")
    (folder / "20250304.txt.tmp").write_bytes(line(ROWS[0]))  # still being written
    return folder


def source(folder: Path) -> FixedWidthSource:
    return FixedWidthSource({"folder": str(folder), "columns": COLUMNS, "key": ["licence_no"]})


class TestFixedWidthSource(SourceConformance):
    @pytest.fixture
    def case(self, export: Path) -> SourceCase:
        return SourceCase(source(export), "licence-export", ROWS)


def test_a_bad_line_is_rejected_with_its_place_and_the_rest_goes_on(export: Path) -> None:
    async def read_all() -> list[Any]:
        return [batch async for batch in source(export).read({}, None, 100)]

    batches = asyncio.run(read_all())
    assert [r for b in batches for r in b.records] == ROWS
    rejected = [r for b in batches for r in b.rejected]
    assert rejected == [("20250302.txt line 5", "29 bytes, expected 84")]
