"""The bare JetStream floor's processes: a publishing client and a pull consumer."""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from benchmarks.common.processes import orphaned, wait_mp_event
from benchmarks.common.received import Delivered, check_delivery
from benchmarks.common.records import batch_bounds, batch_id, batch_index, make_records, now_ns
from benchmarks.common.signed_batches import SignedBatches, verified_rows
from benchmarks.common.world import lane_names
from benchmarks.jetstream_shape.services import HEADER_ROOM


def role_bare_client(
    *,
    queue: Any,
    go: Any,
    nats_url: str,
    stream: str,
    subject: str,
    key_path: str,
    schema_json: str,
    batch_size: int,
    records: int,
    in_flight: int,
    tag: str,
    timeout: float,
    parent_pid: int,
) -> None:
    """Encodes, hashes, signs and publishes the run's batches to JetStream, at most
    ``in_flight`` unacknowledged; reports when the last PubAck came."""
    import nats

    from exchange.log.jetstream_streams import message_id

    rows = make_records(records)
    gc.freeze()  # the pre-built rows are not the client's garbage: keep them out of GC scans
    signed = SignedBatches(key_path, schema_json)
    bounds = batch_bounds(records, batch_size)
    publisher_system = lane_names(0)[1]

    async def main() -> dict[str, Any]:
        connection = await nats.connect(nats_url, connect_timeout=5)
        js = connection.jetstream(timeout=timeout)
        limit = connection.max_payload - HEADER_ROOM
        slots = asyncio.Semaphore(in_flight)
        queue.put(("bare_client", "ready", {}))
        if not await wait_mp_event(go, timeout, parent_pid):
            raise TimeoutError("the bare client was never told to start")
        started, cpu_started = now_ns(), time.process_time()
        sequence = time.time_ns() // 1000
        futures = []
        for index, (start, end) in enumerate(bounds):
            this_id = batch_id(tag, index)
            payload = signed.batch(rows[start:end], this_id, sequence + index).SerializeToString()
            if len(payload) > limit:
                raise ValueError(
                    f"a batch is {len(payload)} bytes; NATS's max_payload leaves {limit}"
                )
            await slots.acquire()
            future = await js.publish_async(
                subject,
                payload,
                stream=stream,
                headers={"Nats-Msg-Id": message_id(publisher_system, this_id)},
            )
            future.add_done_callback(lambda _done: slots.release())
            futures.append(future)
        acks = await asyncio.wait_for(asyncio.gather(*futures), timeout)
        finished, cpu = now_ns(), time.process_time() - cpu_started
        await connection.close()
        problems = []
        if any(ack.duplicate for ack in acks):
            problems.append("JetStream acknowledged some batches as duplicates")
        sequences = [ack.seq for ack in acks]
        if sequences != sorted(set(sequences)):
            problems.append("acknowledged stream sequences are not strictly increasing")
        return {
            "started_ns": started,
            "finished_ns": finished,
            "acks": len(acks),
            "cpu_seconds": cpu,
            "problems": problems,
        }

    queue.put(("bare_client", "done", asyncio.run(main())))


def role_bare_consumer(
    *,
    queue: Any,
    nats_url: str,
    stream: str,
    subject: str,
    public_key: bytes,
    schema_json: str,
    batch_size: int,
    records: int,
    in_flight: int,
    tag: str,
    timeout: float,
    parent_pid: int,
) -> None:
    """Pulls every batch (durable consumer, explicit ack), verifies the publisher's
    signature, decodes every record, acks; reports when the last record was handled."""
    import nats
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js import api

    from envelope import schemas
    from exchange.v1 import exchange_pb2

    key = Ed25519PublicKey.from_public_bytes(public_key)
    parsed = schemas.parse(schema_json).parsed  # what the gateway decodes with
    bounds = batch_bounds(records, batch_size)
    seen = Delivered(expected=records)

    def handle(data: bytes) -> None:
        batch = exchange_pb2.RecordBatch.FromString(data)
        index = batch_index(tag, batch.batch_id)
        if index is None:
            seen.foreign += 1
            return
        rows = verified_rows(batch, key, parsed)
        if index in seen.batches:
            return  # delivered again
        first: Any = rows[0]["id_number"] if rows else ""
        last: Any = rows[-1]["id_number"] if rows else ""
        seen.batches[index] = (len(rows), first, last, True)
        seen.records += len(rows)

    async def main() -> dict[str, Any]:
        connection = await nats.connect(nats_url, connect_timeout=5)
        js = connection.jetstream(timeout=30)
        sub = await js.pull_subscribe(
            subject,
            durable=f"bench-{tag}",
            stream=stream,
            config=api.ConsumerConfig(
                ack_policy=api.AckPolicy.EXPLICIT,
                deliver_policy=api.DeliverPolicy.ALL,
                max_ack_pending=in_flight,
                ack_wait=30.0,
            ),
        )
        cpu_started = time.process_time()  # idle until the first batch arrives
        queue.put(("bare_consumer", "ready", {}))
        deadline = time.monotonic() + timeout
        while seen.records < records:
            if time.monotonic() > deadline or orphaned(parent_pid):
                raise TimeoutError(
                    f"the bare consumer received {seen.records} of {records} records in time"
                )
            try:
                messages = await sub.fetch(in_flight, timeout=0.5)
            except (NatsTimeout, TimeoutError):  # nats-py raises either
                continue
            for msg in messages:
                handle(msg.data)
                await msg.ack()
        finished, cpu = now_ns(), time.process_time() - cpu_started
        await connection.flush()  # the last acks reach the server
        await connection.close()
        return {
            "finished_ns": finished,
            "records": seen.records,
            "batches": len(seen.batches),
            "cpu_seconds": cpu,
            "problems": check_delivery(seen, bounds, tag),
        }

    queue.put(("bare_consumer", "done", asyncio.run(main())))
