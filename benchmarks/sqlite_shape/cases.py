"""One run of each case of the default shape: the gateway case and the floor case."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common.arguments import RunConfig
from benchmarks.common.gateway_roles import role_gateway, role_publisher, role_subscriber
from benchmarks.common.probes import busy_fraction_since, cpu_per_record, cpu_used, system_ticks
from benchmarks.common.processes import SETTLE_SECONDS, ChildFailed, Children
from benchmarks.common.records import RESIDENT_SCHEMA, batch_bounds
from benchmarks.common.summary import throughput
from benchmarks.common.world import setup_lanes
from benchmarks.sqlite_shape.floor import role_floor_client, role_floor_server


@dataclass
class Config(RunConfig):
    """What the parent was asked to run."""

    only: str | None
    publish_only: bool
    subscriber_decodes: bool


def _setup_catalog(target: str, data_dir: Path) -> tuple[str, str, Any]:
    """Creates the world over gRPC; returns (publisher token, subscriber token, signer)."""
    from exchange.settings import Settings

    settings = Settings.load({"data_dir": data_dir}, env={})
    return setup_lanes(target, settings.catalog_url, 1)[0]


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
        cpu_before, machine_before = children.cpu_seconds("gateway"), system_ticks()
        go.set()
        published = children.expect("publisher", "done", config.timeout + 60)
        delivered: dict[str, Any] = {"finished_ns": 0, "records": None, "problems": []}
        if subscribe:
            delivered = children.expect("subscriber", "done", config.timeout + 60)
        cpu = {
            "gateway": cpu_used(cpu_before, children.cpu_seconds("gateway")),
            "publisher": round(published["cpu_seconds"], 3),
        }
        if subscribe:
            cpu["subscriber"] = round(delivered["cpu_seconds"], 3)
        machine_busy = busy_fraction_since(machine_before)
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
    seconds, rate = throughput(records, published["started_ns"], finished)
    return {
        "seconds": round(seconds, 4),
        "records_per_second": rate,
        "publish_acked_seconds": round((published["acked_ns"] - published["started_ns"]) / 1e9, 4),
        "delivered_records": delivered["records"],
        "stored_records": stored_records,
        "cpu_seconds": cpu,
        "cpu_us_per_record": cpu_per_record(cpu, records),
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
        cpu_before, machine_before = children.cpu_seconds("floor_server"), system_ticks()
        go.set()
        client = children.expect("floor_client", "done", config.timeout + 60)
        cpu = {
            "floor_server": cpu_used(cpu_before, children.cpu_seconds("floor_server")),
            "floor_client": round(client["cpu_seconds"], 3),
        }
        machine_busy = busy_fraction_since(machine_before)
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
    seconds, rate = throughput(records, client["started_ns"], client["finished_ns"])
    return {
        "seconds": round(seconds, 4),
        "records_per_second": rate,
        "acked_records": server["records"],
        "cpu_seconds": cpu,
        "cpu_us_per_record": cpu_per_record(cpu, records),
        "machine_busy_fraction": machine_busy,
    }
