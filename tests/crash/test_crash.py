"""Crash tests: gateways killed with SIGKILL during a transfer lose nothing acknowledged
and store nothing twice.

Two shapes:

- two replicas over PostgreSQL and NATS JetStream, publishers and subscribers connected
  to both (a two-address target: each client prefers one replica and fails over to the
  other); a replica is killed at random moments several times and started again;
- one embedded gateway (SQLite catalog and log), killed and restarted in place.

At the end every acknowledged record reached both subscribers' idempotent sinks, no
record arrived under two offsets (the log stored no batch twice), the log holds exactly
the records sent, and ``lijiao audit verify`` passes. Each test writes one JSON line of
figures to the file ``LIJIAO_CRASH_REPORT`` names, if set (`.ci/run` prints them).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc

from adapters.publisher import Publisher, encode_records
from adapters.subscriber import ReceivedBatch, Subscriber
from catalog.credentials import issue_token_at
from catalog.models import Role
from tests.gateway_harness import RunningGateway, jetstream_records
from tests.world import PERSON_SCHEMA, World, build_world, person

RECORDS = 200_000
BATCH = 500
KILLS = 4
# Two replicas move 200,000 records in a few seconds, less than two kill-and-restart
# cycles; fed at a steady 2 x 20 batches a second the transfer lasts about 10 s, so
# several kills fall while it runs. The embedded gateway is slowed by its own restarts.
REPLICA_PACE_SECONDS = 0.05
DEADLINE_SECONDS = 600  # a generous bound for a hung transfer, not a speed check


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Replica:
    """A ``lijiao serve`` process that can be killed and started again in place."""

    name: str
    data_dir: Path
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        log = (self.data_dir.parent / f"{self.name}.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "exchange.cli", "serve", "--insecure"],
            env={
                **os.environ,
                **self.env,
                "LIJIAO_DATA_DIR": str(self.data_dir),
                "LIJIAO_LISTEN": f"127.0.0.1:{self.port}",
                "LIJIAO_METRICS_LISTEN": "",
            },
            stdout=log,
            stderr=log,
        )
        log.close()
        self.starts += 1
        self.wait_ready()

    def wait_ready(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                assert self.process is not None and self.process.poll() is None, (
                    f"{self.name} exited: see {self.data_dir.parent / (self.name + '.log')}"
                )
                try:
                    status = stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                assert time.monotonic() < deadline, f"{self.name} did not start"
                time.sleep(0.1)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)


@dataclass
class Transfer:
    """What the clients saw."""

    acked: set[str] = field(default_factory=set)
    duplicate_acks: int = 0
    sinks: dict[str, Sink] = field(default_factory=dict)
    moved: asyncio.Event = field(default_factory=asyncio.Event)  # set on progress

    def advance(self) -> None:
        """A batch was acknowledged to a publisher or newly stored by a sink."""
        self.moved.set()

    def delivered(self) -> bool:
        """Whether every sink holds every record."""
        return bool(self.sinks) and all(sink.complete.is_set() for sink in self.sinks.values())


@dataclass
class Kill:
    """One SIGKILL: of which replica, and what was still under way."""

    replica: str
    publishing: bool  # publishers were still sending
    delivering: bool  # some sink did not hold every record yet


@dataclass
class Sink:
    """An idempotent sink: stores a batch once per offset, whatever the redeliveries."""

    expected: set[str]
    transfer: Transfer
    complete: asyncio.Event = field(default_factory=asyncio.Event)
    offsets: set[int] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)
    stored_twice: int = 0  # records that arrived under a second offset
    redelivered: int = 0  # batches delivered again (the sink ignored them)

    def __call__(self, batch: ReceivedBatch) -> None:
        if batch.offset in self.offsets:
            self.redelivered += 1
            return
        self.offsets.add(batch.offset)
        self.transfer.advance()
        for record in batch.records:
            if record["id_number"] in self.ids:
                self.stored_twice += 1
            self.ids.add(record["id_number"])
        if self.ids >= self.expected:
            self.complete.set()


def two_address(first: int, second: int) -> str:
    """A target that prefers ``first`` and fails over to ``second`` (gRPC pick_first)."""
    return f"ipv4:127.0.0.1:{first},127.0.0.1:{second}"


async def run_transfer(
    world: World,
    publishers: list[tuple[str, str]],  # (system code, target)
    subscribers: list[tuple[str, str]],
    killer: Callable[[asyncio.Event, Transfer], Any],
    pace: float = 0.0,
) -> Transfer:
    """Publishes RECORDS records split over the publishers while ``killer`` runs, then
    waits until every subscriber's sink holds every acknowledged record. Each publisher
    waits ``pace`` seconds between batches (a steady feed rather than one burst)."""
    transfer = Transfer()
    share = RECORDS // len(publishers)
    expected = {person(i)["id_number"] for i in range(share * len(publishers))}

    def made_progress(future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is None:
            transfer.advance()

    async def publish(index: int, code: str, target: str) -> None:
        system = world.systems[code]
        async with Publisher(
            target, system.token, system.signer, insecure=True, retry_seconds=120
        ) as publisher:
            schema = publisher.schema(PERSON_SCHEMA)
            futures = []
            for start in range(index * share, (index + 1) * share, BATCH):
                rows = [person(i) for i in range(start, start + BATCH)]
                batch = publisher.build(
                    "RESIDENTS", schema, encode_records(schema, rows), f"{code}-{start}"
                )
                future = await publisher.send(batch)
                future.add_done_callback(made_progress)
                futures.append((rows, future))
                if pace:
                    await asyncio.sleep(pace)
            for rows, future in futures:
                ack = await future
                transfer.duplicate_acks += ack.duplicate
                transfer.acked.update(row["id_number"] for row in rows)

    async def subscribe(code: str, target: str) -> None:
        sink = transfer.sinks[code] = Sink(expected, transfer)
        subscriber = Subscriber(
            target, world.systems[code].token, "RESIDENTS", insecure=True, retry_seconds=120
        )

        async def watch() -> None:
            await sink.complete.wait()
            subscriber.stop()

        watcher = asyncio.create_task(watch())
        try:
            await asyncio.wait_for(subscriber.run(sink), DEADLINE_SECONDS)
        finally:
            watcher.cancel()
            await subscriber.close()

    stop_killing = asyncio.Event()
    killing = asyncio.create_task(killer(stop_killing, transfer))
    receiving = [asyncio.create_task(subscribe(code, target)) for code, target in subscribers]
    await asyncio.gather(*(publish(i, code, target) for i, (code, target) in enumerate(publishers)))
    stop_killing.set()
    transfer.moved.set()
    await killing
    await asyncio.gather(*receiving)
    return transfer


def city(gateway: RunningGateway) -> World:
    """PSB owns RESIDENTS and publishes from two systems; CIVIL receives on two."""
    world = build_world(gateway)
    world.system("PSB-CENSUS", "PSB")
    world.system("CIVIL-WELFARE", "CIVIL")
    world.grant("RESIDENTS", "CIVIL-WELFARE")
    return world


def audit_verify(port: int, catalog_url: str) -> str:
    """Runs ``lijiao audit verify`` against a gateway as an auditor; returns its output."""
    token = issue_token_at(catalog_url, name="crash-auditor", role=Role.AUDITOR)
    result = subprocess.run(
        [sys.executable, "-m", "exchange.cli", "audit", "verify"],
        env={
            **os.environ,
            "LIJIAO_GATEWAY": f"127.0.0.1:{port}",
            "LIJIAO_TOKEN": token,
            "LIJIAO_INSECURE": "true",
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def report(figures: dict[str, Any]) -> None:
    line = json.dumps(figures)
    print(line)
    target = os.environ.get("LIJIAO_CRASH_REPORT")
    if target:
        with open(target, "a") as out:
            out.write(line + "\n")


def check(transfer: Transfer, stored_records: int) -> dict[str, Any]:
    """The figures of a transfer, after asserting nothing was lost or stored twice."""
    lost = {code: len(transfer.acked - sink.ids) for code, sink in transfer.sinks.items()}
    twice = {code: sink.stored_twice for code, sink in transfer.sinks.items()}
    assert len(transfer.acked) == RECORDS, "every batch was acknowledged in the end"
    assert all(count == 0 for count in lost.values()), f"lost records: {lost}"
    assert all(count == 0 for count in twice.values()), f"records stored twice: {twice}"
    assert stored_records == RECORDS, f"the log holds {stored_records} records"
    return {
        "records": RECORDS,
        "acknowledged": len(transfer.acked),
        "duplicate_acks": transfer.duplicate_acks,
        "lost": sum(lost.values()),
        "stored_twice": sum(twice.values()),
        "redelivered_batches": {c: s.redelivered for c, s in transfer.sinks.items()},
        "log_records": stored_records,
    }


def one_entry_per_batch(catalog_url: str) -> int:
    """Asserts the ledger holds exactly one BATCH entry per stored batch; returns the
    count."""
    engine = sa.create_engine(catalog_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT resource, position, count(*) FROM ledger_entries "
                    "WHERE kind = 'BATCH' GROUP BY resource, position"
                )
            ).all()
    finally:
        engine.dispose()
    twice = [tuple(row) for row in rows if row[2] != 1]
    assert not twice, f"batches with more than one BATCH entry: {twice[:5]}"
    assert len(rows) == RECORDS // BATCH, f"{len(rows)} BATCH entries"
    return len(rows)


def make_killer(
    replicas: list[Replica], rng: random.Random, kills: list[Kill]
) -> Callable[[asyncio.Event, Transfer], Any]:
    """Kills the replicas in turn at random moments and starts each again, at least KILLS
    times, and for as long as the publishers send.

    A kill comes only after the transfer made progress since the last restart (a batch
    acknowledged or newly stored), then after a random wait: on a slow machine a restart
    takes longer, and kills paced by the clock alone could leave the clients no time to
    make any progress at all. Once publishing is over, kills still wait for the sinks'
    progress, so they fall while records are being delivered.
    """

    offset = rng.randrange(len(replicas))

    async def killer(stop: asyncio.Event, transfer: Transfer) -> None:
        while len(kills) < KILLS or not stop.is_set():
            if not transfer.delivered():
                transfer.moved.clear()
                await transfer.moved.wait()  # set on progress, and when publishing ends
                await asyncio.sleep(rng.uniform(0.1, 0.8))
            if stop.is_set() and len(kills) >= KILLS:
                return
            victim = replicas[(len(kills) + offset) % len(replicas)]  # each in turn
            await asyncio.to_thread(victim.kill)
            kills.append(Kill(victim.name, not stop.is_set(), not transfer.delivered()))
            await asyncio.sleep(rng.uniform(0.2, 1.0))
            await asyncio.to_thread(victim.start)

    return killer


def killed_transfer(
    world: World,
    replicas: list[Replica],
    publishers: list[tuple[str, str]],
    subscribers: list[tuple[str, str]],
    pace: float = 0.0,
) -> tuple[Transfer, dict[str, Any]]:
    """Runs a transfer while the replicas are killed in turn; returns what the clients
    saw and the figures of the kills (the random seed among them)."""
    seed = int(os.environ.get("LIJIAO_CRASH_SEED", "0")) or random.randrange(1, 2**31)
    kills: list[Kill] = []
    started = time.monotonic()
    killer = make_killer(replicas, random.Random(seed), kills)
    transfer = asyncio.run(run_transfer(world, publishers, subscribers, killer, pace))
    return transfer, {
        "kills": kills,
        "seed": seed,
        "seconds": round(time.monotonic() - started, 1),
    }


def report_and_check_kills(test: str, figures: dict[str, Any], run: dict[str, Any]) -> None:
    """Reports a crash test's figures, then asserts it killed often enough, and at least
    once while the publishers were sending."""
    kills: list[Kill] = run["kills"]
    report(
        {
            "test": test,
            **figures,
            "kills": len(kills),
            "kills_while_publishing": sum(kill.publishing for kill in kills),
            "kills_while_delivering": sum(kill.delivering for kill in kills),
            "killed": [kill.replica for kill in kills],
            "seed": run["seed"],
            "seconds": run["seconds"],
        }
    )
    assert len(kills) >= KILLS
    assert any(kill.publishing for kill in kills), f"no kill while publishing: {kills}"


def test_two_replicas_killed_during_a_transfer_lose_nothing(
    tmp_path: Path, postgres_url: str, nats_log_url: str
) -> None:
    setup = RunningGateway(tmp_path / "setup", database_url=postgres_url, log_url=nats_log_url)
    try:
        world = city(setup)
    finally:
        setup.stop()
    replicas = []
    for name in ("replica-1", "replica-2"):
        data_dir = tmp_path / name
        data_dir.mkdir(mode=0o700)
        # the replicas sign with one gateway key: checkpoints verify on either
        shutil.copy(
            setup.settings.gateway_key_path, data_dir / setup.settings.gateway_key_path.name
        )
        replicas.append(
            Replica(
                name,
                data_dir,
                free_port(),
                {"LIJIAO_DATABASE_URL": postgres_url, "LIJIAO_LOG_URL": nats_log_url},
            )
        )
    for replica in replicas:
        replica.start()
    one, two = (replica.port for replica in replicas)
    try:
        transfer, run = killed_transfer(
            world,
            replicas,
            [("PSB-HUKOU", two_address(one, two)), ("PSB-CENSUS", two_address(two, one))],
            [("CIVIL-AFFAIRS", two_address(one, two)), ("CIVIL-WELFARE", two_address(two, one))],
            pace=REPLICA_PACE_SECONDS,
        )
        figures = check(transfer, jetstream_records(nats_log_url, "RESIDENTS"))
        figures["ledger_batch_entries"] = one_entry_per_batch(postgres_url)
        figures["audit_verify"] = audit_verify(one, postgres_url)
    finally:
        for replica in replicas:
            replica.stop()
    report_and_check_kills("two replicas over PostgreSQL and JetStream", figures, run)


def test_an_embedded_gateway_killed_and_restarted_in_place_loses_nothing(
    tmp_path: Path,
) -> None:
    setup = RunningGateway(tmp_path / "gateway", log_url="", database_url="")
    try:
        world = city(setup)
    finally:
        setup.stop()
    gateway = Replica("gateway", tmp_path / "gateway", free_port(), {})
    gateway.start()
    target = f"127.0.0.1:{gateway.port}"
    try:
        transfer, run = killed_transfer(
            world,
            [gateway],
            [("PSB-HUKOU", target), ("PSB-CENSUS", target)],
            [("CIVIL-AFFAIRS", target), ("CIVIL-WELFARE", target)],
        )
        with sqlite3.connect(gateway.data_dir / "log.db") as db:
            stored_records = int(
                db.execute("SELECT coalesce(sum(record_count), 0) FROM batches").fetchone()[0]
            )
        figures = check(transfer, stored_records)
        figures["ledger_batch_entries"] = one_entry_per_batch(setup.settings.catalog_url)
        figures["audit_verify"] = audit_verify(gateway.port, setup.settings.catalog_url)
    finally:
        gateway.stop()
    report_and_check_kills("embedded gateway restarted in place", figures, run)
