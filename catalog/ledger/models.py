"""The ledger's tables: its entries, its one-row head and its signed checkpoints."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import cast

from sqlalchemy import BigInteger, Boolean, Index, Integer, LargeBinary, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from catalog.models import Base

GENESIS = bytes(32)
"""The hash before the first entry."""


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


# The tables as Core tables, for the bulk statements of the other ledger modules.
head_table = cast(Table, LedgerHead.__table__)
entry_table = cast(Table, LedgerEntry.__table__)
checkpoint_table = cast(Table, LedgerCheckpoint.__table__)
