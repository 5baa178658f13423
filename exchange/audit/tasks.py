"""The gateway's side of the audit ledger: recording exchanges, checkpoints, retention.

Catalog changes reach the ledger by themselves (catalog.changes). What happens on the
wire does not touch the catalog, so :class:`LedgerWriter` appends those entries from one
thread in group commits: an accepted batch, a delivery, a denial. Publish waits for its
entry before acknowledging; a delivery's cursor moves only after its entry commits.

:class:`AuditTasks` runs what happens on a clock: a signed checkpoint of the chain head
every ``ledger_checkpoint_seconds``, a verification every ``ledger_verify_seconds``
(its result is a metric), and retention once a day.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import queue
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from catalog import ledger, ledger_files
from catalog.ledger import EntryKind, NewEntry
from envelope.signing import Signer
from exchange import metrics
from exchange.log import NewBatch, RecordLog, settle

log = logging.getLogger("lijiao.audit")

T = TypeVar("T")
GROUP_LIMIT = 512
RETRIES = 5
RETENTION_MINIMUM_DAYS = 183  # 网络安全法 §21: network logs at least six months
PERSONAL_RETENTION_MINIMUM_DAYS = 1096  # 个人信息保护法 §56: three years
RECONCILE_WINDOW = 10_000  # log positions checked for a missing entry at start
RECONCILE_INTERVAL_SECONDS = 60.0  # and how often the check runs again while serving
RECONCILE_LOOKBACK_SECONDS = 600.0  # ... over the batches stored in the last ten minutes


def count_committed(counts: Mapping[str, int]) -> None:
    """Adds committed entries to the ``lijiao_ledger_entries_total`` counter."""
    for kind, count in counts.items():
        metrics.LEDGER_ENTRIES.labels(kind).inc(count)


@dataclass
class _Job:
    entries: Sequence[NewEntry] | None
    call: Callable[[Connection], Any] | None
    future: concurrent.futures.Future[Any]


class LedgerWriter:
    """Appends entries from one thread; entries queued during a commit go in the next."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._engine = sessions.kw["bind"]
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="lijiao-ledger", daemon=True)
        self._closed = False
        self._thread.start()

    def submit(self, entries: Sequence[NewEntry]) -> concurrent.futures.Future[int]:
        """Queues entries; the future completes with the head sequence once committed."""
        future: concurrent.futures.Future[int] = concurrent.futures.Future()
        if self._closed:
            future.set_exception(RuntimeError("the ledger writer is closed"))
        else:
            self._jobs.put(_Job(entries, None, future))
        return future

    async def record(self, entries: Sequence[NewEntry]) -> int:
        """Appends entries and waits for their commit."""
        return await asyncio.wrap_future(self.submit(entries))

    def call(self, fn: Callable[[Connection], T]) -> concurrent.futures.Future[T]:
        """Runs ``fn`` in its own transaction on the writer thread, in queue order."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        if self._closed:
            future.set_exception(RuntimeError("the ledger writer is closed"))
        else:
            self._jobs.put(_Job(None, fn, future))
        return future

    async def flush(self) -> None:
        """Waits until everything queued before this call is committed."""
        await asyncio.wrap_future(self.call(lambda _conn: None))

    def close(self) -> None:
        """Commits what is queued, then stops the thread."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        self._thread.join()

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            job = self._jobs.get()
            if job is None:
                break
            group = [job]
            while len(group) < GROUP_LIMIT:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                group.append(more)
            try:
                self._run(group)
            except Exception:  # the writer must outlive any one group
                log.exception("ledger writer: a group failed")

    def _run(self, group: list[_Job]) -> None:
        # A waiter may have given up (its future is cancelled); the entries still commit.
        appends = [job for job in group if job.entries is not None]
        if appends:
            entries = [entry for job in appends for entry in job.entries or ()]
            try:
                head = self._with_retries(lambda conn: ledger.append(conn, entries))
            except Exception as exc:
                log.exception("could not append %d ledger entries", len(entries))
                for job in appends:
                    settle(job.future, exc)
            else:
                count_committed(Counter(entry.kind.value for entry in entries))
                for job in appends:
                    settle(job.future, head)
        for job in group:
            if job.call is None:
                continue
            try:
                settle(job.future, self._with_retries(job.call))
            except Exception as exc:
                settle(job.future, exc)

    def _with_retries(self, fn: Callable[[Connection], T]) -> T:
        for attempt in range(RETRIES):
            try:
                with self._engine.begin() as conn:
                    return fn(conn)
            except OperationalError:  # e.g. SQLite busy beyond its timeout
                if attempt == RETRIES - 1:
                    raise
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")


def recovered(entry: NewEntry) -> NewEntry:
    """A BATCH entry recorded after the fact (a crash or a failed ledger write between
    the log's commit and the ledger's): its details say ``"recovered": true``."""
    return dataclasses.replace(entry, details={**entry.details, "recovered": True})


def reconcile(
    sessions: sessionmaker[Session],
    record_log: RecordLog,
    entry_of: Callable[[NewBatch, int, int], NewEntry],
    settle_seconds: float = 0.0,
    lookback_seconds: float | None = None,
) -> int:
    """Records batches the log holds but the ledger does not (a crash between commits).

    Looks at the newest ``RECONCILE_WINDOW`` batches of the log (of each stream, where
    the log has several) stored since the ledger's oldest entry (older batches' entries
    may have been pruned), or only in the last ``lookback_seconds`` (the periodic
    pass). Batches stored in the last ``settle_seconds`` are left out: on a log shared
    by replicas, another replica may be committing their entries right now. Runs at
    start and then every RECONCILE_INTERVAL_SECONDS. Returns how many entries were
    added; they say ``"recovered": true``.
    """
    table = ledger.LedgerEntry.__table__
    with sessions() as session:
        oldest = session.execute(select(func.min(table.c.time))).scalar()
    since_ns = 0 if oldest is None else int(oldest.timestamp() * 1e9)
    now = time.time_ns()
    if lookback_seconds is not None:
        since_ns = max(since_ns, now - int(lookback_seconds * 1e9))
    settled = now - int(settle_seconds * 1e9)
    stored = [row for row in record_log.recent(RECONCILE_WINDOW, since_ns) if row[2] <= settled]
    if not stored:
        return 0
    by_resource: dict[str, list[int]] = {}
    for resource, position, _ in stored:
        by_resource.setdefault(resource, []).append(position)
    known: set[tuple[str, int]] = set()
    with sessions() as session:
        for resource, positions in by_resource.items():
            for start in range(0, len(positions), 1000):
                chunk = positions[start : start + 1000]
                known.update(
                    (resource, int(position))
                    for position in session.scalars(
                        select(table.c.position).where(
                            table.c.kind == EntryKind.BATCH.value,
                            table.c.resource == resource,
                            table.c.position.in_(chunk),
                        )
                    )
                )
    missing = []
    for resource, position, _stored_ns in stored:
        if (resource, position) in known:
            continue
        found = record_log.batch_at(resource, position)
        if found is not None:
            batch, stored_ns = found
            missing.append(recovered(entry_of(batch, position, stored_ns)))
    if missing:
        with sessions.kw["bind"].begin() as conn:
            ledger.append(conn, missing)
        count_committed(Counter(entry.kind.value for entry in missing))
        log.warning("recorded %d stored batches missing from the ledger", len(missing))
    return len(missing)


_ARCHIVE_NAME = re.compile(r"ledger-([0-9]+)-([0-9]+)-([0-9]{8})\.avro")


def archive_to(directory: Path) -> Callable[[Iterable[Any], int, bytes], tuple[str, str]]:
    """An archiver for :func:`catalog.ledger.prune` writing Avro files into ``directory``.

    Each file is written to a temporary name, fsynced and renamed, so a file with a
    final name is complete.
    """

    def archive(rows: Iterable[Any], through: int, _previous: bytes) -> tuple[str, str]:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        seen = {"first": through, "newest": datetime.min.replace(tzinfo=UTC)}

        def watched() -> Iterator[Any]:
            for index, row in enumerate(rows):
                if index == 0:
                    seen["first"] = row.sequence
                seen["newest"] = max(seen["newest"], row.time)
                yield row

        partial = directory / f"ledger-through-{through:012d}.avro.partial"
        try:
            with partial.open("wb") as out:
                partial.chmod(0o600)
                total = ledger_files.write_avro(watched(), out)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        with partial.open("rb") as written:
            count, problem = ledger_files.verify_records(ledger_files.read_avro(written))
        if problem or count != total:
            partial.unlink()
            raise LedgerTampered(f"the archive does not verify: {problem or 'entries missing'}")
        name = f"ledger-{seen['first']:012d}-{through:012d}-{seen['newest']:%Y%m%d}.avro"
        digest = hashlib.sha256(partial.read_bytes()).hexdigest()
        partial.rename(directory / name)
        folder = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(folder)  # the new name survives a power cut before the rows go
        finally:
            os.close(folder)
        return name, digest

    return archive


def expired_archives(directory: Path, keep_days: int, now: datetime) -> list[Path]:
    """Archive files whose newest entry is older than ``keep_days``."""
    if not directory.is_dir():
        return []
    limit = (now - timedelta(days=keep_days)).strftime("%Y%m%d")
    out = []
    for path in sorted(directory.iterdir()):
        match = _ARCHIVE_NAME.fullmatch(path.name)
        if match and match.group(3) < limit:
            out.append(path)
    return out


@dataclass(frozen=True)
class AuditSettings:
    """The clock of the audit tasks (see exchange.settings.Settings)."""

    checkpoint_seconds: float
    verify_seconds: float
    retention_days: int
    personal_retention_days: int
    archive_dir: Path
    prune: bool
    witness_file: Path | None = None  # the newest checkpoint signed, outside the database


class AuditTasks:
    """Checkpoints, verification and retention, on timers of one gateway."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        writer: LedgerWriter,
        signer: Signer,
        trusted: dict[str, bytes],
        settings: AuditSettings,
    ) -> None:
        self.sessions = sessions
        self.writer = writer
        self.signer = signer
        self.trusted = trusted
        self.settings = settings
        self._tasks: list[asyncio.Task[None]] = []
        self._verify_lock = threading.Lock()
        self.last: ledger.Verification | None = None

    def start(self) -> None:
        """Starts the timers."""
        loops: list[tuple[float, Callable[[], Any], bool]] = [
            (self.settings.checkpoint_seconds, self.checkpoint, False),
            (self.settings.verify_seconds, self.verify, True),  # a first result at start
        ]
        if self.settings.prune:
            loops.append((86_400.0, self.prune, True))
        for interval, action, now in loops:
            if interval > 0:
                self._tasks.append(asyncio.create_task(self._every(interval, action, now)))

    async def stop(self) -> None:
        """Stops the timers and signs a last checkpoint."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.checkpoint)

    async def _every(self, interval: float, action: Callable[[], Any], now: bool) -> None:
        if not now:
            await asyncio.sleep(interval)
        while True:
            try:
                await asyncio.to_thread(action)
            except Exception:
                log.exception("audit task %s failed", getattr(action, "__name__", action))
            await asyncio.sleep(interval)

    def witness(self) -> tuple[int, bytes] | None:
        """The newest checkpoint this gateway signed, from its file (None before any)."""
        path = self.settings.witness_file
        if path is None or not path.exists():
            return None
        data = json.loads(path.read_text())
        return int(data["sequence"]), bytes.fromhex(data["hash"])

    def _write_witness(self, sequence: int, head_hash: bytes) -> None:
        path = self.settings.witness_file
        if path is None:
            return
        partial = path.with_name(path.name + ".partial")
        with partial.open("w") as out:
            json.dump({"sequence": sequence, "hash": head_hash.hex(), "time": time.time()}, out)
            out.flush()
            os.fsync(out.fileno())
        partial.replace(path)

    def checkpoint(self) -> int:
        """Signs the chain head now, unless a checkpoint covers it; returns its sequence.

        Refuses to sign when the entry of the previous checkpoint no longer has the hash
        this gateway signed there: signing would bless a rewritten chain.
        """
        witness = self.witness()

        def sign(conn: Connection) -> tuple[int, bytes | None]:
            if (
                witness is not None
                and ledger.head(self.sessions)[1] < witness[0]
                and ledger.hash_at(conn, witness[0]) != witness[1]
            ):
                raise LedgerTampered(
                    f"entry {witness[0]} no longer has the hash this gateway signed; "
                    "not signing a new checkpoint over a rewritten ledger"
                )
            sequence = ledger.checkpoint(conn, self.signer)
            return sequence, ledger.hash_at(conn, sequence) if sequence else None

        try:
            sequence, head_hash = self.writer.call(sign).result(timeout=60)
        except LedgerTampered as exc:
            metrics.LEDGER_VERIFICATION_OK.set(0)
            log.error("ledger checkpoint refused: %s", exc)
            raise
        if sequence and head_hash is not None:
            self._write_witness(sequence, head_hash)
            metrics.LEDGER_LAST_CHECKPOINT.set(time.time())
        return sequence

    def verify(self) -> ledger.Verification:
        """Verifies the whole ledger and publishes the result as metrics."""
        with self._verify_lock:
            result = ledger.verify(self.sessions, self.trusted, witness=self.witness())
        self.last = result
        metrics.LEDGER_VERIFICATION_OK.set(1 if result.ok else 0)
        metrics.LEDGER_LAST_VERIFICATION.set(time.time())
        if not result.ok:
            log.error("ledger verification failed: %s", result.message)
        return result

    def prune(self, now: datetime | None = None) -> ledger.Pruned | None:
        """Applies retention (see :func:`apply_retention`), never during a verification."""
        with self._verify_lock:
            return apply_retention(
                self.sessions, self.signer, self.settings, now, self.trusted, self.witness()
            )


class LedgerTampered(Exception):
    """The ledger failed verification: nothing is signed or pruned over it."""


def apply_retention(
    sessions: sessionmaker[Session],
    signer: Signer,
    settings: AuditSettings,
    now: datetime | None = None,
    trusted: Mapping[str, bytes] | None = None,
    witness: tuple[int, bytes] | None = None,
) -> ledger.Pruned | None:
    """Archives and deletes entries past retention; deletes archives past theirs.

    The whole ledger is verified first: pruning a tampered range would hide it.

    Raises:
        LedgerTampered: Verification failed; nothing was archived or deleted.
    """
    keys = dict(trusted or {signer.key_id: signer.public_key})
    checked = ledger.verify(sessions, keys, witness=witness)
    if not checked.ok:
        metrics.LEDGER_VERIFICATION_OK.set(0)
        raise LedgerTampered(f"not pruning a ledger that fails verification: {checked.message}")
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=settings.retention_days)
    pruned = ledger.prune(sessions, signer, cutoff, archive_to(settings.archive_dir))
    if pruned is not None:
        count_committed(Counter({EntryKind.LEDGER.value: 1}))
    keep = max(settings.personal_retention_days, settings.retention_days)
    for path in expired_archives(settings.archive_dir, keep, now):
        path.unlink()
        log.info("deleted ledger archive %s (past %d days)", path.name, keep)
    return pruned
