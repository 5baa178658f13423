"""Ledger entries as files: Avro object container files and JSON Lines.

Both formats carry every column, the content the digest covers, and the hashes, so an
exported range can be checked offline: each entry's digest against its content, and
each entry's hash against the one before (:func:`verify_records`). Avro files say in
their metadata which entry came before the first one (``lijiao.previous_hash``).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from typing import IO, Any

from fastavro import parse_schema, reader, writer

from catalog import ledger

AVRO_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "LedgerEntry",
    "namespace": "lijiao.audit",
    "doc": "One entry of the lijiao audit ledger (see catalog/ledger.py).",
    "fields": [
        {"name": "sequence", "type": "long"},
        {"name": "time", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "kind", "type": "string"},
        {"name": "action", "type": "string"},
        {"name": "principal", "type": "string"},
        {"name": "department", "type": "string"},
        {"name": "provider", "type": "string"},
        {"name": "system", "type": "string"},
        {"name": "resource", "type": "string"},
        {"name": "grant_id", "type": "string"},
        {"name": "subject", "type": "string"},
        {"name": "position", "type": ["null", "long"], "default": None},
        {"name": "records", "type": "long"},
        {"name": "bytes", "type": "long"},
        {"name": "personal", "type": "boolean"},
        {"name": "content", "type": "string"},
        {"name": "content_digest", "type": "bytes"},
        {"name": "previous_hash", "type": "bytes"},
        {"name": "hash", "type": "bytes"},
    ],
}
_PARSED = parse_schema(AVRO_SCHEMA)
_FIELDS = [f["name"] for f in AVRO_SCHEMA["fields"]]


def to_record(row: Any) -> dict[str, Any]:
    """An entry row as a plain dict (the Avro record)."""
    out = {name: getattr(row, name) for name in _FIELDS}
    for name in ("content_digest", "previous_hash", "hash"):
        out[name] = bytes(out[name])
    return out


def write_avro(
    rows: Iterable[Any], out: IO[bytes], *, sync_interval: int = 64_000, filtered: bool = False
) -> int:
    """Writes rows as an Avro object container file; returns how many were written.

    ``filtered``: the rows are a selection, not a run of consecutive entries (the file
    says so, and its verification then checks each entry on its own).
    """
    count = 0
    rows = iter(rows)
    first = next(rows, None)
    previous = bytes(first.previous_hash) if first is not None else ledger.GENESIS

    def records() -> Iterator[dict[str, Any]]:
        nonlocal count
        for row in itertools.chain([first] if first is not None else [], rows):
            count += 1
            yield to_record(row)

    writer(
        out,
        _PARSED,
        records(),
        codec="deflate",
        sync_interval=sync_interval,
        metadata={
            "lijiao.previous_hash": previous.hex(),
            "lijiao.filtered": "true" if filtered else "false",
        },
    )
    return count


def write_jsonl(rows: Iterable[Any], out: IO[bytes]) -> int:
    """Writes rows as JSON Lines (bytes as hex, times as RFC 3339); returns the count."""
    count = 0
    for row in rows:
        record = to_record(row)
        record["time"] = ledger.format_time(record["time"])
        for name in ("content_digest", "previous_hash", "hash"):
            record[name] = record[name].hex()
        out.write(json.dumps(record, ensure_ascii=False, sort_keys=True).encode() + b"\n")
        count += 1
    return count


def read_avro(source: IO[bytes]) -> Iterator[dict[str, Any]]:
    """Reads back the entries of an Avro export."""
    yield from reader(source)  # type: ignore[misc]


def verify_file(source: IO[bytes]) -> tuple[int, str, bool]:
    """Verifies an Avro export or archive; returns (entries, problem, filtered)."""
    avro = reader(source)
    filtered = avro.metadata.get("lijiao.filtered") == "true"
    count, problem = verify_records(avro, consecutive=not filtered)  # type: ignore[arg-type]
    return count, problem, filtered


def verify_records(
    records: Iterable[dict[str, Any]], *, consecutive: bool = True
) -> tuple[int, str]:
    """Checks exported entries on their own: each entry's digest and hash, and, for a
    run of consecutive entries, each link to the one before.

    Returns:
        How many entries verified, and a message naming the first broken one ('' if none).
    """
    previous: bytes | None = None
    expected: int | None = None
    count = 0
    for record in records:
        sequence = record["sequence"]
        if not consecutive:
            previous, expected = None, None
        if expected is not None and sequence != expected:
            return count, f"entry {expected} is missing from the export (it jumps to {sequence})"
        digest = ledger.digest_of_content(record["content"])
        if digest != record["content_digest"]:
            return count, f"entry {sequence} was modified: its content does not match its digest"
        if previous is not None and record["previous_hash"] != previous:
            return count, f"entry {sequence} does not follow entry {sequence - 1}"
        if ledger.chain_hash(record["previous_hash"], sequence, digest) != record["hash"]:
            return count, f"entry {sequence}'s hash was altered"
        previous = record["hash"]
        expected = sequence + 1
        count += 1
    return count, ""
