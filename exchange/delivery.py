"""The delivery path: from the log to a granted subscriber, one acknowledged batch at a time.

A subscription has a durable cursor: the position of the last batch that the
subscriber acknowledged (and everything before it). Delivery starts after the cursor,
keeps at most ``max_in_flight`` batches unacknowledged, and sends them again when the
acknowledgements do not come within the ack timeout or the subscriber reconnects.
Each delivered batch carries only what the grant allows (its fields, its region) and is
countersigned by the gateway. Every acknowledged delivery is a ledger entry, committed
before the cursor moves past it.

An ack acknowledges one delivery on its own stream: it names an offset delivered there
and not yet acknowledged as often as it was delivered, and reports at most as many
dead-lettered records as that delivery carried. Any other ack ends the stream with
``INVALID_ACK`` and changes nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, cast

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import expand_schema
from sqlalchemy import Table, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from catalog import validation
from catalog.credentials import Identity
from catalog.ledger import EntryKind, NewEntry, format_ns
from catalog.masks import DEFAULT_POLICY, MaskPolicy
from catalog.models import DeliveryAttempt, Sensitivity, utcnow
from envelope import schemas
from envelope.digest import digest_of_delivery
from envelope.errors import InvalidArgument, PermissionDenied, Reason
from envelope.signing import Signer
from exchange import metrics
from exchange.audit import LedgerWriter
from exchange.catalog_view import CatalogView, GrantView
from exchange.log import RecordLog, StoredBatch
from exchange.rpc import refuse_nul
from exchange.v1 import exchange_pb2

DEFAULT_IN_FLIGHT = 16
MAX_OFFSET = 2**63 - 1  # positions the logs hold
MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
MAX_IN_FLIGHT = 1000
IDLE_WAIT_SECONDS = 0.5
REMEMBERED_DELIVERIES = 1024  # acknowledged deliveries a stream remembers, to name a repeat
OPEN_MARKER = "lijiao-subscription"


@dataclass
class _InFlight:
    batch: StoredBatch
    records: int
    sent_at: float
    attempts: int
    acked: bool = False


@dataclass(slots=True)
class _Delivery:
    """A batch delivered on one stream: how often, how often acknowledged, how many records
    its latest delivery carried."""

    deliveries: int = 0
    acks: int = 0
    records: int = 0


@dataclass(frozen=True)
class _Sent:
    """What the ledger keeps of the last delivery of a batch on a stream."""

    batch_id: str
    records: int
    size: int
    digest: bytes
    signature: bytes
    sent_ns: int
    attempt: int


@dataclass(frozen=True)
class _Projection:
    """How a grant reshapes batches written with one schema: rows, fields, masks."""

    writer: Any
    schema: schemas.ParsedSchema
    fields: tuple[str, ...] | None
    region_field: str
    region: str
    masked: dict[str, Sensitivity]

    def apply(self, records: Any, policy: MaskPolicy) -> list[bytes]:
        out: list[bytes] = []
        for raw in records:
            # Named union branches keep their names, so re-encoding cannot switch branch.
            row: Any = schemaless_reader(
                io.BytesIO(raw),
                self.writer,
                None,
                return_record_name=True,
                return_record_name_override=True,
            )
            if self.region and not validation.region_contains(
                self.region, str(row.get(self.region_field) or "")
            ):
                continue
            if self.fields is not None:
                row = {name: row[name] for name in self.fields}
            for name, tag in self.masked.items():
                row[name] = _mask_value(policy, tag, row[name])
            buffer = io.BytesIO()
            schemaless_writer(buffer, self.schema.parsed, row)
            out.append(buffer.getvalue())
        return out


def _mask_value(policy: MaskPolicy, tag: Sensitivity, value: Any) -> Any:
    """Masks a value and every string inside it (records, arrays, maps of strings)."""
    if isinstance(value, dict):
        return {key: _mask_value(policy, tag, item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask_value(policy, tag, item) for item in value]
    if isinstance(value, tuple):  # (record name, record) of a union branch
        return (value[0], _mask_value(policy, tag, value[1]))
    return policy.mask(tag, value)


def _derived_schema(writer: schemas.ParsedSchema, fields: tuple[str, ...]) -> schemas.ParsedSchema:
    """The writer schema with only ``fields``; named types are inlined first, so a kept
    field whose type was defined inside a dropped one still resolves."""
    expanded: Any = expand_schema(writer.definition)
    definition = dict(expanded)
    definition["fields"] = [f for f in definition["fields"] if f["name"] in fields]
    return schemas.parse(definition)


_ProjectionKey = tuple[str, bytes, tuple[str, ...], tuple[str, ...], str]


_ATTEMPTS = cast(Table, DeliveryAttempt.__table__)


def load_attempts(
    sessions: sessionmaker[Session], system: str, resource: str, subscription: str, cursor: int
) -> dict[int, int]:
    """The kept attempts of a subscription's batches after ``cursor`` (and those at or
    below it, acknowledged since, are removed)."""
    table = _ATTEMPTS
    mine = (
        (table.c.system == system)
        & (table.c.resource == resource)
        & (table.c.subscription == subscription)
    )
    with sessions.kw["bind"].begin() as conn:
        conn.execute(delete(table).where(mine & (table.c.position <= cursor)))
        rows = conn.execute(select(table.c.position, table.c.attempts).where(mine)).all()
    return {int(position): int(attempts) for position, attempts in rows}


def keep_attempts(
    sessions: sessionmaker[Session],
    system: str,
    resource: str,
    subscription: str,
    attempts: dict[int, int],
) -> None:
    """Stores attempts of unacknowledged batches (the higher count wins)."""
    table = _ATTEMPTS
    engine = sessions.kw["bind"]
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    now = utcnow()
    statement = insert(table).values(
        [
            {
                "system": system,
                "resource": resource,
                "subscription": subscription,
                "position": position,
                "attempts": count,
                "updated_at": now,
            }
            for position, count in attempts.items()
        ]
    )
    statement = statement.on_conflict_do_update(
        index_elements=["system", "resource", "subscription", "position"],
        set_={
            "attempts": case(
                (table.c.attempts > statement.excluded.attempts, table.c.attempts),
                else_=statement.excluded.attempts,
            ),
            "updated_at": now,
        },
    )
    try:
        with engine.begin() as conn:
            conn.execute(statement)
    except Exception:  # counts are a safeguard: a failure only lets a batch be retried more
        logging.getLogger(__name__).exception("could not keep delivery attempts")


class DeliveryPath:
    """Serves Subscribe streams for one gateway."""

    def __init__(
        self,
        view: CatalogView,
        log: RecordLog,
        signer: Signer,
        ack_timeout: float,
        ledger: LedgerWriter,
        masks: MaskPolicy = DEFAULT_POLICY,
        max_deliveries: int = 0,
        sessions: sessionmaker[Session] | None = None,
    ) -> None:
        self.view = view
        self.sessions = sessions  # the catalog: attempts kept across streams
        self.log = log
        self.ledger = ledger
        self.signer = signer
        self.ack_timeout = ack_timeout
        self.masks = masks
        self.max_deliveries = max_deliveries  # 0: deliver until acknowledged
        # attempts per (system, resource, subscription, position), across the streams
        # of this gateway process; dropped when acknowledged
        self.tries: dict[tuple[str, str, str, int], int] = {}
        self._projections: dict[_ProjectionKey, _Projection | None] = {}

    def _projection(
        self, resource: str, fingerprint: bytes, grant: GrantView
    ) -> _Projection | None:
        """What the grant does to batches of one schema; None when it delivers them as is.

        Minimum necessary: only the granted fields, only the rows of the granted region,
        and every field tagged sensitive masked unless the grant names it as clear.
        """
        key = (resource, fingerprint, grant.fields, grant.clear_fields, grant.region)
        if key not in self._projections:
            writer = self.view.schema(resource, fingerprint)
            known = writer.top_level_fields()
            view = self.view.resource(resource)
            if fingerprint not in view.fingerprints:
                self.view.forget_resource(resource)  # a newer version's tags: read them now
                view = self.view.resource(resource)
            fields = tuple(f for f in known if f in grant.fields) if grant.fields else None
            delivered = fields if fields is not None else tuple(known)
            masked = {
                name: tag
                for name, tag in view.tags.items()
                if name in delivered and name not in grant.clear_fields
            }
            if fields is None and not grant.region and not masked:
                self._projections[key] = None
            else:
                derived = _derived_schema(writer, fields) if fields is not None else writer
                self._projections[key] = _Projection(
                    writer=parse_schema(json.loads(json.dumps(writer.definition))),
                    schema=derived,
                    fields=fields,
                    region_field=view.region_field,
                    region=grant.region,
                    masked=masked,
                )
        return self._projections[key]

    def _deliver(
        self,
        stored: StoredBatch,
        grant: GrantView,
        subscriber: str,
        attempt: int,
        sent_schemas: set[bytes],
    ) -> tuple[exchange_pb2.DeliveredBatch, _Sent]:
        batch = exchange_pb2.RecordBatch.FromString(stored.payload)
        projection = self._projection(batch.resource, batch.schema_fingerprint, grant)
        if projection is None:
            records: Any = batch.records
            schema = self.view.schema(batch.resource, batch.schema_fingerprint)
        else:
            records = projection.apply(batch.records, self.masks)
            schema = projection.schema
        delivered = exchange_pb2.DeliveredBatch(
            offset=stored.position,
            resource=batch.resource,
            batch_id=batch.batch_id,
            publisher_system=stored.publisher,
            sequence=batch.sequence,
            create_time=batch.create_time,
            schema_fingerprint=schema.fingerprint,
            records=records,
            provider_digest=stored.digest,
            provider_signature=batch.signature,
            provider_key_id=batch.signing_key_id,
            grant_id=grant.id,
            subscriber_system=subscriber,
            gateway_key_id=self.signer.key_id,
            delivery_attempt=attempt,
        )
        if schema.fingerprint not in sent_schemas:
            delivered.schema = json.dumps(schema.definition, ensure_ascii=False)
            sent_schemas.add(schema.fingerprint)
        digest = digest_of_delivery(delivered)
        delivered.gateway_signature = self.signer.sign(digest)
        sent = _Sent(
            batch_id=batch.batch_id,
            records=len(records),
            size=sum(len(record) for record in records),
            digest=digest,
            signature=delivered.gateway_signature,
            sent_ns=time.time_ns(),
            attempt=attempt,
        )
        return delivered, sent

    def _current_grant(self, system: str, resource: str) -> GrantView:
        grant = self.view.grant(system, resource)
        if grant is None or not grant.active():
            raise PermissionDenied(
                Reason.NO_GRANT,
                f"system {system} has no active grant for resource {resource}; "
                "ask the owning department for access",
                {"resource": resource},
            )
        return grant

    async def _start(self, opening: exchange_pb2.SubscriptionOpen, resource: str) -> int:
        """Where a new subscription starts: after an offset, from a time, or at 0."""
        which = opening.WhichOneof("start")
        if which == "start_after_offset":
            if opening.start_after_offset > MAX_OFFSET:
                raise InvalidArgument(
                    Reason.INVALID_FIELD,
                    f"open.start_after_offset must be at most {MAX_OFFSET}",
                    {"field": "open.start_after_offset"},
                )
            return int(opening.start_after_offset)
        if which == "start_time":
            stamp = opening.start_time
            if not (0 <= stamp.seconds <= MAX_SECONDS and 0 <= stamp.nanos <= 999_999_999):
                raise InvalidArgument(
                    Reason.INVALID_FIELD,
                    "open.start_time must be a valid timestamp after 1970 (nanos 0-999999999)",
                    {"field": "open.start_time"},
                )
            return await self.log.position_at(resource, stamp.ToNanoseconds())
        return 0

    async def serve(
        self,
        identity: Identity,
        requests: AsyncIterator[exchange_pb2.SubscribeRequest],
        context: Any,
        recheck: Callable[[], None] = lambda: None,
    ) -> AsyncIterator[exchange_pb2.SubscribeResponse]:
        """Runs one Subscribe stream until the subscriber closes it.

        Once the subscription is accepted, the initial metadata carries
        ``lijiao-subscription: open`` so the subscriber knows it is connected before any
        batch arrives.
        """
        iterator = requests.__aiter__()
        try:
            first = await iterator.__anext__()
        except StopAsyncIteration:
            return
        if first.WhichOneof("kind") != "open":
            raise InvalidArgument(
                Reason.INVALID_FIELD, "the first Subscribe message must be 'open'"
            )
        opening = first.open
        refuse_nul(opening)
        resource = self.view.resource(opening.resource).code
        subscription = opening.subscription or "default"
        validation.code("subscription", subscription)
        window = opening.max_in_flight or DEFAULT_IN_FLIGHT
        if window > MAX_IN_FLIGHT:
            raise InvalidArgument(Reason.INVALID_FIELD, f"max_in_flight must be 1..{MAX_IN_FLIGHT}")
        system = identity.system or ""
        if not system:
            raise PermissionDenied(Reason.ROLE_NOT_ALLOWED, "only systems subscribe")
        grant = self._current_grant(system, resource)
        cursor = await self.log.cursor(system, resource, subscription)
        if cursor == 0:  # a new subscription may start elsewhere (a replay)
            cursor = await self._start(opening, resource)
        if self.max_deliveries and self.sessions is not None:
            # what earlier streams (on any replica) left unacknowledged counts
            kept = await asyncio.to_thread(
                load_attempts, self.sessions, system, resource, subscription, cursor
            )
            for position, attempts in kept.items():
                key = (system, resource, subscription, position)
                self.tries[key] = max(self.tries.get(key, 0), attempts)
        await context.send_initial_metadata(((OPEN_MARKER, "open"),))
        stream = _Stream(self, identity, resource, subscription, window, grant, cursor)
        stream.recheck = recheck
        async for response in stream.run(iterator):
            yield response


class _Stream:
    """State of one Subscribe stream."""

    def __init__(
        self,
        path: DeliveryPath,
        identity: Identity,
        resource: str,
        subscription: str,
        window: int,
        grant: GrantView,
        cursor: int,
    ) -> None:
        self.path = path
        self.system = identity.system or ""
        self.principal = identity.name
        self.department = path.view.system(self.system).department
        self.provider = path.view.resource(resource).owner_department
        self.personal = bool(path.view.resource(resource).tags)
        self.sent: dict[int, _Sent] = {}
        self.unrecorded = False  # a ledger group failed: the cursor must not move on
        self.recheck: Callable[[], None] = lambda: None  # the caller's credential
        self.dead_lettered: dict[int, int] = {}
        self.given_up: dict[int, NewEntry] = {}  # DEAD_LETTER entries, recorded in order
        self.resource = resource
        self.subscription = subscription
        self.window = window
        self.grant = grant
        self.cursor = cursor
        self.opened_at = cursor  # nothing at or below it is delivered on this stream
        self.last_sent = cursor
        # by position, in the order first delivered (ascending); past a bound the oldest
        # at or below the cursor are forgotten, and ``forgotten`` is the highest of them
        self.deliveries: OrderedDict[int, _Delivery] = OrderedDict()
        self.remembered = max(REMEMBERED_DELIVERIES, 2 * window)
        self.forgotten = cursor
        self.in_flight: OrderedDict[int, _InFlight] = OrderedDict()
        self.attempts: dict[int, int] = {}
        self.late_acks: set[int] = set()
        self.sent_schemas: set[bytes] = set()
        self.wake = asyncio.Event()
        self.closed = False
        self.error: BaseException | None = None

    async def _read_acks(self, iterator: AsyncIterator[exchange_pb2.SubscribeRequest]) -> None:
        try:
            async for request in iterator:
                if request.WhichOneof("kind") != "ack":
                    raise InvalidArgument(
                        Reason.INVALID_ACK, "after 'open', a Subscribe stream only carries acks"
                    )
                await self._ack(request.ack.offset, request.ack.dead_lettered_records)
        except Exception as exc:
            self.error = exc
        finally:
            self.closed = True
            self.wake.set()

    async def _ack(self, offset: int, dead_lettered: int = 0) -> None:
        """Takes one acknowledgement of a delivery on this stream.

        Args:
            offset: The acknowledged batch's position.
            dead_lettered: Records of it the subscriber put on its own dead-letter list.

        Raises:
            InvalidArgument: ``INVALID_ACK``: the offset is not awaiting an ack on this
                stream, or ``dead_lettered`` is more than the records delivered. Nothing
                has changed then.
        """
        seen = self._awaiting_ack(offset)
        if dead_lettered > seen.records:
            raise InvalidArgument(
                Reason.INVALID_ACK,
                f"the ack of offset {offset} reports {dead_lettered} dead-lettered records; "
                f"dead_lettered_records must be at most {seen.records}, the records "
                "delivered in that batch",
                {"offset": str(offset), "limit": str(seen.records)},
            )
        seen.acks += 1
        entry = self.in_flight.get(offset)
        if dead_lettered and (entry is not None or offset in self.attempts):
            self.dead_lettered[offset] = dead_lettered
        if entry is None:
            if offset > self.cursor and offset in self.attempts:
                self.late_acks.add(offset)  # acked after the timeout, before the resend
                self.wake.set()
            # else acknowledged or given up already: this ack is of its other delivery
            return
        entry.acked = True
        self._advance()

    def _awaiting_ack(self, offset: int) -> _Delivery:
        """The delivery on this stream that an ack of ``offset`` acknowledges.

        Raises:
            InvalidArgument: ``INVALID_ACK``: never delivered on this stream, or every
                delivery of it acknowledged already.
        """
        seen = self.deliveries.get(offset)
        if seen is not None and seen.acks < seen.deliveries:
            return seen
        if seen is not None:
            times = f" ({seen.deliveries} deliveries)" if seen.deliveries > 1 else ""
            why = f"offset {offset} was already acknowledged on this stream{times}"
        elif offset <= self.opened_at or offset > self.forgotten:
            why = f"offset {offset} was not delivered on this stream"
        else:
            why = (
                f"offset {offset} is not awaiting an ack on this stream "
                "(it was not delivered here, or was acknowledged long ago)"
            )
        raise InvalidArgument(Reason.INVALID_ACK, why, {"offset": str(offset)})

    def _sent_here(self, position: int, records: int) -> None:
        """Counts a delivery on this stream; forgets the oldest ones the cursor passed."""
        seen = self.deliveries.get(position)
        if seen is None:
            seen = self.deliveries[position] = _Delivery()
        seen.deliveries += 1
        seen.records = records
        while len(self.deliveries) > self.remembered:
            oldest = next(iter(self.deliveries))
            if oldest > self.cursor:
                break
            del self.deliveries[oldest]
            self.forgotten = max(self.forgotten, oldest)

    def _advance(self) -> None:
        """Moves the cursor over the acknowledged batches at the head of the window.

        The deliveries are recorded in the ledger first; the cursor moves once they are
        committed (if that fails, the batches are simply delivered again).
        """
        entries: list[NewEntry] = []
        while self.in_flight:
            position, head = next(iter(self.in_flight.items()))
            if not head.acked:
                break
            self.in_flight.popitem(last=False)
            self.attempts.pop(position, None)
            self.path.tries.pop((self.system, self.resource, self.subscription, position), None)
            self.cursor = position
            sent = self.sent.pop(position, None)
            if position in self.given_up:
                entries.append(self.given_up.pop(position))
                self.dead_lettered.pop(position, None)  # a late ack's report: given up first
            elif sent is not None:
                entries.append(self._delivered(head.batch, sent))
        if entries:
            system, resource, subscription, cursor = (
                self.system,
                self.resource,
                self.subscription,
                self.cursor,
            )
            log = self.path.log
            loop = asyncio.get_running_loop()

            def committed(future: concurrent.futures.Future[int]) -> None:
                # Groups commit in order: once one fails, no later one may move the
                # cursor past the deliveries it did not record. The stream ends; the
                # subscriber reconnects from the durable cursor and gets them again.
                if future.cancelled() or future.exception() is not None or self.unrecorded:
                    self.unrecorded = True
                    loop.call_soon_threadsafe(self._fail, "the ledger did not record deliveries")
                    return
                log.move_cursor(system, resource, subscription, cursor)

            self.path.ledger.submit(entries).add_done_callback(committed)
        self.wake.set()

    def _dead_letter(self, stored: StoredBatch, attempts: int) -> None:
        """Gives a batch up after ``attempts`` unacknowledged deliveries: its DEAD_LETTER
        entry is recorded in order with the deliveries, and the cursor moves past it.
        The batch stays in the log; a replay delivers it again."""
        batch = exchange_pb2.RecordBatch.FromString(stored.payload)
        metrics.dead_lettered(self.department, self.resource, len(batch.records))
        self.given_up[stored.position] = self._entry(
            EntryKind.DEAD_LETTER,
            "batch.dead_lettered",
            stored,
            batch.batch_id,
            len(batch.records),
            0,
            {
                "delivery_attempts": attempts,
                "store_time": format_ns(stored.stored_ns),
                "outcome": "DEAD_LETTERED",
            },
        )
        self.sent.pop(stored.position, None)  # delivered before, never acknowledged
        self.dead_lettered.pop(stored.position, None)
        self.in_flight[stored.position] = _InFlight(stored, 0, time.monotonic(), 0, acked=True)
        self.last_sent = stored.position
        self._advance()

    def _fail(self, why: str) -> None:
        if self.error is None:
            self.error = RuntimeError(why)
        self.closed = True
        self.wake.set()

    def _delivered(self, batch: StoredBatch, sent: _Sent) -> NewEntry:
        """Counts an acknowledged delivery and returns its ledger entry."""
        now = time.time_ns()
        dead = self.dead_lettered.pop(batch.position, 0)
        metrics.delivered(self.department, self.provider, self.resource, sent.records, sent.size)
        metrics.PUBLISH_DELIVERY_SECONDS.observe(max(0, now - batch.received_ns) / 1e9)
        if dead:
            metrics.dead_lettered(self.department, self.resource, dead)
        return self._entry(
            EntryKind.DELIVERY,
            "batch.delivered",
            batch,
            sent.batch_id,
            sent.records,
            sent.size,
            {
                "delivered_digest": sent.digest,
                "gateway_signature": sent.signature,
                "gateway_key_id": self.path.signer.key_id,
                "delivery_attempt": sent.attempt,
                "dead_lettered_records": dead,
                "receive_time": format_ns(batch.received_ns),
                "store_time": format_ns(batch.stored_ns),
                "deliver_time": format_ns(sent.sent_ns),
                "ack_time": format_ns(now),
                "outcome": "DELIVERED",
            },
        )

    def _entry(
        self,
        kind: EntryKind,
        action: str,
        stored: StoredBatch,
        batch_id: str,
        records: int,
        size: int,
        details: dict[str, Any],
    ) -> NewEntry:
        """A ledger entry about one of this subscription's batches."""
        return NewEntry(
            kind,
            action,
            principal=self.principal,
            department=self.department,
            provider=self.provider,
            system=self.system,
            resource=self.resource,
            grant_id=self.grant.id,
            subject=batch_id,
            position=stored.position,
            records=records,
            bytes=size,
            personal=self.personal,
            details={
                "publisher_system": stored.publisher,
                "subscription": self.subscription,
                "provider_digest": stored.digest,
                **details,
            },
        )

    def _check_grant(self) -> None:
        """Re-reads the grant before every read of the log: a cached lookup that a
        revocation on this gateway clears at once (and other changes within seconds).
        The caller's credential is checked again too (throttled by the recheck)."""
        self.recheck()
        self.grant = self.path._current_grant(self.system, self.resource)

    def _expire_unacked(self) -> None:
        if not self.in_flight:
            return
        oldest = next(iter(self.in_flight.values()))
        if time.monotonic() - oldest.sent_at < self.path.ack_timeout:
            return
        # Go back to the cursor. Batches already acknowledged behind the stuck one are
        # not sent (nor counted) again: they are taken as acknowledged when read again.
        self.late_acks.update(position for position, entry in self.in_flight.items() if entry.acked)
        self.in_flight.clear()
        self.last_sent = self.cursor

    async def _idle(self) -> None:
        """Waits for an ack, a new batch of the resource, or the idle tick."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), IDLE_WAIT_SECONDS)

    async def run(
        self, iterator: AsyncIterator[exchange_pb2.SubscribeRequest]
    ) -> AsyncIterator[exchange_pb2.SubscribeResponse]:
        reader = asyncio.create_task(self._read_acks(iterator))
        self.path.log.watch(self.resource, self.wake)
        try:
            while not self.closed:
                self._check_grant()
                self._expire_unacked()
                self.wake.clear()  # before reading: an append or ack from now on wakes us
                room = self.window - len(self.in_flight)
                rows = (
                    await self.path.log.read_after(self.resource, self.last_sent, room)
                    if room > 0
                    else []
                )
                if not rows:
                    await self._idle()
                    continue
                for stored in rows:
                    if stored.position in self.late_acks:
                        self.late_acks.discard(stored.position)
                        self.in_flight[stored.position] = _InFlight(
                            stored, 0, time.monotonic(), 0, acked=True
                        )
                        self.last_sent = stored.position
                        self._advance()
                        continue
                    self._check_grant()  # a revocation while this pass yields stops it here
                    key = (self.system, self.resource, self.subscription, stored.position)
                    attempt = self.path.tries.get(key, 0) + 1
                    limit = self.path.max_deliveries
                    if limit and attempt > limit:
                        self._dead_letter(stored, limit)
                        continue
                    self.path.tries[key] = attempt
                    self.attempts[stored.position] = attempt
                    if attempt > 1:
                        metrics.REDELIVERIES.inc()
                    delivered, sent = self.path._deliver(
                        stored, self.grant, self.system, attempt, self.sent_schemas
                    )
                    self.sent[stored.position] = sent
                    self._sent_here(stored.position, len(delivered.records))
                    self.in_flight[stored.position] = _InFlight(
                        stored, len(delivered.records), time.monotonic(), attempt
                    )
                    self.last_sent = stored.position
                    yield exchange_pb2.SubscribeResponse(batch=delivered)
            if self.error is not None:
                raise self.error
        finally:
            self.path.log.unwatch(self.resource, self.wake)
            reader.cancel()
            self._keep_attempts()

    def _keep_attempts(self) -> None:
        """Stores the attempts of the batches this stream leaves unacknowledged, so the
        maximum delivery count holds on the next stream, wherever it opens."""
        path = self.path
        if not path.max_deliveries or path.sessions is None:
            return
        acknowledged = self.late_acks | {p for p, entry in self.in_flight.items() if entry.acked}
        attempts = {}
        for position in self.attempts:
            key = (self.system, self.resource, self.subscription, position)
            if position in acknowledged:
                path.tries.pop(key, None)  # acknowledged behind a stuck batch: not a retry
            elif position > self.cursor and key in path.tries:
                attempts[position] = path.tries[key]
        if attempts:
            asyncio.get_running_loop().run_in_executor(
                None,
                keep_attempts,
                path.sessions,
                self.system,
                self.resource,
                self.subscription,
                attempts,
            )
