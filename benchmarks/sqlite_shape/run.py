"""Every case of the default shape at every batch size, summarised in one document."""

from __future__ import annotations

import multiprocessing
import shutil
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common.arguments import REFERENCE_BATCH_SIZE
from benchmarks.common.probes import machine_info
from benchmarks.common.records import batch_bounds
from benchmarks.common.summary import median, progress, run_settings
from benchmarks.sqlite_shape.cases import Config, run_floor_case, run_gateway_case

TARGET_RATIO = 0.7


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
                    progress(f"floor   batch={batch_size} records={records} run={attempt}")
                    floor_runs.append(
                        run_floor_case(context, config, batch_size, records, run_dir, label)
                    )
                    progress(f"  floor   {floor_runs[-1]['records_per_second']:,.0f} rec/s")
                if config.only in (None, "gateway"):
                    progress(f"gateway batch={batch_size} records={records} run={attempt}")
                    gateway_runs.append(
                        run_gateway_case(context, config, batch_size, records, run_dir, label)
                    )
                    progress(f"  gateway {gateway_runs[-1]['records_per_second']:,.0f} rec/s")
                if config.publish_only and config.only in (None, "gateway"):
                    progress(f"gateway publish-only batch={batch_size} run={attempt}")
                    publish_only_runs.append(
                        run_gateway_case(
                            context, config, batch_size, records, run_dir, label, subscribe=False
                        )
                    )
                    rate = publish_only_runs[-1]["records_per_second"]
                    progress(f"  gateway publish-only {rate:,.0f} rec/s")
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
            **run_settings(config),
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


def _summarize(
    batch_size: int,
    records: int,
    gateway_runs: list[dict[str, Any]],
    floor_runs: list[dict[str, Any]],
    publish_only_runs: list[dict[str, Any]],
) -> dict[str, Any]:
    gateway = median([r["records_per_second"] for r in gateway_runs])
    floor = median([r["records_per_second"] for r in floor_runs])
    ratio = gateway / floor if gateway is not None and floor else None
    gateway_cpu = median([r["cpu_us_per_record"] for r in gateway_runs if r["cpu_us_per_record"]])
    floor_cpu = median([r["cpu_us_per_record"] for r in floor_runs if r["cpu_us_per_record"]])
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
        publish_only = median([r["records_per_second"] for r in publish_only_runs])
        summary["gateway_publish_only_records_per_second"] = (
            round(publish_only, 1) if publish_only is not None else None
        )
        summary["publish_only_ratio"] = (
            round(publish_only / floor, 4) if publish_only is not None and floor else None
        )
        summary["gateway_publish_only_runs"] = publish_only_runs
    return summary
