"""The record envelope: the one definition of what a batch signature covers.

A publisher signs :func:`batch_digest` of its batch; the gateway verifies it, and
countersigns :func:`delivery_digest` of each batch it delivers. Both digests are
SHA-256 over a domain-separated, length-prefixed encoding of the batch fields and the
SHA-256 of every record in order (a hash list), so one signature covers a whole batch
and any change to a field, a record, or the order of records breaks it.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

from exchange.v1 import exchange_pb2

BATCH_DOMAIN = b"lijiao.batch.v1\x00"
DELIVERY_DOMAIN = b"lijiao.delivery.v1\x00"
FINGERPRINT_SIZE = 8

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")


def _text(value: str) -> bytes:
    raw = value.encode("utf-8")
    return _U32.pack(len(raw)) + raw


def _blob(value: bytes) -> bytes:
    return _U32.pack(len(value)) + value


def records_hash_list(records: Sequence[bytes]) -> bytes:
    """Returns the SHA-256 of every record, concatenated in order."""
    sha = hashlib.sha256
    return b"".join([sha(r).digest() for r in records])


def batch_digest(
    *,
    resource: str,
    schema_fingerprint: bytes,
    batch_id: str,
    sequence: int,
    create_seconds: int,
    create_nanos: int,
    records: Sequence[bytes],
    hashes: bytes | None = None,
) -> bytes:
    """Computes the digest a publisher signs.

    Args:
        resource: Resource code.
        schema_fingerprint: 8-byte CRC-64-AVRO fingerprint of the writer schema.
        batch_id: Publisher-chosen unique batch id.
        sequence: Publisher sequence number.
        create_seconds: Creation time, whole seconds since the Unix epoch.
        create_nanos: Creation time, nanoseconds within the second.
        records: Avro binary records in order.
        hashes: :func:`records_hash_list` of ``records`` when the caller has it already.

    Returns:
        The 32-byte SHA-256 digest.
    """
    h = hashlib.sha256(BATCH_DOMAIN)
    h.update(_text(resource))
    h.update(_blob(schema_fingerprint))
    h.update(_text(batch_id))
    h.update(_U64.pack(sequence))
    h.update(_I64.pack(create_seconds))
    h.update(_U32.pack(create_nanos))
    h.update(_U64.pack(len(records)))
    h.update(records_hash_list(records) if hashes is None else hashes)
    return h.digest()


def digest_of_batch(batch: exchange_pb2.RecordBatch) -> bytes:
    """Computes :func:`batch_digest` of a wire batch."""
    return batch_digest(
        resource=batch.resource,
        schema_fingerprint=batch.schema_fingerprint,
        batch_id=batch.batch_id,
        sequence=batch.sequence,
        create_seconds=batch.create_time.seconds,
        create_nanos=batch.create_time.nanos,
        records=batch.records,
    )


def digest_of_delivery(
    delivered: exchange_pb2.DeliveredBatch, hashes: bytes | None = None
) -> bytes:
    """Computes the digest the gateway countersigns for one delivery.

    It binds the delivered records and schema to the provider's original digest, the
    grant, the receiving system and the log offset, so a delivery cannot be replayed
    to another subscriber or passed off as another batch.
    """
    h = hashlib.sha256(DELIVERY_DOMAIN)
    h.update(_U64.pack(delivered.offset))
    h.update(_text(delivered.resource))
    h.update(_text(delivered.batch_id))
    h.update(_text(delivered.publisher_system))
    h.update(_U64.pack(delivered.sequence))
    h.update(_I64.pack(delivered.create_time.seconds))
    h.update(_U32.pack(delivered.create_time.nanos))
    h.update(_blob(delivered.schema_fingerprint))
    h.update(_blob(delivered.provider_digest))
    h.update(_text(delivered.grant_id))
    h.update(_text(delivered.subscriber_system))
    h.update(_U64.pack(len(delivered.records)))
    h.update(records_hash_list(delivered.records) if hashes is None else hashes)
    return h.digest()
