"""Projection and countersigning: what a grant makes of a stored batch.

A grant delivers only its fields and the rows of its region, with every sensitive field
masked unless the grant names it as clear. A batch reshaped so is re-encoded with the
derived schema; delivered as is or reshaped, it is countersigned by the gateway.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import expand_schema

from catalog import validation
from catalog.masks import DEFAULT_POLICY, MaskPolicy, mask_record
from catalog.models import Sensitivity
from envelope import schemas
from envelope.digest import digest_of_delivery
from envelope.errors import FailedPrecondition, Reason
from envelope.signing import Signer
from exchange.gate.catalog_view import CatalogView, GrantView
from exchange.log import StoredBatch
from exchange.publish.record_checker import RecordChecker, chunks
from exchange.v1 import exchange_pb2


@dataclass(frozen=True)
class Sent:
    """What the ledger keeps of the last delivery of a batch on a stream."""

    batch_id: str
    records: int
    size: int
    digest: bytes
    signature: bytes
    key_id: str
    sent_ns: int
    attempt: int


_policies: dict[tuple[tuple[Sensitivity, str], ...], MaskPolicy] = {}


def project_chunk(
    projection: Projection, masks: dict[Sensitivity, str], records: list[bytes]
) -> list[bytes]:
    """A projection applied to a chunk of records (in a worker process)."""
    key = tuple(sorted(masks.items()))
    policy = _policies.get(key)
    if policy is None:
        policy = _policies[key] = MaskPolicy(dict(masks))
    return projection.apply(records, policy)


@dataclass(frozen=True)
class Projection:
    """How a grant reshapes batches written with one schema: rows, fields, masks."""

    writer: Any
    writer_schema: schemas.ParsedSchema
    schema: schemas.ParsedSchema
    fields: tuple[str, ...] | None
    region_field: str
    region: str
    masked: dict[str, Sensitivity]

    @property
    def decodable(self) -> bool:
        """Whether the writer schema's records are safe to decode (not recursive)."""
        return self.writer_schema.decodable

    def apply(self, records: Any, policy: MaskPolicy) -> list[bytes]:
        """The records the grant delivers, re-encoded with :attr:`schema`."""
        out: list[bytes] = []
        for raw in records:
            # Named union branches keep their names, so re-encoding cannot switch branch.
            row: Any = schemaless_reader(
                io.BytesIO(raw),
                self.writer,
                None,
                return_record_name=True,
                return_record_name_override=True,
            )
            if self.region and not validation.region_contains(
                self.region, str(row.get(self.region_field) or "")
            ):
                continue
            if self.fields is not None:
                row = {name: row[name] for name in self.fields}
            if self.masked:
                row = mask_record(row, self.masked, (), policy)
            buffer = io.BytesIO()
            schemaless_writer(buffer, self.schema.parsed, row)
            out.append(buffer.getvalue())
        return out


def derived_schema(writer: schemas.ParsedSchema, fields: tuple[str, ...]) -> schemas.ParsedSchema:
    """The writer schema with only ``fields``; named types are inlined first, so a kept
    field whose type was defined inside a dropped one still resolves."""
    expanded: Any = expand_schema(writer.definition)
    definition = dict(expanded)
    definition["fields"] = [f for f in definition["fields"] if f["name"] in fields]
    return schemas.parse(definition)


_ProjectionKey = tuple[str, bytes, tuple[str, ...], tuple[str, ...], str]


class Countersigner:
    """Turns stored batches into the countersigned deliveries a grant allows."""

    def __init__(
        self,
        view: CatalogView,
        signer: Signer,
        masks: MaskPolicy = DEFAULT_POLICY,
        workers: RecordChecker | None = None,
    ) -> None:
        self.view = view
        self.signer = signer
        self.masks = masks
        self.workers = workers or RecordChecker()
        self._projections: dict[_ProjectionKey, Projection | None] = {}

    async def _project(
        self, projection: Projection, records: Sequence[bytes], subscriber: str
    ) -> list[bytes]:
        """The records a projection delivers: a big batch's in the record checker's
        worker processes, a chunk at a time per subscriber, so no delivery holds the
        event loop for longer than a small batch takes."""
        if not projection.decodable:
            raise FailedPrecondition(
                Reason.RECORD_DECODE_FAILED,
                "this batch's schema is recursive (registered before such schemas were "
                "refused): the gateway cannot reshape its records for your grant; ask the "
                "provider to register a schema version without recursion",
            )
        if sum(map(len, records)) <= self.workers.inline_bytes:
            return projection.apply(records, self.masks)
        out: list[bytes] = []
        for _, part in chunks(records, self.workers.chunk_bytes):
            out.extend(
                await self.workers.run(
                    subscriber, project_chunk, projection, self.masks.masks, list(part)
                )
            )
        return out

    def projection(self, resource: str, fingerprint: bytes, grant: GrantView) -> Projection | None:
        """What the grant does to batches of one schema; None when it delivers them as is.

        Minimum necessary: only the granted fields, only the rows of the granted region,
        and every field tagged sensitive masked unless the grant names it as clear.
        """
        key = (resource, fingerprint, grant.fields, grant.clear_fields, grant.region)
        if key not in self._projections:
            writer = self.view.schema(resource, fingerprint)
            known = writer.top_level_fields()
            view = self.view.resource(resource)
            if fingerprint not in view.fingerprints:
                self.view.forget_resource(resource)  # a newer version's tags: read them now
                view = self.view.resource(resource)
            fields = tuple(f for f in known if f in grant.fields) if grant.fields else None
            delivered = fields if fields is not None else tuple(known)
            masked = {
                name: tag
                for name, tag in view.tags.items()
                if name in delivered and name not in grant.clear_fields
            }
            if fields is None and not grant.region and not masked:
                self._projections[key] = None
            else:
                derived = derived_schema(writer, fields) if fields is not None else writer
                self._projections[key] = Projection(
                    writer=parse_schema(json.loads(json.dumps(writer.definition))),
                    writer_schema=writer,
                    schema=derived,
                    fields=fields,
                    region_field=view.region_field,
                    region=grant.region,
                    masked=masked,
                )
        return self._projections[key]

    async def deliver(
        self,
        stored: StoredBatch,
        grant: GrantView,
        subscriber: str,
        attempt: int,
        sent_schemas: set[bytes],
    ) -> tuple[exchange_pb2.DeliveredBatch, Sent]:
        """The delivery of ``stored`` to ``subscriber`` under ``grant``, countersigned.

        Args:
            stored: The batch as the log holds it.
            grant: The subscriber's active grant.
            subscriber: The receiving system.
            attempt: How often the batch has been sent on this stream, this time included.
            sent_schemas: Fingerprints of the schemas this stream has sent; the delivered
                schema's text goes with the first batch written with it (and is added).
        """
        batch = exchange_pb2.RecordBatch.FromString(stored.payload)
        projection = self.projection(batch.resource, batch.schema_fingerprint, grant)
        if projection is None:
            records: Any = batch.records
            schema = self.view.schema(batch.resource, batch.schema_fingerprint)
        else:
            records = await self._project(projection, batch.records, subscriber)
            schema = projection.schema
        delivered = exchange_pb2.DeliveredBatch(
            offset=stored.position,
            resource=batch.resource,
            batch_id=batch.batch_id,
            publisher_system=stored.publisher,
            sequence=batch.sequence,
            create_time=batch.create_time,
            schema_fingerprint=schema.fingerprint,
            records=records,
            provider_digest=stored.digest,
            provider_signature=batch.signature,
            provider_key_id=batch.signing_key_id,
            grant_id=grant.id,
            subscriber_system=subscriber,
            gateway_key_id=self.signer.key_id,
            delivery_attempt=attempt,
        )
        if schema.fingerprint not in sent_schemas:
            delivered.schema = json.dumps(schema.definition, ensure_ascii=False)
            sent_schemas.add(schema.fingerprint)
        digest = digest_of_delivery(delivered)
        delivered.gateway_signature = self.signer.sign(digest)
        sent = Sent(
            batch_id=batch.batch_id,
            records=len(records),
            size=sum(len(record) for record in records),
            digest=digest,
            signature=delivered.gateway_signature,
            key_id=self.signer.key_id,
            sent_ns=time.time_ns(),
            attempt=attempt,
        )
        return delivered, sent
