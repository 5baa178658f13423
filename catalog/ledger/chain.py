"""The chain: an entry's canonical content, its digest, and the hash linking it.

An entry's *content* is canonical JSON (sorted keys, no spaces, UTF-8); its *digest*
(:func:`digest_of_content`) is the SHA-256 of that content; its *hash* chains it to the
entry before::

    hash(n) = SHA-256("lijiao.ledger.v1\\0" || hash(n-1) || n as 8 bytes || digest(n))

with ``hash(0)`` the 32 zero bytes (:data:`~catalog.ledger.models.GENESIS`).

Writers take the one-row ``ledger_head`` with an UPDATE before reading it
(:func:`lock_head`): that is SQLite's write lock and PostgreSQL's row lock, so
concurrent writers (threads, or gateway replicas on one database) append one after the
other.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update

from catalog.ledger.models import GENESIS, EntryKind, entry_table, head_table
from catalog.models import utcnow

_ENTRY_TAG = b"lijiao.ledger.v1\x00"


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


def digest_of_content(content: str) -> bytes:
    """The digest of an entry's content: the SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(content.encode()).digest()


def chain_hash(previous: bytes, sequence: int, content_digest: bytes) -> bytes:
    """The hash linking entry ``sequence`` to the one before."""
    return hashlib.sha256(
        _ENTRY_TAG + previous + sequence.to_bytes(8, "big") + content_digest
    ).digest()


def ensure_head(conn: Connection) -> None:
    """Creates the head row of a new ledger (done with the schema, before any writer)."""
    if conn.execute(select(head_table.c.id).where(head_table.c.id == 1)).first() is None:
        conn.execute(
            insert(head_table).values(
                id=1, sequence=0, hash=GENESIS, anchor_sequence=0, anchor_hash=GENESIS
            )
        )


def lock_head(conn: Connection) -> tuple[int, bytes]:
    """Takes the head's lock (SQLite write lock, PostgreSQL row lock) and reads it."""
    locked = conn.execute(
        update(head_table).where(head_table.c.id == 1).values(sequence=head_table.c.sequence)
    )
    if locked.rowcount == 0:
        conn.execute(
            insert(head_table).values(
                id=1, sequence=0, hash=GENESIS, anchor_sequence=0, anchor_hash=GENESIS
            )
        )
    row = conn.execute(
        select(head_table.c.sequence, head_table.c.hash).where(head_table.c.id == 1)
    ).one()
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
    sequence, previous = lock_head(conn)
    entries = _unrecorded(conn, entries)
    if not entries:
        return sequence
    now = utcnow()
    rows = []
    for entry in map(_storable, entries):
        sequence += 1
        time = entry.time or now
        content = canonical(entry, time)
        digest = digest_of_content(content)
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
    conn.execute(insert(entry_table), rows)
    conn.execute(
        update(head_table).where(head_table.c.id == 1).values(sequence=sequence, hash=previous)
    )
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
            select(entry_table.c.resource, entry_table.c.position, entry_table.c.subject).where(
                entry_table.c.kind == EntryKind.BATCH.value,
                or_(
                    *(
                        (entry_table.c.resource == resource) & entry_table.c.position.in_(positions)
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


def hash_at(conn: Connection, sequence: int) -> bytes | None:
    """The stored hash of entry ``sequence`` (None when there is no such entry)."""
    found = conn.execute(
        select(entry_table.c.hash).where(entry_table.c.sequence == sequence)
    ).scalar()
    return None if found is None else bytes(found)
