"""The child processes of a case: started by spawn, talking to the parent over one
queue, always reaped; and what CPU they used, read from ``/proc``."""

from __future__ import annotations

import asyncio
import cProfile
import os
import signal
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from queue import Empty
from typing import Any

SETTLE_SECONDS = 0.3  # lets the subscriber open its stream before the clock starts


class ChildFailed(RuntimeError):
    """A child process reported an error, died, or did not answer in time."""


def orphaned(parent_pid: int) -> bool:
    """Whether the parent that started this child is gone (then the child ends)."""
    return os.getppid() != parent_pid


async def wait_mp_event(event: Any, limit_seconds: float, parent_pid: int) -> bool:
    """Waits for a multiprocessing event without blocking the loop; False on time-out."""
    deadline = time.monotonic() + limit_seconds
    while not event.is_set():
        if time.monotonic() > deadline or orphaned(parent_pid):
            return False
        await asyncio.sleep(0.05)
    return True


def _child_main(
    role: str,
    entry: Callable[..., None],
    kwargs: dict[str, Any],
    queue: Any,
    profile_path: str | None,
) -> None:
    """Entry point of every child: runs ``entry``, reports any failure on the queue."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when children end
    profiler = cProfile.Profile() if profile_path else None
    try:
        if profiler is not None:
            profiler.enable()
        try:
            entry(queue=queue, **kwargs)
        finally:
            if profiler is not None and profile_path:
                profiler.disable()
                profiler.dump_stats(profile_path)
    except BaseException:
        queue.put((role, "error", traceback.format_exc()))
        raise SystemExit(1) from None


class Children:
    """The child processes of one case: started by spawn, always reaped."""

    def __init__(self, context: Any, profile_dir: Path | None, label: str) -> None:
        self.context = context
        self.queue = context.Queue()
        self.processes: dict[str, Any] = {}
        self.messages: dict[tuple[str, str], Any] = {}
        self.profile_dir = profile_dir
        self.label = label

    def event(self) -> Any:
        """A fresh multiprocessing event."""
        return self.context.Event()

    def start(self, role: str, entry: Callable[..., None], **kwargs: Any) -> None:
        """Starts ``entry`` in a spawned process named ``role``."""
        profile = None
        if self.profile_dir is not None:
            profile = str(self.profile_dir / f"{self.label}-{role}.prof")
        kwargs["parent_pid"] = os.getpid()
        process = self.context.Process(
            target=_child_main,
            args=(role, entry, kwargs, self.queue, profile),
            name=f"bench-{role}",
            # not daemonic: the gateway starts worker processes of its own (its record
            # checkers); close() ends every child, and each child watches parent_pid
            daemon=False,
        )
        process.start()
        self.processes[role] = process

    def expect(self, role: str, kind: str, timeout: float) -> Any:
        """Waits for message ``kind`` from ``role``; raises on errors, deaths and timeouts."""
        deadline = time.monotonic() + timeout
        while (role, kind) not in self.messages:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChildFailed(f"{self.label}: no '{kind}' from the {role} in {timeout:.0f} s")
            try:
                sender, what, payload = self.queue.get(timeout=min(0.5, remaining))
            except Empty:
                self._check_alive()
                continue
            if what == "error":
                raise ChildFailed(f"{self.label}: the {sender} failed:\n{payload}")
            self.messages[(sender, what)] = payload
        return self.messages[(role, kind)]

    def _check_alive(self) -> None:
        for role, process in self.processes.items():
            if process.exitcode not in (None, 0):
                raise ChildFailed(
                    f"{self.label}: the {role} process died with exit code {process.exitcode}"
                )

    def cpu_seconds(self, role: str) -> float | None:
        """User+system CPU seconds used so far by a running child (Linux; else None)."""
        process = self.processes[role]
        try:
            raw = Path(f"/proc/{process.pid}/stat").read_text()
        except OSError:
            return None
        fields = raw.rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks + descendants_cpu(process.pid)

    def close(self, grace: float = 5.0) -> None:
        """Ends every child still running: waits ``grace`` seconds in all, then
        terminates, then kills."""
        deadline = time.monotonic() + grace
        for process in self.processes.values():
            process.join(timeout=max(0.0, deadline - time.monotonic()))
        for process in self.processes.values():
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        self.queue.close()
        self.queue.join_thread()


def descendants_cpu(pid: int) -> float:
    """CPU seconds of a process's running descendants (the gateway's record-check
    workers and their fork server), read from /proc; 0 where that is not possible."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                try:
                    raw = Path(f"/proc/{child}/stat").read_text()
                except OSError:
                    continue
                fields = raw.rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / ticks
                pending.append(child)
    return total
