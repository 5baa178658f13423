"""The ``files`` adapter: a drop folder for CSV, JSON Lines and Avro files.

**Source.** Systems drop ``*.csv``, ``*.jsonl`` (``*.ndjson``) and ``*.avro`` (object
container) files into ``folder``. A file is read only once its mtime is ``settle_seconds``
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

**Sink.** Each delivered batch becomes one file, ``<sequence>-<batch id>.avro`` (container
file) or ``.jsonl``, written as ``.<name>.tmp``, fsynced and renamed, so readers never see
half a file (a ``files`` source may watch the folder). The 12-digit sequence, persisted in
``.sequence``, gives the order: the folder is an append log, and consumers apply files in
name order, the latest record per key winning. A batch delivered again is rewritten with
identical bytes under its original name, keeping its place in the order; a consumer that
remembers the last sequence it applied can skip it. The batch id is sanitised (letters,
digits, ``-_.``; a hash is appended when anything was replaced), so it never leaves the
folder. One sink process per folder.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import csv
import hashlib
import io
import itertools
import json
import os
import re
import stat
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from datetime import date, datetime
from datetime import time as clock
from decimal import Decimal
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import fastavro
from fastavro.validation import ValidationError, validate

from adapters.contract import AdapterError, Option, ReadBatch, Sink, Source, Stream, WriteResult
from envelope import schemas
from envelope.errors import InvalidArgument

DONE, REJECTED = "done", "rejected"
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".avro": "avro"}
_IN_PROGRESS = (".part", ".tmp", "~")
_TRUE, _FALSE = {"true", "1", "yes", "t", "y"}, {"false", "0", "no", "f", "n"}
_AVRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class _Rejected(Exception):
    """A file the source refuses; the message is the reason."""


def _stamp(info: os.stat_result) -> str:
    return f"{info.st_size}-{info.st_mtime_ns}"


def _plain_name(name: Any) -> str:
    """Returns ``name`` if it names an entry of a folder, not a path; else raises."""
    if not isinstance(name, str) or name in {"", ".", ".."} or os.path.basename(name) != name:
        raise AdapterError(f"{name!r} is not a plain file name")
    return name


def _parse_schema(schema: Any) -> schemas.ParsedSchema:
    try:
        parsed = schemas.parse(schema)
    except InvalidArgument as exc:
        raise AdapterError(f"the resource schema is not usable: {exc}", "schema") from exc
    if not parsed.top_level_fields():
        raise AdapterError("the resource schema must be an Avro record", "schema")
    return parsed


def _branch(avro_type: Any) -> tuple[Any, bool]:
    """Returns the type a value takes (first non-null branch) and whether null is allowed."""
    if isinstance(avro_type, list):
        others = [t for t in avro_type if t != "null"]
        return (others[0] if others else "null"), len(others) < len(avro_type)
    return avro_type, avro_type == "null"


def _type_name(avro_type: Any) -> str:
    kind = _branch(avro_type)[0]
    if isinstance(kind, dict):
        return str(kind.get("logicalType") or kind.get("type"))
    return str(kind)


def _convert(value: Any, avro_type: Any, from_text: bool) -> Any:
    """Turns text into the value ``avro_type`` takes (JSON: only for logical types, bytes)."""
    kind, nullable = _branch(avro_type)
    base = kind.get("type") if isinstance(kind, dict) else kind
    logical = kind.get("logicalType", "") if isinstance(kind, dict) else ""
    if not isinstance(value, str) or not (from_text or logical or base in ("bytes", "fixed")):
        return value
    if value == "" and nullable:
        return None
    if logical == "decimal":
        return Decimal(value)
    if logical == "date":
        return date.fromisoformat(value)
    if logical.startswith(("timestamp-", "local-timestamp-")):
        return datetime.fromisoformat(value)
    if logical.startswith("time-"):
        return clock.fromisoformat(value)
    if base in ("int", "long"):
        return int(value)
    if base in ("float", "double"):
        return float(value)
    if base == "boolean":
        if value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError("expected true or false")
    if base in ("bytes", "fixed"):
        return base64.b64decode(value, validate=True)
    if base in ("record", "array", "map"):
        return json.loads(value)
    return value


def _problem(parsed: Any, record: Any) -> str | None:
    """Says why ``record`` does not encode with the parsed schema (None: it does)."""
    try:
        validate(record, parsed, raise_errors=True)
        fastavro.schemaless_writer(io.BytesIO(), parsed, record)
    except ValidationError as exc:
        return "; ".join(
            f"field {e.field.partition('.')[2] or e.field!r} is {e.datum!r}, "
            f"not a valid {_type_name(e.schema)}"
            for e in exc.errors
        )
    except (ValueError, TypeError, AttributeError, KeyError, OverflowError) as exc:
        return str(exc) or type(exc).__name__
    return None


class _Checker:
    """Completes records with defaults and checks them against the resource schema."""

    def __init__(self, schema: Any) -> None:
        self.parsed = _parse_schema(schema).parsed
        self.fields: dict[str, Any] = {f["name"]: f for f in schema["fields"]}

    def complete(self, record: dict[str, Any], where: str) -> dict[str, Any]:
        unknown = sorted(set(record) - set(self.fields))
        if unknown:
            raise _Rejected(f"{where}: {unknown[0]!r} is not a field of the schema")
        for name, spec in self.fields.items():
            if name in record:
                continue
            if "default" in spec:
                record[name] = spec["default"]
            elif _branch(spec["type"])[1]:
                record[name] = None
            else:
                raise _Rejected(f"{where}: required field {name!r} is missing")
        problem = _problem(self.parsed, record)
        if problem:
            raise _Rejected(f"{where}: {problem}")
        return record

    def convert(self, name: str, value: Any, where: str, from_text: bool) -> Any:
        if name not in self.fields:
            return value  # complete() refuses it
        avro_type = self.fields[name]["type"]
        try:
            return _convert(value, avro_type, from_text)
        except (ValueError, ArithmeticError) as exc:
            raise _Rejected(
                f"{where}: field {name!r}: {value!r} is not a valid {_type_name(avro_type)}"
            ) from exc


def _open(path: Path) -> IO[bytes]:
    """Opens a regular file without following a symbolic link."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _Rejected("not a regular file")
    return os.fdopen(fd, "rb")


def _records(path: Path, checker: _Checker) -> Iterator[dict[str, Any]]:
    """Yields a file's records, checked; raises :class:`_Rejected` at the first problem."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise _Rejected(f"unsupported file type {path.suffix!r}; use .csv, .jsonl or .avro")
    try:
        with _open(path) as raw:
            if kind == "avro":
                yield from _avro(raw, checker)
            else:
                text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
                yield from (_csv if kind == "csv" else _jsonl)(text, checker)
    except UnicodeDecodeError as exc:
        raise _Rejected(f"the file is not UTF-8 text: {exc}") from exc
    except OSError as exc:
        raise _Rejected(f"the file cannot be read: {exc.strerror or exc}") from exc


def _count(path: Path, checker: _Checker) -> int:
    """Checks every record of a file; returns how many it holds."""
    return sum(1 for _ in _records(path, checker))


def _csv(text: IO[str], checker: _Checker) -> Iterator[dict[str, Any]]:
    rows = csv.DictReader(text, strict=True)
    try:
        header = list(rows.fieldnames or [])
        if len(set(header)) < len(header):
            raise _Rejected("line 1: a column is named twice")
        for name in header:
            if name not in checker.fields:
                raise _Rejected(f"line 1: column {name!r} is not a field of the schema")
        for row in rows:
            where = f"line {rows.line_num}"
            if None in row:
                raise _Rejected(f"{where}: more values than the {len(header)} columns")
            if any(value is None for value in row.values()):
                raise _Rejected(f"{where}: fewer values than the {len(header)} columns")
            record = {name: checker.convert(name, cell, where, True) for name, cell in row.items()}
            yield checker.complete(record, where)
    except csv.Error as exc:
        raise _Rejected(f"line {rows.line_num + 1}: malformed CSV: {exc}") from exc


def _jsonl(text: IO[str], checker: _Checker) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _Rejected(f"{where}: not JSON: {exc.msg} at column {exc.colno}") from exc
        if not isinstance(value, dict):
            raise _Rejected(f"{where}: not a JSON object")
        record = {k: checker.convert(k, v, where, False) for k, v in value.items()}
        yield checker.complete(record, where)


def _avro(raw: IO[bytes], checker: _Checker) -> Iterator[dict[str, Any]]:
    number = 0
    try:
        for number, record in enumerate(fastavro.reader(raw), start=1):
            yield checker.complete(dict(record), f"record {number}")  # type: ignore[arg-type]
    except _Rejected:
        raise
    except Exception as exc:  # fastavro raises many kinds on corrupt input
        raise _Rejected(
            f"after record {number}: truncated or corrupt Avro file ({type(exc).__name__}: {exc})"
        ) from exc


def _write_atomically(folder: Path, name: str, fill: Callable[[IO[bytes]], Any]) -> Path:
    """Writes ``.<name>.tmp`` through ``fill``, fsyncs it and renames it to ``name``."""
    final, partial = folder / _plain_name(name), folder / f".{name}.tmp"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as out:
            fill(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return final


def _folder(path: Path) -> Path:
    if not path.is_dir():
        raise AdapterError(f"folder {str(path)!r} does not exist or is not a folder", "folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise AdapterError(f"folder {str(path)!r} is not writable by this process", "folder")
    return path


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
        _folder(self.folder)
        schema = self._given_schema() if self.config["schema"] else self._inferred_schema()
        _parse_schema(schema)
        return [Stream(self.folder.name, schema)]

    async def read(
        self, schema: dict[str, Any], cursor: Any, batch_size: int
    ) -> AsyncIterator[ReadBatch]:
        """Yields records of settled files in name order (the file ``cursor`` is in first)."""
        if batch_size < 1:
            raise AdapterError("batch_size must be at least 1")
        checker = _Checker(schema)
        at = cursor if isinstance(cursor, dict) else {}
        self._prepare()
        await self.committed(at.get("done"))
        current = (at.get("file"), at.get("stamp"))
        records: list[dict[str, Any]] = []
        finished: list[list[str]] = []
        rejected: list[tuple[str, str]] = []
        unmoved: list[list[str]] = []
        for name, info in sorted(self._scan(), key=lambda e: (e[0] != current[0], e[0])):
            path, stamp = self.folder / name, _stamp(info)
            if stat.S_ISLNK(info.st_mode):
                reason = f"a symbolic link to {os.readlink(path)!r}; links are not followed"
                rejected.append((name, self._reject(path, reason)))
                continue
            skip = int(at.get("offset") or 0) if (name, stamp) == current else 0
            try:
                total = await asyncio.to_thread(_count, path, checker)
            except _Rejected as exc:
                rejected.append((name, self._reject(path, str(exc))))
                continue
            if skip >= total:
                finished.append([name, stamp])
                continue
            try:
                rest = itertools.islice(_records(path, checker), skip, total)
                for position, record in enumerate(rest, start=skip + 1):
                    records.append(record)
                    if position == total:
                        finished.append([name, stamp])
                    if len(records) == batch_size:
                        inside = (name, stamp, position) if position < total else None
                        yield self._batch(records, finished, rejected, unmoved, inside)
                        records, finished, rejected = [], [], []
            except _Rejected as exc:
                raise AdapterError(f"file {name!r} changed while it was read: {exc}") from exc
        if records or finished or rejected:
            yield self._batch(records, finished, rejected, unmoved, None)

    async def committed(self, note: Any) -> None:
        """Moves the files a batch finished (``[[name, stamp], ...]``) to ``done/``."""
        for name, stamp in note or ():
            path = self.folder / _plain_name(name)
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode) and _stamp(info) == stamp:
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
            return _stamp(os.lstat(self.folder / name)) == stamp
        except FileNotFoundError:
            return False

    def _prepare(self) -> None:
        for sub in (DONE, REJECTED):
            path = _folder(self.folder) / sub
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
        _write_atomically(
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
                with _open(self.folder / name) as raw:
                    if kind == "avro":
                        schema: dict[str, Any] = fastavro.reader(raw).writer_schema  # type: ignore[assignment]
                        return schema
                    text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
                    fields = _infer_fields(text, kind)
            except (_Rejected, OSError, ValueError, csv.Error, StopIteration):
                continue  # not a usable sample; read() will reject it
            for field in fields:
                if not _AVRO_NAME.match(field["name"]):
                    raise AdapterError(
                        f"{field['name']!r} in {name!r} is not an Avro field name; "
                        "give option 'schema'",
                        "schema",
                    )
            if not _AVRO_NAME.match(record_name):
                record_name = f"_{record_name}"
            return {"type": "record", "name": record_name, "fields": fields}
        raise AdapterError(
            f"no file in {str(self.folder)!r} to infer a schema from; drop a sample file or "
            "give option 'schema'",
            "schema",
        )


def _infer_fields(text: IO[str], kind: str) -> list[dict[str, Any]]:
    """Fields proposed by a CSV header (all text) or a first JSON object's value types."""
    if kind == "csv":
        names: list[tuple[str, str]] = [(n, "string") for n in next(csv.reader(text, strict=True))]
    else:
        first = json.loads(next(line for line in text if line.strip()))
        if not isinstance(first, dict):
            raise ValueError("not a JSON object")
        kinds = {bool: "boolean", int: "long", float: "double", str: "string", type(None): "string"}
        nested = [k for k, v in first.items() if type(v) not in kinds]
        if nested:
            raise AdapterError(f"field {nested[0]!r} is nested; give option 'schema'", "schema")
        names = [(k, kinds[type(v)]) for k, v in first.items()]
    return [{"name": n, "type": ["null", t], "default": None} for n, t in names]


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
        _folder(self.folder)

    async def write(
        self,
        schema: dict[str, Any],
        key_fields: Sequence[str],
        records: Sequence[dict[str, Any]],
        batch_id: str,
    ) -> WriteResult:
        """Writes the batch's valid records as one file; refuses the others by index."""
        parsed = _parse_schema(schema).parsed
        good, rejected = [], []
        for index, record in enumerate(records):
            problem = _problem(parsed, record)
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

        _write_atomically(_folder(self.folder), self._file_name(batch_id), fill)
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
            _write_atomically(self.folder, ".sequence", lambda out: out.write(sequence))
            self._names[key] = f"{self._last:012d}-{key}"
        return self._names[key]
