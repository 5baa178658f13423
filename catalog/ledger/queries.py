"""What auditors read: entries by filter, a batch's story, deliveries per day and pair.

The filter columns (department, system, resource, ...) repeat values of each entry's
content so that auditors can query by them; verification checks that they agree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from catalog.ledger.models import EntryKind, LedgerHead, checkpoint_table, entry_table


@dataclass(frozen=True)
class EntryFilter:
    """What an auditor asks for; empty fields do not filter.

    ``department`` matches either the entry's department or its providing department.
    """

    start: datetime | None = None
    end: datetime | None = None
    department: str = ""
    system: str = ""
    resource: str = ""
    kinds: tuple[EntryKind, ...] = ()
    grant_id: str = ""
    subject: str = ""
    after_sequence: int = 0

    def where(self, query: Any) -> Any:
        """Adds this filter's conditions to a select of ledger entries (bound parameters)."""
        column = entry_table.c
        if self.start is not None:
            query = query.where(column.time >= self.start)
        if self.end is not None:
            query = query.where(column.time < self.end)
        if self.department:
            query = query.where(
                (column.department == self.department) | (column.provider == self.department)
            )
        if self.system:
            query = query.where(column.system == self.system)
        if self.resource:
            query = query.where(column.resource == self.resource)
        if self.kinds:
            query = query.where(column.kind.in_([k.value for k in self.kinds]))
        if self.grant_id:
            query = query.where(column.grant_id == self.grant_id)
        if self.subject:
            query = query.where(column.subject == self.subject)
        if self.after_sequence:
            query = query.where(column.sequence > self.after_sequence)
        return query


def entries(sessions: sessionmaker[Session], where: EntryFilter, limit: int) -> list[Any]:
    """Returns up to ``limit`` entries matching ``where``, in sequence order."""
    query = where.where(select(entry_table)).order_by(entry_table.c.sequence).limit(limit)
    with sessions() as session:
        return list(session.execute(query))


def iterate(sessions: sessionmaker[Session], where: EntryFilter) -> Generator[Any, None, None]:
    """Yields every entry matching ``where`` in sequence order, streaming from the database."""
    query = where.where(select(entry_table)).order_by(entry_table.c.sequence)
    with sessions() as session:
        yield from session.execute(query.execution_options(yield_per=2000))


def head(sessions: sessionmaker[Session]) -> tuple[int, int]:
    """The head sequence and the pruning anchor sequence."""
    with sessions() as session:
        row = session.get(LedgerHead, 1)
        return (row.sequence, row.anchor_sequence) if row else (0, 0)


def last_checkpoint(sessions: sessionmaker[Session]) -> Any:
    """The newest checkpoint row, or None."""
    with sessions() as session:
        return session.execute(
            select(checkpoint_table).order_by(checkpoint_table.c.id.desc()).limit(1)
        ).first()


def trace(sessions: sessionmaker[Session], batch_id: str, publisher: str = "") -> list[Any]:
    """A batch's story: the accepted entry, every delivery of it, refusals naming it."""
    where = EntryFilter(subject=batch_id, kinds=(EntryKind.BATCH,), system=publisher)
    stored = entries(sessions, where, 100)
    positions = {row.position for row in stored if row.position is not None}
    query = (
        select(entry_table)
        .where(entry_table.c.subject == batch_id)
        .order_by(entry_table.c.sequence)
    )
    with sessions() as session:
        rows = list(session.execute(query))
    accepted = {row.sequence for row in stored}

    def belongs(row: Any) -> bool:
        if row.kind == EntryKind.BATCH.value:
            return row.sequence in accepted
        if row.kind == EntryKind.DELIVERY.value:
            return row.position in positions
        return row.kind == EntryKind.DENIAL.value and (not publisher or row.system == publisher)

    return [row for row in rows if belongs(row)]


@dataclass
class PairDay:
    """Records one department received from another on one day."""

    day: str
    provider: str
    receiver: str
    batches: int = 0
    records: int = 0
    bytes: int = 0


def summary(sessions: sessionmaker[Session], where: EntryFilter, timezone: Any) -> list[PairDay]:
    """Deliveries per (day in ``timezone``, providing department, receiving department)."""
    where = dataclasses.replace(where, kinds=(EntryKind.DELIVERY,))
    totals: dict[tuple[str, str, str], PairDay] = {}
    for row in iterate(sessions, where):
        day = row.time.astimezone(timezone).date().isoformat()
        key = (day, row.provider, row.department)
        pair = totals.get(key)
        if pair is None:
            pair = totals[key] = PairDay(day, row.provider, row.department)
        pair.batches += 1
        pair.records += row.records
        pair.bytes += row.bytes
    return [totals[key] for key in sorted(totals)]
