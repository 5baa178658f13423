"""What a floor does per batch without a gateway: sign as a publisher, verify and
decode as a receiver."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmarks.common.world import RESOURCE


class SignedBatches:
    """What a floor client does per batch, as a publisher would: encode the records with
    fastavro, hash the batch (``envelope.digest``) and sign it with Ed25519."""

    def __init__(self, key_path: str, schema_json: str) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from fastavro import parse_schema, schemaless_writer
        from google.protobuf.timestamp_pb2 import Timestamp

        from envelope.digest import digest_of_batch
        from envelope.schemas import parse as parse_catalog_schema
        from envelope.signing import key_id_of
        from exchange.v1 import exchange_pb2

        # bound once: the per-batch methods are the timed work
        self._write, self._timestamp = schemaless_writer, Timestamp
        self._digest, self._batch = digest_of_batch, exchange_pb2.RecordBatch
        private = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
        assert isinstance(private, Ed25519PrivateKey)
        self._private = private
        self.key_id = key_id_of(
            private.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        )
        definition = json.loads(schema_json)
        self._parsed = parse_schema(definition)
        self.fingerprint = parse_catalog_schema(definition).fingerprint

    def encode(self, rows: Iterable[dict[str, Any]]) -> list[bytes]:
        """The Avro binary encoding of each row."""
        out = []
        for row in rows:
            buffer = io.BytesIO()
            self._write(buffer, self._parsed, row)
            out.append(buffer.getvalue())
        return out

    def batch(self, rows: Iterable[dict[str, Any]], this_id: str, sequence: int) -> Any:
        """A signed ``RecordBatch`` of the rows, created now."""
        created = self._timestamp()
        created.GetCurrentTime()
        batch = self._batch(
            resource=RESOURCE,
            schema_fingerprint=self.fingerprint,
            batch_id=this_id,
            sequence=sequence,
            create_time=created,
            records=self.encode(rows),
            signing_key_id=self.key_id,
        )
        batch.signature = self._private.sign(self._digest(batch))
        return batch


def verified_rows(batch: Any, key: Any, parsed: Any) -> list[Any]:
    """What a floor receiver does per batch: verify the publisher's signature over the
    batch digest, then decode every record (no trailing bytes)."""
    from fastavro import schemaless_reader

    from envelope.digest import digest_of_batch

    key.verify(batch.signature, digest_of_batch(batch))
    rows = []
    for record in batch.records:
        buffer = io.BytesIO(record)
        rows.append(schemaless_reader(buffer, parsed, None))
        if buffer.tell() != len(record):
            raise ValueError("trailing bytes after a record")
    return rows
