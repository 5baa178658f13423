"""The delivery path: durable cursors, redelivery, grants applied, countersignatures."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import time
from typing import Any

import grpc
import pytest

from adapters.connection import auth_metadata, open_channel
from adapters.errors import GatewayRefusal, error_info
from adapters.subscriber import ReceivedBatch, Subscriber
from catalog import ledger
from catalog.ledger import EntryFilter, EntryKind
from catalog.v1 import catalog_pb2 as pb
from envelope import digest as envelope
from envelope import signing
from exchange.v1 import exchange_pb2, exchange_pb2_grpc
from tests.gateway_harness import RunningGateway
from tests.wire import RawSubscription, encode, publish, signed_batch
from tests.world import PERSON_SCHEMA, World, build_world, person


@pytest.fixture
def world(gateway: RunningGateway) -> World:
    return build_world(gateway)


def publish_batches(
    world: World, count: int, per_batch: int = 2, start: int = 0, region: str = "510104"
) -> None:
    publisher = world.systems["PSB-HUKOU"]
    batches = [
        signed_batch(
            publisher.signer,
            "RESIDENTS",
            PERSON_SCHEMA,
            encode(PERSON_SCHEMA, [person(i * per_batch + j, region) for j in range(per_batch)]),
            batch_id=f"b-{region}-{i}",
        )
        for i in range(start, start + count)
    ]
    outcome = publish(world.gateway.target, publisher.token, batches)
    assert outcome.code is None and len(outcome.acks) == count, outcome.details


def receive(
    world: World, system: str, until: int, seconds: float = 20, **options: Any
) -> list[ReceivedBatch]:
    """Runs the SDK subscriber until ``until`` records arrived (``until=0``: for
    ``seconds``); returns the batches."""
    got: list[ReceivedBatch] = []

    async def run() -> None:
        subscriber = Subscriber(
            world.gateway.target, world.systems[system].token, "RESIDENTS", insecure=True, **options
        )

        def handle(batch: ReceivedBatch) -> None:
            got.append(batch)
            if sum(len(b.records) for b in got) >= until:
                subscriber.stop()

        try:
            await asyncio.wait_for(subscriber.run(handle), seconds)
        except TimeoutError:
            if until:
                raise
        finally:
            await subscriber.close()

    asyncio.run(run())
    return got


async def raw_receive(
    world: World, system: str, count: int, ack: bool, subscription: str = "default"
) -> list[exchange_pb2.DeliveredBatch]:
    """Opens a raw Subscribe stream, takes ``count`` batches, acks them or not, hangs up."""
    channel = open_channel(world.gateway.target, insecure=True, quiet=True)
    stream = RawSubscription(
        exchange_pb2_grpc.ExchangeServiceStub(channel),
        exchange_pb2.SubscriptionOpen(resource="RESIDENTS", subscription=subscription),
        auth_metadata(world.systems[system].token),
    )
    got: list[exchange_pb2.DeliveredBatch] = []
    async for response in stream.call:
        got.append(response.batch)
        if ack:
            stream.ack(response.batch.offset)
        if len(got) == count:
            break
    await asyncio.sleep(0.2)  # let the acks reach the gateway
    stream.call.cancel()
    await channel.close()
    return got


def test_a_granted_subscriber_receives_every_record_verified(world: World) -> None:
    publish_batches(world, 5)
    batches = receive(world, "CIVIL-AFFAIRS", until=10)
    records = [r for b in batches for r in b.records]
    assert records == [person(i) for i in range(10)]
    assert all(b.provider_verified for b in batches)
    assert [b.raw.subscriber_system for b in batches] == ["CIVIL-AFFAIRS"] * 5


def test_a_subscriber_without_a_grant_is_refused(world: World) -> None:
    world.department("SAMR")
    world.system("SAMR-LICENCE", "SAMR")
    with pytest.raises(GatewayRefusal) as refusal:
        receive(world, "SAMR-LICENCE", until=1)
    assert refusal.value.reason == "NO_GRANT"
    assert refusal.value.code == grpc.StatusCode.PERMISSION_DENIED


def test_an_expired_grant_delivers_nothing(world: World) -> None:
    world.department("SAMR")
    world.system("SAMR-LICENCE", "SAMR")
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1)
    stamp = pb.Grant().expire_time
    stamp.FromDatetime(soon)
    world.grant("RESIDENTS", "SAMR-LICENCE", expire_time=stamp)
    publish_batches(world, 1)
    assert len(receive(world, "SAMR-LICENCE", until=2)) == 1
    import time

    time.sleep(1.2)
    with pytest.raises(GatewayRefusal) as refusal:
        receive(world, "SAMR-LICENCE", until=1, subscription="later")
    assert refusal.value.reason == "NO_GRANT"


def test_unacknowledged_batches_are_delivered_again_after_a_disconnect(world: World) -> None:
    publish_batches(world, 4)
    first = asyncio.run(raw_receive(world, "CIVIL-AFFAIRS", count=4, ack=False))
    second = asyncio.run(raw_receive(world, "CIVIL-AFFAIRS", count=4, ack=True))
    assert [b.offset for b in first] == [b.offset for b in second]


def test_delivery_attempt_starts_at_one_on_each_new_stream(world: World) -> None:
    """The wire contract: ``delivery_attempt`` counts the sends of a batch on one stream,
    so a batch sent again on a new stream is attempt 1 there."""
    publish_batches(world, 1)
    first = asyncio.run(raw_receive(world, "CIVIL-AFFAIRS", count=1, ack=False))
    second = asyncio.run(raw_receive(world, "CIVIL-AFFAIRS", count=1, ack=False))
    assert [b.offset for b in first] == [b.offset for b in second]
    assert [b.delivery_attempt for b in first + second] == [1, 1]


def test_acknowledged_batches_are_not_delivered_again(world: World) -> None:
    publish_batches(world, 4)
    acked = asyncio.run(raw_receive(world, "CIVIL-AFFAIRS", count=2, ack=True))
    rest = asyncio.run(raw_receive(world, "CIVIL-AFFAIRS", count=2, ack=True))
    assert [b.batch_id for b in acked] == ["b-510104-0", "b-510104-1"]
    assert [b.batch_id for b in rest] == ["b-510104-2", "b-510104-3"]


def test_subscriptions_keep_separate_cursors(world: World) -> None:
    publish_batches(world, 2)
    asyncio.run(raw_receive(world, "CIVIL-AFFAIRS", count=2, ack=True, subscription="a"))
    again = asyncio.run(raw_receive(world, "CIVIL-AFFAIRS", count=2, ack=True, subscription="b"))
    assert [b.batch_id for b in again] == ["b-510104-0", "b-510104-1"]


def test_an_unacknowledged_batch_is_sent_again_after_the_ack_timeout(tmp_path: Any) -> None:
    gateway = RunningGateway(tmp_path / "gw", ack_timeout_seconds=0.5)
    try:
        world = build_world(gateway)
        publish_batches(world, 1)
        got = asyncio.run(raw_receive(world, "CIVIL-AFFAIRS", count=2, ack=False))
        assert [b.offset for b in got] == [got[0].offset] * 2
        assert [b.delivery_attempt for b in got] == [1, 2]
    finally:
        gateway.stop()


def test_nothing_acknowledged_is_lost_across_a_gateway_restart(world: World) -> None:
    publish_batches(world, 3)
    asyncio.run(raw_receive(world, "CIVIL-AFFAIRS", count=1, ack=True))
    world.gateway.restart()
    publish_batches(world, 2, start=3)
    batches = receive(world, "CIVIL-AFFAIRS", until=8)
    assert [b.batch_id for b in batches] == [f"b-510104-{i}" for i in range(1, 5)]


def test_a_live_subscriber_receives_batches_published_after_it_connected(world: World) -> None:
    async def run() -> list[ReceivedBatch]:
        got: list[ReceivedBatch] = []
        subscriber = Subscriber(
            world.gateway.target, world.systems["CIVIL-AFFAIRS"].token, "RESIDENTS", insecure=True
        )

        def handle(batch: ReceivedBatch) -> None:
            got.append(batch)
            subscriber.stop()

        task = asyncio.ensure_future(subscriber.run(handle))
        await asyncio.sleep(0.5)
        assert not got
        await asyncio.to_thread(publish_batches, world, 1)
        await asyncio.wait_for(task, 10)
        await subscriber.close()
        return got

    assert [b.batch_id for b in asyncio.run(run())] == ["b-510104-0"]


def test_a_grant_with_fields_delivers_only_those_fields(world: World) -> None:
    world.department("SAMR")
    world.system("SAMR-LICENCE", "SAMR")
    world.grant("RESIDENTS", "SAMR-LICENCE", fields=["id_number", "region_code"])
    publish_batches(world, 1)
    (batch,) = receive(world, "SAMR-LICENCE", until=2)
    assert batch.records == [
        {"id_number": person(i)["id_number"], "region_code": "510104"} for i in range(2)
    ]
    assert batch.schema.top_level_fields() == ["id_number", "region_code"]
    assert not batch.provider_verified, "the gateway reshaped it; its countersignature covers it"


def test_a_region_row_filter_delivers_only_rows_of_that_region(world: World) -> None:
    world.department("JINJIANG", level=pb.ADMINISTRATIVE_LEVEL_DISTRICT, region="510104")
    world.system("JINJIANG-GRID", "JINJIANG")
    world.grant("RESIDENTS", "JINJIANG-GRID", row_filter=pb.RowFilter(region_code="510104"))
    publish_batches(world, 1, region="510104")
    publish_batches(world, 1, region="510105")
    publish_batches(world, 1, region="510104001")
    batches = receive(world, "JINJIANG-GRID", until=4)
    regions = [r["region_code"] for b in batches for r in b.records]
    assert regions == ["510104", "510104", "510104001", "510104001"]


def test_a_subscriber_rejects_a_delivery_with_a_bad_countersignature(world: World) -> None:
    publish_batches(world, 1)
    (delivered,) = asyncio.run(raw_receive(world, "CIVIL-AFFAIRS", count=1, ack=False))
    key_response = exchange_pb2_grpc.ExchangeServiceStub(
        __import__("adapters.connection", fromlist=["x"]).open_blocking_channel(
            world.gateway.target, insecure=True, quiet=True
        )
    ).GetGatewayKey(
        exchange_pb2.GetGatewayKeyRequest(),
        metadata=auth_metadata(world.systems["CIVIL-AFFAIRS"].token),
    )
    digest = envelope.digest_of_delivery(delivered)
    assert signing.verify(key_response.public_key, digest, delivered.gateway_signature)
    delivered.subscriber_system = "SOMEONE-ELSE"
    assert not signing.verify(
        key_response.public_key, envelope.digest_of_delivery(delivered), delivered.gateway_signature
    )


def test_the_first_subscribe_message_must_open(world: World) -> None:
    async def run() -> grpc.aio.AioRpcError:
        channel = open_channel(world.gateway.target, insecure=True, quiet=True)
        stub = exchange_pb2_grpc.ExchangeServiceStub(channel)

        async def requests() -> Any:
            yield exchange_pb2.SubscribeRequest(ack=exchange_pb2.DeliveryAck(offset=1))

        try:
            async for _ in stub.Subscribe(
                requests(), metadata=auth_metadata(world.systems["CIVIL-AFFAIRS"].token)
            ):
                pass
        except grpc.aio.AioRpcError as error:
            return error
        finally:
            await channel.close()
        raise AssertionError("expected a refusal")

    error = asyncio.run(run())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error)[0] == "INVALID_FIELD"


def test_stop_while_waiting_ends_the_run_cleanly(world: World) -> None:
    async def run() -> None:
        subscriber = Subscriber(
            world.gateway.target, world.systems["CIVIL-AFFAIRS"].token, "RESIDENTS", insecure=True
        )
        asyncio.get_running_loop().call_later(0.5, subscriber.stop)
        await asyncio.wait_for(subscriber.run(lambda batch: None), 10)
        await subscriber.close()

    asyncio.run(run())


def test_a_long_lived_subscriber_survives_a_later_gateway_restart(world: World) -> None:
    async def run() -> list[str]:
        got: list[str] = []
        subscriber = Subscriber(
            world.gateway.target,
            world.systems["CIVIL-AFFAIRS"].token,
            "RESIDENTS",
            insecure=True,
            retry_seconds=2.0,
        )

        def handle(batch: ReceivedBatch) -> None:
            got.append(batch.batch_id)
            if len(got) == 2:
                subscriber.stop()

        task = asyncio.ensure_future(subscriber.run(handle))
        await asyncio.to_thread(publish_batches, world, 1)
        await asyncio.sleep(3.0)  # longer than the retry budget, with no failure in it
        await asyncio.to_thread(world.gateway.restart)
        await asyncio.to_thread(publish_batches, world, 1, 2, 1)
        await asyncio.wait_for(task, 20)
        await subscriber.close()
        return got

    assert asyncio.run(run()) == ["b-510104-0", "b-510104-1"]


def test_stop_right_after_run_starts_returns(world: World) -> None:
    async def run() -> None:
        subscriber = Subscriber(
            world.gateway.target, world.systems["CIVIL-AFFAIRS"].token, "RESIDENTS", insecure=True
        )
        asyncio.get_running_loop().call_soon(subscriber.stop)
        await asyncio.wait_for(subscriber.run(lambda batch: None), 10)
        await subscriber.close()

    asyncio.run(run())


def test_an_idle_subscriber_survives_gateway_restarts_spaced_beyond_its_budget(
    world: World,
) -> None:
    async def run() -> list[str]:
        got: list[str] = []
        subscriber = Subscriber(
            world.gateway.target,
            world.systems["CIVIL-AFFAIRS"].token,
            "RESIDENTS",
            insecure=True,
            retry_seconds=1.5,
        )

        def handle(batch: ReceivedBatch) -> None:
            got.append(batch.batch_id)
            subscriber.stop()

        task = asyncio.ensure_future(subscriber.run(handle))
        for _ in range(2):  # each outage is short; together they outlast the 1.5 s budget
            await asyncio.sleep(3.0)
            await asyncio.to_thread(world.gateway.restart)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(publish_batches, world, 1)
        await asyncio.wait_for(task, 20)
        await subscriber.close()
        return got

    assert asyncio.run(run()) == ["b-510104-0"]


def test_a_new_subscription_replays_from_an_offset_or_a_time(world: World) -> None:
    publish_batches(world, 2, start=0)
    time.sleep(0.05)
    middle = datetime.datetime.now(datetime.UTC)
    time.sleep(0.05)
    publish_batches(world, 2, start=2)
    everything = receive(world, "CIVIL-AFFAIRS", until=8)
    offsets = [b.offset for b in everything]
    after = receive(
        world, "CIVIL-AFFAIRS", until=4, subscription="rerun-1", start_after_offset=offsets[1]
    )
    since = receive(world, "CIVIL-AFFAIRS", until=4, subscription="rerun-2", start_time=middle)
    assert [b.offset for b in after] == offsets[2:]
    assert [b.offset for b in since] == offsets[2:]
    # a subscription with a cursor keeps it: a start point never moves it back
    more = receive(
        world, "CIVIL-AFFAIRS", until=0, subscription="rerun-1", start_after_offset=0, seconds=1
    )
    assert more == []


def test_a_stream_the_subscriber_ends_ends_after_its_acks_are_recorded(
    world: World, monkeypatch: Any
) -> None:
    """After the last ack the SDK half-closes; the gateway ends the stream only once the
    ledger recorded the deliveries (and the cursor was moved), so a stream opened right
    after is not sent them again (nor, on a replay, is the start point applied again)."""
    from exchange.audit.tasks import LedgerWriter

    commit = LedgerWriter._run

    def slow_commit(self: LedgerWriter, group: Any) -> None:
        time.sleep(0.3)
        commit(self, group)

    publish_batches(world, 2)
    monkeypatch.setattr(LedgerWriter, "_run", slow_commit)
    got = receive(world, "CIVIL-AFFAIRS", until=4)
    sessions = world.gateway.gateway.catalog.sessions  # type: ignore[union-attr]
    recorded = ledger.entries(sessions, EntryFilter(kinds=(EntryKind.DELIVERY,)), 10)
    assert sorted(e.position for e in recorded) == [b.offset for b in got]


def test_a_replay_start_time_out_of_range_is_refused(world: World) -> None:
    async def run() -> str:
        channel = open_channel(world.gateway.target, insecure=True, quiet=True)
        stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
        opening = exchange_pb2.SubscriptionOpen(resource="RESIDENTS", subscription="bad")
        opening.start_time.seconds = -5
        call = stub.Subscribe(
            iter([exchange_pb2.SubscribeRequest(open=opening)]),
            metadata=auth_metadata(world.systems["CIVIL-AFFAIRS"].token),
        )
        try:
            async for _ in call:
                pass
        except grpc.aio.AioRpcError as error:
            return f"{error.code().name} {error_info(error)[0]}"
        finally:
            await channel.close()
        return "no error"

    assert asyncio.run(run()) == "INVALID_ARGUMENT INVALID_FIELD"
    assert world.gateway.cursor_count() == 0


def test_a_batch_never_acknowledged_goes_to_the_dead_letter_list(tmp_path: Any) -> None:
    gateway = RunningGateway(tmp_path / "gw", max_deliveries=2)
    try:
        world = build_world(gateway)
        publish_batches(world, 1, start=0)
        for _ in range(2):  # each new stream sends it as its attempt 1; the gateway counts on
            got = asyncio.run(raw_receive(world, "CIVIL-AFFAIRS", 1, ack=False))
            assert [(b.batch_id, b.delivery_attempt) for b in got] == [("b-510104-0", 1)]
        publish_batches(world, 1, start=1)
        got = asyncio.run(raw_receive(world, "CIVIL-AFFAIRS", 1, ack=True))
        assert [b.batch_id for b in got] == ["b-510104-1"], "the given-up batch is skipped"
        sessions = gateway.gateway.catalog.sessions  # type: ignore[union-attr]
        dead = ledger.entries(sessions, EntryFilter(kinds=(EntryKind.DEAD_LETTER,)), 10)
        assert [(e.subject, e.system) for e in dead] == [("b-510104-0", "CIVIL-AFFAIRS")]
        assert json.loads(dead[0].content)["details"]["delivery_attempts"] == 2
        # the batch stays in the log: a replay under a new name delivers it again
        again = receive(world, "CIVIL-AFFAIRS", until=2, subscription="redrive")
        assert next(b.batch_id for b in again) == "b-510104-0"
    finally:
        gateway.stop()


def test_on_one_stream_a_stuck_batch_is_given_up_and_the_acknowledged_ones_are_not(
    tmp_path: Any,
) -> None:
    """One long stream, a short ack timeout, a window of three: the subscriber acks the
    second and third batches every time, never the first."""
    gateway = RunningGateway(tmp_path / "gw", max_deliveries=2, ack_timeout_seconds=0.3)
    try:
        world = build_world(gateway)
        publish_batches(world, 3, start=0)

        seen: list[tuple[str, int]] = []

        def dead_letters() -> list[Any]:
            sessions = gateway.gateway.catalog.sessions  # type: ignore[union-attr]
            return ledger.entries(sessions, EntryFilter(kinds=(EntryKind.DEAD_LETTER,)), 10)

        async def run() -> None:
            channel = open_channel(gateway.target, insecure=True, quiet=True)
            stream = RawSubscription(
                exchange_pb2_grpc.ExchangeServiceStub(channel),
                exchange_pb2.SubscriptionOpen(resource="RESIDENTS", max_in_flight=3),
                auth_metadata(world.systems["CIVIL-AFFAIRS"].token),
            )
            try:
                async for response in stream.call:
                    batch = response.batch
                    seen.append((batch.batch_id, batch.delivery_attempt))
                    if batch.batch_id != "b-510104-0":
                        stream.ack(batch.offset)
            finally:
                stream.call.cancel()
                await channel.close()

        async def watch() -> None:
            task = asyncio.create_task(run())
            deadline = asyncio.get_running_loop().time() + 20
            while not dead_letters():
                assert asyncio.get_running_loop().time() < deadline, "nothing was given up"
                await asyncio.sleep(0.1)
            await asyncio.sleep(1)  # the stream goes on past the given-up batch
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        asyncio.run(watch())
        assert seen[:3] == [("b-510104-0", 1), ("b-510104-1", 1), ("b-510104-2", 1)]
        assert ("b-510104-0", 2) in seen
        assert ("b-510104-1", 2) not in seen, "an acknowledged batch was sent again"
        sessions = gateway.gateway.catalog.sessions  # type: ignore[union-attr]
        assert [e.subject for e in dead_letters()] == ["b-510104-0"]
        delivered = ledger.entries(sessions, EntryFilter(kinds=(EntryKind.DELIVERY,)), 10)
        assert sorted(e.subject for e in delivered) == ["b-510104-1", "b-510104-2"]
    finally:
        gateway.stop()


def test_a_stream_opening_while_the_last_one_still_runs_counts_its_deliveries() -> None:
    """A reconnection may open before the gateway has ended the stream it replaces: what
    that stream delivered and saw no ack for counts towards the maximum too."""
    from exchange.delivery import DeliveryCounts

    class Running:
        def unacknowledged_attempts(self) -> dict[int, int]:
            return {11: 1, 12: 2}

    counts = DeliveryCounts(None, max_deliveries=2)
    key = ("CIVIL-AFFAIRS", "RESIDENTS", "default")
    running = Running()
    counts.opened(key, running)
    assert asyncio.run(counts.earlier(key, cursor=11)) == {12: 2}
    counts.closed(key, running)
    assert asyncio.run(counts.earlier(key, cursor=11)) == {}


def wait_for_kept_attempts(gateway: RunningGateway, attempts: int) -> None:
    from exchange.delivery import load_attempts

    sessions = gateway.gateway.catalog.sessions  # type: ignore[union-attr]
    deadline = time.monotonic() + 10
    while load_attempts(sessions, "CIVIL-AFFAIRS", "RESIDENTS", "default", 0) != {1: attempts}:
        assert time.monotonic() < deadline, "the attempts were not kept"
        time.sleep(0.05)


def test_the_delivery_count_holds_across_a_gateway_restart(tmp_path: Any) -> None:
    """Attempts left unacknowledged are kept in the catalog database, so a restarted
    gateway (or another replica) goes on counting instead of starting again at one."""
    gateway = RunningGateway(tmp_path / "gw", max_deliveries=2)
    try:
        world = build_world(gateway)
        publish_batches(world, 1, start=0)
        got = asyncio.run(raw_receive(world, "CIVIL-AFFAIRS", 1, ack=False))
        assert [b.delivery_attempt for b in got] == [1]
        wait_for_kept_attempts(gateway, 1)  # the stream's end stores them (a worker thread)
        gateway.restart()
        got = asyncio.run(raw_receive(world, "CIVIL-AFFAIRS", 1, ack=False))
        assert [b.delivery_attempt for b in got] == [1], "a new stream starts again at 1"
        wait_for_kept_attempts(gateway, 2)  # the kept count went on after the restart
        gateway.restart()
        publish_batches(world, 1, start=1)
        got = asyncio.run(raw_receive(world, "CIVIL-AFFAIRS", 1, ack=True))
        assert [b.batch_id for b in got] == ["b-510104-1"], "given up after two deliveries"
        sessions = gateway.gateway.catalog.sessions  # type: ignore[union-attr]
        dead = ledger.entries(sessions, EntryFilter(kinds=(EntryKind.DEAD_LETTER,)), 10)
        assert [e.subject for e in dead] == ["b-510104-0"]
    finally:
        gateway.stop()
