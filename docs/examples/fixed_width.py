"""A source over a legacy system's fixed-width text export (定长文本导出).

The old system writes one file a day into a folder, e.g. ``20250301.txt``: one record
per line, each field padded with spaces to a fixed width *in bytes* (GB18030: a Chinese
character takes 2 bytes). The export job writes ``*.tmp`` and renames it to ``*.txt``
when complete; the file never changes after. Files are read in name order; the cursor
is ``[file name, lines read]``. A line that does not parse goes to ``ReadBatch.rejected``
(the runner keeps it as a dead letter); the other lines go on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from adapters.contract import AdapterError, Option, ReadBatch, Source, Stream

DATE = {"type": "int", "logicalType": "date"}
KINDS: dict[str, tuple[Any, Any]] = {  # type in the layout: (Avro type, text to value)
    "str": ("string", str), "int": ("long", int),
    "date": (DATE, lambda text: datetime.strptime(text, "%Y%m%d").date()),
}  # fmt: skip


class FixedWidthSource(Source):
    """Reads the ``*.txt`` fixed-width files of a folder, in name order."""

    name = "fixed_width"
    options = (
        Option("folder", str, required=True, help="folder the export job writes *.txt into"),
        Option("columns", list, required=True,
               help='the layout in order, each "name:width" or "name:width:type" (str, int, date)'),
        Option("key", list, required=True, help="columns that identify a record"),
        Option("encoding", str, default="gb18030", help="encoding of the files"),
        Option("record_name", str, default="Record", help="Avro record name"),
    )  # fmt: skip

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.folder = Path(self.config["folder"])
        self.keys: list[str] = self.config["key"]
        self.layout: list[tuple[str, int, str]] = []
        for spec in self.config["columns"]:
            name, width, kind = [*str(spec).split(":"), "str"][:3]
            if not width.isdigit() or kind not in KINDS:
                raise AdapterError(f"{spec!r}: expected name:width[:str|int|date]", "columns")
            self.layout.append((name, int(width), kind))
        self.width = sum(width for _, width, _ in self.layout)
        if not set(self.keys) <= {name for name, _, _ in self.layout}:
            raise AdapterError(f"every key {self.keys} must be one of the columns", "key")

    async def check(self) -> None:
        if not self.folder.is_dir():
            raise AdapterError(f"folder {str(self.folder)!r} does not exist", "folder")

    async def discover(self) -> list[Stream]:
        fields = [{"name": name, "type": KINDS[kind][0]} if name in self.keys
                  else {"name": name, "type": ["null", KINDS[kind][0]], "default": None}
                  for name, _, kind in self.layout]  # fmt: skip
        schema = {"type": "record", "name": self.config["record_name"], "fields": fields}
        return [Stream(self.folder.name, schema, tuple(self.keys))]

    def parse(self, line: bytes) -> dict[str, Any]:
        """One line as a record; raises ValueError saying what is wrong with it."""
        if len(line) != self.width:
            raise ValueError(f"{len(line)} bytes, expected {self.width}")
        record: dict[str, Any] = {}
        at = 0
        for name, width, kind in self.layout:
            text = line[at : at + width].decode(self.config["encoding"]).strip()
            at += width
            if not text and name in self.keys:
                raise ValueError(f"key {name!r} is blank")
            record[name] = KINDS[kind][1](text) if text else None
        return record

    async def read(
        self, schema: dict[str, Any], cursor: Any, batch_size: int
    ) -> AsyncIterator[ReadBatch]:
        last_file, lines_read = cursor or ("", 0)
        for path in sorted(self.folder.glob("*.txt")):
            if path.name < last_file:
                continue
            lines = (await asyncio.to_thread(path.read_bytes)).split(b"\n")
            start = lines_read if path.name == last_file else 0
            for begin in range(start, len(lines), batch_size):
                records, rejected = [], []
                for number, line in enumerate(lines[begin : begin + batch_size], begin + 1):
                    try:
                        if line.strip():
                            records.append(self.parse(line.rstrip(b"\r")))
                    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
                        rejected.append((f"{path.name} line {number}", str(exc)))
                end = min(begin + batch_size, len(lines))
                yield ReadBatch(records, [path.name, end], rejected)
