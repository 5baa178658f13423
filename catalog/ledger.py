"""The audit ledger (审计账本): an append-only, hash-chained record of what happened.

Every catalog change, request and decision, grant change, accepted batch, delivery and
denial is one entry. An entry's *content* is canonical JSON (sorted keys, no spaces,
UTF-8); its *digest* is the SHA-256 of that content; its *hash* chains it to the entry
before::

    hash(n) = SHA-256("lijiao.ledger.v1\\0" || hash(n-1) || n as 8 bytes || digest(n))

with ``hash(0)`` the 32 zero bytes. The gateway signs *checkpoints* of the chain head
with its key at an interval. :func:`verify` walks the chain and the checkpoints and
reports the first broken link: an edited entry (its content no longer matches its
digest, or its columns no longer match its content), a missing one (a gap in the
sequence, or a head that says there were more), one out of order (it does not follow
the entry before it), or a checkpoint that does not match or is not signed by a
trusted key.

Retention (:func:`prune`) deletes a prefix of old entries after writing them to an
archive file; a signed *anchor* checkpoint at the last pruned entry is where
verification starts afterwards, so what remains stays verifiable.

The filter columns (department, system, resource, ...) repeat values of the content so
that auditors can query by them; verification checks that they agree with it.

Writers take the one-row ``ledger_head`` with an UPDATE before reading it: that is
SQLite's write lock and PostgreSQL's row lock, so concurrent writers (threads, or
gateway replicas on one database) append one after the other.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import enum
import hashlib
import itertools
import json
import logging
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from catalog.models import Base, utcnow

log = logging.getLogger("lijiao.ledger")

GENESIS = bytes(32)
_ENTRY_TAG = b"lijiao.ledger.v1\x00"
_CHECKPOINT_TAG = b"lijiao.ledger.checkpoint.v1\x00"


class EntryKind(enum.StrEnum):
    """What an entry records."""

    CATALOG = "CATALOG"  # departments, systems, keys, resources, schemas, principals
    REQUEST = "REQUEST"  # access and backflow requests, their steps, enrolments, corrections
    GRANT = "GRANT"  # grants given, changed, revoked
    BATCH = "BATCH"  # a batch accepted and stored
    DELIVERY = "DELIVERY"  # a batch delivered and acknowledged
    DENIAL = "DENIAL"  # a refused call
    LEDGER = "LEDGER"  # the ledger's own housekeeping (pruning)
    ANOMALY = "ANOMALY"  # something to look at: a publisher's sequence gap or regression
    DEAD_LETTER = "DEAD_LETTER"  # a batch given up after the maximum delivery count


class LedgerEntry(Base):
    """One entry of the chain."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ledger_by_time", "time"),
        Index("ledger_by_kind_time", "kind", "time"),
        Index("ledger_by_department", "department"),
        Index("ledger_by_provider", "provider"),
        Index("ledger_by_system", "system"),
        Index("ledger_by_resource", "resource"),
        Index("ledger_by_grant", "grant_id"),
        Index("ledger_by_subject", "subject"),
        Index("ledger_by_position", "position"),
    )

    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    time: Mapped[datetime] = mapped_column()
    kind: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(48))
    principal: Mapped[str] = mapped_column(String(128), default="")
    department: Mapped[str] = mapped_column(String(64), default="")
    provider: Mapped[str] = mapped_column(String(64), default="")
    system: Mapped[str] = mapped_column(String(64), default="")
    resource: Mapped[str] = mapped_column(String(64), default="")
    grant_id: Mapped[str] = mapped_column(String(40), default="")
    subject: Mapped[str] = mapped_column(String(160), default="")
    position: Mapped[int | None] = mapped_column(BigInteger, default=None)
    records: Mapped[int] = mapped_column(BigInteger, default=0)
    byte_count: Mapped[int] = mapped_column("bytes", BigInteger, default=0)
    personal: Mapped[bool] = mapped_column(Boolean, default=False)
    content: Mapped[str] = mapped_column(Text)
    content_digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    previous_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class LedgerHead(Base):
    """The chain's head (one row): the last sequence and hash, and the pruning anchor."""

    __tablename__ = "ledger_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32), default=GENESIS)
    anchor_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    anchor_hash: Mapped[bytes] = mapped_column(LargeBinary(32), default=GENESIS)


class LedgerCheckpoint(Base):
    """A signed statement by a gateway: "the chain had this hash at this sequence"."""

    __tablename__ = "ledger_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, index=True)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    time: Mapped[datetime] = mapped_column()
    anchor: Mapped[bool] = mapped_column(Boolean, default=False)
    key_id: Mapped[str] = mapped_column(String(32))
    signature: Mapped[bytes] = mapped_column(LargeBinary(128))


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


@dataclass(frozen=True)
class NewEntry:
    """An entry to append. Strings are codes; ``details`` holds JSON-able values.

    Attributes:
        kind: What is recorded.
        action: A short verb phrase, e.g. ``grant.created`` or ``batch.stored``.
        principal: Who did it (a principal name), or ``anonymous``.
        department: The department the entry concerns (acting or receiving).
        provider: The department providing the data, where there is one.
        system: The system the entry concerns.
        resource: Resource code.
        grant_id: Grant id, where one applies.
        subject: What the entry is about: a batch id, request id, code.
        position: The batch's position in the record log.
        records: Records accepted or delivered.
        bytes: Record bytes accepted or delivered.
        personal: Whether the entry records a provision of personal data.
        details: Everything else, as JSON-able values.
        time: When it happened; defaults to when it is appended.
    """

    kind: EntryKind
    action: str
    principal: str = ""
    department: str = ""
    provider: str = ""
    system: str = ""
    resource: str = ""
    grant_id: str = ""
    subject: str = ""
    position: int | None = None
    records: int = 0
    bytes: int = 0
    personal: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)
    time: datetime | None = None


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return value


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds, the form times take inside entries."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_TEXT_COLUMNS = (
    "action",
    "principal",
    "department",
    "provider",
    "system",
    "resource",
    "grant_id",
    "subject",
)


def _storable(entry: NewEntry) -> NewEntry:
    """NUL characters (hostile input echoed in a denial) become U+FFFD in the columns and
    the content alike: PostgreSQL text cannot hold them, and the two must agree."""
    changed = {
        name: getattr(entry, name).replace("\x00", "\ufffd")
        for name in _TEXT_COLUMNS
        if "\x00" in getattr(entry, name)
    }
    return dataclasses.replace(entry, **changed) if changed else entry


def format_ns(ns: int) -> str:
    """:func:`format_time` of nanoseconds since the epoch."""
    return format_time(datetime.fromtimestamp(ns / 1e9, UTC))


def _columns(entry: NewEntry) -> dict[str, Any]:
    """An entry's indexed columns; the canonical content holds them too."""
    return {
        "kind": entry.kind.value,
        "action": entry.action,
        "principal": entry.principal,
        "department": entry.department,
        "provider": entry.provider,
        "system": entry.system,
        "resource": entry.resource,
        "grant_id": entry.grant_id,
        "subject": entry.subject,
        "position": entry.position,
        "records": entry.records,
        "bytes": entry.bytes,
        "personal": entry.personal,
    }


def canonical(entry: NewEntry, time: datetime) -> str:
    """The canonical JSON content of an entry."""
    body = {
        "time": format_time(time),
        **_columns(entry),
        "details": _jsonable(entry.details),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(previous: bytes, sequence: int, content_digest: bytes) -> bytes:
    """The hash linking entry ``sequence`` to the one before."""
    return hashlib.sha256(
        _ENTRY_TAG + previous + sequence.to_bytes(8, "big") + content_digest
    ).digest()


def checkpoint_payload(sequence: int, head_hash: bytes, time: datetime, anchor: bool) -> bytes:
    """The bytes a checkpoint signature covers."""
    micros = int(time.timestamp() * 1_000_000)
    return (
        _CHECKPOINT_TAG
        + sequence.to_bytes(8, "big")
        + head_hash
        + micros.to_bytes(8, "big", signed=True)
        + (b"\x01" if anchor else b"\x00")
    )


# --- appending ----------------------------------------------------------------------

_head = cast(Table, LedgerHead.__table__)
_entries = cast(Table, LedgerEntry.__table__)
_checkpoints = cast(Table, LedgerCheckpoint.__table__)


def ensure_head(conn: Connection) -> None:
    """Creates the head row of a new ledger (done with the schema, before any writer)."""
    if conn.execute(select(_head.c.id).where(_head.c.id == 1)).first() is None:
        conn.execute(
            insert(_head).values(
                id=1, sequence=0, hash=GENESIS, anchor_sequence=0, anchor_hash=GENESIS
            )
        )


def _lock_head(conn: Connection) -> tuple[int, bytes]:
    """Takes the head's lock (SQLite write lock, PostgreSQL row lock) and reads it."""
    locked = conn.execute(update(_head).where(_head.c.id == 1).values(sequence=_head.c.sequence))
    if locked.rowcount == 0:
        conn.execute(
            insert(_head).values(
                id=1, sequence=0, hash=GENESIS, anchor_sequence=0, anchor_hash=GENESIS
            )
        )
    row = conn.execute(select(_head.c.sequence, _head.c.hash).where(_head.c.id == 1)).one()
    return int(row.sequence), bytes(row.hash)


def append(conn: Connection, entries: Sequence[NewEntry]) -> int:
    """Appends entries inside the caller's transaction; returns the new head sequence.

    The caller commits. Entries appended in one call keep their order. A BATCH entry of a
    (resource, position) the ledger holds already is left out: one stored batch has one
    entry, even when two gateway replicas record it (one storing it, the other
    answering the publisher's resend or reconciling), because the check runs under the
    head's lock.
    """
    if not entries:
        return 0
    sequence, previous = _lock_head(conn)
    entries = _unrecorded(conn, entries)
    if not entries:
        return sequence
    now = utcnow()
    rows = []
    for entry in map(_storable, entries):
        sequence += 1
        time = entry.time or now
        content = canonical(entry, time)
        digest = hashlib.sha256(content.encode()).digest()
        current = chain_hash(previous, sequence, digest)
        rows.append(
            {
                "sequence": sequence,
                "time": time,
                **_columns(entry),
                "content": content,
                "content_digest": digest,
                "previous_hash": previous,
                "hash": current,
            }
        )
        previous = current
    conn.execute(insert(_entries), rows)
    conn.execute(update(_head).where(_head.c.id == 1).values(sequence=sequence, hash=previous))
    return sequence


def _unrecorded(conn: Connection, entries: Sequence[NewEntry]) -> Sequence[NewEntry]:
    """``entries`` without the BATCH entries of batches recorded already."""
    batches: dict[str, set[int]] = {}
    for e in entries:
        if e.kind is EntryKind.BATCH and e.position:
            batches.setdefault(e.resource, set()).add(e.position)
    if not batches:
        return entries
    # the batch id too: a log rebuilt from a backup numbers new batches again
    seen = {
        (resource, position, subject)
        for resource, position, subject in conn.execute(
            select(_entries.c.resource, _entries.c.position, _entries.c.subject).where(
                _entries.c.kind == EntryKind.BATCH.value,
                or_(
                    *(
                        (_entries.c.resource == resource) & _entries.c.position.in_(positions)
                        for resource, positions in batches.items()
                    )
                ),
            )
        )
    }
    out = []
    for entry in entries:
        key = (entry.resource, entry.position, entry.subject)
        if entry.kind is EntryKind.BATCH and entry.position:
            if key in seen:
                continue
            seen.add(key)
        out.append(entry)
    return out


class CheckpointSigner(Protocol):
    """What signs checkpoints: the gateway's key (see envelope.signing.Signer)."""

    @property
    def key_id(self) -> str: ...

    def sign(self, digest: bytes) -> bytes: ...


def checkpoint(conn: Connection, signer: CheckpointSigner, *, anchor: bool = False) -> int:
    """Signs the current head into a checkpoint, unless one already covers it.

    Returns the sequence checkpointed (0 when the ledger is empty or already covered).
    """
    sequence, head_hash = _lock_head(conn)
    if sequence == 0:
        return 0
    if not anchor:
        newest = conn.execute(
            select(_checkpoints.c.sequence).order_by(_checkpoints.c.sequence.desc()).limit(1)
        ).scalar()
        if newest is not None and newest >= sequence:
            return 0
    _sign_checkpoint(conn, signer, sequence, head_hash, anchor)
    return sequence


def hash_at(conn: Connection, sequence: int) -> bytes | None:
    """The stored hash of entry ``sequence`` (None when there is no such entry)."""
    found = conn.execute(select(_entries.c.hash).where(_entries.c.sequence == sequence)).scalar()
    return None if found is None else bytes(found)


def _sign_checkpoint(
    conn: Connection, signer: CheckpointSigner, sequence: int, head_hash: bytes, anchor: bool
) -> None:
    now = utcnow()
    signature = signer.sign(checkpoint_payload(sequence, head_hash, now, anchor))
    conn.execute(
        insert(_checkpoints).values(
            sequence=sequence,
            hash=head_hash,
            time=now,
            anchor=anchor,
            key_id=signer.key_id,
            signature=signature,
        )
    )


# --- verification -------------------------------------------------------------------


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


def _verify_signature(public_key: bytes, signature: bytes, payload: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, payload)
    except (InvalidSignature, ValueError):
        return False
    return True


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
    if not _verify_signature(public_key, bytes(cp.signature), payload):
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
    if hashlib.sha256(content.encode()).digest() != bytes(row.content_digest):
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
        for cp in session.execute(select(_checkpoints).order_by(_checkpoints.c.id)):
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
            query = select(_entries).where(
                _entries.c.sequence > anchor, _entries.c.sequence <= head_sequence
            )
            query = query.order_by(_entries.c.sequence)
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


# --- reading ------------------------------------------------------------------------


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
        column = _entries.c
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
    query = where.where(select(_entries)).order_by(_entries.c.sequence).limit(limit)
    with sessions() as session:
        return list(session.execute(query))


def iterate(sessions: sessionmaker[Session], where: EntryFilter) -> Generator[Any, None, None]:
    """Yields every entry matching ``where`` in sequence order, streaming from the database."""
    query = where.where(select(_entries)).order_by(_entries.c.sequence)
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
            select(_checkpoints).order_by(_checkpoints.c.id.desc()).limit(1)
        ).first()


def trace(sessions: sessionmaker[Session], batch_id: str, publisher: str = "") -> list[Any]:
    """A batch's story: the accepted entry, every delivery of it, refusals naming it."""
    where = EntryFilter(subject=batch_id, kinds=(EntryKind.BATCH,), system=publisher)
    stored = entries(sessions, where, 100)
    positions = {row.position for row in stored if row.position is not None}
    query = select(_entries).where(_entries.c.subject == batch_id).order_by(_entries.c.sequence)
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


# --- retention ----------------------------------------------------------------------


@dataclass(frozen=True)
class Pruned:
    """What :func:`prune` did."""

    through: int
    entries: int
    archive: str


def prune(
    sessions: sessionmaker[Session],
    signer: CheckpointSigner,
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
            select(_entries.c.sequence)
            .where(_entries.c.time < cutoff, _entries.c.sequence > anchor)
            .order_by(_entries.c.sequence.desc())
            .limit(1)
        ).scalar()
    if through is None:
        return None
    # Never cut inside a run of entries younger than the cutoff: stop before the first.
    with sessions() as session:
        first_young = session.execute(
            select(_entries.c.sequence)
            .where(_entries.c.sequence > anchor, _entries.c.time >= cutoff)
            .order_by(_entries.c.sequence)
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
        _lock_head(conn)
        through_hash = conn.execute(
            select(_entries.c.hash).where(_entries.c.sequence == through)
        ).scalar_one()
        _sign_checkpoint(conn, signer, through, bytes(through_hash), True)
        deleted = conn.execute(delete(_entries).where(_entries.c.sequence <= through)).rowcount
        conn.execute(
            delete(_checkpoints).where(
                (_checkpoints.c.sequence < through)
                | ((_checkpoints.c.sequence == through) & (_checkpoints.c.anchor.is_(False)))
            )
        )
        conn.execute(
            update(_head)
            .where(_head.c.id == 1)
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


# --- who is acting, and who is told -------------------------------------------------

COMMIT_HOOKS: list[Callable[[Mapping[str, int]], None]] = []
"""Called with the entries per kind that a catalog transaction committed (for metrics)."""


def committed(counts: Mapping[str, int]) -> None:
    """Tells :data:`COMMIT_HOOKS` about committed entries."""
    for hook in COMMIT_HOOKS:
        hook(counts)


ACTOR: contextvars.ContextVar[str] = contextvars.ContextVar("lijiao_ledger_actor", default="")
"""The principal on whose behalf the current code runs (set by the RPC layer)."""
