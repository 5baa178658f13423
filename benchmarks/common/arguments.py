"""The options every shape of the benchmark takes, and what they ask for."""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BATCH_SIZES = (1, 100, 1000)
REFERENCE_BATCH_SIZE = 1000
DEFAULT_RECORDS = {1: 3_000, 100: 50_000, 1000: 200_000}
QUICK_SCALE = 0.02


def default_records(batch_size: int) -> int:
    """Record count of a batch size before scaling."""
    if batch_size in DEFAULT_RECORDS:
        return DEFAULT_RECORDS[batch_size]
    return min(200_000, max(3_000, 200 * batch_size))


def records_for(batch_size: int, scale: float) -> int:
    """Record count of a batch size after scaling (at least one record)."""
    return max(1, round(default_records(batch_size) * scale))


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
