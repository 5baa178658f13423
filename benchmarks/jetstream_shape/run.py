"""Every case of the scaled-out shape at every batch size, summarised in one document."""

from __future__ import annotations

import io
import multiprocessing
import shutil
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common.probes import machine_info
from benchmarks.common.records import RESIDENT_SCHEMA, batch_bounds, make_record
from benchmarks.common.summary import median, progress, run_settings
from benchmarks.jetstream_shape.cases import Config, case_key, run_bare_case, run_replicas_case
from benchmarks.jetstream_shape.service_cpu import ServiceCpu
from benchmarks.jetstream_shape.services import Scratch


def _summarize(
    batch_size: int, records: int, config: Config, runs: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    def median_of(key: str, what: str) -> float | None:
        values = [r[what] for r in runs.get(key, []) if r[what]]
        value = median(values)
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
                    progress(f"{key} batch={batch_size} records={records} run={attempt}")
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
                    progress(f"  {key} {result['records_per_second']:,.0f} rec/s")
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
            **run_settings(config),
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
