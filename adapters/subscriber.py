"""Receiving granted records from the gateway.

Example::

    async def store(batch: ReceivedBatch) -> None:
        upsert_rows(batch.records)          # commit in your own system first

    subscriber = Subscriber("gateway:7443", token, "SAMR-LICENCE", ca_cert=Path("ca.pem"))
    await subscriber.run(store)             # acks each batch after store() returns
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import inspect
import io
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from fastavro import schemaless_reader

from adapters.connection import Backoff, ClientCertificate, auth_metadata, open_channel
from adapters.errors import RETRYABLE, GatewayRefusal, VerificationError
from catalog.v1 import catalog_pb2, catalog_pb2_grpc
from envelope import schemas, signing
from envelope.digest import batch_digest, digest_of_delivery, records_hash_list
from exchange.v1 import exchange_pb2, exchange_pb2_grpc


@dataclass(frozen=True)
class ReceivedBatch:
    """A verified delivery; its records are decoded when first read.

    Attributes:
        offset: Position in the gateway's log (what is acknowledged).
        batch_id: The publisher's batch id.
        resource: Resource code.
        publisher_system: Code of the publishing system.
        raw_records: The Avro binary records as delivered (a sink that stores Avro as
            is never needs to decode them).
        schema: The delivered schema.
        provider_verified: The publisher's own signature was checked too (possible
            when the grant delivers the records unchanged).
        delivery_attempt: 1 the first time on this stream, more when sent again.
        raw: The delivered message as received.
    """

    offset: int
    batch_id: str
    resource: str
    publisher_system: str
    raw_records: Sequence[bytes]
    schema: schemas.ParsedSchema
    provider_verified: bool
    delivery_attempt: int
    raw: exchange_pb2.DeliveredBatch

    @functools.cached_property
    def records(self) -> list[Any]:
        """The records decoded with the delivered schema: only the fields the grant allows."""
        parsed = self.schema.parsed
        return [schemaless_reader(io.BytesIO(raw), parsed, None) for raw in self.raw_records]


Handler = Callable[[ReceivedBatch], Awaitable[int | None] | int | None]
"""Writes a batch; may return how many of its records it put on its dead-letter list."""

DRAIN_SECONDS = 5.0
HEALTHY = 1.0  # a subscription open this long before failing counts as progress


class Subscriber:
    """Holds a subscription open, verifies and decodes each batch, acks after the handler.

    The handler must commit the records in the department's own system before it
    returns: the batch is acknowledged then, and only then does the gateway move the
    subscription's cursor. A batch whose handler raises is not acknowledged and will be
    delivered again; make the handler idempotent (upsert by key). A handler that could
    not write some records and kept them on its own dead-letter list returns how many:
    the acknowledgement tells the gateway, which counts and records them.

    Args:
        target: Gateway host:port.
        token: Bearer token of the receiving system.
        resource: Resource code to receive.
        subscription: Name of the durable cursor.
        max_in_flight: Batches the gateway may send before acknowledgements.
        gateway_public_key: Pin the gateway's countersigning key (raw 32 bytes); when
            None it is fetched from the gateway on connect.
        verify_provider: Also verify the publisher's signature when records arrive
            unchanged (fetches publisher keys from the catalog).
        ca_cert: PEM certificate to trust for the gateway.
        insecure: Plaintext connection (local development only).
        client_cert: The system's TLS client certificate (mutual TLS); the token is then
            empty.
        retry_seconds: How long to keep reconnecting before giving up.
        start_after_offset: Replay: a subscription without a cursor yet starts after
            this offset (use a new ``subscription`` name for a re-run).
        start_time: Replay: ... or with the batches stored from this time.
    """

    def __init__(
        self,
        target: str,
        token: str,
        resource: str,
        *,
        subscription: str = "default",
        start_after_offset: int | None = None,
        start_time: datetime.datetime | None = None,
        max_in_flight: int = 16,
        gateway_public_key: bytes | None = None,
        verify_provider: bool = True,
        ca_cert: Path | None = None,
        insecure: bool = False,
        client_cert: ClientCertificate | None = None,
        retry_seconds: float = 60.0,
    ) -> None:
        self._channel = open_channel(
            target, ca_cert=ca_cert, insecure=insecure, quiet=True, client_cert=client_cert
        )
        self._stub = exchange_pb2_grpc.ExchangeServiceStub(self._channel)
        self._catalog = catalog_pb2_grpc.CatalogServiceStub(self._channel)
        self._metadata = auth_metadata(token)
        self.resource = resource
        self.subscription = subscription
        self.max_in_flight = max_in_flight
        self._start = exchange_pb2.SubscriptionOpen()
        if start_after_offset is not None:
            self._start.start_after_offset = start_after_offset
        elif start_time is not None:
            self._start.start_time.FromDatetime(start_time)
        self._gateway_key = gateway_public_key
        self._verify_provider = verify_provider
        self._backoff = Backoff(retry_seconds)
        self._schemas: dict[bytes, schemas.ParsedSchema] = {}
        self._provider_keys: dict[tuple[str, str], bytes | None] = {}
        self._stopping = False
        self._call: Any = None
        self._acks: asyncio.Queue[exchange_pb2.SubscribeRequest | None] | None = None
        self._handling = False
        self._opened_at: float | None = None
        self.signatures_verified = 0

    def stop(self) -> None:
        """Ends :meth:`run` after the batch being handled (if any) is acknowledged.

        Batches the gateway sent after that one are left unacknowledged and are
        delivered again on the next run.
        """
        self._stopping = True
        if not self._handling:
            self._half_close()

    async def close(self) -> None:
        """Closes the connection."""
        await self._channel.close()

    async def run(self, handler: Handler) -> None:
        """Receives until :meth:`stop`; reconnects and resumes from the cursor on failures.

        Raises:
            GatewayRefusal: The gateway refused the subscription (e.g. NO_GRANT).
            VerificationError: A delivery failed verification (it was not acknowledged).
        """
        while not self._stopping:
            try:
                if self._gateway_key is None:
                    response = await self._stub.GetGatewayKey(
                        exchange_pb2.GetGatewayKeyRequest(), metadata=self._metadata
                    )
                    self._gateway_key = response.public_key
                if self._stopped():
                    return
                await self._stream(handler)
            except grpc.aio.AioRpcError as error:
                if self._stopped():
                    return
                opened, self._opened_at = self._opened_at, None
                if opened is not None and asyncio.get_running_loop().time() - opened >= HEALTHY:
                    self._backoff.succeeded()  # it was connected for a while: a fresh budget
                if error.code() not in RETRYABLE or not await self._backoff.failed():
                    raise GatewayRefusal(error) from error

    def _stopped(self) -> bool:
        return self._stopping

    async def _stream(self, handler: Handler) -> None:
        acks: asyncio.Queue[exchange_pb2.SubscribeRequest | None] = asyncio.Queue()
        opening = exchange_pb2.SubscriptionOpen(
            resource=self.resource,
            subscription=self.subscription,
            max_in_flight=self.max_in_flight,
        )
        opening.MergeFrom(self._start)
        await acks.put(exchange_pb2.SubscribeRequest(open=opening))

        async def requests() -> Any:
            while True:
                item = await acks.get()
                if item is None:
                    return
                yield item

        self._call = call = self._stub.Subscribe(requests(), metadata=self._metadata)
        self._acks = acks
        if self._stopped():
            self._half_close()
        try:
            metadata = await call.initial_metadata()
            if metadata is not None and dict(metadata).get("lijiao-subscription") == "open":
                self._opened_at = asyncio.get_running_loop().time()
            while True:
                try:
                    response = await call.read()
                except asyncio.CancelledError:
                    if self._stopping and call.cancelled():
                        return  # the gateway did not end the stream in time after stop()
                    raise
                if response is grpc.aio.EOF:
                    return
                self._backoff.succeeded()
                if self._stopped():
                    continue  # not handled, not acked: the gateway sends it again later
                self._handling = True
                try:
                    received = await self._verify(response.batch)
                    outcome = handler(received)
                    if inspect.isawaitable(outcome):
                        outcome = await outcome
                finally:
                    self._handling = False
                dead = outcome if isinstance(outcome, int) and outcome > 0 else 0
                await acks.put(
                    exchange_pb2.SubscribeRequest(
                        ack=exchange_pb2.DeliveryAck(
                            offset=received.offset, dead_lettered_records=dead
                        )
                    )
                )
                if self._stopped():
                    self._half_close()
        finally:
            acks.put_nowait(None)  # ends the request generator whatever happened
            self._acks = None
            self._call = None
            if not call.done():
                call.cancel()

    def _half_close(self) -> None:
        """Ends the request side after the last ack; the gateway then ends the stream."""
        if self._acks is not None:
            self._acks.put_nowait(None)
            self._acks = None
            call = self._call
            asyncio.get_running_loop().call_later(DRAIN_SECONDS, call.cancel)

    async def _verify(self, delivered: exchange_pb2.DeliveredBatch) -> ReceivedBatch:
        assert self._gateway_key is not None
        if delivered.gateway_key_id != signing.key_id_of(self._gateway_key):
            raise VerificationError(
                f"batch {delivered.batch_id} is countersigned by unknown key "
                f"{delivered.gateway_key_id}"
            )
        hashes = records_hash_list(delivered.records)  # once, for both signatures
        if not signing.verify(
            self._gateway_key, digest_of_delivery(delivered, hashes), delivered.gateway_signature
        ):
            raise VerificationError(f"gateway signature of batch {delivered.batch_id} is invalid")
        self.signatures_verified += 1
        schema = self._schema(delivered)
        provider_ok = False
        if self._verify_provider:
            provider_ok = await self._verify_provider_signature(delivered, hashes)
        return ReceivedBatch(
            offset=delivered.offset,
            batch_id=delivered.batch_id,
            resource=delivered.resource,
            publisher_system=delivered.publisher_system,
            raw_records=delivered.records,
            schema=schema,
            provider_verified=provider_ok,
            delivery_attempt=delivered.delivery_attempt,
            raw=delivered,
        )

    def _schema(self, delivered: exchange_pb2.DeliveredBatch) -> schemas.ParsedSchema:
        fingerprint = delivered.schema_fingerprint
        if delivered.schema:
            parsed = schemas.parse(delivered.schema)
            if parsed.fingerprint != fingerprint:
                raise VerificationError(
                    f"schema sent with batch {delivered.batch_id} does not match its fingerprint"
                )
            self._schemas[fingerprint] = parsed
        if fingerprint not in self._schemas:
            raise VerificationError(f"no schema for fingerprint {fingerprint.hex()}")
        return self._schemas[fingerprint]

    async def _verify_provider_signature(
        self, delivered: exchange_pb2.DeliveredBatch, hashes: bytes
    ) -> bool:
        digest = batch_digest(
            resource=delivered.resource,
            schema_fingerprint=delivered.schema_fingerprint,
            batch_id=delivered.batch_id,
            sequence=delivered.sequence,
            create_seconds=delivered.create_time.seconds,
            create_nanos=delivered.create_time.nanos,
            records=delivered.records,
            hashes=hashes,
        )
        if digest != delivered.provider_digest:
            return False  # the grant reshaped the records; the gateway's signature covers it
        key = await self._provider_key(delivered.publisher_system, delivered.provider_key_id)
        if key is None or not signing.verify(key, digest, delivered.provider_signature):
            raise VerificationError(
                f"publisher signature of batch {delivered.batch_id} does not verify"
            )
        self.signatures_verified += 1
        return True

    async def _provider_key(self, system: str, key_id: str) -> bytes | None:
        cache_key = (system, key_id)
        if cache_key not in self._provider_keys:
            response = await self._catalog.GetSystem(
                catalog_pb2.GetSystemRequest(code=system), metadata=self._metadata
            )
            keys = {k.key_id: k.public_key for k in response.system.signing_keys}
            self._provider_keys[cache_key] = keys.get(key_id)
        return self._provider_keys[cache_key]
