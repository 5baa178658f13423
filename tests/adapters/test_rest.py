"""The ``http`` adapter against a real HTTP server on a loopback port.

One ``ThreadingHTTPServer`` plays both sides a department may run: a paged REST endpoint
(``/records``) whose opaque cursors need URL encoding, and a webhook (``/hook``) that
stores records by key and applies each Idempotency-Key once. Tests script the answers
the server gives next (a 503, a slow answer, a 422) to drive retries and dead letters.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from adapters import rest
from adapters.conformance import SinkCase, SinkConformance, SourceCase, SourceConformance
from adapters.contract import AdapterError
from adapters.publisher import encode_records
from envelope import schemas

TOKEN = "Bearer s3cret-token-0042"
ROWS = [
    {
        "id": i,
        "name": f"申请人 {i}",
        "score": i + 0.5,
        "active": i % 3 == 0,
        "note": None if i % 2 else f"note {i}",
    }
    for i in range(23)
]
PERSON = {
    "type": "record",
    "name": "person",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "name", "type": "string"},
        {"name": "score", "type": ["null", "double"], "default": None},
    ],
}
PEOPLE = [{"id": 1, "name": "甲", "score": 1.5}, {"id": 2, "name": "乙", "score": None},
          {"id": 3, "name": "丙", "score": 3.0}]  # fmt: skip


def token_of(offset: int) -> str:
    """An opaque cursor that breaks any request that does not URL-encode it."""
    return f"k{offset} &x=ü/+#"


@dataclass
class Scripted:
    """An answer the server gives to the next request; ``status`` None handles it normally."""

    status: int | None
    body: bytes = b""
    delay: float = 0.0


@dataclass
class Api:
    """What the server holds and what it saw."""

    rows: list[dict[str, Any]] = field(default_factory=lambda: list(ROWS))
    script: list[Scripted] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    stored: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)
    applied: dict[str, int] = field(default_factory=dict)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    page_size_cap: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def posts(self) -> list[tuple[str, str, dict[str, str]]]:
        return [r for r in self.requests if r[0] == "POST"]


class Handler(BaseHTTPRequestHandler):
    api: Api

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def answer(self, status: int, body: bytes | dict[str, Any]) -> None:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, method: str) -> None:
        api = self.api
        content = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with api.lock:
            api.requests.append((method, self.path, dict(self.headers.items())))
            scripted = api.script.pop(0) if api.script else Scripted(None)
        if scripted.status is not None:
            time.sleep(scripted.delay)
            return self.answer(scripted.status, scripted.body)
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        if parts.path == "/records" and method == "GET":
            offset = int(query["cursor"].split(" ")[0][1:]) if "cursor" in query else 0
            limit = int(query["limit"])
            page = api.rows[offset : offset + max(limit, api.page_size_cap)]
            reply = {"records": page, "next_cursor": token_of(offset + len(page))}
            self.answer(200, reply)
        elif parts.path == "/broken":
            self.answer(500, f"upstream failed for {self.headers['Authorization']}".encode())
        elif parts.path == "/hook" and method == "POST":
            key = self.headers["Idempotency-Key"]
            batch = json.loads(content)
            with api.lock:
                api.bodies.append(batch)
                if key not in api.applied:
                    api.applied[key] = 1
                    for record in batch["records"]:
                        api.stored[tuple(record[k] for k in batch["key_fields"])] = record
            time.sleep(scripted.delay)
            self.answer(200, {"ok": True})
        elif parts.path == "/hook":
            self.answer(405, b"use POST")
        else:
            self.answer(404, b"no such resource")

    def do_GET(self) -> None:
        self.handle_any("GET")

    def do_POST(self) -> None:
        self.handle_any("POST")


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out closed its socket first


@pytest.fixture(autouse=True)
def _fast_and_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rest, "BACKOFF_SECONDS", 0.01)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")


@pytest.fixture
def api() -> Api:
    return Api()


@pytest.fixture
def base(api: Api) -> Iterator[str]:
    """Starts the server in a thread, yields its base URL, stops it."""
    handler = type("BoundHandler", (Handler,), {"api": api})
    server = QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class TestHttpSourceConformance(SourceConformance):
    @pytest.fixture
    def case(self, base: str) -> SourceCase:
        source = rest.HttpSource({"url": f"{base}/records", "headers": [f"Authorization: {TOKEN}"]})
        return SourceCase(source, "records", ROWS)


class TestHttpSinkConformance(SinkConformance):
    @pytest.fixture
    def case(self, base: str, api: Api, tmp_path: Path) -> SinkCase:
        sink = rest.HttpSink({"url": f"{base}/hook", "dead_letter": str(tmp_path / "dead.jsonl")})
        return SinkCase(sink, PERSON, ("id",), PEOPLE, lambda: list(api.stored.values()),
                        lambda r: {**r, "name": r["name"] + " (更正)"})  # fmt: skip


def sink(base: str, tmp_path: Path, **options: Any) -> rest.HttpSink:
    return rest.HttpSink({"url": f"{base}/hook", "dead_letter": str(tmp_path / "dl.jsonl"),
                          "timeout": 2.0, **options})  # fmt: skip


async def test_the_sink_retries_a_webhook_that_fails_twice_and_stores_once(
    base: str, api: Api, tmp_path: Path
) -> None:
    api.script += [Scripted(503, b"busy"), Scripted(503, b"busy")]
    result = await sink(base, tmp_path).write(PERSON, ("id",), PEOPLE, "b-7")
    assert result.written == 3 and not result.rejected
    assert [h["Idempotency-Key"] for _, _, h in api.posts()] == ["b-7"] * 3
    assert api.applied == {"b-7": 1}
    assert sorted(api.stored) == [(1,), (2,), (3,)]


async def test_a_timed_out_post_is_sent_again_and_applied_once(
    base: str, api: Api, tmp_path: Path
) -> None:
    api.script.append(Scripted(None, delay=1.0))  # applies the batch, then answers too late
    started = time.monotonic()
    result = await sink(base, tmp_path, timeout=0.3).write(PERSON, ("id",), PEOPLE, "b-8")
    assert result.written == 3
    assert len(api.posts()) == 2 and api.applied == {"b-8": 1}
    assert list(api.stored.values()) == PEOPLE
    assert time.monotonic() - started < 1.0


async def test_a_422_is_dead_lettered_with_its_body_and_not_retried(
    base: str, api: Api, tmp_path: Path
) -> None:
    refusal = b'{"error": "name exceeds 64 characters",\n "record": 2}'
    api.script.append(Scripted(422, refusal))
    result = await sink(base, tmp_path).write(PERSON, ("id",), PEOPLE, "b-9")
    assert result.written == 0
    assert [i for i, _ in result.rejected] == [0, 1, 2]
    assert result.rejected[0][1] == 'HTTP 422: {"error": "name exceeds 64 characters", "record": 2}'
    assert len(api.posts()) == 1 and not api.stored
    (line,) = (tmp_path / "dl.jsonl").read_text(encoding="utf-8").splitlines()
    letter = json.loads(line)
    assert (letter["batch_id"], letter["status"], letter["records"]) == ("b-9", 422, PEOPLE)
    assert letter["body"] == refusal.decode()
    assert datetime.fromisoformat(letter["time"]).tzinfo is not None


async def test_a_long_refusal_body_is_kept_up_to_64_kib(
    base: str, api: Api, tmp_path: Path
) -> None:
    api.script.append(Scripted(400, b"x" * 100_000))
    result = await sink(base, tmp_path).write(PERSON, ("id",), PEOPLE, "b-10")
    assert len(result.rejected[0][1]) < 250
    letter = json.loads((tmp_path / "dl.jsonl").read_text(encoding="utf-8"))
    assert letter["body"] == "x" * 65536


async def test_a_webhook_failing_past_the_retries_leaves_the_batch_unacknowledged(
    base: str, api: Api, tmp_path: Path
) -> None:
    api.script += [Scripted(500, b"down")] * 3
    with pytest.raises(AdapterError, match=r"HTTP 500 Internal Server Error: down"):
        await sink(base, tmp_path, retries=2).write(PERSON, ("id",), PEOPLE, "b-11")
    assert len(api.posts()) == 3
    assert not (tmp_path / "dl.jsonl").exists()


@pytest.mark.parametrize("status", [302, 401, 403, 404])
async def test_a_wrong_address_or_credential_is_an_error_not_a_dead_letter(
    base: str, api: Api, tmp_path: Path, status: int
) -> None:
    api.script.append(Scripted(status, b"nope"))
    with pytest.raises(AdapterError, match=f"HTTP {status}"):
        await sink(base, tmp_path).write(PERSON, ("id",), PEOPLE, "b-12")
    assert len(api.posts()) == 1
    assert not (tmp_path / "dl.jsonl").exists()


async def test_the_sink_posts_json_with_its_headers_and_avro_types_encoded(
    base: str, api: Api, tmp_path: Path
) -> None:
    record = {"id": 9, "on": date(2024, 3, 1), "at": datetime(2024, 3, 1, 8, 30, tzinfo=UTC),
              "amount": Decimal("12.30"), "photo": b"\x89PNG"}  # fmt: skip
    await sink(base, tmp_path, headers=[f"Authorization: {TOKEN}"]).write(
        {}, ("id",), [record], "b-13"
    )
    (_, _, headers), body = api.posts()[0], api.bodies[0]
    assert headers["Authorization"] == TOKEN
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == "b-13"
    assert body == {"batch_id": "b-13", "key_fields": ["id"], "records": [
        {"id": 9, "on": "2024-03-01", "at": "2024-03-01T08:30:00+00:00", "amount": "12.30",
         "photo": base64.b64encode(b"\x89PNG").decode()}]}  # fmt: skip


async def test_the_sink_check_reports_refused_credentials(
    base: str, api: Api, tmp_path: Path
) -> None:
    api.script.append(Scripted(401, b"invalid token"))
    with pytest.raises(AdapterError, match="HTTP 401 Unauthorized: invalid token"):
        await sink(base, tmp_path).check()


async def test_headers_reach_the_server_but_never_an_error_message(base: str, api: Api) -> None:
    source = rest.HttpSource({"url": f"{base}/broken", "headers": [f"Authorization: {TOKEN}"]})
    with pytest.raises(AdapterError) as error:
        await source.check()
    assert "HTTP 500" in str(error.value) and "/broken" in str(error.value)
    assert "s3cret" not in str(error.value)
    assert [h["Authorization"] for _, _, h in api.requests] == [TOKEN] * rest.SOURCE_TRIES


def test_a_malformed_header_is_refused_without_echoing_it() -> None:
    with pytest.raises(AdapterError) as error:
        rest.HttpSink({"url": "https://example.org/hook", "headers": ["Bearer s3cret-token"]})
    assert error.value.key == "headers" and "s3cret" not in str(error.value)


@pytest.mark.parametrize("url", ["ftp://example.org/x", "example.org/x", "http:///x"])
def test_the_url_must_be_http_or_https(url: str) -> None:
    with pytest.raises(AdapterError, match="http:// or https://"):
        rest.HttpSource({"url": url})


async def test_the_source_check_reports_a_404_clearly(base: str) -> None:
    source = rest.HttpSource({"url": f"{base}/nowhere?api_key=hidden"})
    with pytest.raises(AdapterError) as error:
        await source.check()
    message = str(error.value)
    assert f"GET {base}/nowhere answered HTTP 404 Not Found: no such resource" == message
    assert "hidden" not in message


async def test_an_unreachable_endpoint_is_retried_then_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = rest.HttpSource({"url": f"http://127.0.0.1:{port}/records", "timeout": 1.0})
    with pytest.raises(AdapterError, match=r"no answer .* after 3 tries"):
        await source.check()


async def test_cursor_params_are_url_encoded_and_the_url_query_is_kept(base: str, api: Api) -> None:
    source = rest.HttpSource({"url": f"{base}/records?district=城东&limit=999"})
    schema = (await source.discover())[0].schema
    batches = [b async for b in source.read(schema, token_of(20), 10)]
    assert [r["id"] for b in batches for r in b.records] == [20, 21, 22]
    _, path, _ = api.requests[-2]
    query = urllib.parse.urlsplit(path).query
    assert "cursor=k20+%26x%3D%C3%BC%2F%2B%23" in query
    assert urllib.parse.parse_qsl(query) == [
        ("district", "城东"),
        ("cursor", token_of(20)),
        ("limit", "10"),
    ]


async def test_the_source_retries_a_503_page(base: str, api: Api) -> None:
    api.script.append(Scripted(503, b"busy"))
    source = rest.HttpSource({"url": f"{base}/records"})
    schema = (await source.discover())[0].schema
    records = [r async for b in source.read(schema, None, 50) for r in b.records]
    assert records == ROWS


async def test_discovery_proposes_nullable_fields_and_the_id_key(base: str) -> None:
    (stream,) = await rest.HttpSource({"url": f"{base}/records", "stream": "申报"}).discover()
    assert stream.name == "申报" and stream.key_fields == ("id",)
    assert [(f["name"], f["type"]) for f in stream.schema["fields"]] == [
        ("id", ["null", "long"]), ("name", ["null", "string"]), ("score", ["null", "double"]),
        ("active", ["null", "boolean"]), ("note", ["null", "string"]),
    ]  # fmt: skip
    schemas.parse(stream.schema)


async def test_a_page_larger_than_the_batch_is_split_and_resumes_without_skipping(
    base: str, api: Api
) -> None:
    api.page_size_cap = 10  # the endpoint ignores the limit and sends 10 a page
    source = rest.HttpSource({"url": f"{base}/records"})
    schema = (await source.discover())[0].schema
    batches = [b async for b in source.read(schema, None, 4)]
    assert all(len(b.records) <= 4 for b in batches)
    assert [r for b in batches for r in b.records] == ROWS
    resumed = [r async for b in source.read(schema, batches[1].cursor, 4) for r in b.records]
    assert resumed == ROWS  # mid-page: the page is read again, nothing skipped


TYPED = {
    "type": "record",
    "name": "licence",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "count", "type": "int"},
        {"name": "born", "type": ["null", {"type": "int", "logicalType": "date"}]},
        {"name": "seen", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal",
                                    "precision": 10, "scale": 2}},
        {"name": "photo", "type": "bytes"},
        {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
    ],
}  # fmt: skip
TYPED_ROW = {"id": 1, "count": 3, "born": "1990-02-03", "seen": "2024-05-06T07:08:09+08:00",
             "amount": "12.3", "photo": base64.b64encode(b"\x00\x01").decode(), "extra": "x"}  # fmt: skip


@pytest.fixture
def avsc(tmp_path: Path) -> str:
    path = tmp_path / "licence.avsc"
    path.write_text(json.dumps(TYPED), encoding="utf-8")
    return str(path)


async def test_records_are_converted_to_the_schemas_logical_types(
    base: str, api: Api, avsc: str
) -> None:
    api.rows = [TYPED_ROW, {**TYPED_ROW, "id": 2, "born": None, "amount": 7, "tags": ["a"]}]
    source = rest.HttpSource({"url": f"{base}/records", "schema": avsc})
    (stream,) = await source.discover()
    assert stream.schema == TYPED
    (batch,) = [b async for b in source.read(TYPED, None, 10)]
    first, second = batch.records
    assert first == {"id": 1, "count": 3, "born": date(1990, 2, 3),
                     "seen": datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=8))),
                     "amount": Decimal("12.3"), "photo": b"\x00\x01", "tags": []}  # fmt: skip
    assert (second["born"], second["amount"], second["tags"]) == (None, Decimal(7), ["a"])
    encode_records(schemas.parse(TYPED), batch.records)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"born": "yesterday-ish"}, "born"),
        ({"count": 2**40}, "count"),
        ({"amount": "1.234"}, "amount"),
        ({"seen": True}, "seen"),
        ({"seen": "2024-05-06T07:08:09"}, "seen"),
        ({"id": None}, "id"),
    ],
)
async def test_a_record_that_does_not_fit_fails_the_page_naming_index_and_field(
    base: str, api: Api, avsc: str, change: dict[str, Any], field: str
) -> None:
    api.rows = [TYPED_ROW, {**TYPED_ROW, **change}]
    source = rest.HttpSource({"url": f"{base}/records", "schema": avsc})
    with pytest.raises(AdapterError) as error:
        _ = [b async for b in source.read(TYPED, None, 10)]
    message = str(error.value)
    assert "record 1 of the page after cursor None" in message
    assert f"field {field!r}" in message
    assert "yesterday" not in message


async def test_a_missing_field_without_default_is_named(base: str, api: Api, avsc: str) -> None:
    api.rows = [{k: v for k, v in TYPED_ROW.items() if k != "seen"}]
    source = rest.HttpSource({"url": f"{base}/records", "schema": avsc})
    with pytest.raises(AdapterError, match=r"record 0 .*field 'seen': missing"):
        _ = [b async for b in source.read(TYPED, None, 10)]


async def test_a_page_without_the_records_key_names_the_option(base: str) -> None:
    source = rest.HttpSource({"url": f"{base}/records", "records_key": "items"})
    with pytest.raises(AdapterError) as error:
        await source.check()
    assert error.value.key == "records_key"
