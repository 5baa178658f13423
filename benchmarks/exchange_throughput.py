"""End-to-end throughput of the gateway, compared with a floor measured in the same run.

Usage::

    python benchmarks/exchange_throughput.py [--records N] [--batch-sizes 1,100,1000] [--quick]

For every batch size two cases run over the same deterministic records:

gateway
    A real gateway (``exchange.server.Gateway.start``) in a process of its own, over a
    fresh data directory (plaintext, metrics off). The catalog is set up over gRPC: two
    departments, a publishing system with an Ed25519 key, a receiving system, a resource
    with a realistic schema and a grant. Then a publisher process
    (``adapters.publisher.Publisher``: encode, sign, stream with bounded in-flight) and a
    subscriber process (``adapters.subscriber.Subscriber``: verify the gateway's and the
    publisher's signatures, decode, ack) run concurrently. Timed from just before the
    first record is encoded to the later of "every publish acknowledged" and "the
    subscriber handled (and acked) the last record".

floor
    What the same records cost with no gateway logic at all: a client process that
    encodes (fastavro ``schemaless_writer``), hashes and signs
    (``envelope.digest.batch_digest`` + Ed25519) and streams ``RecordBatch`` messages
    with the same in-flight bound over a bare ``grpc.aio`` bidi stream, to a server
    process whose ``Publish`` verifies the signature, decodes every record against a
    parsed schema, appends the serialized batch to a SQLite WAL database with
    ``synchronous=FULL`` (one transaction per batch, in a writer thread so that decoding
    the next batch overlaps the commit) and acks. Timed from just before the first record
    is encoded to the last ack received.

Both sides encode inside the timed region, use spawned processes for client and server,
and generate the record dicts before the clock starts. The gateway case has one more
process (the subscriber) and the whole delivery path on top of the floor's work: the
ratio says what the gateway costs over the bare minimum of the publish path.

Every run also reports the CPU seconds of each process (``cpu_us_per_record`` summed
over the case's processes) and how busy the whole machine was. ``cpu_ratio`` (floor CPU
per record / gateway-case CPU per record) is what the ratio tends to when both cases
are CPU-bound on the same cores; it is much less sensitive to other load on the machine
than the wall-clock ratio, so compare the two before trusting a single run.

Options worth knowing: ``--repeat R`` (medians of R interleaved runs),
``--with-publish-only`` (also time the gateway with no subscriber: the floor's process
count and end condition, isolating the publish path), ``--only gateway|floor``, and
``--profile-dir DIR`` (one cProfile file per child process). For native-aware sampling::

    py-spy record --subprocesses --format raw -o gateway.txt -- \
        python benchmarks/exchange_throughput.py --only gateway --batch-sizes 1000

``--shape jetstream`` runs the scaled-out shape instead (catalog and ledger on
PostgreSQL, record log on NATS JetStream, one and two gateway replicas, against bare
JetStream): see ``benchmarks/scaleout_throughput.py``.

One JSON document goes to stdout; progress goes to stderr. The exit status is 0 whatever
the ratio; it is non-zero only when something failed (a process died, a wait timed out,
a record was not delivered or stored).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime
import gc
import io
import json
import multiprocessing
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from queue import Empty
from typing import Any

TARGET_RATIO = 0.7
DEFAULT_BATCH_SIZES = (1, 100, 1000)
SHAPES = ("sqlite", "jetstream")
REFERENCE_BATCH_SIZE = 1000
DEFAULT_RECORDS = {1: 3_000, 100: 50_000, 1000: 200_000}
QUICK_SCALE = 0.02
RESOURCE = "PSB-RESIDENT-BENCH"
PUBLISHER_SYSTEM = "PSB-HUKOU"
SUBSCRIBER_SYSTEM = "CIVIL-AFFAIRS"
MAX_MESSAGE_BYTES = 64 << 20
SETTLE_SECONDS = 0.3  # lets the subscriber open its stream before the clock starts

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


def default_records(batch_size: int) -> int:
    """Record count of a batch size before scaling."""
    if batch_size in DEFAULT_RECORDS:
        return DEFAULT_RECORDS[batch_size]
    return min(200_000, max(3_000, 200 * batch_size))


def records_for(batch_size: int, scale: float) -> int:
    """Record count of a batch size after scaling (at least one record)."""
    return max(1, round(default_records(batch_size) * scale))


def now_ns() -> int:
    """The benchmark's clock: CLOCK_MONOTONIC, comparable across processes on Linux."""
    return time.monotonic_ns()


# --------------------------------------------------------------------------- processes


class SignedBatches:
    """What a floor client does per batch, as a publisher would: encode the records with
    fastavro, hash the batch (``envelope.digest``) and sign it with Ed25519."""

    def __init__(self, key_path: str, schema_json: str) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from fastavro import parse_schema, schemaless_writer
        from google.protobuf.timestamp_pb2 import Timestamp

        from envelope.digest import digest_of_batch
        from envelope.schemas import parse as parse_catalog_schema
        from envelope.signing import key_id_of
        from exchange.v1 import exchange_pb2

        # bound once: the per-batch methods are the timed work
        self._write, self._timestamp = schemaless_writer, Timestamp
        self._digest, self._batch = digest_of_batch, exchange_pb2.RecordBatch
        private = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
        assert isinstance(private, Ed25519PrivateKey)
        self._private = private
        self.key_id = key_id_of(
            private.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        )
        definition = json.loads(schema_json)
        self._parsed = parse_schema(definition)
        self.fingerprint = parse_catalog_schema(definition).fingerprint

    def encode(self, rows: Iterable[dict[str, Any]]) -> list[bytes]:
        """The Avro binary encoding of each row."""
        out = []
        for row in rows:
            buffer = io.BytesIO()
            self._write(buffer, self._parsed, row)
            out.append(buffer.getvalue())
        return out

    def batch(self, rows: Iterable[dict[str, Any]], this_id: str, sequence: int) -> Any:
        """A signed ``RecordBatch`` of the rows, created now."""
        created = self._timestamp()
        created.GetCurrentTime()
        batch = self._batch(
            resource=RESOURCE,
            schema_fingerprint=self.fingerprint,
            batch_id=this_id,
            sequence=sequence,
            create_time=created,
            records=self.encode(rows),
            signing_key_id=self.key_id,
        )
        batch.signature = self._private.sign(self._digest(batch))
        return batch


def verified_rows(batch: Any, key: Any, parsed: Any) -> list[Any]:
    """What a floor receiver does per batch: verify the publisher's signature over the
    batch digest, then decode every record (no trailing bytes)."""
    from fastavro import schemaless_reader

    from envelope.digest import digest_of_batch

    key.verify(batch.signature, digest_of_batch(batch))
    rows = []
    for record in batch.records:
        buffer = io.BytesIO(record)
        rows.append(schemaless_reader(buffer, parsed, None))
        if buffer.tell() != len(record):
            raise ValueError("trailing bytes after a record")
    return rows


class ChildFailed(RuntimeError):
    """A child process reported an error, died, or did not answer in time."""


def _orphaned(parent_pid: int) -> bool:
    return os.getppid() != parent_pid


async def _wait_mp_event(event: Any, limit_seconds: float, parent_pid: int) -> bool:
    """Waits for a multiprocessing event without blocking the loop; False on time-out."""
    deadline = time.monotonic() + limit_seconds
    while not event.is_set():
        if time.monotonic() > deadline or _orphaned(parent_pid):
            return False
        await asyncio.sleep(0.05)
    return True


def _child_main(
    role: str,
    entry: Callable[..., None],
    kwargs: dict[str, Any],
    queue: Any,
    profile_path: str | None,
) -> None:
    """Entry point of every child: runs ``entry``, reports any failure on the queue."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when children end
    profiler = cProfile.Profile() if profile_path else None
    try:
        if profiler is not None:
            profiler.enable()
        try:
            entry(queue=queue, **kwargs)
        finally:
            if profiler is not None and profile_path:
                profiler.disable()
                profiler.dump_stats(profile_path)
    except BaseException:
        queue.put((role, "error", traceback.format_exc()))
        raise SystemExit(1) from None


# ------------------------------------------------------------------- gateway processes


def role_gateway(
    *,
    queue: Any,
    stop: Any,
    data_dir: str,
    parent_pid: int,
    overrides: dict[str, Any] | None = None,
    name: str = "gateway",
) -> None:
    """Runs a real gateway until ``stop`` is set; reports its target and key.

    ``overrides`` are more settings (the JetStream shape passes ``database_url`` and
    ``log_url``); ``name`` is the role its messages are sent as.
    """
    from exchange.server import Gateway
    from exchange.settings import Settings

    settings = Settings.load(
        {
            "data_dir": data_dir,
            "listen": "127.0.0.1:0",
            "metrics_listen": "",
            "insecure": True,
            **(overrides or {}),
        },
        env={},
    )

    async def main() -> None:
        gateway = await Gateway.start(settings)
        try:
            queue.put(
                (
                    name,
                    "ready",
                    {"target": gateway.target, "gateway_key": gateway.signer.public_key},
                )
            )
            await _wait_mp_event(stop, float("inf"), parent_pid)
        finally:
            await gateway.stop(0.5)
        queue.put((name, "done", {}))

    asyncio.run(main())


def role_publisher(
    *,
    queue: Any,
    go: Any,
    target: str,
    token: str,
    key_path: str,
    schema_json: str,
    batch_size: int,
    records: int,
    in_flight: int,
    tag: str,
    timeout: float,
    parent_pid: int,
    resource: str = RESOURCE,
    name: str = "publisher",
) -> None:
    """Publishes the run's records with the SDK's Publisher; reports times and acks.

    ``name`` is the role its messages are sent as (one per lane in the JetStream shape).
    """
    from adapters.publisher import Publisher, encode_records
    from envelope.signing import Ed25519Signer

    rows = make_records(records)
    gc.freeze()  # the pre-built rows are not the adapter's garbage: keep them out of GC scans
    signer = Ed25519Signer.from_file(key_path)

    async def main() -> dict[str, Any]:
        publisher = Publisher(
            target, token, signer, insecure=True, max_in_flight=in_flight, retry_seconds=30
        )
        parsed = publisher.schema(schema_json)
        queue.put((name, "ready", {}))
        if not await _wait_mp_event(go, timeout, parent_pid):
            raise TimeoutError("the publisher was never told to start")
        started, cpu_started = now_ns(), time.process_time()
        futures = []
        for index, (start, end) in enumerate(batch_bounds(records, batch_size)):
            batch = publisher.build(
                resource, parsed, encode_records(parsed, rows[start:end]), batch_id(tag, index)
            )
            futures.append(await publisher.send(batch))
        acks = await asyncio.wait_for(asyncio.gather(*futures), timeout)
        acked, cpu = now_ns(), time.process_time() - cpu_started
        await asyncio.wait_for(publisher.close(), 30)
        offsets = [ack.offset for ack in acks]
        problems = []
        if any(ack.duplicate for ack in acks):
            problems.append("the gateway acknowledged some batches as duplicates")
        if offsets != sorted(set(offsets)):
            problems.append("acknowledged offsets are not strictly increasing")
        return {
            "started_ns": started,
            "acked_ns": acked,
            "acks": len(acks),
            "cpu_seconds": cpu,
            "problems": problems,
        }

    queue.put((name, "done", asyncio.run(main())))


@dataclass
class _Delivered:
    """What the subscriber saw (checked after the clock stops)."""

    expected: int
    records: int = 0
    batches: dict[int, tuple[int, str, str, bool]] = field(default_factory=dict)
    foreign: int = 0
    finished_ns: int = 0
    cpu_seconds: float = 0.0


def role_subscriber(
    *,
    queue: Any,
    target: str,
    token: str,
    gateway_key: bytes,
    batch_size: int,
    records: int,
    in_flight: int,
    tag: str,
    timeout: float,
    parent_pid: int,
    decode: bool,
    resource: str = RESOURCE,
    name: str = "subscriber",
) -> None:
    """Receives every record with the SDK's Subscriber; reports when the last one was acked.

    The SDK verifies the gateway's countersignature and the publisher's signature over
    the hash of every record before the handler runs. With ``decode`` the handler reads
    ``received.records`` (every record decoded, as a sink writing rows would); without it
    the handler decodes only the first and last record to check the batch's identity (as
    a sink storing the Avro as delivered would). ``name`` is the role its messages are
    sent as (one per lane in the JetStream shape).
    """
    from fastavro import schemaless_reader

    from adapters.subscriber import ReceivedBatch, Subscriber

    def identity(received: ReceivedBatch) -> tuple[int, str, str]:
        if decode:
            rows = received.records
            return (
                len(rows),
                rows[0]["id_number"] if rows else "",
                (rows[-1]["id_number"] if rows else ""),
            )
        raw = received.raw_records
        if not raw:
            return 0, "", ""
        parsed = received.schema.parsed
        first: Any = schemaless_reader(io.BytesIO(raw[0]), parsed, None)
        last: Any = schemaless_reader(io.BytesIO(raw[-1]), parsed, None)
        return len(raw), first["id_number"], last["id_number"]

    bounds = batch_bounds(records, batch_size)
    seen = _Delivered(expected=records)

    async def main() -> dict[str, Any]:
        subscriber = Subscriber(
            target,
            token,
            resource,
            subscription=f"bench-{tag}",
            max_in_flight=in_flight,
            gateway_public_key=gateway_key,
            insecure=True,
            retry_seconds=30,
        )
        complete = asyncio.Event()

        def handle(received: ReceivedBatch) -> None:
            index = batch_index(tag, received.batch_id)
            if index is None:
                seen.foreign += 1
                return
            if index in seen.batches:
                return  # delivered again (idempotent sink)
            count, first, last = identity(received)
            seen.batches[index] = (count, first, last, received.provider_verified)
            seen.records += count
            if seen.records >= seen.expected and not complete.is_set():
                seen.finished_ns = now_ns()
                seen.cpu_seconds = time.process_time() - cpu_started
                complete.set()

        cpu_started = time.process_time()  # idle until the first batch arrives
        queue.put((name, "ready", {}))
        runner = asyncio.create_task(subscriber.run(handle))
        waiter = asyncio.create_task(complete.wait())
        deadline = time.monotonic() + timeout
        while not complete.is_set():
            if runner.done():
                runner.result()  # raises the subscriber's error
                raise RuntimeError("the subscription ended before every record arrived")
            if time.monotonic() > deadline or _orphaned(parent_pid):
                raise TimeoutError(
                    f"the subscriber received {seen.records} of {records} records in time"
                )
            await asyncio.wait({runner, waiter}, timeout=0.5, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.sleep(0.2)  # the last ack goes out
        subscriber.stop()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(runner, 10)
        waiter.cancel()
        await subscriber.close()
        problems = _check_delivery(seen, bounds, tag)
        return {
            "finished_ns": seen.finished_ns,
            "records": seen.records,
            "batches": len(seen.batches),
            "cpu_seconds": seen.cpu_seconds,
            "problems": problems,
        }

    queue.put((name, "done", asyncio.run(main())))


def _check_delivery(seen: _Delivered, bounds: list[tuple[int, int]], tag: str) -> list[str]:
    """Every batch arrived once, whole, in its records' order, with both signatures checked."""
    problems = []
    if seen.foreign:
        problems.append(f"{seen.foreign} delivered batches belong to no batch of run {tag}")
    if seen.records != bounds[-1][1]:
        problems.append(f"delivered {seen.records} records, expected {bounds[-1][1]}")
    missing = [i for i in range(len(bounds)) if i not in seen.batches]
    if missing:
        problems.append(f"{len(missing)} batches never delivered, e.g. {missing[:5]}")
    for index, (count, first, last, verified) in sorted(seen.batches.items()):
        if index >= len(bounds):
            problems.append(f"unexpected batch index {index}")
            continue
        start, end = bounds[index]
        if count != end - start or first != id_number(start) or last != id_number(end - 1):
            problems.append(f"batch {index} arrived with other records than were published")
        if not verified:
            problems.append(f"batch {index}: the publisher's signature was not verified")
        if len(problems) > 10:
            break
    return problems


# --------------------------------------------------------------------- floor processes


def role_floor_server(
    *,
    queue: Any,
    stop: Any,
    db_path: str,
    public_key: bytes,
    schema_json: str,
    parent_pid: int,
) -> None:
    """A bare Publish servicer: verify, decode, append (WAL, synchronous=FULL), ack."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from google.protobuf.timestamp_pb2 import Timestamp

    from catalog import schemas
    from exchange.v1 import exchange_pb2, exchange_pb2_grpc

    key = Ed25519PublicKey.from_public_bytes(public_key)
    parsed = schemas.parse(schema_json).parsed  # what the gateway decodes with
    conn = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE batches (position INTEGER PRIMARY KEY, batch_id TEXT NOT NULL, "
        "payload BLOB NOT NULL)"
    )
    writer = ThreadPoolExecutor(1, thread_name_prefix="floor-writer")
    counts = {"batches": 0, "records": 0}

    def store(batch_id_: str, payload: bytes) -> tuple[int, int]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            cursor = conn.execute(
                "INSERT INTO batches (batch_id, payload) VALUES (?, ?)", (batch_id_, payload)
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return int(cursor.lastrowid or 0), time.time_ns()

    class FloorServicer(exchange_pb2_grpc.ExchangeServiceServicer):
        async def Publish(self, request_iterator: Any, context: Any) -> Any:
            loop = asyncio.get_running_loop()
            pending: asyncio.Queue[tuple[str, Any] | BaseException | None] = asyncio.Queue()

            async def intake() -> None:
                try:
                    async for request in request_iterator:
                        batch = request.batch
                        counts["records"] += len(verified_rows(batch, key, parsed))
                        payload = batch.SerializeToString()
                        future = loop.run_in_executor(writer, store, batch.batch_id, payload)
                        pending.put_nowait((batch.batch_id, future))
                    pending.put_nowait(None)
                except Exception as exc:
                    pending.put_nowait(exc)

            task = asyncio.create_task(intake())
            try:
                while True:
                    item = await pending.get()
                    if item is None:
                        return
                    if isinstance(item, BaseException):
                        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, repr(item))
                        return
                    acked_id, future = item
                    offset, stored_ns = await future
                    counts["batches"] += 1
                    durable = Timestamp()
                    durable.FromNanoseconds(stored_ns)
                    yield exchange_pb2.PublishResponse(
                        batch_id=acked_id, offset=offset, durable_time=durable
                    )
            finally:
                task.cancel()

    async def main() -> None:
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ]
        )
        exchange_pb2_grpc.add_ExchangeServiceServicer_to_server(FloorServicer(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            queue.put(("floor_server", "ready", {"target": f"127.0.0.1:{port}"}))
            await _wait_mp_event(stop, float("inf"), parent_pid)
        finally:
            await server.stop(0.5)
            writer.shutdown(wait=True)
            conn.close()
        queue.put(("floor_server", "done", dict(counts)))

    asyncio.run(main())


def role_floor_client(
    *,
    queue: Any,
    go: Any,
    target: str,
    key_path: str,
    schema_json: str,
    batch_size: int,
    records: int,
    in_flight: int,
    tag: str,
    timeout: float,
    parent_pid: int,
) -> None:
    """Encodes, hashes, signs and streams the run's records over a bare bidi stream."""
    import grpc

    from exchange.v1 import exchange_pb2, exchange_pb2_grpc

    rows = make_records(records)
    gc.freeze()  # the pre-built rows are not the adapter's garbage: keep them out of GC scans
    signed = SignedBatches(key_path, schema_json)
    bounds = batch_bounds(records, batch_size)

    async def main() -> dict[str, Any]:
        channel = grpc.aio.insecure_channel(
            target,
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
        slots = asyncio.Semaphore(in_flight)
        queue.put(("floor_client", "ready", {}))
        if not await _wait_mp_event(go, timeout, parent_pid):
            raise TimeoutError("the floor client was never told to start")
        started, cpu_started = now_ns(), time.process_time()
        call = stub.Publish()
        sequence = time.time_ns() // 1000

        async def write() -> None:
            for index, (start, end) in enumerate(bounds):
                batch = signed.batch(rows[start:end], batch_id(tag, index), sequence + index)
                await slots.acquire()
                await call.write(exchange_pb2.PublishRequest(batch=batch))
            await call.done_writing()

        writer = asyncio.create_task(write())
        acks = 0
        problems = []

        async def read() -> None:
            nonlocal acks
            async for response in call:
                if response.batch_id != batch_id(tag, acks):
                    problems.append(f"ack {acks} is for {response.batch_id}")
                acks += 1
                slots.release()

        try:
            await asyncio.wait_for(read(), timeout)
            finished, cpu = now_ns(), time.process_time() - cpu_started
            await asyncio.wait_for(writer, 10)
        finally:
            writer.cancel()
            call.cancel()
            await channel.close()
        if acks != len(bounds):
            problems.append(f"received {acks} acks for {len(bounds)} batches")
        return {
            "started_ns": started,
            "finished_ns": finished,
            "acks": acks,
            "cpu_seconds": cpu,
            "problems": problems,
        }

    queue.put(("floor_client", "done", asyncio.run(main())))


# ------------------------------------------------------------------------- the parent


@dataclass
class RunConfig:
    """What every shape of the benchmark was asked to run (:func:`add_run_arguments`,
    :func:`add_output_arguments`)."""

    batch_sizes: list[int]
    records: dict[int, int]
    in_flight: int
    subscriber_in_flight: int
    repeat: int
    timeout: float
    profile_dir: Path | None
    work_root: Path


@dataclass
class Config(RunConfig):
    """What the parent was asked to run."""

    only: str | None
    publish_only: bool
    subscriber_decodes: bool


class Children:
    """The child processes of one case: started by spawn, always reaped."""

    def __init__(self, context: Any, profile_dir: Path | None, label: str) -> None:
        self.context = context
        self.queue = context.Queue()
        self.processes: dict[str, Any] = {}
        self.messages: dict[tuple[str, str], Any] = {}
        self.profile_dir = profile_dir
        self.label = label

    def event(self) -> Any:
        """A fresh multiprocessing event."""
        return self.context.Event()

    def start(self, role: str, entry: Callable[..., None], **kwargs: Any) -> None:
        """Starts ``entry`` in a spawned process named ``role``."""
        profile = None
        if self.profile_dir is not None:
            profile = str(self.profile_dir / f"{self.label}-{role}.prof")
        kwargs["parent_pid"] = os.getpid()
        process = self.context.Process(
            target=_child_main,
            args=(role, entry, kwargs, self.queue, profile),
            name=f"bench-{role}",
            # not daemonic: the gateway starts worker processes of its own (its record
            # checkers); close() ends every child, and each child watches parent_pid
            daemon=False,
        )
        process.start()
        self.processes[role] = process

    def expect(self, role: str, kind: str, timeout: float) -> Any:
        """Waits for message ``kind`` from ``role``; raises on errors, deaths and timeouts."""
        deadline = time.monotonic() + timeout
        while (role, kind) not in self.messages:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChildFailed(f"{self.label}: no '{kind}' from the {role} in {timeout:.0f} s")
            try:
                sender, what, payload = self.queue.get(timeout=min(0.5, remaining))
            except Empty:
                self._check_alive()
                continue
            if what == "error":
                raise ChildFailed(f"{self.label}: the {sender} failed:\n{payload}")
            self.messages[(sender, what)] = payload
        return self.messages[(role, kind)]

    def _check_alive(self) -> None:
        for role, process in self.processes.items():
            if process.exitcode not in (None, 0):
                raise ChildFailed(
                    f"{self.label}: the {role} process died with exit code {process.exitcode}"
                )

    def cpu_seconds(self, role: str) -> float | None:
        """User+system CPU seconds used so far by a running child (Linux; else None)."""
        process = self.processes[role]
        try:
            raw = Path(f"/proc/{process.pid}/stat").read_text()
        except OSError:
            return None
        fields = raw.rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks + _descendants_cpu(process.pid)

    def close(self, grace: float = 5.0) -> None:
        """Ends every child still running: waits ``grace`` seconds in all, then
        terminates, then kills."""
        deadline = time.monotonic() + grace
        for process in self.processes.values():
            process.join(timeout=max(0.0, deadline - time.monotonic()))
        for process in self.processes.values():
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        self.queue.close()
        self.queue.join_thread()


def _descendants_cpu(pid: int) -> float:
    """CPU seconds of a process's running descendants (the gateway's record-check
    workers and their fork server), read from /proc; 0 where that is not possible."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                try:
                    raw = Path(f"/proc/{child}/stat").read_text()
                except OSError:
                    continue
                fields = raw.rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / ticks
                pending.append(child)
    return total


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _rate(records: int, started_ns: int, finished_ns: int) -> tuple[float, float]:
    seconds = max(finished_ns - started_ns, 1) / 1e9
    return seconds, round(records / seconds, 1)


def _cpu_used(before: float | None, after: float | None) -> float | None:
    return round(after - before, 3) if before is not None and after is not None else None


def _system_ticks() -> tuple[int, int] | None:
    """(all, idle) CPU ticks of the whole machine so far (Linux; else None)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(values), values[3] + values[4]


def _machine_busy(before: tuple[int, int] | None) -> float | None:
    """Fraction of all cores busy (anyone's processes) since ``before``."""
    after = _system_ticks()
    if before is None or after is None or after[0] == before[0]:
        return None
    return round(1 - (after[1] - before[1]) / (after[0] - before[0]), 3)


def _cpu_per_record(cpu: dict[str, float | None], records: int) -> float | None:
    """CPU microseconds per record summed over the case's processes (None if unknown)."""
    if any(v is None for v in cpu.values()):
        return None
    return round(sum(v for v in cpu.values() if v is not None) / records * 1e6, 2)


def lane_names(lane: int) -> tuple[str, str, str]:
    """(resource, publishing system, receiving system) of lane ``lane``.

    Lane 0 is the default shape's world; the JetStream shape adds lanes 1.. so that
    every replica has a publisher and a subscriber of its own.
    """
    if lane == 0:
        return RESOURCE, PUBLISHER_SYSTEM, SUBSCRIBER_SYSTEM
    suffix = f"-{lane + 1}"
    return RESOURCE + suffix, PUBLISHER_SYSTEM + suffix, SUBSCRIBER_SYSTEM + suffix


def _setup_catalog(target: str, data_dir: Path) -> tuple[str, str, Any]:
    """Creates the world over gRPC; returns (publisher token, subscriber token, signer)."""
    from exchange.settings import Settings

    settings = Settings.load({"data_dir": data_dir}, env={})
    return setup_lanes(target, settings.catalog_url, 1)[0]


def setup_lanes(target: str, catalog_url: str, lanes: int) -> list[tuple[str, str, Any]]:
    """Creates the world over gRPC: two departments and, per lane (see
    :func:`lane_names`), a publishing system with an Ed25519 key, a receiving system, a
    resource and a grant. Returns (publisher token, subscriber token, signer) per lane."""
    from adapters.connection import auth_metadata, open_blocking_channel
    from catalog.credentials import issue_token
    from catalog.db import open_catalog
    from catalog.models import Role
    from catalog.v1 import catalog_pb2 as pb
    from catalog.v1 import catalog_pb2_grpc
    from envelope.signing import Ed25519Signer

    sessions = open_catalog(catalog_url)

    def token(name: str, role: Role, system: str | None = None) -> str:
        with sessions() as session:
            return str(issue_token(session, name=name, role=role, system=system))

    try:
        admin = auth_metadata(token("bench-admin", Role.ADMINISTRATOR))
        channel = open_blocking_channel(target, insecure=True, quiet=True)
        stub = catalog_pb2_grpc.CatalogServiceStub(channel)
        for code, name, region in (
            ("PSB", "成都市公安局 Public Security Bureau", "510100"),
            ("CIVIL", "成都市民政局 Civil Affairs Bureau", "510100"),
        ):
            stub.CreateDepartment(
                pb.CreateDepartmentRequest(
                    department=pb.Department(
                        code=code,
                        name=name,
                        level=pb.ADMINISTRATIVE_LEVEL_CITY,
                        region_code=region,
                    )
                ),
                metadata=admin,
                timeout=30,
            )
        out = []
        for lane in range(lanes):
            resource, publisher_system, subscriber_system = lane_names(lane)
            signer = Ed25519Signer.generate()
            for code, department, keys in (
                (publisher_system, "PSB", [pb.SigningKey(public_key=signer.public_key)]),
                (subscriber_system, "CIVIL", []),
            ):
                stub.CreateSystem(
                    pb.CreateSystemRequest(
                        system=pb.System(
                            code=code,
                            name=f"{code} system",
                            department=department,
                            signing_keys=keys,
                        )
                    ),
                    metadata=admin,
                    timeout=30,
                )
            created = stub.CreateResource(
                pb.CreateResourceRequest(
                    resource=pb.Resource(
                        code=resource,
                        name="户籍人口 Registered residents",
                        owner_department="PSB",
                        summary="Residents registered in the city, for benefit eligibility checks",
                        format="database",
                        sharing_type=pb.SHARING_TYPE_CONDITIONAL,
                        sharing_conditions="for social assistance eligibility",
                        classification=pb.CLASSIFICATION_GENERAL,
                        update_cycle="real-time",
                        key_fields=["id_number"],
                        region_field="region_code",
                        fields=[
                            pb.FieldSpec(name="id_number", sensitivity=pb.SENSITIVITY_ID_NUMBER),
                            pb.FieldSpec(name="name", sensitivity=pb.SENSITIVITY_NAME),
                            pb.FieldSpec(name="phone", sensitivity=pb.SENSITIVITY_PHONE),
                            pb.FieldSpec(name="address", sensitivity=pb.SENSITIVITY_ADDRESS),
                        ],
                    ),
                    schema=json.dumps(RESIDENT_SCHEMA, ensure_ascii=False),
                ),
                metadata=admin,
                timeout=30,
            )
            stub.CreateGrant(
                pb.CreateGrantRequest(
                    grant=pb.Grant(
                        resource=resource,
                        grantee_system=subscriber_system,
                        clear_fields=[
                            f.name
                            for f in created.resource.fields
                            if f.sensitivity != pb.SENSITIVITY_NONE
                        ],
                    )
                ),
                metadata=admin,
                timeout=30,
            )
            out.append(
                (
                    token(publisher_system, Role.SYSTEM, publisher_system),
                    token(subscriber_system, Role.SYSTEM, subscriber_system),
                    signer,
                )
            )
        channel.close()
        return out
    finally:
        sessions.kw["bind"].dispose()


def _count_rows(db_path: Path, query: str) -> tuple[int, ...]:
    conn = sqlite3.connect(db_path)
    try:
        return tuple(int(v or 0) for v in conn.execute(query).fetchone())
    finally:
        conn.close()


def run_gateway_case(
    context: Any,
    config: Config,
    batch_size: int,
    records: int,
    run_dir: Path,
    label: str,
    *,
    subscribe: bool = True,
) -> dict[str, Any]:
    """Gateway, publisher and subscriber processes; returns timings and CPU use.

    With ``subscribe=False`` (a diagnostic) there is no subscriber: the case ends when
    every publish is acknowledged, so it has the floor's two processes and work split.
    """
    name = "gateway" if subscribe else "gateway-publish-only"
    data_dir = run_dir / name
    schema_json = json.dumps(RESIDENT_SCHEMA, ensure_ascii=False)
    children = Children(context, config.profile_dir, f"{label}-{name}")
    stop, go = children.event(), children.event()
    finished_cleanly = False
    try:
        children.start("gateway", role_gateway, stop=stop, data_dir=str(data_dir))
        ready = children.expect("gateway", "ready", 120)
        target = ready["target"]
        publisher_token, subscriber_token, signer = _setup_catalog(target, data_dir)
        key_path = run_dir / f"{name}-publisher-signing-key.pem"
        signer.save(key_path)
        common = {
            "target": target,
            "batch_size": batch_size,
            "records": records,
            "tag": f"g{label}",
            "timeout": config.timeout,
        }
        if subscribe:
            children.start(
                "subscriber",
                role_subscriber,
                token=subscriber_token,
                gateway_key=ready["gateway_key"],
                in_flight=config.subscriber_in_flight,
                decode=config.subscriber_decodes,
                **common,
            )
        children.start(
            "publisher",
            role_publisher,
            go=go,
            token=publisher_token,
            key_path=str(key_path),
            schema_json=schema_json,
            in_flight=config.in_flight,
            **common,
        )
        if subscribe:
            children.expect("subscriber", "ready", 120)
        children.expect("publisher", "ready", 120)
        time.sleep(SETTLE_SECONDS)
        cpu_before, machine_before = children.cpu_seconds("gateway"), _system_ticks()
        go.set()
        published = children.expect("publisher", "done", config.timeout + 60)
        delivered: dict[str, Any] = {"finished_ns": 0, "records": None, "problems": []}
        if subscribe:
            delivered = children.expect("subscriber", "done", config.timeout + 60)
        cpu = {
            "gateway": _cpu_used(cpu_before, children.cpu_seconds("gateway")),
            "publisher": round(published["cpu_seconds"], 3),
        }
        if subscribe:
            cpu["subscriber"] = round(delivered["cpu_seconds"], 3)
        machine_busy = _machine_busy(machine_before)
        stop.set()
        children.expect("gateway", "done", 60)
        finished_cleanly = True
    finally:
        stop.set()
        children.close(grace=5.0 if finished_cleanly else 0.5)
    problems = [*published["problems"], *delivered["problems"]]
    batches = len(batch_bounds(records, batch_size))
    if published["acks"] != batches:
        problems.append(f"the publisher got {published['acks']} acks for {batches} batches")
    stored_batches, stored_records = _count_rows(
        data_dir / "log.db", "SELECT count(*), sum(record_count) FROM batches"
    )
    if (stored_batches, stored_records) != (batches, records):
        problems.append(f"the log holds {stored_batches} batches / {stored_records} records")
    if problems:
        raise ChildFailed(f"{label} {name}: " + "; ".join(problems))
    finished = max(published["acked_ns"], delivered["finished_ns"])
    seconds, rate = _rate(records, published["started_ns"], finished)
    return {
        "seconds": round(seconds, 4),
        "records_per_second": rate,
        "publish_acked_seconds": round((published["acked_ns"] - published["started_ns"]) / 1e9, 4),
        "delivered_records": delivered["records"],
        "stored_records": stored_records,
        "cpu_seconds": cpu,
        "cpu_us_per_record": _cpu_per_record(cpu, records),
        "machine_busy_fraction": machine_busy,
    }


def run_floor_case(
    context: Any, config: Config, batch_size: int, records: int, run_dir: Path, label: str
) -> dict[str, Any]:
    """Floor server and client processes; returns timings and CPU use."""
    from envelope.signing import Ed25519Signer

    schema_json = json.dumps(RESIDENT_SCHEMA, ensure_ascii=False)
    floor_dir = run_dir / "floor"
    floor_dir.mkdir(parents=True)
    db_path = floor_dir / "floor.db"
    signer = Ed25519Signer.generate()
    key_path = floor_dir / "client-signing-key.pem"
    signer.save(key_path)
    children = Children(context, config.profile_dir, f"{label}-floor")
    stop, go = children.event(), children.event()
    finished_cleanly = False
    try:
        children.start(
            "floor_server",
            role_floor_server,
            stop=stop,
            db_path=str(db_path),
            public_key=signer.public_key,
            schema_json=schema_json,
        )
        target = children.expect("floor_server", "ready", 120)["target"]
        children.start(
            "floor_client",
            role_floor_client,
            go=go,
            target=target,
            key_path=str(key_path),
            schema_json=schema_json,
            batch_size=batch_size,
            records=records,
            in_flight=config.in_flight,
            tag=f"f{label}",
            timeout=config.timeout,
        )
        children.expect("floor_client", "ready", 120)
        time.sleep(SETTLE_SECONDS)
        cpu_before, machine_before = children.cpu_seconds("floor_server"), _system_ticks()
        go.set()
        client = children.expect("floor_client", "done", config.timeout + 60)
        cpu = {
            "floor_server": _cpu_used(cpu_before, children.cpu_seconds("floor_server")),
            "floor_client": round(client["cpu_seconds"], 3),
        }
        machine_busy = _machine_busy(machine_before)
        stop.set()
        server = children.expect("floor_server", "done", 60)
        finished_cleanly = True
    finally:
        stop.set()
        children.close(grace=5.0 if finished_cleanly else 0.5)
    problems = list(client["problems"])
    batches = len(batch_bounds(records, batch_size))
    if server["records"] != records or server["batches"] != batches:
        problems.append(
            f"the floor server decoded {server['records']} records and stored "
            f"{server['batches']} batches; expected {records} / {batches}"
        )
    (stored,) = _count_rows(db_path, "SELECT count(*) FROM batches")
    if stored != batches:
        problems.append(f"the floor database holds {stored} batches, expected {batches}")
    if problems:
        raise ChildFailed(f"{label} floor: " + "; ".join(problems))
    seconds, rate = _rate(records, client["started_ns"], client["finished_ns"])
    return {
        "seconds": round(seconds, 4),
        "records_per_second": rate,
        "acked_records": server["records"],
        "cpu_seconds": cpu,
        "cpu_us_per_record": _cpu_per_record(cpu, records),
        "machine_busy_fraction": machine_busy,
    }


def machine_info(work_root: Path) -> dict[str, Any]:
    """Where the numbers were measured."""
    from importlib import metadata

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    cpu_model = platform.processor() or None
    memory_mb = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_mb = int(line.split()[1]) // 1024
                break
    try:
        from google.protobuf.internal import api_implementation

        protobuf_impl: str | None = api_implementation.Type()
    except ImportError:
        protobuf_impl = None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "cpu_model": cpu_model,
        "memory_mb": memory_mb,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "grpcio": version("grpcio"),
        "protobuf": version("protobuf"),
        "protobuf_implementation": protobuf_impl,
        "fastavro": version("fastavro"),
        "cryptography": version("cryptography"),
        "sqlite": sqlite3.sqlite_version,
        "data_dir_root": str(work_root),
        "clock": "CLOCK_MONOTONIC (time.monotonic_ns), shared by all processes",
        "start_method": "spawn",
    }


def run(config: Config) -> dict[str, Any]:
    """Runs every case; returns the JSON document."""
    context = multiprocessing.get_context("spawn")
    results = []
    work = Path(tempfile.mkdtemp(prefix="lijiao-bench-", dir=config.work_root))
    try:
        for batch_size in config.batch_sizes:
            records = config.records[batch_size]
            gateway_runs: list[dict[str, Any]] = []
            floor_runs: list[dict[str, Any]] = []
            publish_only_runs: list[dict[str, Any]] = []
            for attempt in range(config.repeat):
                label = f"b{batch_size}-r{attempt}"
                run_dir = work / label
                run_dir.mkdir()
                if config.only in (None, "floor"):
                    _progress(f"floor   batch={batch_size} records={records} run={attempt}")
                    floor_runs.append(
                        run_floor_case(context, config, batch_size, records, run_dir, label)
                    )
                    _progress(f"  floor   {floor_runs[-1]['records_per_second']:,.0f} rec/s")
                if config.only in (None, "gateway"):
                    _progress(f"gateway batch={batch_size} records={records} run={attempt}")
                    gateway_runs.append(
                        run_gateway_case(context, config, batch_size, records, run_dir, label)
                    )
                    _progress(f"  gateway {gateway_runs[-1]['records_per_second']:,.0f} rec/s")
                if config.publish_only and config.only in (None, "gateway"):
                    _progress(f"gateway publish-only batch={batch_size} run={attempt}")
                    publish_only_runs.append(
                        run_gateway_case(
                            context, config, batch_size, records, run_dir, label, subscribe=False
                        )
                    )
                    rate = publish_only_runs[-1]["records_per_second"]
                    _progress(f"  gateway publish-only {rate:,.0f} rec/s")
                shutil.rmtree(run_dir, ignore_errors=True)
            results.append(
                _summarize(batch_size, records, gateway_runs, floor_runs, publish_only_runs)
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    at_reference = [r for r in results if r["batch_size"] == REFERENCE_BATCH_SIZE]
    meets = None
    if at_reference and at_reference[0]["ratio"] is not None:
        meets = at_reference[0]["ratio"] >= TARGET_RATIO
    return {
        "benchmark": "exchange_throughput",
        "machine": machine_info(config.work_root),
        "settings": {
            "publisher_in_flight": config.in_flight,
            "subscriber_in_flight": config.subscriber_in_flight,
            "repeat": config.repeat,
            "statistic": "median" if config.repeat > 1 else "single run",
            "profiled": config.profile_dir is not None,
            "synchronous": "FULL",
            "gateway_processes": ["gateway", "publisher", "subscriber"],
            "subscriber_work": (
                "verifies the gateway countersignature and the publisher signature over "
                "every record's hash, "
                + (
                    "decodes every record"
                    if config.subscriber_decodes
                    else "decodes the first and last record of each batch"
                )
                + ", acks"
            ),
            "floor_processes": ["floor_server", "floor_client"],
        },
        "results": results,
        "target_ratio": TARGET_RATIO,
        "meets_target_at_1000": meets,
    }


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _summarize(
    batch_size: int,
    records: int,
    gateway_runs: list[dict[str, Any]],
    floor_runs: list[dict[str, Any]],
    publish_only_runs: list[dict[str, Any]],
) -> dict[str, Any]:
    gateway = _median([r["records_per_second"] for r in gateway_runs])
    floor = _median([r["records_per_second"] for r in floor_runs])
    ratio = gateway / floor if gateway is not None and floor else None
    gateway_cpu = _median([r["cpu_us_per_record"] for r in gateway_runs if r["cpu_us_per_record"]])
    floor_cpu = _median([r["cpu_us_per_record"] for r in floor_runs if r["cpu_us_per_record"]])
    summary: dict[str, Any] = {
        "batch_size": batch_size,
        "records": records,
        "batches": len(batch_bounds(records, batch_size)),
        "gateway_records_per_second": round(gateway, 1) if gateway is not None else None,
        "floor_records_per_second": round(floor, 1) if floor is not None else None,
        "ratio": round(ratio, 4) if ratio is not None else None,
        "gateway_cpu_us_per_record": round(gateway_cpu, 2) if gateway_cpu else None,
        "floor_cpu_us_per_record": round(floor_cpu, 2) if floor_cpu else None,
        # What the ratio would be if both cases were purely CPU-bound on the same cores:
        # less sensitive to scheduling noise than the wall-clock ratio.
        "cpu_ratio": round(floor_cpu / gateway_cpu, 4) if gateway_cpu and floor_cpu else None,
        "all_delivered": all(r["delivered_records"] == records for r in gateway_runs)
        and all(r["acked_records"] == records for r in floor_runs),
        "gateway_runs": gateway_runs,
        "floor_runs": floor_runs,
    }
    if publish_only_runs:
        publish_only = _median([r["records_per_second"] for r in publish_only_runs])
        summary["gateway_publish_only_records_per_second"] = (
            round(publish_only, 1) if publish_only is not None else None
        )
        summary["publish_only_ratio"] = (
            round(publish_only / floor, 4) if publish_only is not None and floor else None
        )
        summary["gateway_publish_only_runs"] = publish_only_runs
    return summary


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every shape of the benchmark takes: how many records, in which batch
    sizes, how many in flight, how many runs, how long a case may take."""
    parser.add_argument(
        "--records",
        type=int,
        help=f"records at batch size {REFERENCE_BATCH_SIZE} (default 200000); other batch "
        "sizes keep their proportion (100: N/4, 1: 3N/200)",
    )
    parser.add_argument(
        "--batch-sizes",
        default=",".join(map(str, DEFAULT_BATCH_SIZES)),
        help="comma-separated batch sizes (default 1,100,1000)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"scale record counts by {QUICK_SCALE} (--records wins when both are given)",
    )
    parser.add_argument("--in-flight", type=int, default=8, help="publisher batches in flight")
    parser.add_argument(
        "--subscriber-in-flight", type=int, default=16, help="subscriber delivery window"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per case; reports medians")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds one case may take (default 600)"
    )


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Where every shape of the benchmark keeps its data and its profiles."""
    parser.add_argument(
        "--profile-dir", type=Path, help="write a cProfile file per child process here"
    )
    parser.add_argument(
        "--work-dir", type=Path, default=Path(tempfile.gettempdir()), help="temp data root"
    )


def checked_run_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> RunConfig:
    """Checks the options of :func:`add_run_arguments` (a usage error names the one to
    fix) and makes the profile directory; returns what they ask for: the batch sizes,
    each once, the records to send at each, and the rest as given."""
    try:
        sizes = [int(s) for s in args.batch_sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--batch-sizes takes comma-separated integers")
    if not sizes or any(s < 1 or s > 10_000 for s in sizes):
        parser.error("batch sizes must be 1..10000 (the gateway's default batch limit)")
    if args.records is not None and args.records < 1:
        parser.error("--records must be positive")
    if args.repeat < 1 or args.in_flight < 1 or not 1 <= args.subscriber_in_flight <= 1000:
        parser.error("--repeat and --in-flight must be positive, --subscriber-in-flight 1..1000")
    scale = 1.0
    if args.records is not None:
        scale = args.records / DEFAULT_RECORDS[REFERENCE_BATCH_SIZE]
    elif args.quick:
        scale = QUICK_SCALE
    if args.profile_dir is not None:
        args.profile_dir.mkdir(parents=True, exist_ok=True)
        args.profile_dir = args.profile_dir.resolve()
    return RunConfig(
        batch_sizes=list(dict.fromkeys(sizes)),
        records={size: records_for(size, scale) for size in sizes},
        in_flight=args.in_flight,
        subscriber_in_flight=args.subscriber_in_flight,
        repeat=args.repeat,
        timeout=args.timeout,
        profile_dir=args.profile_dir,
        work_root=args.work_dir,
    )


def parse_args(argv: list[str] | None = None) -> Config:
    """Reads the command line."""
    parser = argparse.ArgumentParser(
        description="Gateway end-to-end throughput versus a bare gRPC+SQLite floor.",
    )
    add_run_arguments(parser)
    parser.add_argument("--only", choices=("gateway", "floor"), help="run one side only")
    parser.add_argument(
        "--with-publish-only",
        action="store_true",
        help="diagnostic: also time the gateway with no subscriber (the floor's process count)",
    )
    parser.add_argument(
        "--subscriber-decodes",
        action="store_true",
        help="the subscriber's handler decodes every record (default: first and last only; "
        "signatures over every record are verified either way)",
    )
    add_output_arguments(parser)
    parser.add_argument(
        "--shape",
        choices=SHAPES,
        default="sqlite",
        help="sqlite (default): the embedded gateway against the gRPC+SQLite floor; "
        "jetstream: PostgreSQL + NATS JetStream with one and two replicas against bare "
        "JetStream (benchmarks/scaleout_throughput.py; its own options, see its --help)",
    )
    args = parser.parse_args(argv)
    return Config(
        **vars(checked_run_arguments(parser, args)),
        only=args.only,
        publish_only=args.with_publish_only,
        subscriber_decodes=args.subscriber_decodes,
    )


def _shape_of(argv: list[str] | None) -> tuple[str, list[str]]:
    """The ``--shape`` asked for, and the other arguments."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--shape", choices=SHAPES, default="sqlite")
    known, rest = pre.parse_known_args(sys.argv[1:] if argv is None else argv)
    return known.shape, rest


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark and prints its JSON document."""
    shape, rest = _shape_of(argv)
    if shape == "jetstream":
        here = str(Path(__file__).resolve().parent)
        if here not in sys.path:
            sys.path.insert(0, here)
        import scaleout_throughput

        return int(scaleout_throughput.main(rest))
    config = parse_args(argv)

    def terminate(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        document = run(config)
    except ChildFailed as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(document, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
