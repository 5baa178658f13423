"""The publish path: from a received batch to a durable, acknowledged one.

For each batch: the publisher's department must own the resource, the system must be
active, the schema fingerprint registered, the signing key the system's, the Ed25519
signature valid over the batch digest, and every record must decode against the
schema. Only then is the batch appended to the log, and only after the commit is it
acknowledged. The same batch id with the same digest is acknowledged again, not stored
twice. The ledger entry of a stored batch commits before its acknowledgement.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import select

from catalog import ledger
from catalog.credentials import Identity
from catalog.ledger import EntryKind, NewEntry, format_ns
from envelope import schemas, signing
from envelope.digest import FINGERPRINT_SIZE, digest_of_batch
from envelope.errors import (
    FailedPrecondition,
    InvalidArgument,
    LijiaoError,
    PermissionDenied,
    Reason,
    ResourceExhausted,
)
from exchange import metrics
from exchange.audit.tasks import LedgerWriter, recovered
from exchange.gate.catalog_view import CatalogView
from exchange.gate.limits import TokenBuckets
from exchange.gate.rpc import refuse_nul
from exchange.log import NewBatch, RecordLog
from exchange.publish.record_checker import RecordChecker
from exchange.v1 import exchange_pb2

MAX_BATCH_ID_LENGTH = 128
MAX_SEQUENCE = 2**63 - 1  # what the log's INTEGER column holds
MIN_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z, the Timestamp range
MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
PIPELINE_DEPTH = 32  # batches of one stream between verification and acknowledgement
PIPELINE_BYTES = 64 << 20  # ... and their payload bytes: small batches pipeline deeper


@dataclass(frozen=True)
class BatchLimits:
    """Size limits of a batch."""

    max_batch_records: int = 10_000
    max_record_bytes: int = 1 << 20
    max_batch_bytes: int = 32 << 20
    max_clock_skew_seconds: float = 300.0  # how far ahead a batch's create_time may be
    max_batch_age_seconds: float = 7 * 86_400.0  # how old it may be (an outbox after an outage)


def ensure_batch_entry(conn: Any, recorded: NewEntry) -> bool:
    """Appends the BATCH entry of a stored batch unless the ledger has it; True if added."""
    table = ledger.LedgerEntry.__table__
    found = conn.execute(
        select(table.c.sequence).where(
            table.c.kind == EntryKind.BATCH.value,
            table.c.resource == recorded.resource,
            table.c.position == recorded.position,
            table.c.subject == recorded.subject,
        )
    ).first()
    if found is not None:
        return False
    ledger.append(conn, [recovered(recorded)])
    return True


def _ns(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000) * 1000


class PublishPath:
    """Verifies, validates and stores batches for one gateway."""

    def __init__(
        self,
        view: CatalogView,
        log: RecordLog,
        limits: BatchLimits,
        ledger: LedgerWriter,
        rate: TokenBuckets | None = None,
        checker: RecordChecker | None = None,
    ) -> None:
        self.view = view
        self.log = log
        self.limits = limits
        self.ledger = ledger
        self.rate = rate  # records per second per principal
        self.checker = checker or RecordChecker()
        # per publisher and resource: the highest sequence stored, and the batches
        # accepted but not yet stored, in order (their turns to update it)
        self._sequences: dict[tuple[str, str], int] = {}
        self._pending: dict[tuple[str, str], list[asyncio.Future[None]]] = {}

    def entry_of(
        self, batch: NewBatch, position: int, stored_ns: int, signed: Any = None
    ) -> NewEntry:
        """The ledger entry of a stored batch (``signed``: its RecordBatch, if at hand)."""
        if signed is None:
            signed = exchange_pb2.RecordBatch.FromString(batch.payload)
        resource = self.view.resource(batch.resource)
        return NewEntry(
            EntryKind.BATCH,
            "batch.stored",
            principal=batch.publisher,
            department=resource.owner_department,
            provider=resource.owner_department,
            system=batch.publisher,
            resource=batch.resource,
            subject=batch.batch_id,
            position=position,
            records=batch.record_count,
            bytes=batch.byte_count,
            personal=bool(resource.tags),
            details={
                "schema_fingerprint": batch.fingerprint,
                "sequence": batch.sequence,
                "provider_digest": batch.digest,
                "provider_signature": signed.signature,
                "signing_key_id": signed.signing_key_id,
                "receive_time": format_ns(batch.received_ns),
                "store_time": format_ns(stored_ns),
                "outcome": "STORED",
            },
        )

    def _check_shape(self, batch: exchange_pb2.RecordBatch) -> int:
        refuse_nul(batch)
        if not batch.resource:
            raise InvalidArgument(Reason.INVALID_BATCH, "batch.resource is empty")
        if not batch.batch_id or len(batch.batch_id) > MAX_BATCH_ID_LENGTH:
            raise InvalidArgument(
                Reason.INVALID_BATCH, f"batch.batch_id must be 1-{MAX_BATCH_ID_LENGTH} characters"
            )
        if len(batch.schema_fingerprint) != FINGERPRINT_SIZE:
            raise InvalidArgument(
                Reason.INVALID_BATCH,
                "batch.schema_fingerprint must be the 8-byte CRC-64-AVRO fingerprint",
            )
        if batch.sequence > MAX_SEQUENCE:
            raise InvalidArgument(
                Reason.INVALID_BATCH, f"batch.sequence must be at most {MAX_SEQUENCE}"
            )
        stamp = batch.create_time
        if not (MIN_SECONDS <= stamp.seconds <= MAX_SECONDS and 0 <= stamp.nanos <= 999_999_999):
            raise InvalidArgument(
                Reason.INVALID_BATCH,
                "batch.create_time must be a valid timestamp (years 1-9999, nanos 0-999999999)",
            )
        count = len(batch.records)
        if count == 0:
            raise InvalidArgument(Reason.INVALID_BATCH, "a batch carries at least one record")
        if count > self.limits.max_batch_records:
            raise ResourceExhausted(
                Reason.BATCH_TOO_LARGE,
                f"the batch has {count} records; the limit is {self.limits.max_batch_records}",
                {"limit": str(self.limits.max_batch_records)},
            )
        size = 0
        for index, record in enumerate(batch.records):
            if len(record) > self.limits.max_record_bytes:
                raise ResourceExhausted(
                    Reason.RECORD_TOO_LARGE,
                    f"record {index} has {len(record)} bytes; the limit is "
                    f"{self.limits.max_record_bytes}",
                    {"record_index": str(index), "limit": str(self.limits.max_record_bytes)},
                )
            size += len(record)
        if size > self.limits.max_batch_bytes:
            raise ResourceExhausted(
                Reason.BATCH_TOO_LARGE,
                f"the batch has {size} record bytes; the limit is {self.limits.max_batch_bytes}",
                {"limit": str(self.limits.max_batch_bytes)},
            )
        return size

    def _check_time(self, batch: exchange_pb2.RecordBatch, created: int) -> None:
        """Refuses a batch created too far in the future or too long ago (replays)."""
        now = time.time_ns()
        ahead = (created - now) / 1e9
        if ahead > self.limits.max_clock_skew_seconds:
            raise InvalidArgument(
                Reason.CLOCK_SKEW,
                f"batch.create_time is {ahead:.0f} s ahead of the gateway's clock; at most "
                f"{self.limits.max_clock_skew_seconds:.0f} s are allowed: check the "
                "publisher's clock (NTP)",
                {"limit_seconds": str(int(self.limits.max_clock_skew_seconds))},
            )
        age = (now - created) / 1e9
        if age > self.limits.max_batch_age_seconds:
            raise InvalidArgument(
                Reason.CLOCK_SKEW,
                f"batch.create_time is {age:.0f} s old; batches older than "
                f"{self.limits.max_batch_age_seconds:.0f} s are refused as replays: sign "
                "the records again in a new batch",
                {"limit_seconds": str(int(self.limits.max_batch_age_seconds))},
            )

    async def verify(
        self, identity: Identity, batch: exchange_pb2.RecordBatch
    ) -> tuple[bytes, int, schemas.ParsedSchema]:
        """Checks shape, ownership, schema, key and signature. A big batch's digest is
        computed off the event loop (hashing releases the GIL).

        Returns:
            The batch digest, its record bytes, and the registered writer schema.
        """
        size = self._check_shape(batch)
        resource = self.view.resource(batch.resource)
        system = self.view.system(identity.system or "")
        if resource.owner_department != system.department:
            raise PermissionDenied(
                Reason.NOT_OWNER,
                f"system {system.code} belongs to {system.department}; resource "
                f"{resource.code} is owned by {resource.owner_department}",
            )
        if not system.active:
            raise PermissionDenied(Reason.SYSTEM_SUSPENDED, f"system {system.code} is suspended")
        parsed = self.view.schema(resource.code, batch.schema_fingerprint)
        key = system.keys.get(batch.signing_key_id)
        if key is None:
            raise FailedPrecondition(
                Reason.UNKNOWN_SIGNING_KEY,
                f"signing key {batch.signing_key_id!r} is not a key of {system.code}",
                {"key_id": batch.signing_key_id[:32]},
            )
        created = batch.create_time.ToNanoseconds()
        self._check_time(batch, created)
        if key.revoked_at is not None:
            revoked = _ns(key.revoked_at)
            if created >= revoked or (key.compromised and time.time_ns() >= revoked):
                raise PermissionDenied(
                    Reason.KEY_REVOKED,
                    f"signing key {batch.signing_key_id} of {system.code} is revoked since "
                    f"{key.revoked_at.isoformat()}"
                    + (
                        " as compromised: no batch signed with it is accepted any more"
                        if key.compromised
                        else "; the batch was created after that"
                    ),
                    {"key_id": batch.signing_key_id},
                )
        if size > self.checker.inline_bytes:
            digest = await asyncio.to_thread(digest_of_batch, batch)
        else:
            digest = digest_of_batch(batch)
        if not signing.verify(key.public_key, digest, batch.signature):
            metrics.SIGNATURE_FAILURES.labels(system.department).inc()
            raise InvalidArgument(
                Reason.BAD_SIGNATURE,
                f"the signature of batch {batch.batch_id!r} does not verify with key "
                f"{batch.signing_key_id}",
                {"batch_id": batch.batch_id},
            )
        return digest, size, parsed

    async def accept(
        self, identity: Identity, batch: exchange_pb2.RecordBatch, payload: bytes
    ) -> asyncio.Future[exchange_pb2.PublishResponse]:
        """Verifies and validates a batch, then starts its durable append.

        Returns a future of the acknowledgement so the caller can validate the next
        batch while this one commits. Refusals raise before anything is stored. The
        records are checked as exact Avro (:mod:`envelope.avro`), a big batch
        in worker processes, and the CPU this takes is charged to the caller.
        """
        received = time.time_ns()
        try:
            if self.rate is not None:
                self.rate.take(identity.name, len(batch.records))
            self.checker.admit(identity.name)
            digest, size, parsed = await self.verify(identity, batch)
            await self.checker.check(identity.name, parsed, batch.records, size)
        except LijiaoError as refusal:
            refusal.metadata.setdefault("batch_id", batch.batch_id[:MAX_BATCH_ID_LENGTH])
            refusal.metadata.setdefault("resource", batch.resource[:64])
            raise
        entry = NewBatch(
            resource=batch.resource,
            batch_id=batch.batch_id,
            publisher=identity.system or "",
            sequence=batch.sequence,
            fingerprint=batch.schema_fingerprint,
            digest=digest,
            record_count=len(batch.records),
            byte_count=size,
            received_ns=received,
            payload=payload,
        )
        key = (entry.publisher, entry.resource)
        await self._know_last_sequence(key, entry.sequence)
        ahead = list(self._pending.get(key, ()))
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, []).append(turn)
        return asyncio.ensure_future(self._append(entry, batch, ahead, turn))

    async def _append(
        self,
        entry: NewBatch,
        batch: exchange_pb2.RecordBatch,
        ahead: list[asyncio.Future[None]],
        turn: asyncio.Future[None],
    ) -> exchange_pb2.PublishResponse:
        key = (entry.publisher, entry.resource)
        try:
            appended = await self.log.append(entry)
            # The sequence a batch follows is the last one stored before it: wait for
            # the batches accepted before it to be stored or refused.
            for earlier in ahead:
                await earlier
            previous: int | None = None
            if not appended.duplicate:
                previous = self._follows(key, entry.sequence)
        finally:
            if not turn.done():
                turn.set_result(None)
            waiting = self._pending.get(key, [])
            if turn in waiting:
                waiting.remove(turn)
            if not waiting:
                self._pending.pop(key, None)
        if appended.duplicate:
            metrics.DUPLICATE_BATCHES.inc()
            # The first attempt may have been stored and then failed to reach the ledger
            # (the publisher got INTERNAL and sent it again): record it before the ack.
            recorded = self.entry_of(entry, appended.position, appended.stored_ns, batch)
            await asyncio.wrap_future(
                self.ledger.call(lambda conn: ensure_batch_entry(conn, recorded))
            )
        else:
            metrics.PUBLISH_DURABLE_SECONDS.observe((appended.stored_ns - entry.received_ns) / 1e9)
            recorded = self.entry_of(entry, appended.position, appended.stored_ns, batch)
            entries = [recorded]
            if previous is not None:
                entries.append(
                    self._anomaly(entry, appended.position, recorded.department, previous)
                )
            await self.ledger.record(entries)
            metrics.published(
                recorded.department, entry.resource, entry.record_count, entry.byte_count
            )
        durable = Timestamp()
        durable.FromNanoseconds(appended.stored_ns)
        return exchange_pb2.PublishResponse(
            batch_id=entry.batch_id,
            offset=appended.position,
            duplicate=appended.duplicate,
            durable_time=durable,
        )

    async def _know_last_sequence(self, key: tuple[str, str], sequence: int) -> None:
        """Reads a publisher's last stored sequence for a resource from the log when the
        gateway does not know it, or when this batch does not follow it and nothing of
        the publisher's is under way here (it may have sent through another replica)."""
        if self._pending.get(key):
            return
        known = self._sequences.get(key)
        if known is None or (known >= 0 and sequence != known + 1):
            last = await self.log.last_sequence(key[0], key[1], MAX_SEQUENCE)
            self._sequences[key] = max(-1 if last is None else last, self._sequences.get(key, -1))

    def _follows(self, key: tuple[str, str], sequence: int) -> int | None:
        """Takes a stored batch's sequence; returns the publisher's previous one when
        this one does not follow it (a gap or a regression), else None. Called in the
        order the batches were accepted, each after the ones before it were stored or
        refused, so a refused batch leaves nothing behind."""
        previous = self._sequences.get(key, -1)
        self._sequences[key] = max(previous, sequence)
        if previous < 0 or sequence == previous + 1:
            return None
        return previous

    @staticmethod
    def _anomaly(batch: NewBatch, position: int, department: str, previous: int) -> NewEntry:
        """Reports a gap or a regression in a publisher's sequence for a resource.

        Not a refusal: the signature already binds the sequence, a restarted publisher
        legitimately skips ahead, and a regression may be a second publisher instance.
        The auditor decides; the ledger and a metric tell.
        """
        kind = "gap" if batch.sequence > previous else "regression"
        metrics.SEQUENCE_ANOMALIES.labels(department, kind).inc()
        return NewEntry(
            EntryKind.ANOMALY,
            f"sequence.{kind}",
            principal=batch.publisher,
            department=department,
            provider=department,
            system=batch.publisher,
            resource=batch.resource,
            subject=batch.batch_id,
            position=position,
            details={
                "previous_sequence": previous,
                "sequence": batch.sequence,
                "missing": max(0, batch.sequence - previous - 1),
            },
        )

    async def serve(
        self,
        identity: Identity,
        requests: AsyncIterator[exchange_pb2.PublishRequest],
        recheck: Callable[[], None] = lambda: None,
    ) -> AsyncIterator[exchange_pb2.PublishResponse]:
        """Runs one Publish stream: acknowledgements in order, pipelined commits.

        A refused batch ends the stream after the acknowledgements of the batches
        accepted before it.
        """
        Item = tuple[asyncio.Future[exchange_pb2.PublishResponse], int] | BaseException | None
        pending: asyncio.Queue[Item] = asyncio.Queue(PIPELINE_DEPTH)
        in_flight = 0
        room = asyncio.Event()

        async def intake() -> None:
            nonlocal in_flight
            try:
                async for request in requests:
                    recheck()  # a credential revoked mid-stream ends it
                    batch = request.batch
                    # Unknown fields lie outside the digest, byte counts and limits:
                    # they are not stored with the signed batch.
                    batch.DiscardUnknownFields()
                    payload = batch.SerializeToString()
                    while in_flight and in_flight + len(payload) > PIPELINE_BYTES:
                        room.clear()
                        await room.wait()
                    in_flight += len(payload)
                    await pending.put((await self.accept(identity, batch, payload), len(payload)))
                await pending.put(None)
            except Exception as exc:  # handed to the response side, in order
                await pending.put(exc)

        task = asyncio.create_task(intake())
        try:
            while True:
                item = await pending.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                future, size = item
                response = await future
                in_flight -= size
                room.set()
                yield response
        finally:
            task.cancel()
