"""Raw wire calls for tests that must send what a well-behaved SDK never would."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import grpc
from fastavro import schemaless_writer
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import REGISTRY

from adapters.connection import auth_metadata, open_blocking_channel
from adapters.errors import error_info
from envelope import schemas
from envelope.digest import digest_of_batch
from envelope.signing import Signer
from exchange.v1 import exchange_pb2, exchange_pb2_grpc


class RawSubscription:
    """A Subscribe stream driven by hand: the test decides what to acknowledge."""

    def __init__(
        self,
        stub: exchange_pb2_grpc.ExchangeServiceStub,
        opening: exchange_pb2.SubscriptionOpen,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> None:
        self._outgoing: asyncio.Queue[exchange_pb2.SubscribeRequest | None] = asyncio.Queue()
        self._outgoing.put_nowait(exchange_pb2.SubscribeRequest(open=opening))
        self.call = stub.Subscribe(self._requests(), metadata=tuple(metadata))

    async def _requests(self) -> AsyncIterator[exchange_pb2.SubscribeRequest]:
        while (item := await self._outgoing.get()) is not None:
            yield item

    def ack(self, offset: int) -> None:
        """Acknowledges a delivered batch."""
        self._outgoing.put_nowait(
            exchange_pb2.SubscribeRequest(ack=exchange_pb2.DeliveryAck(offset=offset))
        )

    def ack_with_dead_letters(self, offset: int, dead_lettered_records: int) -> None:
        """Acknowledges a delivered batch, reporting records the subscriber dead-lettered."""
        self._outgoing.put_nowait(
            exchange_pb2.SubscribeRequest(
                ack=exchange_pb2.DeliveryAck(
                    offset=offset, dead_lettered_records=dead_lettered_records
                )
            )
        )


def encode(schema: Any, records: Iterable[dict[str, Any]]) -> list[bytes]:
    """Avro-encodes records with a schema (JSON object)."""
    parsed = schemas.parse(schema).parsed
    out = []
    for record in records:
        buffer = io.BytesIO()
        schemaless_writer(buffer, parsed, record)
        out.append(buffer.getvalue())
    return out


def signed_batch(
    signer: Signer,
    resource: str,
    schema: Any,
    records: Sequence[bytes],
    *,
    batch_id: str = "b-1",
    sequence: int = 1,
    fingerprint: bytes | None = None,
) -> exchange_pb2.RecordBatch:
    """A correctly signed batch (tests then break what they want to break)."""
    created = Timestamp()
    created.GetCurrentTime()
    batch = exchange_pb2.RecordBatch(
        resource=resource,
        schema_fingerprint=fingerprint
        if fingerprint is not None
        else schemas.parse(schema).fingerprint,
        batch_id=batch_id,
        sequence=sequence,
        create_time=created,
        records=list(records),
        signing_key_id=signer.key_id,
    )
    batch.signature = signer.sign(digest_of_batch(batch))
    return batch


class PublishOutcome:
    """What a raw Publish call returned: acks, and the error that ended it (if any)."""

    def __init__(self) -> None:
        self.acks: list[exchange_pb2.PublishResponse] = []
        self.code: grpc.StatusCode | None = None
        self.reason = ""
        self.metadata: dict[str, str] = {}
        self.details = ""


def publish(
    target: str, token: str | None, batches: Sequence[exchange_pb2.RecordBatch]
) -> PublishOutcome:
    """Sends batches on one Publish stream and collects what comes back."""
    outcome = PublishOutcome()
    with open_blocking_channel(target, insecure=True, quiet=True) as channel:
        stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
        metadata = auth_metadata(token) if token else ()
        requests = iter([exchange_pb2.PublishRequest(batch=b) for b in batches])
        try:
            for response in stub.Publish(requests, metadata=metadata, timeout=30):
                outcome.acks.append(response)
        except grpc.RpcError as error:
            outcome.code = error.code()  # type: ignore[attr-defined]
            outcome.details = error.details() or ""  # type: ignore[attr-defined]
            outcome.reason, outcome.metadata = error_info(error)
    return outcome


def rejections(reason: str) -> float:
    """Current value of lijiao_rejections_total for a reason."""
    value = REGISTRY.get_sample_value("lijiao_rejections_total", {"reason": reason})
    return value or 0.0
