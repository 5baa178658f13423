"""The ``files`` adapter: a drop folder source and a batch-file sink."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import time
from datetime import date
from pathlib import Path
from typing import Any

import fastavro
import pytest

from adapters.conformance import SinkCase, SinkConformance, SourceCase, SourceConformance
from adapters.contract import AdapterError, ReadBatch
from adapters.files import FileSink, FileSource

TYPED = {
    "type": "record",
    "name": "licence",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "name", "type": "string"},
        {"name": "score", "type": ["null", "double"], "default": None},
        {"name": "active", "type": "boolean"},
        {"name": "born", "type": ["null", {"type": "int", "logicalType": "date"}], "default": None},
    ],
}
SIMPLE = {
    "type": "record",
    "name": "person",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "name", "type": "string"},
        {"name": "score", "type": ["null", "double"], "default": None},
    ],
}


def typed_rows(start: int, count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "name": f'名字 {i}, "quoted"',
            "score": None if i % 3 == 0 else i / 4,
            "active": i % 2 == 0,
            "born": None if i % 4 == 0 else date(1990, 1, 1 + i % 28),
        }
        for i in range(start, start + count)
    ]


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value.isoformat() if isinstance(value, date) else str(value)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: cell(v) for k, v in row.items()} for row in rows)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")


def write_avro(path: Path, schema: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    with path.open("wb") as out:
        fastavro.writer(out, fastavro.parse_schema(schema), rows)


def read_all(
    source: FileSource, schema: dict[str, Any], cursor: Any = None, size: int = 100
) -> list[ReadBatch]:
    async def collect() -> list[ReadBatch]:
        return [b async for b in source.read(schema, cursor, size)]

    return asyncio.run(collect())


def records_of(batches: list[ReadBatch]) -> list[dict[str, Any]]:
    return [r for b in batches for r in b.records]


def commit_all(source: FileSource, batches: list[ReadBatch]) -> None:
    for batch in batches:
        asyncio.run(source.committed(batch.on_commit))


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.is_dir() or p.is_symlink())


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


def source_over(folder: Path, **options: Any) -> FileSource:
    return FileSource({"folder": str(folder), "settle_seconds": 0, **options})


# Conformance: three files per variant, so batches span files.


class TestCsvSource(SourceConformance):
    @pytest.fixture
    def case(self, drop: Path, tmp_path: Path) -> SourceCase:
        rows = typed_rows(1, 13)
        write_csv(drop / "a.csv", rows[:4])
        write_csv(drop / "b.csv", rows[4:10])
        write_csv(drop / "c.csv", rows[10:])
        (tmp_path / "licence.avsc").write_text(json.dumps(TYPED))
        source = source_over(drop, schema=str(tmp_path / "licence.avsc"))
        return SourceCase(source, "drop", rows)


class TestJsonlSource(SourceConformance):
    @pytest.fixture
    def case(self, drop: Path) -> SourceCase:
        rows = [{"id": i, "name": f"n{i}", "score": i / 2, "ok": i % 2 == 0} for i in range(11)]
        write_jsonl(drop / "01.jsonl", rows[:5])
        write_jsonl(drop / "02.jsonl", rows[5:6])
        write_jsonl(drop / "03.ndjson", rows[6:])
        return SourceCase(source_over(drop), "drop", rows)


class TestAvroSource(SourceConformance):
    @pytest.fixture
    def case(self, drop: Path) -> SourceCase:
        rows = typed_rows(1, 12)
        write_avro(drop / "x1.avro", TYPED, rows[:7])
        write_avro(drop / "x2.avro", TYPED, rows[7:8])
        write_avro(drop / "x3.avro", TYPED, rows[8:])
        return SourceCase(source_over(drop), "drop", rows)


def sink_case(folder: Path, fmt: str) -> SinkCase:
    folder.mkdir()

    def read_back() -> list[dict[str, Any]]:
        latest: dict[int, dict[str, Any]] = {}
        for path in sorted(folder.iterdir()):  # the sequence prefix gives the write order
            if path.name.startswith("."):
                continue
            if fmt == "avro":
                with path.open("rb") as raw:
                    found = [dict(r) for r in fastavro.reader(raw)]  # type: ignore[arg-type]
            else:
                found = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
            latest.update({r["id"]: r for r in found})
        return list(latest.values())

    rows = [{"id": i, "name": f"n{i}", "score": None if i == 2 else i * 1.5} for i in range(1, 5)]
    return SinkCase(
        FileSink({"folder": str(folder), "format": fmt}),
        SIMPLE,
        ["id"],
        rows,
        read_back,
        lambda r: {**r, "name": r["name"] + " (changed)"},
    )


class TestAvroSink(SinkConformance):
    @pytest.fixture
    def case(self, tmp_path: Path) -> SinkCase:
        return sink_case(tmp_path / "out", "avro")


class TestJsonlSink(SinkConformance):
    @pytest.fixture
    def case(self, tmp_path: Path) -> SinkCase:
        return sink_case(tmp_path / "out", "jsonl")


# Half-written files.


def test_files_in_progress_or_not_settled_are_not_read(drop: Path) -> None:
    rows = typed_rows(1, 6)
    for name, part in [
        ("a.csv.part", rows[0:1]),
        (".b.csv", rows[1:2]),
        ("c.csv~", rows[2:3]),
        ("d.csv.tmp", rows[3:4]),
        ("fresh.csv", rows[4:5]),
        ("old.csv", rows[5:6]),
    ]:
        write_csv(drop / name, part)
    an_hour_ago = time.time() - 3600
    for name in ("a.csv.part", ".b.csv", "c.csv~", "d.csv.tmp", "old.csv"):
        os.utime(drop / name, (an_hour_ago, an_hour_ago))
    source = FileSource({"folder": str(drop), "settle_seconds": 60})

    first = read_all(source, TYPED)
    assert records_of(first) == rows[5:6]
    commit_all(source, first)

    (drop / "a.csv.part").rename(drop / "a.csv")  # the writer's rename keeps the old mtime
    os.utime(drop / "fresh.csv", (an_hour_ago, an_hour_ago))  # the file settles
    assert records_of(read_all(source, TYPED)) == rows[0:1] + rows[4:5]
    assert sorted(os.listdir(drop / "done")) == ["old.csv"]
    assert not list((drop / "rejected").iterdir())


# Bad files: rejected with a reason, never published.

GOOD_HEADER = "id,name,score,active,born\n"
BAD_FILES = [
    ("half.csv", GOOD_HEADER + "1,a,1.5,true,2000-01-01\n2,b", "line 3: fewer values"),
    ("extra.csv", GOOD_HEADER + "1,a,1.5,true,2000-01-01,surplus\n", "line 2: more values"),
    ("quote.csv", GOOD_HEADER + '1,"a"b,1.5,true,\n', "line 2: malformed CSV"),
    ("type.csv", GOOD_HEADER + "1,a,1.5,true,\nx,b,2,false,\n", "line 3: field 'id': 'x'"),
    (
        "bool.csv",
        GOOD_HEADER + "1,a,1.5,maybe,\n",
        "field 'active': 'maybe' is not a valid boolean",
    ),
    ("date.csv", GOOD_HEADER + "1,a,1.5,true,2000-13-45\n", "field 'born'"),
    ("missing.csv", "id,score,active\n1,1.5,true\n", "line 2: required field 'name' is missing"),
    (
        "column.csv",
        "id,name,active,colour\n1,a,true,red\n",
        "line 1: column 'colour' is not a field",
    ),
    ("notjson.jsonl", '{"id": 1, "name": "a", "active": true}\n{not json\n', "line 2: not JSON"),
    ("array.jsonl", "[1, 2]\n", "line 1: not a JSON object"),
    ("wrong.jsonl", '{"id": "1", "name": "a", "active": true}\n', "line 1: field 'id' is '1'"),
    ("nulls.jsonl", '{"id": 1, "name": null, "active": true}\n', "field 'name' is None"),
    ("latin1.csv", b"id,name,active\n1,\xe9t\xe9,true\n", "not UTF-8"),
    ("notes.txt", "hello\n", "unsupported file type '.txt'"),
]


@pytest.mark.parametrize(("name", "content", "reason"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_a_bad_file_is_rejected_with_a_reason(
    drop: Path, name: str, content: str | bytes, reason: str
) -> None:
    good = typed_rows(1, 3)
    write_csv(drop / "good.csv", good)
    if isinstance(content, bytes):
        (drop / name).write_bytes(content)
    else:
        (drop / name).write_text(content, "utf-8")

    batches = read_all(source_over(drop), TYPED)

    assert records_of(batches) == good
    refused = [r for b in batches for r in b.rejected]
    assert len(refused) == 1 and refused[0][0] == name and reason in refused[0][1]
    assert (drop / "rejected" / name).exists() and not (drop / name).exists()
    assert reason in (drop / "rejected" / f"{name}.reason.txt").read_text("utf-8")


def test_a_truncated_or_foreign_avro_file_is_rejected(drop: Path) -> None:
    rows = [*typed_rows(1, 3000)]
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(TYPED), rows, sync_interval=4000)
    (drop / "cut.avro").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (drop / "empty.avro").write_bytes(b"")
    other = {**TYPED, "fields": [{"name": "id", "type": "string"}, *TYPED["fields"][1:]]}
    write_avro(drop / "other.avro", other, [{**rows[0], "id": "1"}])

    batches = read_all(source_over(drop), TYPED)

    assert records_of(batches) == []
    reasons = dict(r for b in batches for r in b.rejected)
    assert sorted(reasons) == ["cut.avro", "empty.avro", "other.avro"]
    assert "truncated or corrupt Avro" in reasons["cut.avro"]
    assert "truncated or corrupt Avro" in reasons["empty.avro"]
    assert "record 1: field 'id' is '1'" in reasons["other.avro"]
    for name, reason in reasons.items():
        assert (drop / "rejected" / f"{name}.reason.txt").read_text("utf-8") == reason + "\n"
    assert listing(drop) == []


# Commit, resume and moves.


def test_files_move_to_done_only_once_committed(drop: Path) -> None:
    rows = typed_rows(1, 7)
    write_csv(drop / "a.csv", rows[:3])
    write_csv(drop / "b.csv", rows[3:])
    source = source_over(drop)

    batches = read_all(source, TYPED, size=2)

    assert records_of(batches) == rows
    assert listing(drop) == ["a.csv", "b.csv"]
    notes = [[name for name, _ in b.on_commit or []] for b in batches]
    assert notes == [[], ["a.csv"], [], ["b.csv"]]  # the batch holding a file's last rows
    asyncio.run(source.committed(batches[1].on_commit))
    assert listing(drop) == ["b.csv"] and os.listdir(drop / "done") == ["a.csv"]
    commit_all(source, batches)
    assert listing(drop) == [] and sorted(os.listdir(drop / "done")) == ["a.csv", "b.csv"]


def test_a_resumed_read_skips_finished_files_even_if_committed_never_ran(drop: Path) -> None:
    rows = typed_rows(1, 7)
    write_csv(drop / "a.csv", rows[:3])
    write_csv(drop / "b.csv", rows[3:])
    source = source_over(drop)
    batches = read_all(source, TYPED, size=4)  # [a1 a2 a3 b1] [b2 b3 b4]

    # A crash after the cursor was stored but before the move: no row comes twice.
    assert records_of(read_all(source, TYPED, batches[0].cursor)) == rows[4:]
    assert os.listdir(drop / "done") == ["a.csv"]
    assert records_of(read_all(source, TYPED, batches[1].cursor)) == []
    assert listing(drop) == [] and sorted(os.listdir(drop / "done")) == ["a.csv", "b.csv"]


def test_a_new_file_reusing_a_processed_name_is_read_and_kept_apart(drop: Path) -> None:
    source = source_over(drop)
    write_csv(drop / "a.csv", typed_rows(1, 2))
    first = read_all(source, TYPED)
    commit_all(source, first)
    write_csv(drop / "a.csv", typed_rows(5, 1))
    os.utime(drop / "a.csv", ns=(1, 1))  # another stamp than the processed file's

    again = read_all(source, TYPED, first[-1].cursor)

    assert records_of(again) == typed_rows(5, 1)
    commit_all(source, again)
    assert sorted(os.listdir(drop / "done")) == ["a.1.csv", "a.csv"]


# Path traversal and links.


def test_a_symbolic_link_is_not_followed(drop: Path, tmp_path: Path) -> None:
    secret = tmp_path / "outside.csv"
    write_csv(secret, typed_rows(1, 2))
    (drop / "link.csv").symlink_to(secret)
    (drop / "dir-link.csv").symlink_to(tmp_path)

    batches = read_all(source_over(drop), TYPED)

    assert records_of(batches) == []
    reasons = dict(r for b in batches for r in b.rejected)
    assert sorted(reasons) == ["dir-link.csv", "link.csv"]
    assert "symbolic link" in reasons["link.csv"]
    assert (drop / "rejected" / "link.csv").is_symlink()  # the link moved, not its target
    assert secret.read_text("utf-8").startswith("id,name")
    assert "not followed" in (drop / "rejected" / "link.csv.reason.txt").read_text("utf-8")


def test_a_commit_note_naming_a_path_is_refused(drop: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.csv"
    victim.write_text("x")
    source = source_over(drop)
    for name in ("../victim.csv", str(victim), "..", "done/../../victim.csv"):
        with pytest.raises(AdapterError, match="not a plain file name"):
            asyncio.run(source.committed([[name, "any"]]))
    assert victim.exists()


@pytest.mark.parametrize("batch_id", ["../../etc/passwd", "/etc/passwd", "a\\b", "..", "批次 1"])
def test_a_batch_id_never_leaves_the_sink_folder(tmp_path: Path, batch_id: str) -> None:
    out = tmp_path / "deep" / "out"
    out.mkdir(parents=True)
    sink = FileSink({"folder": str(out), "format": "jsonl"})

    asyncio.run(sink.write(SIMPLE, ["id"], [{"id": 1, "name": "a", "score": None}], batch_id))

    files = [p for p in out.iterdir() if not p.name.startswith(".")]
    assert len(files) == 1 and files[0].parent == out
    assert "/" not in files[0].name and "\\" not in files[0].name
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(
        ["deep", "out", ".sequence", files[0].name]
    )


# The sink.


def test_the_sink_writes_atomically_and_keeps_a_batch_in_its_place(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    sink = FileSink({"folder": str(out)})
    rows = [{"id": 1, "name": "a", "score": 2.5}]

    def write(batch_id: str, records: list[dict[str, Any]]) -> None:
        asyncio.run(sink.write(SIMPLE, ["id"], records, batch_id))

    write("b-1", rows)
    first = (out / "000000000001-b-1.avro").read_bytes()
    write("b-2", [{**rows[0], "name": "b"}])
    write("b-1", rows)  # redelivered: same name, same bytes, still before b-2
    assert (out / "000000000001-b-1.avro").read_bytes() == first
    assert sorted(os.listdir(out)) == [
        ".sequence",
        "000000000001-b-1.avro",
        "000000000002-b-2.avro",
    ]

    restarted = FileSink({"folder": str(out)})
    asyncio.run(restarted.write(SIMPLE, ["id"], rows, "b-3"))
    asyncio.run(restarted.write(SIMPLE, ["id"], rows, "b-2"))
    assert sorted(os.listdir(out))[-1] == "000000000003-b-3.avro"
    assert (out / ".sequence").read_text() == "3\n"


def test_the_sink_refuses_records_not_matching_the_schema(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    sink = FileSink({"folder": str(out), "format": "jsonl"})
    records: list[dict[str, Any]] = [
        {"id": 1, "name": "a", "score": None},
        {"id": "two", "name": "b", "score": None},
        {"id": 3, "score": 1.0},
    ]

    result = asyncio.run(sink.write(SIMPLE, ["id"], records, "b-1"))

    assert result.written == 1
    assert [index for index, _ in result.rejected] == [1, 2]
    assert "'id'" in result.rejected[0][1]
    assert (out / "000000000001-b-1.jsonl").read_text("utf-8").count("\n") == 1


def test_a_source_reads_what_a_sink_wrote(tmp_path: Path) -> None:
    rows = typed_rows(1, 5)
    for fmt in ("avro", "jsonl"):
        folder = tmp_path / fmt
        folder.mkdir()
        asyncio.run(
            FileSink({"folder": str(folder), "format": fmt}).write(TYPED, ["id"], rows, "b")
        )
        assert records_of(read_all(source_over(folder), TYPED)) == rows


# Options and discovery.


def test_discovery_infers_a_schema_from_the_first_file(drop: Path) -> None:
    write_csv(drop / "a.csv", typed_rows(1, 1))
    write_jsonl(drop / "b.jsonl", [{"id": 1}])
    (stream,) = asyncio.run(source_over(drop).discover())
    assert stream.name == "drop"
    assert stream.schema["fields"] == [
        {"name": n, "type": ["null", "string"], "default": None}
        for n in ("id", "name", "score", "active", "born")
    ]


def test_options_and_folders_are_checked(tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="format"):
        FileSink({"folder": str(tmp_path), "format": "xml"})
    with pytest.raises(AdapterError, match="folder"):
        FileSource({})
    with pytest.raises(AdapterError, match="does not exist"):
        asyncio.run(FileSource({"folder": str(tmp_path / "nope")}).check())
    with pytest.raises(AdapterError, match="does not exist"):
        asyncio.run(FileSink({"folder": str(tmp_path / "nope")}).check())
    with pytest.raises(AdapterError, match="no file"):
        asyncio.run(FileSource({"folder": str(tmp_path)}).discover())
    asyncio.run(FileSource({"folder": str(tmp_path)}).check())
    assert (tmp_path / "done").is_dir() and (tmp_path / "rejected").is_dir()


def test_a_done_folder_that_is_a_link_is_refused(drop: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (drop / "done").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(AdapterError, match="not a link"):
        asyncio.run(source_over(drop).check())
