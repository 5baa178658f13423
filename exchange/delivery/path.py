"""The delivery path: opens Subscribe streams for one gateway.

A stream is accepted for a system with an active grant for the resource. It starts
after the subscription's durable cursor; a subscription without one may start after an
offset or from a time (a replay).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from catalog import validation
from catalog.credentials import Identity
from catalog.masks import DEFAULT_POLICY, MaskPolicy
from envelope.errors import InvalidArgument, PermissionDenied, Reason
from envelope.signing import Signer
from exchange.audit.tasks import LedgerWriter
from exchange.delivery.attempts import DeliveryCounts
from exchange.delivery.projection import Countersigner, Sent
from exchange.delivery.stream import SubscriptionStream
from exchange.gate.catalog_view import CatalogView, GrantView
from exchange.gate.rpc import refuse_nul
from exchange.log import RecordLog, StoredBatch
from exchange.publish.record_checker import RecordChecker
from exchange.v1 import exchange_pb2

DEFAULT_IN_FLIGHT = 16
MAX_OFFSET = 2**63 - 1  # positions the logs hold
MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
MAX_IN_FLIGHT = 1000
OPEN_MARKER = "lijiao-subscription"


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
        workers: RecordChecker | None = None,
    ) -> None:
        self.view = view
        self.log = log
        self.ledger = ledger
        self.signer = signer
        self.ack_timeout = ack_timeout
        self.masks = masks
        self.max_deliveries = max_deliveries  # 0: deliver until acknowledged
        self.counts = DeliveryCounts(sessions, max_deliveries)  # the catalog keeps them
        self.countersigner = Countersigner(view, signer, masks, workers)

    async def deliver(
        self,
        stored: StoredBatch,
        grant: GrantView,
        subscriber: str,
        attempt: int,
        sent_schemas: set[bytes],
    ) -> tuple[exchange_pb2.DeliveredBatch, Sent]:
        """The countersigned delivery of a stored batch under a grant (see
        :meth:`Countersigner.deliver`)."""
        return await self.countersigner.deliver(stored, grant, subscriber, attempt, sent_schemas)

    def current_grant(self, system: str, resource: str) -> GrantView:
        """The system's active grant for the resource.

        Raises:
            PermissionDenied: ``NO_GRANT``: there is none, or it expired.
        """
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
        grant = self.current_grant(system, resource)
        cursor = await self.log.cursor(system, resource, subscription)
        if cursor == 0:  # a new subscription may start elsewhere (a replay)
            cursor = await self._start(opening, resource)
        key = (system, resource, subscription)
        # what earlier streams (on any replica) left unacknowledged counts
        earlier = await self.counts.earlier(key, cursor)
        await context.send_initial_metadata(((OPEN_MARKER, "open"),))
        stream = SubscriptionStream(
            self, identity, resource, subscription, window, grant, cursor, earlier
        )
        stream.recheck = recheck
        self.counts.opened(key, stream)
        try:
            async with contextlib.aclosing(stream.run(iterator)) as responses:
                async for response in responses:
                    yield response
        finally:
            self.counts.closed(key, stream)
