"""Publishing records to the gateway.

Example::

    signer = Ed25519Signer.from_file("market-signing-key.pem")
    async with Publisher("gateway:7443", token, signer, ca_cert=Path("ca.pem")) as pub:
        ack = await pub.publish("SAMR-LICENCE", schema, rows)
        print(ack.offset)
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from fastavro import schemaless_writer
from google.protobuf.timestamp_pb2 import Timestamp

from adapters.connection import (
    MAX_MESSAGE_BYTES,
    Backoff,
    ClientCertificate,
    auth_metadata,
    open_channel,
)
from adapters.errors import RETRYABLE, GatewayRefusal, retry_delay
from envelope import schemas
from envelope.digest import digest_of_batch
from envelope.signing import Signer
from exchange.v1 import exchange_pb2, exchange_pb2_grpc

MAX_BATCH_MESSAGE_BYTES = MAX_MESSAGE_BYTES // 2  # the gateway's default batch limit


@dataclass(frozen=True)
class PublishAck:
    """The gateway's acknowledgement: the batch is durable.

    Attributes:
        batch_id: The batch's id.
        offset: Its position in the gateway's log.
        duplicate: The gateway had stored this batch before.
    """

    batch_id: str
    offset: int
    duplicate: bool


@dataclass
class _Pending:
    request: exchange_pb2.PublishRequest
    future: asyncio.Future[PublishAck]


def encode_records(
    schema: schemas.ParsedSchema, records: Iterable[Mapping[str, Any]]
) -> list[bytes]:
    """Encodes records as Avro binary with a schema."""
    out = []
    for record in records:
        buffer = io.BytesIO()
        schemaless_writer(buffer, schema.parsed, record)
        out.append(buffer.getvalue())
    return out


MAX_RETRY_DELAY = 30.0  # seconds; a longer hint is capped
CLOSE_FLUSH_SECONDS = 20.0  # close() waits this long for outstanding acks


class Publisher:
    """Builds, signs and streams batches; retries safely; bounds batches in flight.

    Batches are acknowledged in order. When the connection breaks, every batch not yet
    acknowledged is sent again with the same batch id and signature, so the gateway
    stores it once. A refused batch fails only its own future with
    :class:`~adapters.errors.GatewayRefusal` (the gateway names it in the ErrorInfo
    metadata ``batch_id``); the others are sent again. A refusal of the whole stream
    (an unknown token, say) fails every pending batch; sending them again later is safe,
    since the gateway stores a batch id once.

    Args:
        target: Gateway host:port.
        token: Bearer token of the publishing system.
        signer: The system's registered signing key.
        ca_cert: PEM certificate to trust for the gateway.
        insecure: Plaintext connection (local development only).
        client_cert: The system's TLS client certificate (mutual TLS); the token is then
            empty.
        max_in_flight: Batches sent but not yet acknowledged before ``send`` waits.
        first_sequence: Sequence number of the first batch; defaults to the current time
            in microseconds, which keeps increasing across restarts.
        retry_seconds: How long to keep reconnecting before failing pending batches.
    """

    def __init__(
        self,
        target: str,
        token: str,
        signer: Signer,
        *,
        ca_cert: Path | None = None,
        insecure: bool = False,
        client_cert: ClientCertificate | None = None,
        max_in_flight: int = 8,
        first_sequence: int | None = None,
        retry_seconds: float = 60.0,
    ) -> None:
        self._channel = open_channel(
            target, ca_cert=ca_cert, insecure=insecure, quiet=True, client_cert=client_cert
        )
        self._stub = exchange_pb2_grpc.ExchangeServiceStub(self._channel)
        self._metadata = auth_metadata(token)
        self._signer = signer
        self._slots = asyncio.Semaphore(max_in_flight)
        self._pending: list[_Pending] = []
        self._removed = 0  # batches popped from the head of _pending so far
        self._added = asyncio.Event()
        self._sequence = first_sequence if first_sequence is not None else time.time_ns() // 1000
        self._backoff = Backoff(retry_seconds)
        self._closing = False
        self._runner: asyncio.Task[None] | None = None
        self._schemas: dict[str, schemas.ParsedSchema] = {}

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def schema(self, definition: Any) -> schemas.ParsedSchema:
        """Parses (and caches) a schema given as JSON text or object."""
        key = definition if isinstance(definition, str) else repr(definition)
        parsed = self._schemas.get(key)
        if parsed is None:
            parsed = self._schemas[key] = schemas.parse(definition)
        return parsed

    def build(
        self,
        resource: str,
        schema: schemas.ParsedSchema,
        records: list[bytes],
        batch_id: str | None = None,
    ) -> exchange_pb2.RecordBatch:
        """Builds and signs a batch of already encoded records."""
        created = Timestamp()
        created.GetCurrentTime()
        batch = exchange_pb2.RecordBatch(
            resource=resource,
            schema_fingerprint=schema.fingerprint,
            batch_id=batch_id or uuid.uuid4().hex,
            sequence=self._sequence,
            create_time=created,
            records=records,
            signing_key_id=self._signer.key_id,
        )
        self._sequence += 1
        batch.signature = self._signer.sign(digest_of_batch(batch))
        return batch

    async def send(self, batch: exchange_pb2.RecordBatch) -> asyncio.Future[PublishAck]:
        """Queues a signed batch, waiting while too many are unacknowledged.

        Returns:
            A future resolved with the :class:`PublishAck`, or failed with
            :class:`~adapters.errors.GatewayRefusal`.
        """
        size = batch.ByteSize()
        if size > MAX_BATCH_MESSAGE_BYTES:
            raise ValueError(
                f"batch {batch.batch_id} is {size} bytes; split it (limit "
                f"{MAX_BATCH_MESSAGE_BYTES} bytes)"
            )
        await self._slots.acquire()
        future: asyncio.Future[PublishAck] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda _f: self._slots.release())
        self._pending.append(_Pending(exchange_pb2.PublishRequest(batch=batch), future))
        self._added.set()
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        return future

    async def publish(
        self,
        resource: str,
        schema: Any,
        records: Iterable[Mapping[str, Any]],
        *,
        batch_id: str | None = None,
    ) -> PublishAck:
        """Encodes, signs and publishes one batch, and waits for its acknowledgement."""
        parsed = self.schema(schema)
        batch = self.build(resource, parsed, encode_records(parsed, records), batch_id)
        return await (await self.send(batch))

    async def flush(self) -> None:
        """Waits until every queued batch is acknowledged or refused."""
        while self._pending:
            await asyncio.wait([p.future for p in self._pending])

    async def close(self) -> None:
        """Flushes (for at most ``CLOSE_FLUSH_SECONDS``), ends the stream and closes the
        connection. A batch still unacknowledged then is not lost to a caller that
        keeps an outbox (the runner does): it is sent again, and stored once."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), CLOSE_FLUSH_SECONDS)
        self._closing = True
        self._added.set()
        if self._runner is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._runner, 5)
        await self._channel.close()

    async def _run(self) -> None:
        while self._pending and not self._closing:
            call = self._stub.Publish(metadata=self._metadata)
            writer = asyncio.create_task(self._write(call))
            try:
                async for response in call:
                    self._acknowledge(response)
                    self._backoff.succeeded()
                await call
            except grpc.aio.AioRpcError as error:
                delay = retry_delay(error)
                if delay is not None:  # over the rate limit: slow down, resend, no refusal
                    await asyncio.sleep(min(delay, MAX_RETRY_DELAY))
                elif error.code() not in RETRYABLE:
                    self._refuse(error)
                elif not await self._backoff.failed():
                    self._fail_all(error)
                    return
            finally:
                writer.cancel()
                call.cancel()

    async def _write(self, call: Any) -> None:
        sent = self._removed  # absolute count, like _removed: a new stream resends the head
        while True:
            while sent < self._removed + len(self._pending):
                await call.write(self._pending[sent - self._removed].request)
                sent += 1
            if self._closing or not self._pending:
                await call.done_writing()
                return
            self._added.clear()
            await self._added.wait()

    def _pop(self) -> _Pending:
        self._removed += 1
        return self._pending.pop(0)

    def _acknowledge(self, response: exchange_pb2.PublishResponse) -> None:
        head = self._pop()
        if head.request.batch.batch_id != response.batch_id:
            raise RuntimeError(
                f"gateway acknowledged {response.batch_id!r}, expected "
                f"{head.request.batch.batch_id!r}"
            )
        if not head.future.done():
            head.future.set_result(
                PublishAck(response.batch_id, response.offset, response.duplicate)
            )

    def _refuse(self, error: grpc.aio.AioRpcError) -> None:
        """Fails the batch the gateway named; a refusal naming none ends every pending one.

        Called between streams (the writer is stopped), so removing from the middle of
        the pending list is safe; the next stream sends the rest again from the start.
        """
        refusal = GatewayRefusal(error)
        batch_id = refusal.metadata.get("batch_id")
        for index, item in enumerate(self._pending):
            if batch_id and item.request.batch.batch_id == batch_id:
                del self._pending[index]
                if not item.future.done():
                    item.future.set_exception(refusal)
                return
        self._fail_all(error)

    def _fail_all(self, error: grpc.aio.AioRpcError) -> None:
        while self._pending:
            head = self._pop()
            if not head.future.done():
                head.future.set_exception(GatewayRefusal(error))
