"""Smoke test of the JetStream shape of the benchmark (benchmarks/scaleout_throughput.py,
run as ``exchange_throughput.py --shape jetstream``): tiny counts, shape and delivery only.

Timings are never asserted: this only proves the shape runs end to end on PostgreSQL and
NATS JetStream with one and two gateway replicas and against bare JetStream, delivers and
stores every record, prints the documented JSON and leaves nothing behind. Without the
servers it skips, unless ``LIJIAO_REQUIRE_SERVICES`` is set: then it fails.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.gateway_harness import unreachable

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "exchange_throughput.py"
UNREACHABLE = 3  # the benchmark's exit status when a server is unreachable
RECORDS = 1000  # --records 4000 at batch size 100 (a quarter of it): 10 batches, 5 a lane


def _leftovers() -> tuple[set[str], set[str]]:
    """Benchmark schemas in PostgreSQL and benchmark streams/buckets in JetStream (the
    test compares them before and after its run, so older leftovers do not count)."""
    import nats
    import sqlalchemy as sa

    from exchange.log.jetstream_streams import all_streams
    from tests.gateway_harness import NATS_URL, POSTGRES_URL

    engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            schemas = {
                name
                for name in sa.inspect(connection).get_schema_names()
                if name.startswith("lijiao_bench_")
            }
    finally:
        engine.dispose()

    async def streams() -> set[str]:
        connection = await nats.connect(NATS_URL, connect_timeout=3, max_reconnect_attempts=1)
        try:
            infos = await all_streams(connection.jetstream())
        finally:
            await connection.close()
        names = {i.config.name or "" for i in infos}
        return {name for name in names if name.startswith(("lb", "KV_lb"))}

    return schemas, asyncio.run(streams())


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("bench-js")
    try:
        before = _leftovers()
    except Exception:  # unreachable: the benchmark says so below
        before = (set(), set())
    completed = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--shape",
            "jetstream",
            "--records",
            "4000",
            "--batch-sizes",
            "100",
            "--work-dir",
            str(work),
            "--timeout",
            "60",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if completed.returncode == UNREACHABLE:
        unreachable(completed.stderr.strip().splitlines()[-1])
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert list(work.iterdir()) == [], "the benchmark left files behind"
    parsed: dict[str, Any] = json.loads(completed.stdout)
    after = _leftovers()
    parsed["_leftovers"] = (after[0] - before[0], after[1] - before[1])
    return parsed


def test_document_shape(document: dict[str, Any]) -> None:
    assert document["shape"] == "jetstream"
    assert {"machine", "services", "settings", "results"} <= document.keys()
    assert document["machine"]["cores"] >= 1
    assert {"nats_server", "postgresql", "nats_max_payload"} <= document["services"].keys()
    settings = document["settings"]
    assert settings["cases"] == ["bare_jetstream", "gateway_1_replica", "gateway_2_replicas"]
    assert settings["lanes"] == 2
    assert [r["batch_size"] for r in document["results"]] == [100]


def test_every_record_delivered_and_stored(document: dict[str, Any]) -> None:
    (result,) = document["results"]
    assert result["records"] == RECORDS
    assert result["batches"] == 10
    assert result["all_delivered"] is True
    for case, runs in result["runs"].items():
        assert [r["delivered_records"] for r in runs] == [RECORDS], case
        assert [r["stored_records"] for r in runs] == [RECORDS], case
    for case, targets in (
        ("gateway_1_replica", ["gateway1", "gateway1"]),
        ("gateway_2_replicas", ["gateway1", "gateway2"]),
    ):
        (run,) = result["runs"][case]
        assert run["lane_records"] == [500, 500]
        assert run["lane_targets"] == targets
        gateways = {k for k in run["cpu_seconds"] if k.startswith("gateway")}
        assert gateways == set(targets)


def test_rates_and_ratios_are_reported(document: dict[str, Any]) -> None:
    (result,) = document["results"]
    rates = result["records_per_second"]
    assert set(rates) == {"bare_jetstream", "gateway_1_replica", "gateway_2_replicas"}
    assert all(isinstance(rate, float) and rate > 0 for rate in rates.values())
    ratios = result["ratios"]
    for case in ("gateway_1_replica", "gateway_2_replicas"):
        expected = rates[case] / rates["bare_jetstream"]
        assert ratios[f"{case}/bare_jetstream"] == pytest.approx(expected, rel=1e-3)
    assert ratios["gateway_2_replicas/gateway_1_replica"] == pytest.approx(
        rates["gateway_2_replicas"] / rates["gateway_1_replica"], rel=1e-3
    )
    assert set(result["cpu_ratios"]) == {
        "gateway_1_replica/bare_jetstream",
        "gateway_2_replicas/bare_jetstream",
    }


def test_servers_cleaned_up(document: dict[str, Any]) -> None:
    schemas, streams = document["_leftovers"]
    assert schemas == set(), "benchmark schemas were left in PostgreSQL"
    assert streams == set(), "benchmark streams or buckets were left in JetStream"


def test_unreachable_server_skips_with_a_message(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--shape",
            "jetstream",
            "--quick",
            "--postgres-url",
            "postgresql+psycopg://postgres@127.0.0.1:1/test",
            "--work-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == UNREACHABLE
    assert "benchmark skipped: PostgreSQL" in completed.stderr
    assert "unreachable" in completed.stderr
    assert completed.stdout == ""
    assert list(tmp_path.iterdir()) == []
