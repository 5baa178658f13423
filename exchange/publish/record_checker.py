"""Checks the records of a batch off the event loop, fairly between callers.

Decoding is CPU work proportional to the values in a record, not to its bytes or to
the batch's record count: one valid batch of 31 one-megabyte records, each an array of
a million booleans, takes seconds. Done on the event loop it would stop every other
call of every department. So:

- A batch whose records take more than ``inline_bytes`` (16 KiB) is checked in worker
  processes (a pool of ``workers``, at lower priority than the gateway), in chunks of
  about ``chunk_bytes`` (1 MiB). Each caller has at most one chunk queued or running,
  so another caller's check waits behind at most one chunk of each busy caller. A
  decoder crash ends a worker, never the gateway.
- A small batch is checked on the event loop: it takes less than a handoff would.
- The CPU seconds every chunk takes are charged to the caller's ``cpu`` bucket when
  the chunk ends, whether or not the caller is still waiting; a caller over its bucket
  is refused before its next chunk with ``RATE_LIMITED`` and told when to retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from envelope.avro import ExactReader, Refusal
from envelope.errors import InvalidArgument, Reason
from envelope.schemas import ParsedSchema
from exchange.gate.limits import TokenBuckets

log = logging.getLogger("lijiao.records")

INLINE_BYTES = 16 << 10
CHUNK_BYTES = 1 << 20
WORKER_NICENESS = 10
_READERS_KEPT = 256

_readers: dict[bytes, ExactReader] = {}
T = TypeVar("T")


def schema_key(schema: ParsedSchema) -> bytes:
    """What identifies a schema's rules: its whole definition, not its fingerprint
    (the canonical form drops logical types, so two resources' schemas may share a
    fingerprint and differ in a decimal's precision)."""
    text = json.dumps(schema.definition, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).digest()


def _reader(key: bytes, definition: Any) -> ExactReader:
    """The exact reader of a schema, kept per definition (in each process)."""
    reader = _readers.get(key)
    if reader is None:
        if len(_readers) >= _READERS_KEPT:
            _readers.clear()
        reader = _readers[key] = ExactReader(definition)
    return reader


def check_chunk(
    key: bytes, definition: Any, records: Sequence[bytes], first_index: int
) -> tuple[Refusal | None, float]:
    """Checks records exactly (in a worker process); returns the first refusal and
    the CPU seconds the check took."""
    started = time.thread_time()
    refusal = _reader(key, definition).first_refusal(records, first_index)
    return refusal, time.thread_time() - started


def _lower_priority() -> None:
    """Workers yield the CPU to the event loop: a call waits for no batch's check."""
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)


def chunks(records: Sequence[bytes], most_bytes: int) -> list[tuple[int, Sequence[bytes]]]:
    """Splits records into runs of at most ``most_bytes`` (a bigger record runs alone),
    each with the index of its first record."""
    out: list[tuple[int, Sequence[bytes]]] = []
    start = size = 0
    for index, record in enumerate(records):
        if index > start and size + len(record) > most_bytes:
            out.append((start, records[start:index]))
            start, size = index, 0
        size += len(record)
    if start < len(records):
        out.append((start, records[start:]))
    return out


class RecordChecker:
    """Checks batches' records exactly against their schema (see the module).

    Args:
        workers: Worker processes for big batches.
        cpu: The per-caller bucket of CPU seconds, or None for no such limit.
        inline_bytes: Batches up to this many record bytes are checked on the loop.
        chunk_bytes: The size of one unit of work in a worker.
    """

    def __init__(
        self,
        workers: int = 2,
        cpu: TokenBuckets | None = None,
        inline_bytes: int = INLINE_BYTES,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        self.workers = max(1, workers)
        self.cpu = cpu
        self.inline_bytes = inline_bytes
        self.chunk_bytes = chunk_bytes
        self._pool: ProcessPoolExecutor | None = None
        self._no_workers = multiprocessing.current_process().daemon
        self._turns: dict[str, asyncio.Lock] = {}  # one chunk at a time per caller

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # forkserver: workers never inherit the gateway's gRPC threads. Its server
            # imports the checker once (workers fork from it ready), and not __main__,
            # which may be a program that would start again.
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([__name__])
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=context, initializer=_lower_priority
            )
        return self._pool

    def warm(self) -> None:
        """Starts the fork server and a worker now (blocking: call it in a thread), so
        that the first big batch does not wait for them."""
        if self._no_workers:
            return
        try:
            self._executor().submit(os.getpid).result(timeout=60)
        except (RuntimeError, BrokenProcessPool, TimeoutError):
            log.warning("record-check workers did not start ahead; they start on demand")

    def admit(self, caller: str) -> None:
        """Refuses a caller who has used up its CPU seconds (RATE_LIMITED, retry hint)."""
        if self.cpu is not None:
            self.cpu.take(caller, 0.0)

    async def check(
        self, caller: str, schema: ParsedSchema, records: Sequence[bytes], size: int
    ) -> None:
        """Checks every record of a batch exactly.

        Raises:
            InvalidArgument: RECORD_DECODE_FAILED naming the first record refused, or
                every record when the schema's records cannot be decoded safely.
        """
        if not schema.decodable:
            raise InvalidArgument(
                Reason.RECORD_DECODE_FAILED,
                f"schema {schema.fingerprint_hex} is recursive or nested more deeply than "
                "records may be: no record of it is accepted; register a schema version "
                "without recursion and publish with it",
                {"fingerprint": schema.fingerprint_hex},
            )
        key = schema_key(schema)
        if size <= self.inline_bytes:
            refusal, spent = check_chunk(key, schema.definition, records, 0)
            self._charge(caller, spent)
        else:
            refusal = None
            for first, part in chunks(records, self.chunk_bytes):
                self.admit(caller)
                try:
                    refusal = await self._in_turn(caller, key, schema, list(part), first)
                except InvalidArgument as failed:
                    failed.metadata.setdefault("record_index", str(first))
                    raise
                if refusal is not None:
                    break
        if refusal is not None:
            raise InvalidArgument(
                Reason.RECORD_DECODE_FAILED,
                refusal.message,
                {"record_index": str(refusal.index)},
            )

    def _charge(self, caller: str, spent: float) -> None:
        if self.cpu is not None and spent > 0:
            self.cpu.charge(caller, spent)

    async def run(self, caller: str, work: Callable[..., T], *args: Any) -> T:
        """Runs ``work(*args)`` (a module-level function: it is pickled) in a worker when
        ``caller``'s previous chunk is done; in a thread where no worker may start.

        Raises:
            InvalidArgument: RECORD_DECODE_FAILED: the work stopped its worker twice.
        """
        turn = self._turns.setdefault(caller, asyncio.Lock())
        try:
            async with turn:
                return await self._in_worker(caller, work, args)
        finally:
            if not turn.locked() and self._turns.get(caller) is turn:
                del self._turns[caller]

    async def _in_turn(
        self, caller: str, key: bytes, schema: ParsedSchema, records: list[bytes], first: int
    ) -> Refusal | None:
        """Checks one chunk when the caller's previous chunk is done."""
        refusal, _ = await self.run(caller, check_chunk, key, schema.definition, records, first)
        return refusal

    async def _in_worker(self, caller: str, work: Callable[..., T], args: tuple[Any, ...]) -> T:
        """Runs one chunk in a worker. The CPU of a check is charged to ``caller`` when
        it ends, even if the caller has gone by then."""

        def charge(done: Future[Any]) -> None:
            if work is check_chunk and not done.cancelled() and done.exception() is None:
                self._charge(caller, done.result()[1])

        if self._no_workers:
            result = await asyncio.to_thread(work, *args)
            if work is check_chunk:
                self._charge(caller, result[1])  # type: ignore[index]
            return result
        for attempt in (1, 2):
            pool = self._executor()
            try:
                # submit() may start a worker process (the first time, the fork server
                # too): not on the event loop
                future = await asyncio.to_thread(pool.submit, work, *args)
                future.add_done_callback(charge)
                return await asyncio.wrap_future(future)
            except (AssertionError, OSError) as exc:  # no process may be started here
                log.warning(
                    "record-check workers cannot start (%s); big batches are checked in "
                    "a thread of the gateway instead",
                    exc,
                )
                self._no_workers = True
                return await self._in_worker(caller, work, args)
            except BrokenProcessPool:
                # A worker died (a decoder crash, or it was killed): the gateway stays
                # up, a new pool takes over, and the chunk is tried once more.
                log.error("a record-check worker died; starting new ones (attempt %d)", attempt)
                if self._pool is pool:
                    self._pool = None
                    pool.shutdown(wait=False, cancel_futures=True)
        raise InvalidArgument(
            Reason.RECORD_DECODE_FAILED,
            "these records could not be checked: the checker stopped twice on them; the "
            "batch was not stored",
        )

    def close(self) -> None:
        """Stops the worker processes at once, chunks under way included (a stopping
        gateway refuses what it has not acknowledged)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            workers = list(getattr(pool, "_processes", {}).values())  # no public way before 3.14
            pool.shutdown(wait=False, cancel_futures=True)
            for worker in workers:
                with contextlib.suppress(Exception):
                    worker.terminate()
