"""Throughput of the scaled-out shape: gateway replicas over PostgreSQL and NATS JetStream.

Usage::

    python benchmarks/scaleout_throughput.py [--records N] [--batch-sizes 1,100,1000] [--quick]
    python benchmarks/exchange_throughput.py --shape jetstream [same options]

It needs a PostgreSQL server and a NATS server with JetStream (``--postgres-url``,
``--nats-url``; by default ``LIJIAO_POSTGRES_URL`` / ``LIJIAO_NATS_URL`` or the local
ones the tests use). When either is unreachable it says so on stderr and exits with
status 3 without running anything.

For every batch size these cases run over the same deterministic records (the resident
schema and record generator of ``exchange_throughput.py``), interleaved when repeated:

bare_jetstream
    The floor: what the same records cost through JetStream with no gateway. A client
    process encodes them (fastavro), hashes and signs every batch like a publisher
    (``envelope.digest.batch_digest`` + Ed25519), serializes the ``RecordBatch`` and
    publishes it with nats-py ``publish_async`` (a ``Nats-Msg-Id`` header, as the gateway
    sets, so JetStream deduplicates the same way) to a fresh file-backed stream laid out
    as the gateway lays out its own, with the same in-flight bound as the publisher,
    released on each PubAck. A consumer process (durable pull consumer, explicit ack,
    ``max_ack_pending`` = the subscriber's delivery window) parses every batch, verifies
    the publisher's signature over the digest, decodes every record and acks. Timed from
    just before the first record is encoded to the later of "every publish acknowledged"
    and "the consumer handled (and acked) the last record".

gateway_1_replica, gateway_2_replicas
    Real gateways (``exchange.server.Gateway.start``), each in a process of its own over a
    data directory of its own, sharing a fresh PostgreSQL schema (catalog and ledger) and
    a fresh JetStream prefix (record log, cursors); the second replica starts with a copy
    of the first one's gateway signing key, so subscribers verify deliveries from either.
    The load is split into *lanes* (``--lanes``, default 2): lane *k* has a resource of
    its own (``PSB-RESIDENT-BENCH``, ``PSB-RESIDENT-BENCH-2``: the same stream, other
    subjects), a publishing system, a receiving system, one publisher process and one
    subscriber process, both connected to replica ``k mod replicas``. The batches are
    split between the lanes in contiguous halves. So the one- and two-replica cases run
    the very same client processes and work, and only the number of gateways differs;
    with two replicas each gateway serves one lane's publish and delivery path. The
    subscribers decode every record (as the bare consumer does) after the SDK verifies
    the gateway's and the publisher's signatures. Timed from the first lane's first
    encode to the last lane's last acknowledgement or handled record. Before the clock
    starts the case waits until the replicas' second start-up reconciliation (a shared
    log's, ``RECONCILE_SETTLE_SECONDS`` + 1 s after start) is behind them; the periodic
    passes after it belong to a running gateway and count when they fall into a run.

CPU: each case reports the CPU seconds of its own processes (``cpu_us_per_record``, as
the default shape does) and, when the services run on this machine and ``/proc`` shows
them, the CPU the NATS server and the PostgreSQL server (postmaster and every backend)
used meanwhile (``cpu_us_per_record_with_services``); those include anyone else's use
of the two servers, which ``machine_busy_fraction`` hints at. ``cpu_ratios`` divide the
floor's CPU per record (with services where known) by the gateway case's.

Everything the run makes in the servers (a schema per gateway case, a prefix per case:
streams and the cursor bucket) is removed when the case ends, and again at the end of
the run, also when a case fails or the run is interrupted.

One JSON document goes to stdout; progress goes to stderr. The exit status is 0 whatever
the ratios; 1 when something failed (a process died, a wait timed out, a record was not
delivered or stored), 3 when a service is unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import io
import json
import multiprocessing
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exchange_throughput import (
    RESIDENT_SCHEMA,
    RESOURCE,
    SETTLE_SECONDS,
    ChildFailed,
    Children,
    RunConfig,
    SignedBatches,
    _check_delivery,
    _cpu_per_record,
    _cpu_used,
    _Delivered,
    _machine_busy,
    _median,
    _orphaned,
    _progress,
    _rate,
    _system_ticks,
    _wait_mp_event,
    add_output_arguments,
    add_run_arguments,
    batch_bounds,
    batch_id,
    batch_index,
    checked_run_arguments,
    lane_names,
    machine_info,
    make_record,
    make_records,
    now_ns,
    role_gateway,
    role_publisher,
    role_subscriber,
    setup_lanes,
    verified_rows,
)

DEFAULT_LANES = 2
DEFAULT_CASES = ("bare", "1", "2")
EXIT_UNREACHABLE = 3
NATS_URL = os.environ.get("LIJIAO_NATS_URL", "nats://127.0.0.1:4222")
POSTGRES_URL = os.environ.get(
    "LIJIAO_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
FAMILY = "PSB"  # family of every lane's resource: one stream, as the gateway lays it out
HEADER_ROOM = 4096  # what the gateway keeps free of NATS's max_payload for headers


def case_key(case: str) -> str:
    """The JSON name of a case: ``bare`` or a replica count."""
    if case == "bare":
        return "bare_jetstream"
    replicas = int(case)
    return f"gateway_{replicas}_replica" + ("s" if replicas > 1 else "")


def lane_records(records: int, batch_size: int, lanes: int) -> list[int]:
    """Records of every lane: the batches split in contiguous, near-equal parts, so that
    only the last lane's last batch may be short (as in a single publisher's run)."""
    bounds = batch_bounds(records, batch_size)
    if len(bounds) < lanes:
        raise ValueError(
            f"{records} records in batches of {batch_size} make {len(bounds)} batches: "
            f"fewer than the {lanes} lanes"
        )
    out = []
    for lane in range(lanes):
        first, last = lane * len(bounds) // lanes, (lane + 1) * len(bounds) // lanes - 1
        out.append(bounds[last][1] - bounds[first][0])
    return out


# -------------------------------------------------------------------------- services


def _redacted(url: str) -> str:
    """A URL without its password."""
    import sqlalchemy as sa

    if "://" in url and url.split("://", 1)[0].startswith("postgres"):
        return sa.make_url(url).render_as_string(hide_password=True)
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rsplit('@', 1)[-1]}"


def check_services(nats_url: str, postgres_url: str) -> tuple[dict[str, Any] | None, str]:
    """What the servers say about themselves, or (None, why one is unreachable)."""
    import nats
    import sqlalchemy as sa

    info: dict[str, Any] = {
        "nats_url": _redacted(nats_url),
        "postgres_url": _redacted(postgres_url),
    }
    engine = sa.create_engine(postgres_url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            info["postgresql"] = connection.exec_driver_sql("SHOW server_version").scalar()
            info["postgresql_synchronous_commit"] = connection.exec_driver_sql(
                "SHOW synchronous_commit"
            ).scalar()
    except Exception as exc:
        reason = getattr(exc, "orig", None) or exc
        return None, f"PostgreSQL at {_redacted(postgres_url)} is unreachable: {reason}"
    finally:
        engine.dispose()

    errors: list[Exception] = []

    async def quiet(exc: Exception) -> None:
        errors.append(exc)  # reported once, below

    async def reach() -> None:
        # nats-py retries a first connection forever with max_reconnect_attempts 0 or
        # -1; with 1 it gives up after the second attempt (NoServersError)
        connection = await asyncio.wait_for(
            nats.connect(
                nats_url,
                connect_timeout=3,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.2,
                error_cb=quiet,
            ),
            15,
        )
        try:
            await connection.jetstream(timeout=5).account_info()
            version = connection.connected_server_version
            info["nats_server"] = f"{version.major}.{version.minor}.{version.patch}"
            info["nats_max_payload"] = connection.max_payload
        finally:
            await connection.close()

    try:
        asyncio.run(reach())
    except Exception as exc:
        reason = errors[-1] if errors else exc
        return None, f"NATS JetStream at {_redacted(nats_url)} is unreachable: {reason!r}"
    return info, ""


@dataclass
class Scratch:
    """What a run made in the servers, removed by :meth:`clean` (idempotent)."""

    nats_url: str
    postgres_url: str
    schemas: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)

    def schema(self) -> tuple[str, str]:
        """A fresh schema: (name, database URL whose search path is that schema)."""
        import sqlalchemy as sa

        name = f"lijiao_bench_{secrets.token_hex(6)}"
        engine = sa.create_engine(self.postgres_url)
        try:
            with engine.begin() as connection:
                connection.execute(sa.schema.CreateSchema(name))
        finally:
            engine.dispose()
        self.schemas.append(name)
        url = sa.make_url(self.postgres_url).update_query_dict({"options": f"-csearch_path={name}"})
        return name, url.render_as_string(hide_password=False)

    def prefix(self) -> tuple[str, str]:
        """A fresh JetStream prefix: (prefix, record-log URL)."""
        prefix = f"lb{secrets.token_hex(5)}"
        self.prefixes.append(prefix)
        return prefix, self.log_url(prefix)

    def log_url(self, prefix: str) -> str:
        """The record-log URL of a prefix."""
        return f"{self.nats_url}{'&' if '?' in self.nats_url else '?'}prefix={prefix}"

    def clean(self, schemas: list[str] | None = None, prefixes: list[str] | None = None) -> None:
        """Drops the schemas and deletes the prefixes' streams and buckets (all when
        None); reports but survives failures, so the rest is still tried."""
        import sqlalchemy as sa

        from exchange.jetstream import JetStreamLog

        for prefix in list(self.prefixes if prefixes is None else prefixes):

            async def drop(prefix: str = prefix) -> None:
                log = await JetStreamLog.connect(self.log_url(prefix))
                try:
                    await log.delete_streams()
                finally:
                    await log.close()

            try:
                asyncio.run(drop())
                self.prefixes.remove(prefix)
            except Exception as exc:
                _progress(f"warning: JetStream prefix {prefix} not deleted: {exc!r}")
        names = list(self.schemas if schemas is None else schemas)
        if not names:
            return
        engine = sa.create_engine(self.postgres_url, connect_args={"connect_timeout": 5})
        try:
            for name in names:
                try:
                    with engine.begin() as connection:
                        connection.execute(sa.schema.DropSchema(name, cascade=True, if_exists=True))
                    self.schemas.remove(name)
                except Exception as exc:
                    _progress(f"warning: PostgreSQL schema {name} not dropped: {exc!r}")
        finally:
            engine.dispose()


def make_stream(nats_url: str, prefix: str) -> tuple[str, str]:
    """The floor's stream, configured as the gateway configures its own; returns
    (stream, subject the client publishes to)."""
    import nats
    from nats.js import api

    from exchange.jetstream import token

    stream = f"{prefix}_{FAMILY}"
    subject = f"{prefix}.rec.{FAMILY}.{token(RESOURCE)}.{token(lane_names(0)[1])}"

    async def make() -> None:
        connection = await nats.connect(nats_url, connect_timeout=5)
        try:
            await connection.jetstream(timeout=10).add_stream(
                api.StreamConfig(
                    name=stream,
                    subjects=[f"{prefix}.rec.{FAMILY}.>"],
                    storage=api.StorageType.FILE,
                    retention=api.RetentionPolicy.LIMITS,
                    discard=api.DiscardPolicy.OLD,
                    num_replicas=1,
                    duplicate_window=86_400.0,
                    allow_direct=True,
                )
            )
        finally:
            await connection.close()

    asyncio.run(make())
    return stream, subject


def stored_in(nats_url: str, prefix: str) -> dict[str, tuple[int, int]]:
    """(batches, records) per resource in a prefix's streams; records are counted from
    the gateway's ``Lijiao-Records`` header, or from the batch itself when there is none."""
    import nats
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js import api

    from exchange.jetstream import all_streams, untoken
    from exchange.v1 import exchange_pb2

    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])

    async def scan() -> None:
        connection = await nats.connect(nats_url, connect_timeout=5)
        try:
            js = connection.jetstream(timeout=30)
            for info in await all_streams(js):
                name = info.config.name or ""
                if not name.startswith(f"{prefix}_") or not info.state.messages:
                    continue
                sub = await js.pull_subscribe(
                    f"{prefix}.rec.>",
                    stream=name,
                    config=api.ConsumerConfig(
                        ack_policy=api.AckPolicy.NONE,
                        inactive_threshold=30.0,
                        mem_storage=True,
                    ),
                )
                try:
                    while True:
                        try:
                            got = await sub.fetch(500, timeout=2.0)
                        except (NatsTimeout, TimeoutError):  # nats-py raises either
                            break
                        for msg in got:
                            resource = untoken(msg.subject.split(".")[3])
                            header = (msg.headers or {}).get("Lijiao-Records")
                            if header is None:
                                batch = exchange_pb2.RecordBatch.FromString(msg.data)
                                counted = len(batch.records)
                            else:
                                counted = int(header)
                            out[resource][0] += 1
                            out[resource][1] += counted
                        if got[-1].metadata.num_pending == 0:
                            break
                finally:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
        finally:
            await connection.close()

    asyncio.run(scan())
    return {resource: (b, r) for resource, (b, r) in out.items()}


# ------------------------------------------------------------- CPU of the services


def _listening_pids(port: int) -> set[int]:
    """Processes with a listening TCP socket on ``port`` (Linux, with the right to read
    their descriptors; else empty)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if (
                    len(parts) > 9
                    and parts[3] == "0A"
                    and int(parts[1].rsplit(":", 1)[1], 16) == port
                ):
                    inodes.add(f"socket:[{parts[9]}]")
    pids: set[int] = set()
    if not inodes:
        return pids
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        pids.add(int(proc.name))
                        break
    return pids


def _proc_stats() -> dict[int, tuple[int, float]]:
    """pid: (parent pid, CPU seconds of the process and its reaped children)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[int, float]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            used = sum(int(v) for v in fields[11:15]) / ticks
            out[int(proc.name)] = (int(fields[1]), used)
    return out


class ServiceCpu:
    """CPU seconds of the NATS and PostgreSQL servers (and their child processes), when
    they run on this machine."""

    def __init__(self, nats_url: str, postgres_url: str) -> None:
        from urllib.parse import urlsplit

        import sqlalchemy as sa

        self.roots: dict[str, set[int]] = {}
        nats_parts = urlsplit(nats_url.split(",", 1)[0])
        postgres = sa.make_url(postgres_url)
        for name, host, port in (
            ("nats_server", nats_parts.hostname, nats_parts.port or 4222),
            ("postgres", postgres.host, postgres.port or 5432),
        ):
            local = host in (None, "", "localhost", "127.0.0.1", "::1")
            self.roots[name] = _listening_pids(port) if local else set()

    def sample(self) -> dict[str, float | None]:
        """CPU seconds used so far per service (None where unknown)."""
        stats = _proc_stats()
        children: dict[int, list[int]] = defaultdict(list)
        for pid, (parent, _) in stats.items():
            children[parent].append(pid)
        out: dict[str, float | None] = {}
        for name, roots in self.roots.items():
            if not roots or any(pid not in stats for pid in roots):
                out[name] = None
                continue
            total, todo, seen = 0.0, list(roots), set()
            while todo:
                pid = todo.pop()
                if pid in seen or pid not in stats:
                    continue
                seen.add(pid)
                total += stats[pid][1]
                todo.extend(children.get(pid, ()))
            out[name] = total
        return out

    @staticmethod
    def used(before: dict[str, float | None], after: dict[str, float | None]) -> dict[str, Any]:
        """CPU seconds per service between two samples."""
        return {name: _cpu_used(before[name], after.get(name)) for name in before}


# ------------------------------------------------------------------ bare JetStream


def role_bare_client(
    *,
    queue: Any,
    go: Any,
    nats_url: str,
    stream: str,
    subject: str,
    key_path: str,
    schema_json: str,
    batch_size: int,
    records: int,
    in_flight: int,
    tag: str,
    timeout: float,
    parent_pid: int,
) -> None:
    """Encodes, hashes, signs and publishes the run's batches to JetStream, at most
    ``in_flight`` unacknowledged; reports when the last PubAck came."""
    import nats

    from exchange.jetstream import message_id

    rows = make_records(records)
    gc.freeze()  # the pre-built rows are not the client's garbage: keep them out of GC scans
    signed = SignedBatches(key_path, schema_json)
    bounds = batch_bounds(records, batch_size)
    publisher_system = lane_names(0)[1]

    async def main() -> dict[str, Any]:
        connection = await nats.connect(nats_url, connect_timeout=5)
        js = connection.jetstream(timeout=timeout)
        limit = connection.max_payload - HEADER_ROOM
        slots = asyncio.Semaphore(in_flight)
        queue.put(("bare_client", "ready", {}))
        if not await _wait_mp_event(go, timeout, parent_pid):
            raise TimeoutError("the bare client was never told to start")
        started, cpu_started = now_ns(), time.process_time()
        sequence = time.time_ns() // 1000
        futures = []
        for index, (start, end) in enumerate(bounds):
            this_id = batch_id(tag, index)
            payload = signed.batch(rows[start:end], this_id, sequence + index).SerializeToString()
            if len(payload) > limit:
                raise ValueError(
                    f"a batch is {len(payload)} bytes; NATS's max_payload leaves {limit}"
                )
            await slots.acquire()
            future = await js.publish_async(
                subject,
                payload,
                stream=stream,
                headers={"Nats-Msg-Id": message_id(publisher_system, this_id)},
            )
            future.add_done_callback(lambda _done: slots.release())
            futures.append(future)
        acks = await asyncio.wait_for(asyncio.gather(*futures), timeout)
        finished, cpu = now_ns(), time.process_time() - cpu_started
        await connection.close()
        problems = []
        if any(ack.duplicate for ack in acks):
            problems.append("JetStream acknowledged some batches as duplicates")
        sequences = [ack.seq for ack in acks]
        if sequences != sorted(set(sequences)):
            problems.append("acknowledged stream sequences are not strictly increasing")
        return {
            "started_ns": started,
            "finished_ns": finished,
            "acks": len(acks),
            "cpu_seconds": cpu,
            "problems": problems,
        }

    queue.put(("bare_client", "done", asyncio.run(main())))


def role_bare_consumer(
    *,
    queue: Any,
    nats_url: str,
    stream: str,
    subject: str,
    public_key: bytes,
    schema_json: str,
    batch_size: int,
    records: int,
    in_flight: int,
    tag: str,
    timeout: float,
    parent_pid: int,
) -> None:
    """Pulls every batch (durable consumer, explicit ack), verifies the publisher's
    signature, decodes every record, acks; reports when the last record was handled."""
    import nats
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js import api

    from catalog import schemas
    from exchange.v1 import exchange_pb2

    key = Ed25519PublicKey.from_public_bytes(public_key)
    parsed = schemas.parse(schema_json).parsed  # what the gateway decodes with
    bounds = batch_bounds(records, batch_size)
    seen = _Delivered(expected=records)

    def handle(data: bytes) -> None:
        batch = exchange_pb2.RecordBatch.FromString(data)
        index = batch_index(tag, batch.batch_id)
        if index is None:
            seen.foreign += 1
            return
        rows = verified_rows(batch, key, parsed)
        if index in seen.batches:
            return  # delivered again
        first: Any = rows[0]["id_number"] if rows else ""
        last: Any = rows[-1]["id_number"] if rows else ""
        seen.batches[index] = (len(rows), first, last, True)
        seen.records += len(rows)

    async def main() -> dict[str, Any]:
        connection = await nats.connect(nats_url, connect_timeout=5)
        js = connection.jetstream(timeout=30)
        sub = await js.pull_subscribe(
            subject,
            durable=f"bench-{tag}",
            stream=stream,
            config=api.ConsumerConfig(
                ack_policy=api.AckPolicy.EXPLICIT,
                deliver_policy=api.DeliverPolicy.ALL,
                max_ack_pending=in_flight,
                ack_wait=30.0,
            ),
        )
        cpu_started = time.process_time()  # idle until the first batch arrives
        queue.put(("bare_consumer", "ready", {}))
        deadline = time.monotonic() + timeout
        while seen.records < records:
            if time.monotonic() > deadline or _orphaned(parent_pid):
                raise TimeoutError(
                    f"the bare consumer received {seen.records} of {records} records in time"
                )
            try:
                messages = await sub.fetch(in_flight, timeout=0.5)
            except (NatsTimeout, TimeoutError):  # nats-py raises either
                continue
            for msg in messages:
                handle(msg.data)
                await msg.ack()
        finished, cpu = now_ns(), time.process_time() - cpu_started
        await connection.flush()  # the last acks reach the server
        await connection.close()
        return {
            "finished_ns": finished,
            "records": seen.records,
            "batches": len(seen.batches),
            "cpu_seconds": cpu,
            "problems": _check_delivery(seen, bounds, tag),
        }

    queue.put(("bare_consumer", "done", asyncio.run(main())))


# ------------------------------------------------------------------------ the parent


@dataclass
class Config(RunConfig):
    """What the parent was asked to run."""

    cases: list[str]
    lanes: int
    nats_url: str
    postgres_url: str


def run_bare_case(
    context: Any,
    config: Config,
    scratch: Scratch,
    service_cpu: ServiceCpu,
    batch_size: int,
    records: int,
    run_dir: Path,
    label: str,
) -> dict[str, Any]:
    """Bare JetStream client and consumer processes; returns timings and CPU use."""
    from envelope.signing import Ed25519Signer

    schema_json = json.dumps(RESIDENT_SCHEMA, ensure_ascii=False)
    case_dir = run_dir / "bare"
    case_dir.mkdir(parents=True)
    prefix, _ = scratch.prefix()
    try:
        stream, subject = make_stream(config.nats_url, prefix)
        signer = Ed25519Signer.generate()
        key_path = case_dir / "client-signing-key.pem"
        signer.save(key_path)
        children = Children(context, config.profile_dir, f"{label}-bare")
        go = children.event()
        finished_cleanly = False
        common = {
            "nats_url": config.nats_url,
            "stream": stream,
            "subject": subject,
            "schema_json": schema_json,
            "batch_size": batch_size,
            "records": records,
            "tag": f"j{label}",
            "timeout": config.timeout,
        }
        try:
            children.start(
                "bare_consumer",
                role_bare_consumer,
                public_key=signer.public_key,
                in_flight=config.subscriber_in_flight,
                **common,
            )
            children.start(
                "bare_client",
                role_bare_client,
                go=go,
                key_path=str(key_path),
                in_flight=config.in_flight,
                **common,
            )
            children.expect("bare_consumer", "ready", 120)
            children.expect("bare_client", "ready", 120)
            time.sleep(SETTLE_SECONDS)
            services_before, machine_before = service_cpu.sample(), _system_ticks()
            go.set()
            client = children.expect("bare_client", "done", config.timeout + 60)
            consumer = children.expect("bare_consumer", "done", config.timeout + 60)
            services = ServiceCpu.used(services_before, service_cpu.sample())
            machine_busy = _machine_busy(machine_before)
            finished_cleanly = True
        finally:
            children.close(grace=5.0 if finished_cleanly else 0.5)
        stored = stored_in(config.nats_url, prefix)
    finally:
        scratch.clean(schemas=[], prefixes=[prefix])
    problems = [*client["problems"], *consumer["problems"]]
    batches = len(batch_bounds(records, batch_size))
    if client["acks"] != batches:
        problems.append(f"the client got {client['acks']} PubAcks for {batches} batches")
    if stored.get(RESOURCE) != (batches, records):
        problems.append(f"the stream holds {stored} (resource: batches, records)")
    if problems:
        raise ChildFailed(f"{label} bare_jetstream: " + "; ".join(problems))
    cpu = {
        "bare_client": round(client["cpu_seconds"], 3),
        "bare_consumer": round(consumer["cpu_seconds"], 3),
    }
    seconds, rate = _rate(
        records, client["started_ns"], max(client["finished_ns"], consumer["finished_ns"])
    )
    return {
        "seconds": round(seconds, 4),
        "records_per_second": rate,
        "publish_acked_seconds": round((client["finished_ns"] - client["started_ns"]) / 1e9, 4),
        "delivered_records": consumer["records"],
        "stored_records": stored[RESOURCE][1],
        "cpu_seconds": cpu,
        "services_cpu_seconds": services,
        "cpu_us_per_record": _cpu_per_record(cpu, records),
        "cpu_us_per_record_with_services": _cpu_per_record({**cpu, **services}, records),
        "machine_busy_fraction": machine_busy,
    }


def run_replicas_case(
    context: Any,
    config: Config,
    scratch: Scratch,
    service_cpu: ServiceCpu,
    batch_size: int,
    records: int,
    run_dir: Path,
    label: str,
    replicas: int,
) -> dict[str, Any]:
    """``replicas`` gateways over one schema and one prefix, a publisher and a subscriber
    per lane; returns timings and CPU use."""
    from exchange.server import RECONCILE_SETTLE_SECONDS

    name = case_key(str(replicas))
    schema_json = json.dumps(RESIDENT_SCHEMA, ensure_ascii=False)
    per_lane = lane_records(records, batch_size, config.lanes)
    schema, database_url = scratch.schema()
    prefix, log_url = scratch.prefix()
    try:
        children = Children(context, config.profile_dir, f"{label}-{name}")
        stop, go = children.event(), children.event()
        finished_cleanly = False
        gateways = [f"gateway{r + 1}" for r in range(replicas)]
        try:
            targets, keys, first_dir = [], [], run_dir / f"{name}-replica1"
            last_ready = time.monotonic()
            for replica, role in enumerate(gateways):
                data_dir = run_dir / f"{name}-replica{replica + 1}"
                data_dir.mkdir(parents=True)
                if replica:  # replicas share the countersigning key
                    key_file = "gateway-signing-key.pem"
                    shutil.copy2(first_dir / key_file, data_dir / key_file)
                children.start(
                    role,
                    role_gateway,
                    stop=stop,
                    data_dir=str(data_dir),
                    overrides={"database_url": database_url, "log_url": log_url},
                    name=role,
                )
                ready = children.expect(role, "ready", 120)
                last_ready = time.monotonic()
                targets.append(ready["target"])
                keys.append(ready["gateway_key"])
            if len(set(keys)) != 1:
                raise ChildFailed(f"{label} {name}: the replicas countersign with other keys")
            lanes = setup_lanes(targets[0], database_url, config.lanes)
            for lane, (publisher_token, subscriber_token, signer) in enumerate(lanes):
                key_path = run_dir / f"{name}-lane{lane + 1}-signing-key.pem"
                signer.save(key_path)
                common = {
                    "target": targets[lane % replicas],
                    "resource": lane_names(lane)[0],
                    "batch_size": batch_size,
                    "records": per_lane[lane],
                    "tag": f"g{label}-{replicas}r-l{lane + 1}",
                    "timeout": config.timeout,
                }
                children.start(
                    f"subscriber{lane + 1}",
                    role_subscriber,
                    token=subscriber_token,
                    gateway_key=keys[0],
                    in_flight=config.subscriber_in_flight,
                    decode=True,
                    name=f"subscriber{lane + 1}",
                    **common,
                )
                children.start(
                    f"publisher{lane + 1}",
                    role_publisher,
                    go=go,
                    token=publisher_token,
                    key_path=str(key_path),
                    schema_json=schema_json,
                    in_flight=config.in_flight,
                    name=f"publisher{lane + 1}",
                    **common,
                )
            for lane in range(config.lanes):
                children.expect(f"subscriber{lane + 1}", "ready", 120)
                children.expect(f"publisher{lane + 1}", "ready", 120)
            # past the replicas' second start-up reconciliation (shared logs only)
            settle = last_ready + RECONCILE_SETTLE_SECONDS + 1.5 - time.monotonic()
            time.sleep(max(SETTLE_SECONDS, settle))
            gateway_before = {role: children.cpu_seconds(role) for role in gateways}
            services_before, machine_before = service_cpu.sample(), _system_ticks()
            go.set()
            published = [
                children.expect(f"publisher{lane + 1}", "done", config.timeout + 60)
                for lane in range(config.lanes)
            ]
            delivered = [
                children.expect(f"subscriber{lane + 1}", "done", config.timeout + 60)
                for lane in range(config.lanes)
            ]
            cpu: dict[str, float | None] = {
                role: _cpu_used(gateway_before[role], children.cpu_seconds(role))
                for role in gateways
            }
            services = ServiceCpu.used(services_before, service_cpu.sample())
            for lane in range(config.lanes):
                cpu[f"publisher{lane + 1}"] = round(published[lane]["cpu_seconds"], 3)
                cpu[f"subscriber{lane + 1}"] = round(delivered[lane]["cpu_seconds"], 3)
            machine_busy = _machine_busy(machine_before)
            stop.set()
            for role in gateways:
                children.expect(role, "done", 60)
            finished_cleanly = True
        finally:
            stop.set()
            children.close(grace=5.0 if finished_cleanly else 0.5)
        stored = stored_in(config.nats_url, prefix)
    finally:
        scratch.clean(schemas=[schema], prefixes=[prefix])
    problems: list[str] = []
    for lane in range(config.lanes):
        resource = lane_names(lane)[0]
        batches = len(batch_bounds(per_lane[lane], batch_size))
        problems += [f"lane {lane + 1}: {p}" for p in published[lane]["problems"]]
        problems += [f"lane {lane + 1}: {p}" for p in delivered[lane]["problems"]]
        if published[lane]["acks"] != batches:
            problems.append(
                f"lane {lane + 1}: {published[lane]['acks']} acks for {batches} batches"
            )
        if stored.get(resource) != (batches, per_lane[lane]):
            problems.append(
                f"lane {lane + 1}: the log holds {stored.get(resource)} (batches, records) "
                f"of {resource}, expected {(batches, per_lane[lane])}"
            )
    if problems:
        raise ChildFailed(f"{label} {name}: " + "; ".join(problems))
    started = min(p["started_ns"] for p in published)
    finished = max(max(p["acked_ns"] for p in published), max(d["finished_ns"] for d in delivered))
    seconds, rate = _rate(records, started, finished)
    acked = max(p["acked_ns"] for p in published)
    return {
        "seconds": round(seconds, 4),
        "records_per_second": rate,
        "publish_acked_seconds": round((acked - started) / 1e9, 4),
        "delivered_records": sum(d["records"] for d in delivered),
        "stored_records": sum(r for _, r in stored.values()),
        "lane_records": per_lane,
        "lane_targets": [f"gateway{lane % replicas + 1}" for lane in range(config.lanes)],
        "cpu_seconds": cpu,
        "services_cpu_seconds": services,
        "cpu_us_per_record": _cpu_per_record(cpu, records),
        "cpu_us_per_record_with_services": _cpu_per_record({**cpu, **services}, records),
        "machine_busy_fraction": machine_busy,
    }


def _summarize(
    batch_size: int, records: int, config: Config, runs: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    def median_of(key: str, what: str) -> float | None:
        values = [r[what] for r in runs.get(key, []) if r[what]]
        value = _median(values)
        return round(value, 2) if value is not None else None

    keys = [case_key(case) for case in config.cases]
    rates = {key: median_of(key, "records_per_second") for key in keys}
    cpu = {key: median_of(key, "cpu_us_per_record") for key in keys}
    cpu_all = {key: median_of(key, "cpu_us_per_record_with_services") for key in keys}
    floor, floor_cpu = rates.get("bare_jetstream"), cpu_all.get("bare_jetstream")
    floor_cpu_basis = "with_services"
    if floor_cpu is None or any(cpu_all[k] is None for k in keys):
        floor_cpu, floor_cpu_basis = cpu.get("bare_jetstream"), "processes_only"
    gateways = [k for k in keys if k != "bare_jetstream"]
    ratios: dict[str, float | None] = {}
    cpu_ratios: dict[str, float | None] = {}
    for key in gateways:
        rate = rates[key]
        ratios[f"{key}/bare_jetstream"] = round(rate / floor, 4) if rate and floor else None
        per_record = cpu_all[key] if floor_cpu_basis == "with_services" else cpu[key]
        cpu_ratios[f"{key}/bare_jetstream"] = (
            round(floor_cpu / per_record, 4) if floor_cpu and per_record else None
        )
    if "gateway_1_replica" in rates and "gateway_2_replicas" in rates:
        one, two = rates["gateway_1_replica"], rates["gateway_2_replicas"]
        ratios["gateway_2_replicas/gateway_1_replica"] = (
            round(two / one, 4) if one and two else None
        )
    return {
        "batch_size": batch_size,
        "records": records,
        "batches": len(batch_bounds(records, batch_size)),
        "records_per_second": rates,
        "ratios": ratios,
        "cpu_us_per_record": cpu,
        "cpu_us_per_record_with_services": cpu_all,
        "cpu_ratios": cpu_ratios,
        "cpu_ratio_basis": floor_cpu_basis,
        "all_delivered": all(
            r["delivered_records"] == records and r["stored_records"] == records
            for case_runs in runs.values()
            for r in case_runs
        ),
        "runs": runs,
    }


def run(config: Config, services: dict[str, Any]) -> dict[str, Any]:
    """Runs every case; returns the JSON document. Cleans the servers up in any case."""
    context = multiprocessing.get_context("spawn")
    scratch = Scratch(config.nats_url, config.postgres_url)
    service_cpu = ServiceCpu(config.nats_url, config.postgres_url)
    results = []
    work = Path(tempfile.mkdtemp(prefix="lijiao-bench-js-", dir=config.work_root))
    try:
        for batch_size in config.batch_sizes:
            records = config.records[batch_size]
            runs: dict[str, list[dict[str, Any]]] = {case_key(c): [] for c in config.cases}
            for attempt in range(config.repeat):
                label = f"b{batch_size}-r{attempt}"
                run_dir = work / label
                run_dir.mkdir()
                for case in config.cases:
                    key = case_key(case)
                    _progress(f"{key} batch={batch_size} records={records} run={attempt}")
                    if case == "bare":
                        result = run_bare_case(
                            context, config, scratch, service_cpu, batch_size, records,
                            run_dir, label,
                        )  # fmt: skip
                    else:
                        result = run_replicas_case(
                            context, config, scratch, service_cpu, batch_size, records,
                            run_dir, label, int(case),
                        )  # fmt: skip
                    runs[key].append(result)
                    _progress(f"  {key} {result['records_per_second']:,.0f} rec/s")
                shutil.rmtree(run_dir, ignore_errors=True)
            results.append(_summarize(batch_size, records, config, runs))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        scratch.clean()
    return {
        "benchmark": "exchange_throughput",
        "shape": "jetstream",
        "machine": machine_info(config.work_root),
        "services": {
            **services,
            "cpu_measured": {name: bool(pids) for name, pids in service_cpu.roots.items()},
        },
        "settings": {
            "publisher_in_flight": config.in_flight,
            "subscriber_in_flight": config.subscriber_in_flight,
            "repeat": config.repeat,
            "statistic": "median" if config.repeat > 1 else "single run",
            "profiled": config.profile_dir is not None,
            "cases": [case_key(c) for c in config.cases],
            "lanes": config.lanes,
            "lane_layout": (
                "lane k: its own resource, publishing and receiving system; one publisher "
                "and one subscriber process on replica k mod replicas; batches split in "
                "contiguous parts"
            ),
            "gateway_processes": "gatewayN per replica, publisherK and subscriberK per lane",
            "gateway_stores": "catalog and ledger on PostgreSQL, record log and cursors on "
            "JetStream (fresh schema and prefix per case)",
            "subscriber_work": (
                "verifies the gateway countersignature and the publisher signature over "
                "every record's hash, decodes every record, acks"
            ),
            "bare_processes": ["bare_client", "bare_consumer"],
            "bare_consumer_work": (
                "durable pull consumer, explicit ack; verifies the publisher signature "
                "over the batch digest, decodes every record, acks"
            ),
        },
        "results": results,
    }


def parse_args(argv: list[str] | None = None) -> Config:
    """Reads the command line."""
    parser = argparse.ArgumentParser(
        description="Gateway replicas on PostgreSQL + NATS JetStream versus bare JetStream.",
    )
    add_run_arguments(parser)
    parser.add_argument(
        "--cases",
        default=",".join(DEFAULT_CASES),
        help="comma-separated: bare (bare JetStream) and gateway replica counts (default bare,1,2)",
    )
    parser.add_argument(
        "--lanes",
        type=int,
        default=DEFAULT_LANES,
        help="publisher+subscriber pairs in the gateway cases, spread over the replicas "
        f"(default {DEFAULT_LANES})",
    )
    parser.add_argument("--nats-url", default=NATS_URL, help=f"NATS server (default {NATS_URL})")
    parser.add_argument(
        "--postgres-url",
        default=POSTGRES_URL,
        help="PostgreSQL server, a SQLAlchemy URL (default LIJIAO_POSTGRES_URL or the local "
        "test server)",
    )
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    run = checked_run_arguments(parser, args)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if not cases or any(c != "bare" and not (c.isdigit() and 1 <= int(c) <= 8) for c in cases):
        parser.error("--cases takes bare and replica counts 1..8, e.g. bare,1,2")
    cases = list(dict.fromkeys(cases))
    if args.lanes < 1 or any(c != "bare" and int(c) > args.lanes for c in cases):
        parser.error("--lanes must be at least the largest replica count (each replica a lane)")
    if any(c != "bare" for c in cases):
        for size, count in run.records.items():
            try:
                lane_records(count, size, args.lanes)
            except ValueError as exc:
                parser.error(f"{exc}: give more --records")
    return Config(
        **vars(run),
        cases=cases,
        lanes=args.lanes,
        nats_url=args.nats_url,
        postgres_url=args.postgres_url,
    )


def largest_batch_bytes(batch_size: int) -> int:
    """Estimated serialized size of a run's batches (from its first batch)."""
    from fastavro import parse_schema, schemaless_writer

    parsed = parse_schema(RESIDENT_SCHEMA)
    size = 0
    for i in range(batch_size):
        buffer = io.BytesIO()
        schemaless_writer(buffer, parsed, make_record(i))
        size += len(buffer.getvalue()) + 5  # a repeated bytes field's tag and length
    return size + 512  # the envelope: ids, fingerprint, signature, key id, times


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark and prints its JSON document."""
    config = parse_args(argv)
    services, reason = check_services(config.nats_url, config.postgres_url)
    if services is None:
        print(f"benchmark skipped: {reason}", file=sys.stderr)
        return EXIT_UNREACHABLE
    limit = int(services["nats_max_payload"]) - HEADER_ROOM
    too_big = [s for s in config.batch_sizes if largest_batch_bytes(s) > limit]
    if too_big:
        print(
            f"benchmark failed: batches of {too_big[0]} records exceed what NATS takes "
            f"(max_payload less headers: {limit} bytes); use smaller --batch-sizes",
            file=sys.stderr,
        )
        return 1

    def terminate(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        document = run(config, services)
    except ChildFailed as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(document, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
