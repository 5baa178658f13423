"""One run of each case of the scaled-out shape: bare JetStream, and gateway replicas."""

from __future__ import annotations

import json
import shutil
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
from benchmarks.common.world import RESOURCE, lane_names, setup_lanes
from benchmarks.jetstream_shape.bare import role_bare_client, role_bare_consumer
from benchmarks.jetstream_shape.service_cpu import ServiceCpu
from benchmarks.jetstream_shape.services import Scratch, make_stream, stored_in


@dataclass
class Config(RunConfig):
    """What the parent was asked to run."""

    cases: list[str]
    lanes: int
    nats_url: str
    postgres_url: str


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
            services_before, machine_before = service_cpu.sample(), system_ticks()
            go.set()
            client = children.expect("bare_client", "done", config.timeout + 60)
            consumer = children.expect("bare_consumer", "done", config.timeout + 60)
            services = ServiceCpu.used(services_before, service_cpu.sample())
            machine_busy = busy_fraction_since(machine_before)
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
    seconds, rate = throughput(
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
        "cpu_us_per_record": cpu_per_record(cpu, records),
        "cpu_us_per_record_with_services": cpu_per_record({**cpu, **services}, records),
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
            services_before, machine_before = service_cpu.sample(), system_ticks()
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
                role: cpu_used(gateway_before[role], children.cpu_seconds(role))
                for role in gateways
            }
            services = ServiceCpu.used(services_before, service_cpu.sample())
            for lane in range(config.lanes):
                cpu[f"publisher{lane + 1}"] = round(published[lane]["cpu_seconds"], 3)
                cpu[f"subscriber{lane + 1}"] = round(delivered[lane]["cpu_seconds"], 3)
            machine_busy = busy_fraction_since(machine_before)
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
    seconds, rate = throughput(records, started, finished)
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
        "cpu_us_per_record": cpu_per_record(cpu, records),
        "cpu_us_per_record_with_services": cpu_per_record({**cpu, **services}, records),
        "machine_busy_fraction": machine_busy,
    }
