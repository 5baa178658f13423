"""Verification: walk the chain and its checkpoints, report the first broken link.

:func:`verify` finds an edited entry (its content no longer matches its digest, or its
columns no longer match its content), a missing one (a gap in the sequence, or a head
that says there were more), one out of order (it does not follow the entry before it),
or a checkpoint that does not match or is not signed by a trusted key.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from catalog.ledger.chain import chain_hash, digest_of_content, format_time
from catalog.ledger.checkpoints import checkpoint_payload
from catalog.ledger.models import GENESIS, LedgerHead, checkpoint_table, entry_table
from envelope import signing

# The columns that repeat content, checked against it by verify().
_MIRRORED = (
    "kind",
    "action",
    "principal",
    "department",
    "provider",
    "system",
    "resource",
    "grant_id",
    "subject",
    "position",
    "records",
    "bytes",
    "personal",
)


class Problem(enum.StrEnum):
    """How a ledger fails verification."""

    MODIFIED = "MODIFIED"  # an entry's content, digest, columns or hash were changed
    MISSING = "MISSING"  # entries were deleted
    OUT_OF_ORDER = "OUT_OF_ORDER"  # an entry does not follow the one before it
    BAD_CHECKPOINT = "BAD_CHECKPOINT"  # a checkpoint does not match or is not trusted
    HEAD_MISMATCH = "HEAD_MISMATCH"  # the head does not match the last entry


@dataclass(frozen=True)
class Verification:
    """The outcome of :func:`verify`.

    Attributes:
        ok: Whether the chain and every checkpoint verified.
        entries: Entries checked.
        checkpoints: Checkpoints whose signatures verified.
        first_sequence: First entry checked (after the pruning anchor).
        last_sequence: Last entry checked.
        verified_through: Last sequence up to which everything verified.
        problem: What broke, when something did.
        sequence: The first broken entry (or checkpoint's sequence).
        message: A sentence saying what broke and where.
        last_checkpoint: Sequence of the newest trusted checkpoint verified.
    """

    ok: bool
    entries: int
    checkpoints: int
    first_sequence: int
    last_sequence: int
    verified_through: int
    problem: Problem | None = None
    sequence: int = 0
    message: str = ""
    last_checkpoint: int = 0


class _Broken(Exception):
    def __init__(self, problem: Problem, sequence: int, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.sequence = sequence
        self.message = message


def _check_checkpoint(cp: Any, trusted: Mapping[str, bytes], entry_hash: bytes | None) -> None:
    public_key = trusted.get(cp.key_id)
    if public_key is None:
        raise _Broken(
            Problem.BAD_CHECKPOINT,
            cp.sequence,
            f"the checkpoint at entry {cp.sequence} is signed by key {cp.key_id}, "
            "which is not a trusted gateway key",
        )
    payload = checkpoint_payload(cp.sequence, bytes(cp.hash), cp.time, bool(cp.anchor))
    if not signing.verify(bytes(public_key), payload, bytes(cp.signature)):
        raise _Broken(
            Problem.BAD_CHECKPOINT,
            cp.sequence,
            f"the signature of the checkpoint at entry {cp.sequence} does not verify: "
            "the checkpoint was altered",
        )
    if entry_hash is None:
        raise _Broken(
            Problem.MISSING,
            cp.sequence,
            f"entry {cp.sequence} is missing: a signed checkpoint says the chain reached it",
        )
    if bytes(cp.hash) != entry_hash:
        raise _Broken(
            Problem.BAD_CHECKPOINT,
            cp.sequence,
            f"the chain's hash at entry {cp.sequence} differs from the signed checkpoint: "
            "entries up to it were rewritten",
        )


def _check_entry(row: Any, expected: int, previous: bytes) -> None:
    sequence = int(row.sequence)
    if sequence != expected:
        gap = (
            f"entry {expected}"
            if sequence == expected + 1
            else (f"entries {expected} to {sequence - 1}")
        )
        raise _Broken(Problem.MISSING, expected, f"{gap} missing: the chain jumps to {sequence}")
    content = row.content or ""
    if digest_of_content(content) != bytes(row.content_digest):
        raise _Broken(
            Problem.MODIFIED,
            sequence,
            f"entry {sequence} was modified: its content does not match its digest",
        )
    try:
        body = json.loads(content)
    except ValueError:
        raise _Broken(
            Problem.MODIFIED, sequence, f"entry {sequence}'s content is not JSON"
        ) from None
    for name in _MIRRORED:
        if body.get(name) != getattr(row, name):
            raise _Broken(
                Problem.MODIFIED,
                sequence,
                f"entry {sequence} was modified: its column {name!r} differs from its content",
            )
    if body.get("time") != format_time(row.time):
        raise _Broken(
            Problem.MODIFIED,
            sequence,
            f"entry {sequence} was modified: its column 'time' differs from its content",
        )
    if bytes(row.previous_hash) != previous:
        raise _Broken(
            Problem.OUT_OF_ORDER,
            sequence,
            f"entry {sequence} does not follow entry {sequence - 1}: entries were reordered, "
            "or one was replaced",
        )
    if chain_hash(previous, sequence, bytes(row.content_digest)) != bytes(row.hash):
        raise _Broken(Problem.MODIFIED, sequence, f"entry {sequence}'s hash was altered")


def verify(
    sessions: sessionmaker[Session],
    trusted: Mapping[str, bytes],
    *,
    witness: tuple[int, bytes] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Verification:
    """Walks the whole chain and every checkpoint; stops at the first broken link.

    Args:
        sessions: The catalog database.
        trusted: Gateway public keys by key id; checkpoints signed by others fail.
        witness: (sequence, hash) of the newest checkpoint this gateway signed, kept
            outside the database: deleting checkpoints and rewriting the chain under
            them is then detected too.
        progress: Called with the sequence reached, every 10,000 entries.
    """
    with sessions() as session:
        # Checkpoints first, then the head, then entries up to that head: whatever is
        # appended meanwhile is the next run's, and every checkpoint read points at or
        # below the head (a checkpoint past it means the tail was cut off).
        checkpoints: dict[int, list[Any]] = {}
        for cp in session.execute(select(checkpoint_table).order_by(checkpoint_table.c.id)):
            checkpoints.setdefault(int(cp.sequence), []).append(cp)
        head = session.get(LedgerHead, 1)
        head_sequence = head.sequence if head else 0
        head_hash = bytes(head.hash) if head else GENESIS
        anchor = head.anchor_sequence if head else 0
        previous = bytes(head.anchor_hash) if head else GENESIS
        entries = 0
        signed = 0
        newest_checkpoint = 0
        expected = anchor + 1
        witnessed: bytes | None = None
        try:
            if witness is not None and witness[0] > head_sequence:
                raise _Broken(
                    Problem.MISSING,
                    head_sequence + 1,
                    f"this gateway signed a checkpoint at entry {witness[0]}, but the ledger "
                    f"ends at {head_sequence}: entries and checkpoints were deleted",
                )
            if anchor:
                anchors = [cp for cp in checkpoints.get(anchor, []) if cp.anchor]
                if not anchors:
                    raise _Broken(
                        Problem.BAD_CHECKPOINT,
                        anchor,
                        f"the ledger starts after entry {anchor}, but no signed anchor "
                        "checkpoint says it was pruned there",
                    )
                for cp in anchors:
                    _check_checkpoint(cp, trusted, previous)
                    signed += 1
            for sequence, listed in checkpoints.items():
                if sequence < anchor or (sequence == anchor and not all(c.anchor for c in listed)):
                    raise _Broken(
                        Problem.MISSING,
                        sequence,
                        f"entry {sequence} is missing: a signed checkpoint covers it, yet the "
                        f"ledger starts after entry {anchor}",
                    )
            query = select(entry_table).where(
                entry_table.c.sequence > anchor, entry_table.c.sequence <= head_sequence
            )
            query = query.order_by(entry_table.c.sequence)
            for row in session.execute(query.execution_options(yield_per=2000)):
                _check_entry(row, expected, previous)
                previous = bytes(row.hash)
                if witness is not None and int(row.sequence) == witness[0]:
                    witnessed = previous
                for cp in checkpoints.pop(int(row.sequence), []):
                    _check_checkpoint(cp, trusted, previous)
                    signed += 1
                    newest_checkpoint = int(row.sequence)
                entries += 1
                expected += 1
                if progress is not None and entries % 10_000 == 0:
                    progress(int(row.sequence))
            for sequence in sorted(s for s in checkpoints if s > anchor):
                raise _Broken(
                    Problem.MISSING,
                    sequence,
                    f"entries {expected} to {sequence} are missing: a signed checkpoint says "
                    f"the chain reached {sequence}",
                )
            if head_sequence != expected - 1:
                raise _Broken(
                    Problem.MISSING if head_sequence > expected - 1 else Problem.HEAD_MISMATCH,
                    expected,
                    f"the ledger head says {head_sequence} entries, the chain ends at "
                    f"{expected - 1}: entries at the end were deleted"
                    if head_sequence > expected - 1
                    else f"the chain ends at {expected - 1}, after the head ({head_sequence})",
                )
            if head_hash != previous:
                raise _Broken(
                    Problem.HEAD_MISMATCH,
                    head_sequence,
                    "the ledger head's hash differs from the last entry's",
                )
            if witness is not None and witness[0] > anchor and witnessed != witness[1]:
                raise _Broken(
                    Problem.BAD_CHECKPOINT,
                    witness[0],
                    f"the chain's hash at entry {witness[0]} differs from the checkpoint this "
                    "gateway signed there (its own record, kept outside the database): the "
                    "entries and their checkpoints were rewritten",
                )
        except _Broken as broken:
            return Verification(
                ok=False,
                entries=entries,
                checkpoints=signed,
                first_sequence=anchor + 1,
                last_sequence=expected - 1,
                verified_through=expected - 1
                if broken.sequence >= expected
                else broken.sequence - 1,
                problem=broken.problem,
                sequence=broken.sequence,
                message=broken.message,
                last_checkpoint=newest_checkpoint,
            )
    return Verification(
        ok=True,
        entries=entries,
        checkpoints=signed,
        first_sequence=anchor + 1,
        last_sequence=expected - 1,
        verified_through=expected - 1,
        last_checkpoint=newest_checkpoint,
    )
