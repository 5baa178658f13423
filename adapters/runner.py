"""The runner: sources to the gateway, the gateway to sinks, and nothing lost in between.

Publishing, per ``[[publish]]`` entry: read a batch after the cursor, sign it, write it
to the outbox (``adapters.state``), send it; when the gateway acknowledges it, tell the
source (e.g. move the file to ``done/``) and only then move the cursor. After a crash
the outbox is sent again byte for byte, so the gateway stores each batch once, and the
source resumes after the last acknowledged cursor. The Publisher bounds the batches in
flight, which is the backpressure on the source.

Receiving, per ``[[subscribe]]`` entry: each delivered batch is written to the sink,
which upserts and commits, and only then acknowledged; a crash in between means the
batch comes again and is upserted again: exactly-once effect.

Failures (the department's system down, the gateway away) are retried with backoff,
forever, and reported; a batch the gateway refuses, and rows a sink rejects, go to the
dead-letter table of the state file instead of blocking everything behind them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import grpc

from adapters.config import AdapterConfig, PublishConfig, SubscribeConfig
from adapters.connection import auth_metadata, open_channel
from adapters.contract import AdapterError, Sink, Source
from adapters.errors import GatewayRefusal
from adapters.publisher import MAX_BATCH_MESSAGE_BYTES, Publisher, encode_records
from adapters.registry import sink_class, source_class
from adapters.state import AdapterState, Staged
from adapters.subscriber import ReceivedBatch, Subscriber
from catalog.v1 import catalog_pb2, catalog_pb2_grpc
from envelope import schemas
from envelope.signing import Ed25519Signer
from exchange.v1 import exchange_pb2

log = logging.getLogger("lijiao.adapter")

RETRY_FIRST_SECONDS = 0.5
# Refusals about a batch's own content: it can never go through, so it becomes a dead
# letter (with its bytes, to replay) and the source moves on. Every other refusal is
# about the adapter (key, token, grant) or the gateway, and is retried until fixed.
CONTENT_REFUSALS = frozenset(
    {"RECORD_DECODE_FAILED", "INVALID_BATCH", "RECORD_TOO_LARGE", "BATCH_TOO_LARGE"}
)
RETRY_MOST_SECONDS = 30.0


@dataclass
class Progress:
    """Counters the runner reports."""

    read: int = 0
    acknowledged: int = 0
    refused: int = 0
    received: int = 0
    written: int = 0
    dead_letters: int = 0
    errors: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        """One line for the operator: counts and rates."""
        seconds = max(time.monotonic() - self.started, 1e-9)
        return (
            f"published {self.acknowledged:,} records ({self.acknowledged / seconds:,.0f}/s, "
            f"{self.read - self.acknowledged - self.refused:,} in flight) · received "
            f"{self.received:,}, "
            f"written {self.written:,} ({self.written / seconds:,.0f}/s) · dead letters "
            f"{self.dead_letters:,} · errors {self.errors:,}"
        )


@dataclass(frozen=True)
class _Sent:
    """A staged batch on its way: the gateway's answer to come, and its record count."""

    staged: Staged
    future: asyncio.Future[Any] | None
    records: int


def state_key(entry: PublishConfig) -> str:
    """The state's name for a publish entry: stable when the config file is reordered."""
    return f"{entry.resource}/{entry.source}/{entry.stream}"


class Runner:
    """Runs every entry of a config until stopped.

    Args:
        config: The loaded config file.
        report_seconds: How often a progress line is printed; 0 disables it.
        out: Where progress lines go.
    """

    def __init__(
        self, config: AdapterConfig, *, report_seconds: float = 5.0, out: TextIO = sys.stderr
    ) -> None:
        self.config = config
        self.progress = Progress()
        self.report_seconds = report_seconds
        self.out = out
        self.state = AdapterState(config.gateway.state)
        self._stop = asyncio.Event()

    # --- building ---------------------------------------------------------------------

    def source(self, entry: PublishConfig) -> Source:
        """Instantiates an entry's source (AdapterError names the entry on bad options)."""
        source: Source = source_class(entry.source)(entry.options)
        return source

    def sink(self, entry: SubscribeConfig) -> Sink:
        """Instantiates an entry's sink."""
        sink: Sink = sink_class(entry.sink)(entry.options)
        return sink

    def _channel(self) -> grpc.aio.Channel:
        gateway = self.config.gateway
        return open_channel(
            gateway.address,
            ca_cert=gateway.ca_cert,
            insecure=gateway.insecure,
            quiet=True,
            client_cert=gateway.client_cert,
        )

    async def _resource(self, code: str) -> tuple[schemas.ParsedSchema, list[str]]:
        """The latest registered schema and the key fields of a resource."""
        channel = self._channel()
        try:
            stub = catalog_pb2_grpc.CatalogServiceStub(channel)
            metadata = auth_metadata(self.config.gateway.token)
            schema = await stub.GetSchema(
                catalog_pb2.GetSchemaRequest(resource=code), metadata=metadata
            )
            resource = await stub.GetResource(
                catalog_pb2.GetResourceRequest(code=code), metadata=metadata
            )
        finally:
            await channel.close()
        return schemas.parse(schema.schema.definition), list(resource.resource.key_fields)

    # --- running ----------------------------------------------------------------------

    def stop(self) -> None:
        """Asks every loop to finish what it is doing and return."""
        self._stop.set()

    async def run(self) -> None:
        """Runs until :meth:`stop`; every entry restarts by itself after a failure."""
        tasks = [
            asyncio.create_task(self._supervise(e.key, functools.partial(self._publish, e)))
            for e in self.config.publish
        ]
        tasks += [
            asyncio.create_task(self._supervise(e.key, functools.partial(self._subscribe, e)))
            for e in self.config.subscribe
        ]
        if self.report_seconds > 0:
            tasks.append(asyncio.create_task(self._report()))
        try:
            await self._stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.state.close()

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self.report_seconds)
            print(self.progress.line(), file=self.out, flush=True)

    async def _supervise(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        delay = RETRY_FIRST_SECONDS
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                await loop()
                return
            except (AdapterError, GatewayRefusal, grpc.aio.AioRpcError, OSError) as exc:
                self.progress.errors += 1
                print(f"{name}: {exc}; retrying in {delay:.1f}s", file=self.out, flush=True)
            except Exception as exc:  # a bug or an adapter's own: report it, keep running
                self.progress.errors += 1
                log.exception("%s failed", name)
                print(
                    f"{name}: unexpected {type(exc).__name__}: {exc}; retrying in {delay:.1f}s",
                    file=self.out,
                    flush=True,
                )
            if time.monotonic() - started > RETRY_MOST_SECONDS:
                delay = RETRY_FIRST_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            delay = min(delay * 2, RETRY_MOST_SECONDS)

    async def _publish(self, entry: PublishConfig) -> None:
        key = state_key(entry)
        schema, _keys = await self._resource(entry.resource)
        assert self.config.gateway.signing_key is not None
        signer = Ed25519Signer.from_file(self.config.gateway.signing_key)
        source = self.source(entry)
        publisher = Publisher(
            self.config.gateway.address,
            self.config.gateway.token,
            signer,
            ca_cert=self.config.gateway.ca_cert,
            insecure=self.config.gateway.insecure,
            client_cert=self.config.gateway.client_cert,
        )
        queue: asyncio.Queue[_Sent] = asyncio.Queue()

        async def produce() -> None:
            position = self.state.cursor(key)
            for staged in self.state.outbox(key):  # sent before a crash: send them again
                batch = exchange_pb2.RecordBatch.FromString(staged.batch) if staged.batch else None
                await queue.put(await self._send(publisher, staged, batch))
                position = staged.cursor
            while not self._stop.is_set():
                async for read in source.read(schema.definition, position, entry.batch_size):
                    await queue.put(await self._stage(key, entry, schema, publisher, read))
                    position = read.cursor
                    if self._stop.is_set():
                        break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), entry.poll_seconds)
            await queue.join()

        producer = asyncio.create_task(produce())
        committer = asyncio.create_task(self._commit_in_order(key, source, queue))
        try:
            # whichever fails first ends both; the producer ends on stop once all is acked
            await asyncio.wait({producer, committer}, return_when=asyncio.FIRST_COMPLETED)
            for task in (producer, committer):
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in (producer, committer):
                task.cancel()
            await asyncio.gather(producer, committer, return_exceptions=True)
            await publisher.close()
            await source.close()

    async def _stage(
        self,
        key: str,
        entry: PublishConfig,
        schema: schemas.ParsedSchema,
        publisher: Publisher,
        read: Any,
    ) -> _Sent:
        for name, reason in read.rejected:
            self.state.dead_letter(key, name, "REJECTED_INPUT", reason)
            self.progress.dead_letters += 1
        batch = None
        if read.records:
            batch = publisher.build(entry.resource, schema, encode_records(schema, read.records))
            size = batch.ByteSize()
            if size > MAX_BATCH_MESSAGE_BYTES:
                raise AdapterError(
                    f"a batch of {len(read.records)} records is {size} bytes, over "
                    f"{MAX_BATCH_MESSAGE_BYTES}; lower batch_size",
                    "batch_size",
                )
        payload = batch.SerializeToString() if batch is not None else None
        staged = self.state.stage(key, payload, read.cursor, read.on_commit)
        return await self._send(publisher, staged, batch)

    async def _send(
        self, publisher: Publisher, staged: Staged, batch: exchange_pb2.RecordBatch | None
    ) -> _Sent:
        """Sends a staged batch (waiting while too many are in flight)."""
        if batch is None:
            return _Sent(staged, None, 0)
        future = await publisher.send(batch)
        self.progress.read += len(batch.records)
        return _Sent(staged, future, len(batch.records))

    async def _commit_in_order(self, key: str, source: Source, queue: asyncio.Queue[_Sent]) -> None:
        """Moves the cursor past each batch once acknowledged, strictly in read order."""
        while True:
            sent = await queue.get()
            staged, future = sent.staged, sent.future
            try:
                if future is not None:
                    try:
                        await future
                    except GatewayRefusal as refusal:
                        if refusal.reason not in CONTENT_REFUSALS:
                            # about us, not the batch (key, token, grant, gateway away):
                            # keep it in the outbox and retry after the operator fixes it
                            raise
                        self.state.dead_letter(
                            key,
                            refusal.metadata.get("batch_id", ""),
                            refusal.reason,
                            {
                                "message": refusal.message,
                                "batch": base64.b64encode(staged.batch or b"").decode(),
                            },
                        )
                        self.progress.dead_letters += 1
                        self.progress.refused += sent.records
                    else:
                        self.progress.acknowledged += sent.records
                await source.committed(staged.note)
                self.state.acknowledged(staged)
            finally:
                queue.task_done()

    async def _subscribe(self, entry: SubscribeConfig) -> None:
        _schema, key_fields = await self._resource(entry.resource)
        sink = self.sink(entry)
        await sink.check()
        subscriber = Subscriber(
            self.config.gateway.address,
            self.config.gateway.token,
            entry.resource,
            subscription=entry.subscription,
            start_after_offset=entry.start_after_offset,
            start_time=entry.start_time,
            gateway_public_key=self.config.gateway.gateway_key,
            ca_cert=self.config.gateway.ca_cert,
            insecure=self.config.gateway.insecure,
            client_cert=self.config.gateway.client_cert,
        )

        async def handle(batch: ReceivedBatch) -> int:
            records = batch.records
            self.progress.received += len(records)
            result = await sink.write(batch.schema.definition, key_fields, records, batch.batch_id)
            self.progress.written += result.written
            for index, reason in result.rejected:
                self.state.dead_letter(
                    f"subscribe/{entry.resource}",
                    batch.batch_id,
                    "REJECTED_ROW",
                    {
                        "index": index,
                        "reason": reason,
                        "record": json.loads(json.dumps(records[index], default=str)),
                    },
                )
                self.progress.dead_letters += 1
            return len(result.rejected)

        watcher = asyncio.create_task(self._stop.wait())
        watcher.add_done_callback(lambda _t: subscriber.stop())
        try:
            await subscriber.run(handle)
        finally:
            watcher.cancel()
            await subscriber.close()
            await sink.close()

    # --- checking ---------------------------------------------------------------------

    async def check(self) -> list[tuple[str, str]]:
        """Checks the gateway and every entry; returns (entry, problem) pairs (empty: all good)."""
        problems: list[tuple[str, str]] = []
        for entry in self.config.publish:
            build = functools.partial(self.source, entry)
            problems += await self._check_one(entry.key, entry.resource, build)
        for sub in self.config.subscribe:
            problems += await self._check_one(
                sub.key, sub.resource, functools.partial(self.sink, sub)
            )
        return problems

    async def _check_one(
        self, key: str, resource: str, build: Callable[[], Source | Sink]
    ) -> list[tuple[str, str]]:
        try:
            adapter = build()
            await adapter.check()
            await adapter.close()
            await self._resource(resource)
        except AdapterError as exc:
            return [(key + (f".options.{exc.key}" if exc.key else ""), str(exc))]
        except grpc.aio.AioRpcError as exc:
            return [(key, f"gateway: {exc.code().name}: {exc.details()}")]
        return []
