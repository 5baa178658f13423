"""Smoke test of benchmarks/exchange_throughput.py: tiny counts, shape and delivery only.

Timings are never asserted: this only proves the benchmark runs end to end, delivers
every record through the real gateway and the floor, and prints the documented JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "exchange_throughput.py"


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("bench")
    completed = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--quick",
            "--records",
            "3000",
            "--batch-sizes",
            "1,1000",
            "--work-dir",
            str(work),
            "--timeout",
            "60",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert list(work.iterdir()) == [], "the benchmark left files behind"
    parsed: dict[str, Any] = json.loads(completed.stdout)
    return parsed


def test_document_shape(document: dict[str, Any]) -> None:
    assert {"machine", "results", "target_ratio", "meets_target_at_1000"} <= document.keys()
    assert document["target_ratio"] == 0.7
    assert isinstance(document["meets_target_at_1000"], bool)
    machine = document["machine"]
    assert machine["cores"] >= 1
    assert machine["python"].startswith("3.")
    assert [r["batch_size"] for r in document["results"]] == [1, 1000]


def test_every_record_delivered(document: dict[str, Any]) -> None:
    expected = {1: 45, 1000: 3000}  # --records 3000 at batch size 1000; 3/200 of it at 1
    for result in document["results"]:
        records = result["records"]
        assert records == expected[result["batch_size"]]
        assert result["all_delivered"] is True
        assert [r["delivered_records"] for r in result["gateway_runs"]] == [records]
        assert [r["stored_records"] for r in result["gateway_runs"]] == [records]
        assert [r["acked_records"] for r in result["floor_runs"]] == [records]


def test_rates_and_ratio_are_reported(document: dict[str, Any]) -> None:
    for result in document["results"]:
        gateway = result["gateway_records_per_second"]
        floor = result["floor_records_per_second"]
        assert isinstance(gateway, float) and gateway > 0
        assert isinstance(floor, float) and floor > 0
        assert result["ratio"] == pytest.approx(gateway / floor, rel=1e-3)
