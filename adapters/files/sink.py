"""The ``files`` sink: one file per delivered batch, written atomically.

Each delivered batch becomes one file, ``<sequence>-<batch id>.avro`` (container file)
or ``.jsonl``, written as ``.<name>.tmp``, fsynced and renamed, so readers never see
half a file (a ``files`` source may watch the folder). The 12-digit sequence, persisted in
``.sequence``, gives the order: the folder is an append log, and consumers apply files in
name order, the latest record per key winning. A batch delivered again is rewritten with
identical bytes under its original name, keeping its place in the order; a consumer that
remembers the last sequence it applied can skip it. The batch id is sanitised (letters,
digits, ``-_.``; a hash is appended when anything was replaced), so it never leaves the
folder. One sink process per folder.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from datetime import time as clock
from decimal import Decimal
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import fastavro

from adapters.contract import AdapterError, Option, Sink, WriteResult
from adapters.files.folder import usable_folder, write_atomically
from adapters.files.formats import parse_schema, record_problem


def _json_value(value: Any) -> Any:
    if isinstance(value, date | datetime | clock):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class FileSink(Sink):
    """Writes each delivered batch as one file, atomically; see the module docstring."""

    name = "files"
    options = (
        Option("folder", str, True, help="the folder that receives one file per batch"),
        Option("format", str, default="avro", help="avro (container files) or jsonl"),
    )

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        if self.config["format"] not in ("avro", "jsonl"):
            raise AdapterError(
                f"format must be avro or jsonl, not {self.config['format']!r}", "format"
            )
        self.folder = Path(self.config["folder"]).absolute()
        self._names: dict[str, str] | None = None  # "<safe id>.<ext>" -> file name
        self._last = 0

    async def check(self) -> None:
        """Checks that the folder exists and is writable."""
        usable_folder(self.folder)

    async def write(
        self,
        schema: dict[str, Any],
        key_fields: Sequence[str],
        records: Sequence[dict[str, Any]],
        batch_id: str,
    ) -> WriteResult:
        """Writes the batch's valid records as one file; refuses the others by index."""
        parsed = parse_schema(schema).parsed
        good, rejected = [], []
        for index, record in enumerate(records):
            problem = record_problem(parsed, record)
            if problem:
                rejected.append((index, f"does not match the schema: {problem}"))
            else:
                good.append(record)

        def fill(out: IO[bytes]) -> None:
            if self.config["format"] == "jsonl":
                for record in good:
                    line = json.dumps(record, default=_json_value, ensure_ascii=False)
                    out.write(f"{line}\n".encode())
            else:
                marker = hashlib.sha256(batch_id.encode()).digest()[:16]
                meta = {"lijiao.batch_id": batch_id}
                fastavro.writer(out, parsed, good, sync_marker=marker, metadata=meta)

        write_atomically(usable_folder(self.folder), self._file_name(batch_id), fill)
        return WriteResult(len(good), rejected)

    def _file_name(self, batch_id: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", batch_id, flags=re.ASCII)[:100]
        if safe != batch_id:
            safe = f"{safe}-{hashlib.sha256(batch_id.encode()).hexdigest()[:12]}"
        key = f"{safe}.{self.config['format']}"
        if self._names is None:
            self._names = {}
            for entry in os.scandir(self.folder):
                number, dash, rest = entry.name.partition("-")
                if dash and len(number) == 12 and number.isdigit():
                    self._names[rest] = entry.name
                    self._last = max(self._last, int(number))
            with contextlib.suppress(FileNotFoundError, ValueError):
                self._last = max(self._last, int((self.folder / ".sequence").read_text()))
        if key not in self._names:
            self._last += 1
            sequence = f"{self._last}\n".encode()
            write_atomically(self.folder, ".sequence", lambda out: out.write(sequence))
            self._names[key] = f"{self._last:012d}-{key}"
        return self._names[key]
