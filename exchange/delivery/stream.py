"""One Subscribe stream: the window of unacknowledged batches, acks, redelivery.

An ack acknowledges one delivery on its own stream: it names an offset delivered there
and not yet acknowledged as often as it was delivered, and reports at most as many
dead-lettered records as that delivery carried. Any other ack ends the stream with
``INVALID_ACK`` and changes nothing.

``delivery_attempt`` on the wire counts the sends of a batch on this stream (1 the first
time). Dead-lettering counts more: what earlier streams delivered (kept in the catalog
database, :mod:`exchange.delivery.attempts`) plus this stream's sends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from catalog.credentials import Identity
from catalog.ledger import NewEntry
from envelope.errors import InvalidArgument, Reason
from exchange import metrics
from exchange.audit.tasks import LedgerWriter
from exchange.delivery.entries import SubscriptionEntries
from exchange.delivery.projection import Sent
from exchange.gate.catalog_view import CatalogView, GrantView
from exchange.log import RecordLog, StoredBatch
from exchange.v1 import exchange_pb2

IDLE_WAIT_SECONDS = 0.5
REMEMBERED_DELIVERIES = 1024  # acknowledged deliveries a stream remembers, to name a repeat


class StreamHost(Protocol):
    """What a Subscribe stream uses of the delivery path that opened it."""

    view: CatalogView  # who the subscriber and the provider are
    log: RecordLog  # the batches to read, the cursor to move
    ledger: LedgerWriter  # deliveries and dead letters, recorded before the cursor moves
    ack_timeout: float  # seconds after which the unacknowledged batches are sent again
    max_deliveries: int  # deliveries without an ack before a batch is given up (0: never)

    def current_grant(self, system: str, resource: str) -> GrantView:
        """The system's active grant for the resource; raises PermissionDenied if none."""
        ...

    async def deliver(
        self,
        stored: StoredBatch,
        grant: GrantView,
        subscriber: str,
        attempt: int,
        sent_schemas: set[bytes],
    ) -> tuple[exchange_pb2.DeliveredBatch, Sent]:
        """The countersigned delivery of a stored batch under a grant."""
        ...


@dataclass
class _InFlight:
    batch: StoredBatch
    records: int
    sent_at: float
    acked: bool = False


@dataclass(slots=True)
class _Delivery:
    """A batch delivered on one stream: how often, how often acknowledged, how many records
    its latest delivery carried."""

    deliveries: int = 0
    acks: int = 0
    records: int = 0


class SubscriptionStream:
    """State of one Subscribe stream."""

    def __init__(
        self,
        host: StreamHost,
        identity: Identity,
        resource: str,
        subscription: str,
        window: int,
        grant: GrantView,
        cursor: int,
        earlier: dict[int, int] | None = None,
    ) -> None:
        self.host = host
        self.system = identity.system or ""
        self.entries = SubscriptionEntries(
            principal=identity.name,
            department=host.view.system(self.system).department,
            provider=host.view.resource(resource).owner_department,
            system=self.system,
            resource=resource,
            subscription=subscription,
            personal=bool(host.view.resource(resource).tags),
        )
        self.department = self.entries.department
        self.sent: dict[int, Sent] = {}
        self.unrecorded = False  # a ledger group failed: the cursor must not move on
        self.recording: concurrent.futures.Future[int] | None = None  # the last group
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
        # deliveries of each batch to the subscription before this stream opened
        self.earlier: dict[int, int] = earlier or {}
        # by position, in the order first delivered (ascending); past a bound the oldest
        # at or below the cursor are forgotten, and ``forgotten`` is the highest of them
        self.deliveries: OrderedDict[int, _Delivery] = OrderedDict()
        self.remembered = max(REMEMBERED_DELIVERIES, 2 * window)
        self.forgotten = cursor
        self.in_flight: OrderedDict[int, _InFlight] = OrderedDict()
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
        ahead = offset > self.cursor  # delivered here, and the cursor has not passed it
        if dead_lettered and (entry is not None or ahead):
            self.dead_lettered[offset] = dead_lettered
        if entry is None:
            if ahead:
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

    def unacknowledged_attempts(self) -> dict[int, int]:
        """Deliveries so far to the subscription of each batch this stream sent and has not
        seen acknowledged: the earlier streams' and its own."""
        acknowledged = self.late_acks | {p for p, entry in self.in_flight.items() if entry.acked}
        return {
            position: self.earlier.get(position, 0) + seen.deliveries
            for position, seen in self.deliveries.items()
            if position > self.cursor and position not in acknowledged
        }

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
            self.cursor = position
            sent = self.sent.pop(position, None)
            if position in self.given_up:
                entries.append(self.given_up.pop(position))
                self.dead_lettered.pop(position, None)  # a late ack's report: given up first
            elif sent is not None:
                dead = self.dead_lettered.pop(position, 0)
                entries.append(self.entries.delivered(head.batch, sent, self.grant.id, dead))
        if entries:
            system, resource, subscription, cursor = (
                self.system,
                self.resource,
                self.subscription,
                self.cursor,
            )
            log = self.host.log
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

            self.recording = self.host.ledger.submit(entries)
            self.recording.add_done_callback(committed)
        self.wake.set()

    async def _recorded(self) -> None:
        """Waits until what was acknowledged on this stream is recorded and the cursor
        moved past it, so a subscriber that ends the stream and opens the next one is not
        sent those batches again (nor, on a replay, a start point applied once more)."""
        if self.recording is not None:
            with contextlib.suppress(Exception):  # a failure ends the stream (see _fail)
                await asyncio.wrap_future(self.recording)

    def _dead_letter(self, stored: StoredBatch, attempts: int) -> None:
        """Gives a batch up after ``attempts`` unacknowledged deliveries: its DEAD_LETTER
        entry is recorded in order with the deliveries, and the cursor moves past it.
        The batch stays in the log; a replay delivers it again."""
        batch = exchange_pb2.RecordBatch.FromString(stored.payload)
        metrics.dead_lettered(self.department, self.resource, len(batch.records))
        self.given_up[stored.position] = self.entries.dead_letter(
            stored, batch.batch_id, len(batch.records), self.grant.id, attempts
        )
        self.sent.pop(stored.position, None)  # delivered before, never acknowledged
        self.dead_lettered.pop(stored.position, None)
        self.in_flight[stored.position] = _InFlight(stored, 0, time.monotonic(), acked=True)
        self.last_sent = stored.position
        self._advance()

    def _fail(self, why: str) -> None:
        if self.error is None:
            self.error = RuntimeError(why)
        self.closed = True
        self.wake.set()

    def _check_grant(self) -> None:
        """Re-reads the grant before every read of the log: a cached lookup that a
        revocation on this gateway clears at once (and other changes within seconds).
        The caller's credential is checked again too (throttled by the recheck)."""
        self.recheck()
        self.grant = self.host.current_grant(self.system, self.resource)

    def _expire_unacked(self) -> None:
        if not self.in_flight:
            return
        oldest = next(iter(self.in_flight.values()))
        if time.monotonic() - oldest.sent_at < self.host.ack_timeout:
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
    ) -> AsyncGenerator[exchange_pb2.SubscribeResponse, None]:
        """Delivers until the subscriber half-closes the stream (after its last ack, which
        is recorded before the stream ends) or an error ends it."""
        reader = asyncio.create_task(self._read_acks(iterator))
        log = self.host.log
        log.watch(self.resource, self.wake)
        try:
            while not self.closed:
                self._check_grant()
                self._expire_unacked()
                self.wake.clear()  # before reading: an append or ack from now on wakes us
                room = self.window - len(self.in_flight)
                rows = await log.read_after(self.resource, self.last_sent, room) if room > 0 else []
                if not rows:
                    await self._idle()
                    continue
                for stored in rows:
                    if stored.position in self.late_acks:
                        self.late_acks.discard(stored.position)
                        self.in_flight[stored.position] = _InFlight(
                            stored, 0, time.monotonic(), acked=True
                        )
                        self.last_sent = stored.position
                        self._advance()
                        continue
                    self._check_grant()  # a revocation while this pass yields stops it here
                    response = await self._send(stored)
                    if response is not None:
                        yield response
            if self.error is None:
                await self._recorded()
            if self.error is not None:
                raise self.error
        finally:
            log.unwatch(self.resource, self.wake)
            reader.cancel()

    async def _send(self, stored: StoredBatch) -> exchange_pb2.SubscribeResponse | None:
        """Delivers a batch once more, or gives it up when the subscription has had it
        ``max_deliveries`` times without an ack (None then)."""
        seen = self.deliveries.get(stored.position)
        attempt = (seen.deliveries if seen is not None else 0) + 1  # on this stream
        total = self.earlier.get(stored.position, 0) + attempt
        limit = self.host.max_deliveries
        if limit and total > limit:
            self._dead_letter(stored, limit)
            return None
        if total > 1:
            metrics.REDELIVERIES.inc()
        delivered, sent = await self.host.deliver(
            stored, self.grant, self.system, attempt, self.sent_schemas
        )
        self.sent[stored.position] = sent
        self._sent_here(stored.position, len(delivered.records))
        self.in_flight[stored.position] = _InFlight(
            stored, len(delivered.records), time.monotonic()
        )
        self.last_sent = stored.position
        return exchange_pb2.SubscribeResponse(batch=delivered)
