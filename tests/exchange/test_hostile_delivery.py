"""Hostile acknowledgements on a Subscribe stream (issue 12, finding 14).

An ack names an offset delivered on the same stream and not acknowledged yet, once per
delivery, and reports at most as many dead-lettered records as that delivery carried.
Anything else ends the stream with ``INVALID_ARGUMENT`` / ``INVALID_ACK`` and changes
nothing but a denial entry: no cursor move, no DELIVERY or DEAD_LETTER entry, no
dead-letter count. What an honest subscriber does stays accepted: acks in any order
within the window, a batch delivered again after a reconnect or after the ack timeout,
a late ack of a batch the gateway gave up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from adapters.connection import auth_metadata, open_channel
from adapters.errors import error_info
from adapters.subscriber import ReceivedBatch, Subscriber
from catalog import ledger
from catalog.ledger import EntryFilter, EntryKind
from catalog.v1 import catalog_pb2 as pb
from envelope.errors import InvalidArgument
from exchange.delivery.stream import SubscriptionStream as _Stream
from exchange.v1 import exchange_pb2, exchange_pb2_grpc
from tests.exchange.test_subscribe import publish_batches
from tests.gateway_harness import RunningGateway
from tests.wire import RawSubscription, encode, publish, signed_batch
from tests.world import PERSON_SCHEMA, World, build_world, person

SUBSCRIBER = "CIVIL-AFFAIRS"


@pytest.fixture
def world(gateway: RunningGateway) -> World:
    return build_world(gateway)


class Stream:
    """A raw Subscribe stream on RESIDENTS that the test acknowledges by hand."""

    def __init__(self, world: World, window: int = 16, system: str = SUBSCRIBER) -> None:
        self.channel = open_channel(world.gateway.target, insecure=True, quiet=True)
        self.raw = RawSubscription(
            exchange_pb2_grpc.ExchangeServiceStub(self.channel),
            exchange_pb2.SubscriptionOpen(resource="RESIDENTS", max_in_flight=window),
            auth_metadata(world.systems[system].token),
        )
        self.batches: asyncio.Queue[exchange_pb2.DeliveredBatch] = asyncio.Queue()
        self.error: grpc.aio.AioRpcError | None = None
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for response in self.raw.call:
                await self.batches.put(response.batch)
        except grpc.aio.AioRpcError as error:
            self.error = error

    async def take(self, count: int, seconds: float = 15) -> list[exchange_pb2.DeliveredBatch]:
        """The next ``count`` deliveries."""
        return [await asyncio.wait_for(self.batches.get(), seconds) for _ in range(count)]

    def ack(self, offset: int, dead_lettered_records: int = 0) -> None:
        self.raw.ack_with_dead_letters(offset, dead_lettered_records)

    async def ending(self, seconds: float = 5) -> grpc.aio.AioRpcError | None:
        """The error that ended the stream within ``seconds`` (None: it is still open)."""
        await asyncio.wait({self.reader}, timeout=seconds)
        return self.error

    async def close(self) -> None:
        self.raw.call.cancel()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader
        await self.channel.close()


@contextlib.asynccontextmanager
async def stream(world: World, window: int = 16) -> AsyncIterator[Stream]:
    opened = Stream(world, window)
    try:
        yield opened
    finally:
        await opened.close()


def entries(world: World, kind: EntryKind) -> list[Any]:
    sessions = world.gateway.gateway.catalog.sessions  # type: ignore[union-attr]
    return ledger.entries(sessions, EntryFilter(kinds=(kind,)), 1000)


def cursor(world: World) -> int:
    log: Any = world.gateway.gateway.log  # type: ignore[union-attr]
    return int(world.gateway.on_loop(lambda: log.cursor(SUBSCRIBER, "RESIDENTS", "default")))


def wait_for_cursor(world: World, position: int) -> None:
    """Deliveries are recorded, then the cursor moves: wait for it."""
    deadline = time.monotonic() + 15
    while cursor(world) != position:
        assert time.monotonic() < deadline, f"the cursor stayed at {cursor(world)}"
        time.sleep(0.05)


def dead_letter_count() -> float:
    labels = {"department": "CIVIL", "resource": "RESIDENTS"}
    return REGISTRY.get_sample_value("lijiao_dead_letter_records_total", labels) or 0.0


def state(world: World) -> tuple[int, int, int, float]:
    """(cursor, DELIVERY entries, DEAD_LETTER entries, dead-lettered records counted)."""
    return (
        cursor(world),
        len(entries(world, EntryKind.DELIVERY)),
        len(entries(world, EntryKind.DEAD_LETTER)),
        dead_letter_count(),
    )


def assert_invalid_ack(
    world: World, error: grpc.aio.AioRpcError | None, says: str, **metadata: str
) -> None:
    """The stream ended with INVALID_ACK saying ``says``, and a denial entry tells it."""
    assert error is not None, "the stream went on after the ack"
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    reason, info = error_info(error)
    assert reason == "INVALID_ACK", (reason, error.details())
    assert says in (error.details() or ""), error.details()
    assert metadata.items() <= info.items(), info
    denial = json.loads(entries(world, EntryKind.DENIAL)[-1].content)["details"]
    assert denial["reason"] == "INVALID_ACK" and denial["rpc"].endswith("/Subscribe"), denial


def settle() -> None:
    time.sleep(0.3)  # what a wrongly accepted ack would record is committed by now


@pytest.mark.parametrize("which", ["acknowledged on an earlier stream", "zero", "not yet sent"])
def test_an_ack_of_an_offset_never_delivered_on_the_stream_is_invalid_ack(
    world: World, which: str
) -> None:
    publish_batches(world, 3)

    async def run() -> tuple[int, grpc.aio.AioRpcError | None]:
        async with stream(world, window=1) as first:
            (batch,) = await first.take(1)
            first.ack(batch.offset)
            await asyncio.to_thread(wait_for_cursor, world, batch.offset)
        async with stream(world, window=1) as second:
            (current,) = await second.take(1)
            before = await asyncio.to_thread(state, world)
            hostile = {
                "acknowledged on an earlier stream": batch.offset,
                "zero": 0,
                "not yet sent": current.offset + 1,
            }[which]
            second.ack(hostile)
            error = await second.ending()
            await asyncio.to_thread(settle)
            assert await asyncio.to_thread(state, world) == before
            return hostile, error

    hostile, error = asyncio.run(run())
    assert_invalid_ack(
        world, error, f"offset {hostile} was not delivered on this stream", offset=str(hostile)
    )


@pytest.mark.parametrize("where", ["after the cursor moved past it", "behind an unacked batch"])
def test_a_second_ack_of_an_acknowledged_delivery_is_invalid_ack(world: World, where: str) -> None:
    publish_batches(world, 2)

    async def run() -> tuple[int, grpc.aio.AioRpcError | None]:
        async with stream(world, window=2) as opened:
            first, second = await opened.take(2)
            acked = first if where == "after the cursor moved past it" else second
            opened.ack(acked.offset)
            if acked is first:
                await asyncio.to_thread(wait_for_cursor, world, first.offset)
            assert await opened.ending(0.5) is None
            before = await asyncio.to_thread(state, world)
            opened.ack(acked.offset)
            error = await opened.ending()
            await asyncio.to_thread(settle)
            assert await asyncio.to_thread(state, world) == before
            return acked.offset, error

    offset, error = asyncio.run(run())
    assert_invalid_ack(
        world, error, f"offset {offset} was already acknowledged", offset=str(offset)
    )


@pytest.mark.parametrize("dead", [3, 4_294_967_295])
def test_dead_lettered_records_beyond_the_delivered_batch_are_invalid_ack(
    world: World, dead: int
) -> None:
    publish_batches(world, 1, per_batch=2)
    counted = dead_letter_count()

    async def run() -> tuple[int, grpc.aio.AioRpcError | None]:
        async with stream(world) as opened:
            (batch,) = await opened.take(1)
            assert len(batch.records) == 2
            opened.ack(batch.offset, dead_lettered_records=dead)
            error = await opened.ending()
            await asyncio.to_thread(settle)
            return batch.offset, error

    offset, error = asyncio.run(run())
    assert_invalid_ack(world, error, "at most 2", offset=str(offset), limit="2")
    assert state(world) == (0, 0, 0, counted), "a refused ack recorded or counted something"


def test_dead_lettered_records_are_bounded_by_the_records_the_grant_delivered(
    world: World,
) -> None:
    """A row filter delivers one of the batch's two rows: one is the limit."""
    world.department("JINJIANG", level=pb.ADMINISTRATIVE_LEVEL_DISTRICT, region="510104")
    world.system("JINJIANG-GRID", "JINJIANG")
    world.grant("RESIDENTS", "JINJIANG-GRID", row_filter=pb.RowFilter(region_code="510104"))
    publisher = world.systems["PSB-HUKOU"]
    mixed = signed_batch(
        publisher.signer,
        "RESIDENTS",
        PERSON_SCHEMA,
        encode(PERSON_SCHEMA, [person(0, "510104"), person(1, "510105")]),
    )
    assert publish(world.gateway.target, publisher.token, [mixed]).code is None

    async def run() -> grpc.aio.AioRpcError | None:
        opened = Stream(world, system="JINJIANG-GRID")
        try:
            (batch,) = await opened.take(1)
            assert len(batch.records) == 1
            opened.ack(batch.offset, dead_lettered_records=2)
            return await opened.ending()
        finally:
            await opened.close()

    error = asyncio.run(run())
    assert_invalid_ack(world, error, "at most 1", limit="1")
    settle()
    assert not entries(world, EntryKind.DELIVERY)


def test_dead_lettered_records_up_to_the_delivered_batch_are_counted_and_recorded(
    world: World,
) -> None:
    publish_batches(world, 1, per_batch=2)
    counted = dead_letter_count()

    async def run() -> int:
        async with stream(world) as opened:
            (batch,) = await opened.take(1)
            opened.ack(batch.offset, dead_lettered_records=2)
            await asyncio.to_thread(wait_for_cursor, world, batch.offset)
            assert await opened.ending(0.3) is None
            return batch.offset

    offset = asyncio.run(run())
    (delivered,) = entries(world, EntryKind.DELIVERY)
    assert delivered.position == offset
    assert json.loads(delivered.content)["details"]["dead_lettered_records"] == 2
    assert dead_letter_count() == counted + 2


def test_acks_in_any_order_within_the_window_are_accepted(world: World) -> None:
    publish_batches(world, 3)

    async def run() -> list[int]:
        async with stream(world, window=3) as opened:
            batches = await opened.take(3)
            offsets = [b.offset for b in batches]
            for offset in (offsets[2], offsets[0], offsets[1]):
                opened.ack(offset)
            await asyncio.to_thread(wait_for_cursor, world, offsets[2])
            assert await opened.ending(0.5) is None
            return offsets

    offsets = asyncio.run(run())
    assert sorted(e.position for e in entries(world, EntryKind.DELIVERY)) == offsets


def test_a_batch_delivered_again_after_a_reconnect_is_acknowledged_on_the_new_stream(
    world: World,
) -> None:
    publish_batches(world, 1)

    async def run() -> None:
        async with stream(world) as first:
            (batch,) = await first.take(1)
        async with stream(world) as second:
            (again,) = await second.take(1)
            assert again.offset == batch.offset
            second.ack(again.offset)
            await asyncio.to_thread(wait_for_cursor, world, again.offset)
            assert await second.ending(0.3) is None

    asyncio.run(run())
    assert len(entries(world, EntryKind.DELIVERY)) == 1


def test_a_batch_sent_twice_on_one_stream_is_acknowledged_once_per_delivery(
    tmp_path: Path,
) -> None:
    """After the ack timeout the batch comes again on the same stream; the SDK handles and
    acknowledges each delivery, so two acks are honest and a third is not."""
    gateway = RunningGateway(tmp_path / "gw", ack_timeout_seconds=0.3)
    try:
        world = build_world(gateway)
        publish_batches(world, 1)

        async def run() -> tuple[int, grpc.aio.AioRpcError | None]:
            async with stream(world) as opened:
                first, second = await opened.take(2)
                assert first.offset == second.offset
                assert (first.delivery_attempt, second.delivery_attempt) == (1, 2)
                opened.ack(first.offset)
                opened.ack(second.offset)
                await asyncio.to_thread(wait_for_cursor, world, first.offset)
                assert await opened.ending(0.5) is None, "an ack per delivery is honest"
                opened.ack(first.offset)
                return first.offset, await opened.ending()

        offset, error = asyncio.run(run())
        assert_invalid_ack(world, error, f"offset {offset} was already acknowledged")
        assert len(entries(world, EntryKind.DELIVERY)) == 1
    finally:
        gateway.stop()


def test_a_late_ack_of_a_batch_the_gateway_gave_up_is_harmless(tmp_path: Path) -> None:
    gateway = RunningGateway(tmp_path / "gw", ack_timeout_seconds=0.3, max_deliveries=2)
    try:
        world = build_world(gateway)
        publish_batches(world, 1, start=0)

        async def run() -> None:
            async with stream(world, window=1) as opened:
                first, second = await opened.take(2)
                assert first.offset == second.offset
                deadline = time.monotonic() + 15
                while not await asyncio.to_thread(entries, world, EntryKind.DEAD_LETTER):
                    assert time.monotonic() < deadline, "the batch was not given up"
                    await asyncio.sleep(0.1)
                opened.ack(first.offset, dead_lettered_records=1)  # handled at last
                await asyncio.to_thread(publish_batches, world, 1, 2, 1)
                (later,) = await opened.take(1)
                opened.ack(later.offset)
                await asyncio.to_thread(wait_for_cursor, world, later.offset)
                assert await opened.ending(0.3) is None

        counted = dead_letter_count()
        asyncio.run(run())
        assert [e.subject for e in entries(world, EntryKind.DEAD_LETTER)] == ["b-510104-0"]
        assert [e.subject for e in entries(world, EntryKind.DELIVERY)] == ["b-510104-1"]
        assert dead_letter_count() == counted + 2, "the gateway's give-up counts, the ack not"
    finally:
        gateway.stop()


def test_the_sdk_acknowledging_a_batch_sent_again_during_a_slow_handler_is_accepted(
    tmp_path: Path,
) -> None:
    """The SDK acks every delivery it handles: a handler slower than the ack timeout
    sees the batch twice on one stream and acknowledges both."""
    gateway = RunningGateway(tmp_path / "gw", ack_timeout_seconds=0.3)
    try:
        world = build_world(gateway)
        publish_batches(world, 1)
        attempts: list[int] = []

        async def run() -> None:
            subscriber = Subscriber(
                gateway.target, world.systems[SUBSCRIBER].token, "RESIDENTS", insecure=True
            )

            async def handle(batch: ReceivedBatch) -> int:
                attempts.append(batch.delivery_attempt)
                if len(attempts) == 1:
                    await asyncio.sleep(1.0)  # the gateway sends it again meanwhile
                    return 1
                subscriber.stop()
                return 1

            try:
                await asyncio.wait_for(subscriber.run(handle), 20)
            finally:
                await subscriber.close()

        asyncio.run(run())
        assert attempts[:2] == [1, 2]
        deadline = time.monotonic() + 15
        while not entries(world, EntryKind.DELIVERY):
            assert time.monotonic() < deadline, "the delivery was not recorded"
            time.sleep(0.05)
        (delivered,) = entries(world, EntryKind.DELIVERY)
        assert not [e for e in entries(world, EntryKind.DENIAL) if "INVALID_ACK" in e.content], (
            "an honest ack was refused"
        )
        assert json.loads(delivered.content)["details"]["dead_lettered_records"] == 1
    finally:
        gateway.stop()


def test_a_stream_remembers_a_bounded_number_of_acknowledged_deliveries() -> None:
    """A long stream does not grow with every batch it delivered: the oldest
    acknowledged ones are forgotten, and a repeat of one of them is still refused."""
    view = SimpleNamespace(
        system=lambda code: SimpleNamespace(department="CIVIL"),
        resource=lambda code: SimpleNamespace(owner_department="PSB", tags={}),
    )
    path: Any = SimpleNamespace(view=view)
    identity: Any = SimpleNamespace(system=SUBSCRIBER, name=SUBSCRIBER)
    stream: Any = _Stream(path, identity, "RESIDENTS", "default", 16, None, 10)  # type: ignore[arg-type]
    stream.remembered = 4
    for position in range(11, 21):
        stream._sent_here(position, 2)
        stream.deliveries[position].acks = 1
        stream.cursor = position
    assert list(stream.deliveries) == [17, 18, 19, 20]
    for offset, says in [
        (20, "offset 20 was already acknowledged on this stream"),
        (12, "offset 12 is not awaiting an ack on this stream"),
        (10, "offset 10 was not delivered on this stream"),
        (21, "offset 21 was not delivered on this stream"),
    ]:
        with pytest.raises(InvalidArgument) as refused:
            stream._awaiting_ack(offset)
        assert refused.value.reason == "INVALID_ACK" and says in str(refused.value)
