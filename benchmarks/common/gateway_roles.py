"""The processes of a gateway case: a real gateway, a publisher and a subscriber, each
run by :class:`benchmarks.common.processes.Children` in a spawned process of its own."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import time
from typing import Any

from benchmarks.common.processes import orphaned, wait_mp_event
from benchmarks.common.received import Delivered, check_delivery
from benchmarks.common.records import batch_bounds, batch_id, batch_index, make_records, now_ns
from benchmarks.common.world import RESOURCE


def role_gateway(
    *,
    queue: Any,
    stop: Any,
    data_dir: str,
    parent_pid: int,
    overrides: dict[str, Any] | None = None,
    name: str = "gateway",
) -> None:
    """Runs a real gateway until ``stop`` is set; reports its target and key.

    ``overrides`` are more settings (the JetStream shape passes ``database_url`` and
    ``log_url``); ``name`` is the role its messages are sent as.
    """
    from exchange.server import Gateway
    from exchange.settings import Settings

    settings = Settings.load(
        {
            "data_dir": data_dir,
            "listen": "127.0.0.1:0",
            "metrics_listen": "",
            "insecure": True,
            **(overrides or {}),
        },
        env={},
    )

    async def main() -> None:
        gateway = await Gateway.start(settings)
        try:
            queue.put(
                (
                    name,
                    "ready",
                    {"target": gateway.target, "gateway_key": gateway.signer.public_key},
                )
            )
            await wait_mp_event(stop, float("inf"), parent_pid)
        finally:
            await gateway.stop(0.5)
        queue.put((name, "done", {}))

    asyncio.run(main())


def role_publisher(
    *,
    queue: Any,
    go: Any,
    target: str,
    token: str,
    key_path: str,
    schema_json: str,
    batch_size: int,
    records: int,
    in_flight: int,
    tag: str,
    timeout: float,
    parent_pid: int,
    resource: str = RESOURCE,
    name: str = "publisher",
) -> None:
    """Publishes the run's records with the SDK's Publisher; reports times and acks.

    ``name`` is the role its messages are sent as (one per lane in the JetStream shape).
    """
    from adapters.publisher import Publisher, encode_records
    from envelope.signing import Ed25519Signer

    rows = make_records(records)
    gc.freeze()  # the pre-built rows are not the adapter's garbage: keep them out of GC scans
    signer = Ed25519Signer.from_file(key_path)

    async def main() -> dict[str, Any]:
        publisher = Publisher(
            target, token, signer, insecure=True, max_in_flight=in_flight, retry_seconds=30
        )
        parsed = publisher.schema(schema_json)
        queue.put((name, "ready", {}))
        if not await wait_mp_event(go, timeout, parent_pid):
            raise TimeoutError("the publisher was never told to start")
        started, cpu_started = now_ns(), time.process_time()
        futures = []
        for index, (start, end) in enumerate(batch_bounds(records, batch_size)):
            batch = publisher.build(
                resource, parsed, encode_records(parsed, rows[start:end]), batch_id(tag, index)
            )
            futures.append(await publisher.send(batch))
        acks = await asyncio.wait_for(asyncio.gather(*futures), timeout)
        acked, cpu = now_ns(), time.process_time() - cpu_started
        await asyncio.wait_for(publisher.close(), 30)
        offsets = [ack.offset for ack in acks]
        problems = []
        if any(ack.duplicate for ack in acks):
            problems.append("the gateway acknowledged some batches as duplicates")
        if offsets != sorted(set(offsets)):
            problems.append("acknowledged offsets are not strictly increasing")
        return {
            "started_ns": started,
            "acked_ns": acked,
            "acks": len(acks),
            "cpu_seconds": cpu,
            "problems": problems,
        }

    queue.put((name, "done", asyncio.run(main())))


def role_subscriber(
    *,
    queue: Any,
    target: str,
    token: str,
    gateway_key: bytes,
    batch_size: int,
    records: int,
    in_flight: int,
    tag: str,
    timeout: float,
    parent_pid: int,
    decode: bool,
    resource: str = RESOURCE,
    name: str = "subscriber",
) -> None:
    """Receives every record with the SDK's Subscriber; reports when the last one was acked.

    The SDK verifies the gateway's countersignature and the publisher's signature over
    the hash of every record before the handler runs. With ``decode`` the handler reads
    ``received.records`` (every record decoded, as a sink writing rows would); without it
    the handler decodes only the first and last record to check the batch's identity (as
    a sink storing the Avro as delivered would). ``name`` is the role its messages are
    sent as (one per lane in the JetStream shape).
    """
    from fastavro import schemaless_reader

    from adapters.subscriber import ReceivedBatch, Subscriber

    def identity(received: ReceivedBatch) -> tuple[int, str, str]:
        if decode:
            rows = received.records
            return (
                len(rows),
                rows[0]["id_number"] if rows else "",
                (rows[-1]["id_number"] if rows else ""),
            )
        raw = received.raw_records
        if not raw:
            return 0, "", ""
        parsed = received.schema.parsed
        first: Any = schemaless_reader(io.BytesIO(raw[0]), parsed, None)
        last: Any = schemaless_reader(io.BytesIO(raw[-1]), parsed, None)
        return len(raw), first["id_number"], last["id_number"]

    bounds = batch_bounds(records, batch_size)
    seen = Delivered(expected=records)

    async def main() -> dict[str, Any]:
        subscriber = Subscriber(
            target,
            token,
            resource,
            subscription=f"bench-{tag}",
            max_in_flight=in_flight,
            gateway_public_key=gateway_key,
            insecure=True,
            retry_seconds=30,
        )
        complete = asyncio.Event()

        def handle(received: ReceivedBatch) -> None:
            index = batch_index(tag, received.batch_id)
            if index is None:
                seen.foreign += 1
                return
            if index in seen.batches:
                return  # delivered again (idempotent sink)
            count, first, last = identity(received)
            seen.batches[index] = (count, first, last, received.provider_verified)
            seen.records += count
            if seen.records >= seen.expected and not complete.is_set():
                seen.finished_ns = now_ns()
                seen.cpu_seconds = time.process_time() - cpu_started
                complete.set()

        cpu_started = time.process_time()  # idle until the first batch arrives
        queue.put((name, "ready", {}))
        runner = asyncio.create_task(subscriber.run(handle))
        waiter = asyncio.create_task(complete.wait())
        deadline = time.monotonic() + timeout
        while not complete.is_set():
            if runner.done():
                runner.result()  # raises the subscriber's error
                raise RuntimeError("the subscription ended before every record arrived")
            if time.monotonic() > deadline or orphaned(parent_pid):
                raise TimeoutError(
                    f"the subscriber received {seen.records} of {records} records in time"
                )
            await asyncio.wait({runner, waiter}, timeout=0.5, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.sleep(0.2)  # the last ack goes out
        subscriber.stop()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(runner, 10)
        waiter.cancel()
        await subscriber.close()
        problems = check_delivery(seen, bounds, tag)
        return {
            "finished_ns": seen.finished_ns,
            "records": seen.records,
            "batches": len(seen.batches),
            "cpu_seconds": seen.cpu_seconds,
            "problems": problems,
        }

    queue.put((name, "done", asyncio.run(main())))
