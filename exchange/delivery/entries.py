"""The ledger entries of a subscription's batches: each acknowledged delivery, each batch
given up."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from catalog.ledger import EntryKind, NewEntry, format_ns
from exchange import metrics
from exchange.delivery.projection import Sent
from exchange.log import StoredBatch


@dataclass(frozen=True)
class SubscriptionEntries:
    """Who and what the entries of one subscription's stream are about."""

    principal: str
    department: str
    provider: str
    system: str
    resource: str
    subscription: str
    personal: bool

    def delivered(self, batch: StoredBatch, sent: Sent, grant_id: str, dead: int) -> NewEntry:
        """Counts an acknowledged delivery and returns its ledger entry.

        Args:
            batch: The batch as stored.
            sent: Its last delivery on the stream.
            grant_id: The grant it was delivered under.
            dead: Records of it the subscriber put on its own dead-letter list.
        """
        now = time.time_ns()
        metrics.delivered(self.department, self.provider, self.resource, sent.records, sent.size)
        metrics.PUBLISH_DELIVERY_SECONDS.observe(max(0, now - batch.received_ns) / 1e9)
        if dead:
            metrics.dead_lettered(self.department, self.resource, dead)
        return self._entry(
            EntryKind.DELIVERY,
            "batch.delivered",
            batch,
            grant_id,
            sent.batch_id,
            sent.records,
            sent.size,
            {
                "delivered_digest": sent.digest,
                "gateway_signature": sent.signature,
                "gateway_key_id": sent.key_id,
                "delivery_attempt": sent.attempt,
                "dead_lettered_records": dead,
                "receive_time": format_ns(batch.received_ns),
                "store_time": format_ns(batch.stored_ns),
                "deliver_time": format_ns(sent.sent_ns),
                "ack_time": format_ns(now),
                "outcome": "DELIVERED",
            },
        )

    def dead_letter(
        self, stored: StoredBatch, batch_id: str, records: int, grant_id: str, attempts: int
    ) -> NewEntry:
        """The DEAD_LETTER entry of a batch given up after ``attempts`` deliveries."""
        return self._entry(
            EntryKind.DEAD_LETTER,
            "batch.dead_lettered",
            stored,
            grant_id,
            batch_id,
            records,
            0,
            {
                "delivery_attempts": attempts,
                "store_time": format_ns(stored.stored_ns),
                "outcome": "DEAD_LETTERED",
            },
        )

    def _entry(
        self,
        kind: EntryKind,
        action: str,
        stored: StoredBatch,
        grant_id: str,
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
            grant_id=grant_id,
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
