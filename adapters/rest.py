"""The ``http`` adapter: a REST endpoint as a source, a department's webhook as a sink.

The source polls an endpoint page by page: ``GET url?cursor=<c>&limit=<n>`` answers a
JSON object holding a list of records (``records_key``) and the cursor of the next page
(``next_cursor_key``). A null or missing next cursor, one equal to the cursor asked for,
or an empty page means "no more for now". An endpoint should return the cursor after its
last record even on its last page: when it returns null, the next poll reads that page
again (harmless, sinks upsert by key, but wasteful). Records are converted to the
resource's schema (ISO 8601 text to dates, times and timestamps, which need a UTC offset
unless local; numbers or text to decimals; base64 to bytes; keys the schema lacks are
left out); a record that does not fit fails its page, naming the record and the field.

The sink POSTs each delivered batch as ``{"batch_id", "key_fields", "records"}`` with the
header ``Idempotency-Key: <batch_id>``. **The webhook must be idempotent by that key**: a
batch whose answer was lost (a timeout, a crash before the acknowledgement) is sent again
with the same key, and the webhook must then answer 2xx without applying it twice.
Answers: 2xx is written; 5xx, 408, 429, a timeout or a broken connection is retried with
backoff and then left unacknowledged (the batch comes again later); 401, 403, 404, 405
and 407 mean the endpoint or its credentials are wrong and are left unacknowledged too,
so that a configuration mistake never diverts batches; any other 4xx refuses the
records themselves: the batch is appended to the dead-letter file (JSON Lines, with the
answer's body) and every record is reported rejected, so it is not retried forever.

Header values (``headers``, e.g. an Authorization token) are never logged nor put in an
error message, and URLs appear in messages without their query string or user info.
Redirects are not followed: they would drop a POST body or carry credentials elsewhere.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import json
import logging
import math
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID

from fastavro import parse_schema
from fastavro.validation import ValidationError, validate

from adapters.connection import Backoff
from adapters.contract import AdapterError, Option, ReadBatch, Sink, Source, Stream, WriteResult
from envelope import schemas
from envelope.errors import InvalidArgument

logger = logging.getLogger(__name__)

BACKOFF_SECONDS = 0.2
"""First delay between tries; it doubles after each failure."""
BACKOFF_CAP_SECONDS = 5.0
"""Longest delay between tries."""
SOURCE_TRIES = 3
DEAD_LETTER_BODY_BYTES = 64 * 1024
_EXCERPT_CHARS = 200
_WRONG_ENDPOINT = frozenset({401, 403, 404, 405, 407})
_AVRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PYTHON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str, "enum": str, "long": int, "int": int, "float": (int, float),
    "double": (int, float), "bytes": bytes, "fixed": bytes,
}  # fmt: skip
_JSON_TYPES = ((bool, "boolean"), (int, "long"), (float, "double"))
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

_URL = Option("url", str, required=True, help="http:// or https:// address of the endpoint")
_HEADERS = Option("headers", list, default=[], help='extra headers, each "Name: value"')
_TIMEOUT = Option("timeout", float, default=10.0, help="seconds to wait for an answer")


class _Unreachable(Exception):
    """No HTTP answer: a timeout, a refused or broken connection, a TLS failure."""


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx then surfaces as an HTTPError carrying its status


def _send(
    method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float
) -> _Answer:
    """Sends one request (blocking); any HTTP answer returns, no answer raises."""
    request = urllib.request.Request(url, data=body, method=method)  # noqa: S310 (scheme checked)
    for name, value in headers.items():
        request.add_header(name, value)
    try:
        with urllib.request.build_opener(_NoRedirect()).open(request, timeout=timeout) as answer:
            return _Answer(answer.status, answer.read())
    except urllib.error.HTTPError as error:
        try:
            content = error.read(DEAD_LETTER_BODY_BYTES)
        except (OSError, http.client.HTTPException, AttributeError):
            content = b""
        error.close()
        return _Answer(error.code, content)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise _Unreachable(str(getattr(error, "reason", error)) or type(error).__name__) from error


class _Endpoint:
    """An HTTP address with its secret-bearing headers, a timeout and retries."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.url: str = config["url"]
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AdapterError("option 'url' must be an http:// or https:// address", "url")
        self.shown = urllib.parse.urlunsplit(
            (parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", "")
        )
        self.headers: dict[str, str] = {}
        for index, line in enumerate(config["headers"]):
            name, colon, value = line.partition(":") if isinstance(line, str) else ("", "", "")
            if (
                not colon
                or not _HEADER_NAME.fullmatch(name.strip())
                or any(c in line for c in "\r\n\0")
            ):  # the value is a secret: the message names the entry, never its text
                raise AdapterError(f'headers[{index}] must be one line "Name: value"', "headers")
            self.headers[name.strip()] = value.strip()
        self.timeout: float = config["timeout"]

    def masked(self, body: bytes) -> str:
        """Returns an answer's body as text, with any header value it echoes masked."""
        text = body.decode("utf-8", "replace")
        for secret in self.headers.values():
            if len(secret) >= 4:
                text = text.replace(secret, "***")
        return text

    def excerpt(self, body: bytes) -> str:
        """Returns the start of an answer's body on one line, header values masked."""
        text = " ".join(self.masked(body).split())
        return text if len(text) <= _EXCERPT_CHARS else text[: _EXCERPT_CHARS - 1] + "…"

    async def call(
        self,
        method: str,
        url: str,
        tries: int,
        body: bytes | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> _Answer:
        """Sends a request, again on 5xx, 408, 429 or no answer, ``tries`` times at most.

        Raises:
            AdapterError: No answer came on the last try.
        """
        backoff = Backoff(math.inf, BACKOFF_SECONDS, BACKOFF_CAP_SECONDS)
        headers = {**self.headers, **(extra or {})}
        for attempt in range(1, tries + 1):
            try:
                answer = await asyncio.to_thread(_send, method, url, headers, body, self.timeout)
                problem = f"HTTP {answer.status}"
                if attempt == tries or not (answer.status >= 500 or answer.status in (408, 429)):
                    return answer
            except _Unreachable as error:
                problem = f"no answer ({error})"
                if attempt == tries:
                    raise AdapterError(
                        f"{method} {self.shown}: {problem} after {tries} tries", "url"
                    ) from None
            logger.warning("%s %s: %s, try %d of %d", method, self.shown, problem, attempt, tries)
            await backoff.failed()
        raise AssertionError("unreachable")  # pragma: no cover

    def refusal(self, method: str, answer: _Answer) -> AdapterError:
        """Describes a non-2xx answer: status, its phrase and the body's first words."""
        try:
            phrase = f" {HTTPStatus(answer.status).phrase}"
        except ValueError:
            phrase = ""
        return AdapterError(
            f"{method} {self.shown} answered HTTP {answer.status}{phrase}: "
            f"{self.excerpt(answer.body) or '(empty body)'}",
            "url",
        )


def _to_json(value: Any) -> Any:
    """Encodes what JSON lacks: dates as ISO 8601, decimals as text, bytes as base64."""
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _type_name(avro: Any) -> str:
    if isinstance(avro, list):
        return " or ".join(_type_name(branch) for branch in avro)
    if isinstance(avro, dict):
        return str(avro.get("logicalType") or avro.get("name") or avro.get("type"))
    return str(avro)


_ISO_PARSERS: dict[str, Any] = {
    "date": date.fromisoformat,
    "time-millis": time.fromisoformat,
    "time-micros": time.fromisoformat,
    **{f"{local}timestamp-{unit}": datetime.fromisoformat
       for local in ("", "local-") for unit in ("millis", "micros")},
}  # fmt: skip


def _convert(value: Any, avro: Any) -> Any:
    """Turns a JSON value into what fastavro writes for ``avro``.

    Named types and maps pass unchanged; fastavro checks them when encoding.

    Raises:
        ValueError: The value does not fit; the message never quotes the value.
    """
    if isinstance(avro, list):
        for branch in avro:
            with contextlib.suppress(ValueError, TypeError):
                return _convert(value, branch)
        raise ValueError(f"expected {_type_name(avro)}, got {type(value).__name__}")
    kind, logical = (
        (avro.get("type"), avro.get("logicalType")) if isinstance(avro, dict) else (avro, None)
    )
    if isinstance(kind, dict | list):
        return _convert(value, kind)
    wrong = ValueError(f"expected {_type_name(avro)}, got {type(value).__name__}")
    if kind in ("null", "boolean") or value is None or isinstance(value, bool):
        if (kind == "null" and value is None) or (kind == "boolean" and isinstance(value, bool)):
            return value
        raise wrong
    if logical == "decimal":
        try:
            number = Decimal(value if isinstance(value, str | int) else str(value))
        except (InvalidOperation, TypeError):
            raise wrong from None
        scale = int(avro.get("scale", 0))
        if not number.is_finite() or -int(number.as_tuple().exponent) > scale:
            raise ValueError(f"expected a number with at most {scale} decimal places")
        return number
    if isinstance(value, str) and logical in _ISO_PARSERS:
        try:
            moment = _ISO_PARSERS[logical](value)
        except ValueError:
            raise ValueError(f"expected an ISO 8601 {logical}") from None
        if logical.startswith("timestamp") and moment.tzinfo is None:
            raise ValueError(f"a {logical} needs a UTC offset (else use local-{logical})")
        return moment
    if kind in ("bytes", "fixed") and isinstance(value, str):
        return base64.b64decode(value, validate=True)
    if kind == "string" and isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if kind == "record":
        return _convert_record(value, avro)
    if kind == "array" and isinstance(value, list):
        return [_convert(item, avro["items"]) for item in value]
    expected = _PYTHON_TYPES.get(str(kind))
    if expected is None or isinstance(value, expected):
        return value
    raise wrong


def _convert_record(value: Any, avro: Mapping[str, Any]) -> dict[str, Any]:
    """Converts a JSON object field by field; keys the schema lacks are left out."""
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    record: dict[str, Any] = {}
    for spec in avro["fields"]:
        name = spec["name"]
        try:
            if name not in value and "default" not in spec:
                raise ValueError("missing, and the schema gives no default")
            record[name] = _convert(value.get(name, spec.get("default")), spec["type"])
        except (ValueError, TypeError) as error:
            raise ValueError(f"field {name!r}: {error}") from None
    return record


def _misfit(record: dict[str, Any], parsed: Any) -> str:
    """Names the field of a converted record that fastavro cannot encode, and why; or ''."""
    try:
        validate(record, parsed, raise_errors=True)
    except ValidationError as invalid:
        path = invalid.errors[0].field
        expected = [_type_name(e.schema) for e in invalid.errors if e.field == path]
        name = str(path).removeprefix(f"{parsed['name']}.")
        return f"field {name!r}: expected {' or '.join(expected)}"
    except (ValueError, TypeError, OverflowError) as error:
        return f"it does not encode with the schema ({type(error).__name__})"
    return ""


def _propose_schema(stream: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """Proposes an all-nullable record schema from one record's JSON value types."""
    fields = []
    for name, value in record.items():
        if not _AVRO_NAME.fullmatch(name):
            raise AdapterError(
                f"key {name!r} is not a valid Avro field name; "
                "give option 'schema' (an .avsc file)",
                "schema",
            )
        kind = next((avro for python, avro in _JSON_TYPES if isinstance(value, python)), "string")
        fields.append({"name": name, "type": ["null", kind], "default": None})
    record_name = re.sub(r"\W", "_", stream, flags=re.ASCII)
    return {
        "type": "record",
        "name": record_name if _AVRO_NAME.fullmatch(record_name) else f"r_{record_name}",
        "fields": fields,
    }


class HttpSource(Source):
    """Polls a REST endpoint page by page with a cursor parameter."""

    name: ClassVar[str] = "http"
    options: ClassVar[Sequence[Option]] = (
        _URL,
        Option("cursor_param", str, default="cursor", help="query parameter of the cursor"),
        Option("limit_param", str, default="limit", help="query parameter of the page size"),
        Option("records_key", str, default="records", help="key of a page's record list"),
        Option("next_cursor_key", str, default="next_cursor", help="key of the next cursor"),
        _HEADERS,
        _TIMEOUT,
        Option("schema", str, default="", help="path of an .avsc schema (else proposed)"),
        Option("stream", str, default="records", help="name of the stream"),
    )

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self._endpoint = _Endpoint(self.config)

    def _page_url(self, cursor: Any, limit: int) -> str:
        parts = urllib.parse.urlsplit(self._endpoint.url)
        ours = (self.config["cursor_param"], self.config["limit_param"])
        query = [
            (k, v)
            for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
            if k not in ours
        ]
        if cursor is not None:
            query.append((ours[0], str(cursor)))
        query.append((ours[1], str(limit)))
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))

    async def _page(self, cursor: Any, limit: int) -> tuple[list[Any], Any]:
        """Fetches one page: its raw records and its next cursor."""
        answer = await self._endpoint.call("GET", self._page_url(cursor, limit), SOURCE_TRIES)
        if not 200 <= answer.status < 300:
            raise self._endpoint.refusal("GET", answer)
        key = self.config["records_key"]
        try:
            page = json.loads(answer.body)
        except ValueError:
            page = None
        if not isinstance(page, dict) or not isinstance(page.get(key), list):
            raise AdapterError(
                f"GET {self._endpoint.shown} answered no JSON object with a "
                f"list under {key!r} (option 'records_key')",
                "records_key",
            )
        return page[key], page.get(self.config["next_cursor_key"])

    def _given_schema(self) -> dict[str, Any] | None:
        if not self.config["schema"]:
            return None
        try:
            definition: dict[str, Any] = schemas.parse(
                Path(self.config["schema"]).read_text(encoding="utf-8")
            ).definition
        except (OSError, InvalidArgument) as error:
            raise AdapterError(f"option 'schema': {error}", "schema") from None
        if not isinstance(definition, dict) or definition.get("type") != "record":
            raise AdapterError("option 'schema' must name an Avro record schema", "schema")
        return definition

    async def check(self) -> None:
        """Fetches the first page (limit 1) and loads the schema file, if any."""
        await self._page(None, 1)
        await asyncio.to_thread(self._given_schema)

    async def discover(self) -> list[Stream]:
        """Proposes the stream's schema: the ``schema`` file, else from the first record."""
        schema = await asyncio.to_thread(self._given_schema)
        if schema is None:
            records, _ = await self._page(None, 1)
            if not records or not isinstance(records[0], dict):
                raise AdapterError(
                    "the endpoint has no record to propose a schema from; "
                    "give option 'schema' (an .avsc file)",
                    "schema",
                )
            schema = _propose_schema(self.config["stream"], records[0])
        names = [f["name"] for f in schema.get("fields", [])]
        return [Stream(self.config["stream"], schema, ("id",) if "id" in names else ())]

    async def read(
        self, schema: dict[str, Any], cursor: Any, batch_size: int
    ) -> AsyncIterator[ReadBatch]:
        """Yields each page's records, converted to ``schema``, until no page follows.

        A page larger than ``batch_size`` is split; every part but the last carries the
        page's own cursor, so a resume there reads the page again rather than skip rows.

        Raises:
            AdapterError: An endpoint failure, or a record that does not fit the schema
                (nothing of that page is yielded; the next read tries again).
        """
        parsed = parse_schema(schema)
        size = max(1, batch_size)
        while True:
            raw, following = await self._page(cursor, size)
            records = [
                self._fit(index, item, schema, parsed, cursor) for index, item in enumerate(raw)
            ]
            done = not records or following is None or str(following) == str(cursor)
            for start in range(0, len(records), size):
                last = start + size >= len(records)
                resume = cursor if following is None or not last else following
                yield ReadBatch(records[start : start + size], cursor=resume)
            if done:
                return
            cursor = following

    @staticmethod
    def _fit(index: int, item: Any, schema: dict[str, Any], parsed: Any, cursor: Any) -> Any:
        """Converts one raw record and checks it with fastavro's encoder validation."""
        where = f"record {index} of the page after cursor {cursor!r}"
        try:
            record = _convert_record(item, schema)
        except (ValueError, TypeError) as error:
            raise AdapterError(f"{where}: {error}") from None
        misfit = _misfit(record, parsed)
        if misfit:
            raise AdapterError(f"{where}: {misfit}")
        return record


class HttpSink(Sink):
    """POSTs batches as JSON to a webhook, idempotent by the ``Idempotency-Key`` header."""

    name: ClassVar[str] = "http"
    options: ClassVar[Sequence[Option]] = (
        _URL,
        _HEADERS,
        _TIMEOUT,
        Option("retries", int, default=5, help="tries after the first on 5xx or no answer"),
        Option(
            "dead_letter",
            str,
            default="dead-letters.jsonl",
            help="JSON Lines file of batches the webhook refused with a 4xx",
        ),
    )

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self._endpoint = _Endpoint(self.config)
        if self.config["retries"] < 0:
            raise AdapterError("option 'retries' must be 0 or more", "retries")

    async def check(self) -> None:
        """Checks that the webhook answers and takes the credentials.

        A webhook takes POST only; a GET proves the server answers and does not refuse
        the headers (401, 403, 407), not that it accepts batches.
        """
        answer = await self._endpoint.call("GET", self._endpoint.url, 1)
        if answer.status in (401, 403, 407):
            raise self._endpoint.refusal("GET", answer)

    async def write(
        self,
        schema: dict[str, Any],
        key_fields: Sequence[str],
        records: Sequence[dict[str, Any]],
        batch_id: str,
    ) -> WriteResult:
        """POSTs the batch; dead-letters it when the webhook refuses it with a 4xx.

        Raises:
            AdapterError: No 2xx after the retries, a redirect, or a 401/403/404/405/407
                (the batch stays unacknowledged and comes again).
        """
        if not records:
            return WriteResult(written=0)
        payload = {"batch_id": batch_id, "key_fields": list(key_fields), "records": list(records)}
        try:
            body = json.dumps(payload, default=_to_json, ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError) as error:
            raise AdapterError(f"batch {batch_id}: cannot encode as JSON ({error})") from None
        answer = await self._endpoint.call(
            "POST",
            self._endpoint.url,
            self.config["retries"] + 1,
            body,
            {"Content-Type": "application/json", "Idempotency-Key": batch_id},
        )
        if 200 <= answer.status < 300:
            return WriteResult(written=len(records))
        if not 400 <= answer.status < 500 or answer.status in _WRONG_ENDPOINT | {408, 429}:
            raise self._endpoint.refusal("POST", answer)
        line = {
            "time": datetime.now(UTC).isoformat(),
            "batch_id": batch_id,
            "status": answer.status,
            "body": self._endpoint.masked(answer.body[:DEAD_LETTER_BODY_BYTES]),
            "records": list(records),
        }
        await asyncio.to_thread(
            self._dead_letter, json.dumps(line, default=_to_json, ensure_ascii=False)
        )
        reason = f"HTTP {answer.status}: {self._endpoint.excerpt(answer.body)}"
        logger.warning(
            "POST %s refused batch %s (%s); dead-lettered", self._endpoint.shown, batch_id, reason
        )
        return WriteResult(written=0, rejected=[(i, reason) for i in range(len(records))])

    def _dead_letter(self, line: str) -> None:
        path = Path(self.config["dead_letter"])
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as file:
            file.write(line + "\n")
            file.flush()
            os.fsync(file.fileno())
