"""The floor's processes: a bare gRPC ``Publish`` server over SQLite and its client."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import time
from typing import Any

from benchmarks.common.processes import wait_mp_event
from benchmarks.common.records import batch_bounds, batch_id, make_records, now_ns
from benchmarks.common.signed_batches import SignedBatches, verified_rows

MAX_MESSAGE_BYTES = 64 << 20


def role_floor_server(
    *,
    queue: Any,
    stop: Any,
    db_path: str,
    public_key: bytes,
    schema_json: str,
    parent_pid: int,
) -> None:
    """A bare Publish servicer: verify, decode, append (WAL, synchronous=FULL), ack."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from google.protobuf.timestamp_pb2 import Timestamp

    from envelope import schemas
    from exchange.v1 import exchange_pb2, exchange_pb2_grpc

    key = Ed25519PublicKey.from_public_bytes(public_key)
    parsed = schemas.parse(schema_json).parsed  # what the gateway decodes with
    conn = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE batches (position INTEGER PRIMARY KEY, batch_id TEXT NOT NULL, "
        "payload BLOB NOT NULL)"
    )
    writer = ThreadPoolExecutor(1, thread_name_prefix="floor-writer")
    counts = {"batches": 0, "records": 0}

    def store(batch_id_: str, payload: bytes) -> tuple[int, int]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            cursor = conn.execute(
                "INSERT INTO batches (batch_id, payload) VALUES (?, ?)", (batch_id_, payload)
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return int(cursor.lastrowid or 0), time.time_ns()

    class FloorServicer(exchange_pb2_grpc.ExchangeServiceServicer):
        async def Publish(self, request_iterator: Any, context: Any) -> Any:
            loop = asyncio.get_running_loop()
            pending: asyncio.Queue[tuple[str, Any] | BaseException | None] = asyncio.Queue()

            async def intake() -> None:
                try:
                    async for request in request_iterator:
                        batch = request.batch
                        counts["records"] += len(verified_rows(batch, key, parsed))
                        payload = batch.SerializeToString()
                        future = loop.run_in_executor(writer, store, batch.batch_id, payload)
                        pending.put_nowait((batch.batch_id, future))
                    pending.put_nowait(None)
                except Exception as exc:
                    pending.put_nowait(exc)

            task = asyncio.create_task(intake())
            try:
                while True:
                    item = await pending.get()
                    if item is None:
                        return
                    if isinstance(item, BaseException):
                        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, repr(item))
                        return
                    acked_id, future = item
                    offset, stored_ns = await future
                    counts["batches"] += 1
                    durable = Timestamp()
                    durable.FromNanoseconds(stored_ns)
                    yield exchange_pb2.PublishResponse(
                        batch_id=acked_id, offset=offset, durable_time=durable
                    )
            finally:
                task.cancel()

    async def main() -> None:
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ]
        )
        exchange_pb2_grpc.add_ExchangeServiceServicer_to_server(FloorServicer(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            queue.put(("floor_server", "ready", {"target": f"127.0.0.1:{port}"}))
            await wait_mp_event(stop, float("inf"), parent_pid)
        finally:
            await server.stop(0.5)
            writer.shutdown(wait=True)
            conn.close()
        queue.put(("floor_server", "done", dict(counts)))

    asyncio.run(main())


def role_floor_client(
    *,
    queue: Any,
    go: Any,
    target: str,
    key_path: str,
    schema_json: str,
    batch_size: int,
    records: int,
    in_flight: int,
    tag: str,
    timeout: float,
    parent_pid: int,
) -> None:
    """Encodes, hashes, signs and streams the run's records over a bare bidi stream."""
    import grpc

    from exchange.v1 import exchange_pb2, exchange_pb2_grpc

    rows = make_records(records)
    gc.freeze()  # the pre-built rows are not the adapter's garbage: keep them out of GC scans
    signed = SignedBatches(key_path, schema_json)
    bounds = batch_bounds(records, batch_size)

    async def main() -> dict[str, Any]:
        channel = grpc.aio.insecure_channel(
            target,
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
        slots = asyncio.Semaphore(in_flight)
        queue.put(("floor_client", "ready", {}))
        if not await wait_mp_event(go, timeout, parent_pid):
            raise TimeoutError("the floor client was never told to start")
        started, cpu_started = now_ns(), time.process_time()
        call = stub.Publish()
        sequence = time.time_ns() // 1000

        async def write() -> None:
            for index, (start, end) in enumerate(bounds):
                batch = signed.batch(rows[start:end], batch_id(tag, index), sequence + index)
                await slots.acquire()
                await call.write(exchange_pb2.PublishRequest(batch=batch))
            await call.done_writing()

        writer = asyncio.create_task(write())
        acks = 0
        problems = []

        async def read() -> None:
            nonlocal acks
            async for response in call:
                if response.batch_id != batch_id(tag, acks):
                    problems.append(f"ack {acks} is for {response.batch_id}")
                acks += 1
                slots.release()

        try:
            await asyncio.wait_for(read(), timeout)
            finished, cpu = now_ns(), time.process_time() - cpu_started
            await asyncio.wait_for(writer, 10)
        finally:
            writer.cancel()
            call.cancel()
            await channel.close()
        if acks != len(bounds):
            problems.append(f"received {acks} acks for {len(bounds)} batches")
        return {
            "started_ns": started,
            "finished_ns": finished,
            "acks": acks,
            "cpu_seconds": cpu,
            "problems": problems,
        }

    queue.put(("floor_client", "done", asyncio.run(main())))
