"""CPU used by the NATS and PostgreSQL servers, when they run on this machine."""

from __future__ import annotations

import contextlib
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.common.probes import cpu_used


def _listening_pids(port: int) -> set[int]:
    """Processes with a listening TCP socket on ``port`` (Linux, with the right to read
    their descriptors; else empty)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if (
                    len(parts) > 9
                    and parts[3] == "0A"
                    and int(parts[1].rsplit(":", 1)[1], 16) == port
                ):
                    inodes.add(f"socket:[{parts[9]}]")
    pids: set[int] = set()
    if not inodes:
        return pids
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        pids.add(int(proc.name))
                        break
    return pids


def _proc_stats() -> dict[int, tuple[int, float]]:
    """pid: (parent pid, CPU seconds of the process and its reaped children)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[int, float]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            used = sum(int(v) for v in fields[11:15]) / ticks
            out[int(proc.name)] = (int(fields[1]), used)
    return out


class ServiceCpu:
    """CPU seconds of the NATS and PostgreSQL servers (and their child processes), when
    they run on this machine."""

    def __init__(self, nats_url: str, postgres_url: str) -> None:
        from urllib.parse import urlsplit

        import sqlalchemy as sa

        self.roots: dict[str, set[int]] = {}
        nats_parts = urlsplit(nats_url.split(",", 1)[0])
        postgres = sa.make_url(postgres_url)
        for name, host, port in (
            ("nats_server", nats_parts.hostname, nats_parts.port or 4222),
            ("postgres", postgres.host, postgres.port or 5432),
        ):
            local = host in (None, "", "localhost", "127.0.0.1", "::1")
            self.roots[name] = _listening_pids(port) if local else set()

    def sample(self) -> dict[str, float | None]:
        """CPU seconds used so far per service (None where unknown)."""
        stats = _proc_stats()
        children: dict[int, list[int]] = defaultdict(list)
        for pid, (parent, _) in stats.items():
            children[parent].append(pid)
        out: dict[str, float | None] = {}
        for name, roots in self.roots.items():
            if not roots or any(pid not in stats for pid in roots):
                out[name] = None
                continue
            total, todo, seen = 0.0, list(roots), set()
            while todo:
                pid = todo.pop()
                if pid in seen or pid not in stats:
                    continue
                seen.add(pid)
                total += stats[pid][1]
                todo.extend(children.get(pid, ()))
            out[name] = total
        return out

    @staticmethod
    def used(before: dict[str, float | None], after: dict[str, float | None]) -> dict[str, Any]:
        """CPU seconds per service between two samples."""
        return {name: cpu_used(before[name], after.get(name)) for name in before}
