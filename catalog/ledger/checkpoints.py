"""Checkpoints: the gateway signs the chain's head at an interval.

A checkpoint says "the chain had this hash at this sequence", signed by a gateway key
(an :class:`envelope.signing.Signer`). An *anchor* checkpoint marks where a pruned
ledger starts (see :mod:`catalog.ledger.retention`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select

from catalog.ledger.chain import lock_head
from catalog.ledger.models import checkpoint_table
from catalog.models import utcnow
from envelope.signing import Signer

_CHECKPOINT_TAG = b"lijiao.ledger.checkpoint.v1\x00"


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


def checkpoint(conn: Connection, signer: Signer, *, anchor: bool = False) -> int:
    """Signs the current head into a checkpoint, unless one already covers it.

    Returns the sequence checkpointed (0 when the ledger is empty or already covered).
    """
    sequence, head_hash = lock_head(conn)
    if sequence == 0:
        return 0
    if not anchor:
        newest = conn.execute(
            select(checkpoint_table.c.sequence)
            .order_by(checkpoint_table.c.sequence.desc())
            .limit(1)
        ).scalar()
        if newest is not None and newest >= sequence:
            return 0
    sign_checkpoint(conn, signer, sequence, head_hash, anchor)
    return sequence


def sign_checkpoint(
    conn: Connection, signer: Signer, sequence: int, head_hash: bytes, anchor: bool
) -> None:
    """Signs ``head_hash`` at ``sequence`` now and stores the checkpoint.

    The caller holds the head's lock (:func:`~catalog.ledger.chain.lock_head`).
    """
    now = utcnow()
    signature = signer.sign(checkpoint_payload(sequence, head_hash, now, anchor))
    conn.execute(
        insert(checkpoint_table).values(
            sequence=sequence,
            hash=head_hash,
            time=now,
            anchor=anchor,
            key_id=signer.key_id,
            signature=signature,
        )
    )
