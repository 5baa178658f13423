"""Retention: archive a prefix of old entries, then delete it under a signed anchor.

:func:`prune` deletes a prefix of old entries after writing them to an archive file; a
signed *anchor* checkpoint at the last pruned entry is where verification starts
afterwards, so what remains stays verifiable.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from catalog.ledger.chain import NewEntry, append, lock_head
from catalog.ledger.checkpoints import sign_checkpoint
from catalog.ledger.models import EntryKind, LedgerHead, checkpoint_table, entry_table, head_table
from catalog.ledger.queries import EntryFilter, iterate
from envelope.signing import Signer

log = logging.getLogger("lijiao.ledger")


@dataclass(frozen=True)
class Pruned:
    """What :func:`prune` did."""

    through: int
    entries: int
    archive: str


def prune(
    sessions: sessionmaker[Session],
    signer: Signer,
    cutoff: datetime,
    archive: Callable[[Iterable[Any], int, bytes], tuple[str, str]],
    *,
    principal: str = "gateway",
) -> Pruned | None:
    """Deletes the entries older than ``cutoff`` after archiving them.

    ``archive(rows, through, previous_hash)`` must write the rows durably and return
    where, with the file's SHA-256. Only then are they deleted, in one transaction that
    signs an anchor checkpoint at the last deleted entry and appends a ``ledger.pruned``
    entry naming the archive and its SHA-256.
    """
    with sessions() as session:
        head_row = session.get(LedgerHead, 1)
        if head_row is None:
            return None
        anchor, anchor_hash = head_row.anchor_sequence, bytes(head_row.anchor_hash)
        through = session.execute(
            select(entry_table.c.sequence)
            .where(entry_table.c.time < cutoff, entry_table.c.sequence > anchor)
            .order_by(entry_table.c.sequence.desc())
            .limit(1)
        ).scalar()
    if through is None:
        return None
    # Never cut inside a run of entries younger than the cutoff: stop before the first.
    with sessions() as session:
        first_young = session.execute(
            select(entry_table.c.sequence)
            .where(entry_table.c.sequence > anchor, entry_table.c.time >= cutoff)
            .order_by(entry_table.c.sequence)
            .limit(1)
        ).scalar()
    if first_young is not None and first_young <= through:
        through = first_young - 1
        if through <= anchor:
            return None
    where = EntryFilter(after_sequence=anchor)
    with contextlib.closing(iterate(sessions, where)) as everything:
        rows = itertools.takewhile(lambda r: r.sequence <= through, everything)
        location, archive_sha256 = archive(rows, through, anchor_hash)
    engine = sessions.kw["bind"]
    with engine.begin() as conn:
        lock_head(conn)
        through_hash = conn.execute(
            select(entry_table.c.hash).where(entry_table.c.sequence == through)
        ).scalar_one()
        sign_checkpoint(conn, signer, through, bytes(through_hash), True)
        deleted = conn.execute(
            delete(entry_table).where(entry_table.c.sequence <= through)
        ).rowcount
        conn.execute(
            delete(checkpoint_table).where(
                (checkpoint_table.c.sequence < through)
                | (
                    (checkpoint_table.c.sequence == through)
                    & (checkpoint_table.c.anchor.is_(False))
                )
            )
        )
        conn.execute(
            update(head_table)
            .where(head_table.c.id == 1)
            .values(anchor_sequence=through, anchor_hash=bytes(through_hash))
        )
        append(
            conn,
            [
                NewEntry(
                    EntryKind.LEDGER,
                    "ledger.pruned",
                    principal=principal,
                    subject=location,
                    details={
                        "through": through,
                        "entries": deleted,
                        "archive": location,
                        "archive_sha256": archive_sha256,
                        "cutoff": cutoff,
                    },
                )
            ],
        )
    log.info("pruned %d ledger entries through %d into %s", deleted, through, location)
    return Pruned(through, deleted, location)
