"""What a run tells: progress on stderr, one JSON document on stdout, and the
statistics both shapes summarise their runs with."""

from __future__ import annotations

import json
import signal
import statistics
import sys
from collections.abc import Callable
from typing import Any

from benchmarks.common.arguments import RunConfig
from benchmarks.common.processes import ChildFailed


def progress(message: str) -> None:
    """One line of progress on stderr (stdout holds only the JSON document)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def throughput(records: int, started_ns: int, finished_ns: int) -> tuple[float, float]:
    """(seconds, records per second) of a timed region."""
    seconds = max(finished_ns - started_ns, 1) / 1e9
    return seconds, round(records / seconds, 1)


def median(values: list[float]) -> float | None:
    """The median of the runs' values; None when there are none."""
    return statistics.median(values) if values else None


def run_settings(config: RunConfig) -> dict[str, Any]:
    """The ``settings`` every shape's document starts with."""
    return {
        "publisher_in_flight": config.in_flight,
        "subscriber_in_flight": config.subscriber_in_flight,
        "repeat": config.repeat,
        "statistic": "median" if config.repeat > 1 else "single run",
        "profiled": config.profile_dir is not None,
    }


def print_document(run: Callable[[], dict[str, Any]]) -> int:
    """Runs a benchmark and prints its JSON document; returns the exit status: 0 when it
    ran (whatever the numbers), 1 when something failed. SIGTERM ends it as SystemExit,
    so that every child is reaped and every scratch store removed on the way out."""

    def terminate(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        document = run()
    except ChildFailed as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(document, indent=2, ensure_ascii=False))
    return 0
