"""The ``files`` source: a drop folder for CSV, JSON Lines and Avro files.

Systems drop ``*.csv``, ``*.jsonl`` (``*.ndjson``) and ``*.avro`` (object container)
files into ``folder``. A file is read only once its mtime is ``settle_seconds``
old, and never while its name starts with ``.`` or ends with ``.part``, ``.tmp`` or ``~``
(writers write ``x.csv.part`` and rename it). Every record of a file is checked against
the resource schema before any is published: a malformed, half-written or non-conforming
file, a symbolic link (never followed) or a file of another type is moved to
``rejected/<name>`` beside ``rejected/<name>.reason.txt`` and reported in
``ReadBatch.rejected``. A good file moves to ``done/`` when the batch holding its last
records is acknowledged (``on_commit``). A name taken in ``done/`` or ``rejected/`` gets a
numeric suffix (``x.1.csv``). CSV cells are text converted to the schema's types (empty
means null for nullable fields; booleans ``true/false/1/0/yes/no``; bytes in base64;
decimals, dates, times and timestamps as ISO text; naive timestamps are UTC); in JSON
Lines, text is converted likewise for logical types and bytes. Columns or keys that are not
fields of the schema are refused rather than silently dropped.

The cursor is ``{"file", "stamp", "offset", "done"}``: the file a batch ended inside and
how many of its records were read (``file`` is None at a file boundary), plus the files
finished but maybe not yet moved, each with its stamp (size and mtime), so a resumed read
skips them even when ``committed`` never ran; ``read`` moves them to ``done/``, since the
runner resumes from an acknowledged cursor. A new file reusing a processed name has
another stamp and is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import itertools
import json
import os
import re
import stat
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import fastavro

from adapters.contract import AdapterError, Option, ReadBatch, Source, Stream
from adapters.files.folder import file_stamp, plain_name, usable_folder, write_atomically
from adapters.files.formats import (
    AVRO_NAME,
    FORMATS,
    Checker,
    Rejected,
    count_records,
    infer_fields,
    open_regular,
    parse_schema,
    read_records,
)

DONE, REJECTED = "done", "rejected"
_IN_PROGRESS = (".part", ".tmp", "~")


class FileSource(Source):
    """Reads files dropped into a folder; see the module docstring."""

    name = "files"
    options = (
        Option("folder", str, True, help="the drop folder; done/ and rejected/ go inside"),
        Option("settle_seconds", float, default=2.0, help="age of a file's mtime before reading"),
        Option("schema", str, default="", help="an .avsc file; else inferred from a file"),
    )

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.folder = Path(self.config["folder"]).absolute()
        if self.config["settle_seconds"] < 0:
            raise AdapterError("settle_seconds must not be negative", "settle_seconds")

    async def check(self) -> None:
        """Checks the folder, creates ``done/`` and ``rejected/``, and loads ``schema``."""
        self._prepare()
        if self.config["schema"]:
            self._given_schema()

    async def discover(self) -> list[Stream]:
        """Proposes one stream named after the folder."""
        usable_folder(self.folder)
        schema = self._given_schema() if self.config["schema"] else self._inferred_schema()
        parse_schema(schema)
        return [Stream(self.folder.name, schema)]

    async def read(
        self, schema: dict[str, Any], cursor: Any, batch_size: int
    ) -> AsyncIterator[ReadBatch]:
        """Yields records of settled files in name order (the file ``cursor`` is in first)."""
        if batch_size < 1:
            raise AdapterError("batch_size must be at least 1")
        checker = Checker(schema)
        at = cursor if isinstance(cursor, dict) else {}
        self._prepare()
        await self.committed(at.get("done"))
        current = (at.get("file"), at.get("stamp"))
        records: list[dict[str, Any]] = []
        finished: list[list[str]] = []
        rejected: list[tuple[str, str]] = []
        unmoved: list[list[str]] = []
        for name, info in sorted(self._scan(), key=lambda e: (e[0] != current[0], e[0])):
            path, stamp = self.folder / name, file_stamp(info)
            if stat.S_ISLNK(info.st_mode):
                reason = f"a symbolic link to {os.readlink(path)!r}; links are not followed"
                rejected.append((name, self._reject(path, reason)))
                continue
            skip = int(at.get("offset") or 0) if (name, stamp) == current else 0
            try:
                total = await asyncio.to_thread(count_records, path, checker)
            except Rejected as exc:
                rejected.append((name, self._reject(path, str(exc))))
                continue
            if skip >= total:
                finished.append([name, stamp])
                continue
            try:
                rest = itertools.islice(read_records(path, checker), skip, total)
                for position, record in enumerate(rest, start=skip + 1):
                    records.append(record)
                    if position == total:
                        finished.append([name, stamp])
                    if len(records) == batch_size:
                        inside = (name, stamp, position) if position < total else None
                        yield self._batch(records, finished, rejected, unmoved, inside)
                        records, finished, rejected = [], [], []
            except Rejected as exc:
                raise AdapterError(f"file {name!r} changed while it was read: {exc}") from exc
        if records or finished or rejected:
            yield self._batch(records, finished, rejected, unmoved, None)

    async def committed(self, note: Any) -> None:
        """Moves the files a batch finished (``[[name, stamp], ...]``) to ``done/``."""
        for name, stamp in note or ():
            path = self.folder / plain_name(name)
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode) and file_stamp(info) == stamp:
                self._move(path, DONE)

    def _batch(
        self,
        records: list[dict[str, Any]],
        finished: list[list[str]],
        rejected: list[tuple[str, str]],
        unmoved: list[list[str]],
        inside: tuple[str, str, int] | None,
    ) -> ReadBatch:
        unmoved[:] = [e for e in unmoved + finished if self._still_there(*e)]
        file, stamp, offset = inside or (None, "", 0)
        cursor = {"file": file, "stamp": stamp, "offset": offset, "done": list(unmoved)}
        return ReadBatch(records, cursor, rejected, on_commit=finished or None)

    def _still_there(self, name: str, stamp: str) -> bool:
        try:
            return file_stamp(os.lstat(self.folder / name)) == stamp
        except FileNotFoundError:
            return False

    def _prepare(self) -> None:
        for sub in (DONE, REJECTED):
            path = usable_folder(self.folder) / sub
            if not path.is_symlink():
                with contextlib.suppress(FileExistsError):
                    path.mkdir()
            if path.is_symlink() or not path.is_dir():
                raise AdapterError(f"{str(path)!r} must be a folder, not a link or file", "folder")

    def _scan(self) -> list[tuple[str, os.stat_result]]:
        """Settled regular files and symbolic links of the folder (nothing in progress)."""
        found, now, settle = [], time.time(), self.config["settle_seconds"]
        for entry in os.scandir(self.folder):
            if entry.name.startswith(".") or entry.name.endswith(_IN_PROGRESS):
                continue
            info = entry.stat(follow_symlinks=False)
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
                continue
            if settle <= 0 or now - info.st_mtime >= settle:
                found.append((entry.name, info))
        return found

    def _move(self, path: Path, sub: str) -> Path:
        target, number = self.folder / sub / path.name, 0
        while os.path.lexists(target):
            number += 1
            target = target.with_name(f"{Path(path.name).stem}.{number}{path.suffix}")
        os.replace(path, target)
        return target

    def _reject(self, path: Path, reason: str) -> str:
        target = self._move(path, REJECTED)
        write_atomically(
            target.parent,
            f"{target.name}.reason.txt",
            lambda out: out.write(f"{reason}\n".encode()),
        )
        return reason

    def _given_schema(self) -> dict[str, Any]:
        try:
            schema: dict[str, Any] = json.loads(Path(self.config["schema"]).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise AdapterError(f"cannot load the schema file: {exc}", "schema") from exc
        return schema

    def _inferred_schema(self) -> dict[str, Any]:
        record_name = re.sub(r"\W", "_", self.folder.name, flags=re.ASCII)
        for name, info in sorted(self._scan()):
            kind = FORMATS.get(Path(name).suffix.lower())
            if kind is None or not stat.S_ISREG(info.st_mode):
                continue
            try:
                with open_regular(self.folder / name) as raw:
                    if kind == "avro":
                        schema: dict[str, Any] = fastavro.reader(raw).writer_schema  # type: ignore[assignment]
                        return schema
                    text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
                    fields = infer_fields(text, kind)
            except (Rejected, OSError, ValueError, csv.Error, StopIteration):
                continue  # not a usable sample; read() will reject it
            for field in fields:
                if not AVRO_NAME.match(field["name"]):
                    raise AdapterError(
                        f"{field['name']!r} in {name!r} is not an Avro field name; "
                        "give option 'schema'",
                        "schema",
                    )
            if not AVRO_NAME.match(record_name):
                record_name = f"_{record_name}"
            return {"type": "record", "name": record_name, "fields": fields}
        raise AdapterError(
            f"no file in {str(self.folder)!r} to infer a schema from; drop a sample file or "
            "give option 'schema'",
            "schema",
        )
