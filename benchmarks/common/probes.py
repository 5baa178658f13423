"""How busy the machine was, what a case's processes used, and where it all ran."""

from __future__ import annotations

import contextlib
import os
import platform
import sqlite3
from pathlib import Path
from typing import Any


def cpu_used(before: float | None, after: float | None) -> float | None:
    """CPU seconds used between two readings (None if either is unknown)."""
    return round(after - before, 3) if before is not None and after is not None else None


def system_ticks() -> tuple[int, int] | None:
    """(all, idle) CPU ticks of the whole machine so far (Linux; else None)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(values), values[3] + values[4]


def busy_fraction_since(before: tuple[int, int] | None) -> float | None:
    """Fraction of all cores busy (anyone's processes) since ``before``."""
    after = system_ticks()
    if before is None or after is None or after[0] == before[0]:
        return None
    return round(1 - (after[1] - before[1]) / (after[0] - before[0]), 3)


def cpu_per_record(cpu: dict[str, float | None], records: int) -> float | None:
    """CPU microseconds per record summed over the case's processes (None if unknown)."""
    if any(v is None for v in cpu.values()):
        return None
    return round(sum(v for v in cpu.values() if v is not None) / records * 1e6, 2)


def machine_info(work_root: Path) -> dict[str, Any]:
    """Where the numbers were measured."""
    from importlib import metadata

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    cpu_model = platform.processor() or None
    memory_mb = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_mb = int(line.split()[1]) // 1024
                break
    try:
        from google.protobuf.internal import api_implementation

        protobuf_impl: str | None = api_implementation.Type()
    except ImportError:
        protobuf_impl = None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "cpu_model": cpu_model,
        "memory_mb": memory_mb,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "grpcio": version("grpcio"),
        "protobuf": version("protobuf"),
        "protobuf_implementation": protobuf_impl,
        "fastavro": version("fastavro"),
        "cryptography": version("cryptography"),
        "sqlite": sqlite3.sqlite_version,
        "data_dir_root": str(work_root),
        "clock": "CLOCK_MONOTONIC (time.monotonic_ns), shared by all processes",
        "start_method": "spawn",
    }
