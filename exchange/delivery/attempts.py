"""How often each unacknowledged batch of a subscription was delivered, across streams.

This count decides dead-lettering (``LIJIAO_MAX_DELIVERIES``), and it lives in one place:
the catalog database (``delivery_attempts``), per subscription and batch, so it holds
across reconnections, gateway restarts and replicas. A stream starts from it, adds its
own sends, and writes it back when it ends. What a subscriber sees on the wire,
``delivery_attempt``, is not this count: it counts the sends on one stream only.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol, cast

from sqlalchemy import Table, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from catalog.models import DeliveryAttempt, utcnow

SubscriptionKey = tuple[str, str, str]  # system, resource, subscription

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


class CountedStream(Protocol):
    """A stream whose deliveries count: it reports them when asked."""

    def unacknowledged_attempts(self) -> dict[int, int]:
        """Deliveries so far of each batch it sent and has not seen acknowledged."""
        ...


class DeliveryCounts:
    """The kept count of a gateway's subscriptions, read when a stream opens and written
    when it ends.

    A reconnection may open before the stream it replaces has ended, or before that
    stream's count is written: a new stream waits for the writes under way and adds
    what the streams still open on this gateway have delivered.
    """

    def __init__(self, sessions: sessionmaker[Session] | None, max_deliveries: int) -> None:
        self.sessions = sessions
        self.enabled = max_deliveries > 0
        self._open: dict[SubscriptionKey, set[CountedStream]] = {}
        self._writing: dict[SubscriptionKey, set[asyncio.Future[None]]] = {}

    async def earlier(self, key: SubscriptionKey, cursor: int) -> dict[int, int]:
        """How often each batch after ``cursor`` was delivered to the subscription
        before a stream that opens now."""
        if not self.enabled:
            return {}
        counts: dict[int, int] = {}
        for stream in self._open.get(key, ()):
            _merge(counts, stream.unacknowledged_attempts())
        writing = self._writing.get(key)
        if writing:
            await asyncio.wait(set(writing))
        if self.sessions is not None:
            _merge(counts, await asyncio.to_thread(load_attempts, self.sessions, *key, cursor))
        return {position: count for position, count in counts.items() if position > cursor}

    def opened(self, key: SubscriptionKey, stream: CountedStream) -> None:
        """Counts a stream's deliveries for the streams that open while it runs."""
        if self.enabled:
            self._open.setdefault(key, set()).add(stream)

    def closed(self, key: SubscriptionKey, stream: CountedStream) -> None:
        """Writes the count of the batches a stream leaves unacknowledged (in a worker
        thread), so the maximum holds on the next stream, wherever it opens."""
        if not self.enabled:
            return
        streams = self._open.get(key, set())
        streams.discard(stream)
        if not streams:
            self._open.pop(key, None)
        attempts = stream.unacknowledged_attempts()
        if not attempts or self.sessions is None:
            return
        writing = self._writing.setdefault(key, set())
        future = asyncio.get_running_loop().run_in_executor(
            None, keep_attempts, self.sessions, *key, attempts
        )
        writing.add(future)

        def written(done: asyncio.Future[None]) -> None:
            writing.discard(done)
            if not writing and self._writing.get(key) is writing:
                del self._writing[key]

        future.add_done_callback(written)


def _merge(into: dict[int, int], counts: dict[int, int]) -> None:
    """Keeps the higher count of each position, as the table does."""
    for position, count in counts.items():
        into[position] = max(count, into.get(position, 0))
