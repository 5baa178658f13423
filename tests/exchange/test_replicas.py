"""Two gateway replicas over one PostgreSQL catalog and one NATS JetStream record log.

What a city running several replicas relies on: a subscriber moving to another replica
continues from its cursor, a batch published on one replica reaches a subscriber on the
other, a resend to the other replica is a duplicate (not a second copy), and grants and
signing keys revoked on one replica stop traffic on the other within seconds.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from adapters.connection import auth_metadata, open_blocking_channel, open_channel
from catalog import ledger
from catalog.ledger import EntryFilter, EntryKind
from catalog.v1 import approval_pb2 as apb
from catalog.v1 import approval_pb2_grpc
from catalog.v1 import catalog_pb2 as pb
from exchange.delivery import stream as delivery
from exchange.v1 import exchange_pb2, exchange_pb2_grpc
from tests.gateway_harness import RunningGateway
from tests.wire import RawSubscription, encode, error_info, publish, signed_batch
from tests.world import PERSON_SCHEMA, World, build_world, person

PROPAGATION_SECONDS = 10  # a bound for "within seconds" (the catalog cache lives 2 s)


@pytest.fixture
def replicas(
    tmp_path: Path, postgres_url: str, nats_log_url: str
) -> Iterator[tuple[RunningGateway, RunningGateway]]:
    first = RunningGateway(tmp_path / "one", database_url=postgres_url, log_url=nats_log_url)
    (tmp_path / "two").mkdir(mode=0o700)
    key = first.settings.gateway_key_path
    shutil.copy(key, tmp_path / "two" / key.name)  # replicas share the gateway key
    second = RunningGateway(tmp_path / "two", database_url=postgres_url, log_url=nats_log_url)
    try:
        yield first, second
    finally:
        second.stop()
        first.stop()


@pytest.fixture
def world(replicas: tuple[RunningGateway, RunningGateway]) -> World:
    return build_world(replicas[0])


def batches(world: World, start: int, count: int) -> list[Any]:
    signer = world.systems["PSB-HUKOU"].signer
    return [
        signed_batch(
            signer,
            "RESIDENTS",
            PERSON_SCHEMA,
            encode(PERSON_SCHEMA, [person(i)]),
            batch_id=f"b-{i}",
        )
        for i in range(start, start + count)
    ]


async def take(
    target: str, token: str, count: int, *, ack: bool = True, seconds: float = 20
) -> list[exchange_pb2.DeliveredBatch]:
    """Subscribes on ``target``, takes ``count`` batches (acking them), hangs up."""
    channel = open_channel(target, insecure=True, quiet=True)
    stream = RawSubscription(
        exchange_pb2_grpc.ExchangeServiceStub(channel),
        exchange_pb2.SubscriptionOpen(resource="RESIDENTS"),
        auth_metadata(token),
    )
    call = stream.call
    got: list[exchange_pb2.DeliveredBatch] = []

    async def read() -> None:
        async for response in call:
            got.append(response.batch)
            if ack:
                stream.ack(response.batch.offset)
            if len(got) == count:
                return

    try:
        await asyncio.wait_for(read(), seconds)
        await asyncio.sleep(0.5)  # let the acks reach the gateway and the cursor move
    finally:
        call.cancel()
        await channel.close()
    return got


def test_a_subscriber_moving_to_the_other_replica_continues_from_its_cursor(
    world: World, replicas: tuple[RunningGateway, RunningGateway]
) -> None:
    one, two = replicas
    assert publish(one.target, world.systems["PSB-HUKOU"].token, batches(world, 0, 6)).code is None
    token = world.systems["CIVIL-AFFAIRS"].token
    first = asyncio.run(take(one.target, token, 4))
    wait_for_cursor(one, "CIVIL-AFFAIRS", first[-1].offset)
    rest = asyncio.run(take(two.target, token, 2))
    assert [b.batch_id for b in first] == ["b-0", "b-1", "b-2", "b-3"]
    assert [b.batch_id for b in rest] == ["b-4", "b-5"]
    assert one.cursor_count() == 1


def wait_for_cursor(gateway: RunningGateway, system: str, offset: int) -> None:
    """Waits until the subscription's cursor is written (the ledger, then the bucket)."""
    assert gateway.gateway is not None
    log = gateway.gateway.log
    deadline = time.monotonic() + PROPAGATION_SECONDS
    while gateway.on_loop(lambda: log.cursor(system, "RESIDENTS", "default")) < offset:
        assert time.monotonic() < deadline, "the cursor was not written"
        time.sleep(0.05)


def test_a_batch_published_on_one_replica_reaches_a_subscriber_on_the_other(
    world: World, replicas: tuple[RunningGateway, RunningGateway], monkeypatch: Any
) -> None:
    # an idle stream looks at the log again only after a minute: what wakes it within
    # the test's time is replica one's announcement of the new batch (p.new.RESOURCE)
    monkeypatch.setattr(delivery, "IDLE_WAIT_SECONDS", 60.0)
    one, two = replicas
    token = world.systems["CIVIL-AFFAIRS"].token

    async def run() -> list[exchange_pb2.DeliveredBatch]:
        waiting = asyncio.create_task(take(two.target, token, 1))
        await asyncio.sleep(1)  # the subscriber is idle on replica two
        outcome = await asyncio.to_thread(
            publish, one.target, world.systems["PSB-HUKOU"].token, batches(world, 0, 1)
        )
        assert outcome.code is None
        return await waiting

    assert [b.batch_id for b in asyncio.run(run())] == ["b-0"]


def test_a_batch_resent_to_the_other_replica_is_a_duplicate(
    world: World, replicas: tuple[RunningGateway, RunningGateway]
) -> None:
    one, two = replicas
    token = world.systems["PSB-HUKOU"].token
    sent = batches(world, 0, 1)
    first = publish(one.target, token, sent)
    again = publish(two.target, token, sent)
    assert not first.acks[0].duplicate
    assert again.acks[0].duplicate
    assert again.acks[0].offset == first.acks[0].offset
    assert one.stored_batches() == 1
    sessions = one.gateway.catalog.sessions  # type: ignore[union-attr]
    recorded = ledger.entries(sessions, EntryFilter(kinds=(EntryKind.BATCH,)), 10)
    assert [e.subject for e in recorded] == ["b-0"], "one ledger entry for one batch"
    other = signed_batch(
        world.systems["PSB-HUKOU"].signer,
        "RESIDENTS",
        PERSON_SCHEMA,
        encode(PERSON_SCHEMA, [person(99)]),
        batch_id="b-0",
    )
    reused = publish(two.target, token, [other])
    assert (reused.code, reused.reason) == (grpc.StatusCode.ALREADY_EXISTS, "BATCH_ID_REUSED")


def test_a_grant_revoked_on_one_replica_stops_delivery_on_the_other(
    world: World, replicas: tuple[RunningGateway, RunningGateway]
) -> None:
    one, two = replicas
    token = world.systems["CIVIL-AFFAIRS"].token
    assert publish(one.target, world.systems["PSB-HUKOU"].token, batches(world, 0, 1)).code is None
    assert len(asyncio.run(take(two.target, token, 1))) == 1
    grant = world.stub.ListGrants(pb.ListGrantsRequest(), metadata=world.admin()).grants[0]
    approvals = approval_pb2_grpc.ApprovalServiceStub(
        open_blocking_channel(one.target, insecure=True, quiet=True)
    )
    approvals.RevokeGrant(
        apb.RevokeGrantRequest(id=grant.id, reason="case closed"), metadata=world.admin()
    )
    deadline = time.monotonic() + PROPAGATION_SECONDS
    while True:
        try:
            asyncio.run(take(two.target, token, 1, seconds=1))
        except grpc.aio.AioRpcError as error:
            assert (error.code(), error_info(error)[0]) == (
                grpc.StatusCode.PERMISSION_DENIED,
                "NO_GRANT",
            )
            return
        except TimeoutError:
            pass  # still open on two (nothing to deliver): look again
        assert time.monotonic() < deadline, "replica two still serves the revoked grant"


def test_a_key_revoked_on_one_replica_is_refused_by_the_other(
    world: World, replicas: tuple[RunningGateway, RunningGateway]
) -> None:
    _, two = replicas  # the world's catalog calls go to replica one
    publisher = world.systems["PSB-HUKOU"]
    assert publish(two.target, publisher.token, batches(world, 0, 1)).code is None
    world.stub.RevokeSigningKey(
        pb.RevokeSigningKeyRequest(
            system="PSB-HUKOU",
            key_id=publisher.signer.key_id,
            reason="key leaked",
            compromised=True,
        ),
        metadata=world.admin(),
    )
    deadline = time.monotonic() + PROPAGATION_SECONDS
    start = 1
    while True:
        outcome = publish(two.target, publisher.token, batches(world, start, 1))
        if outcome.code is not None:
            assert (outcome.code, outcome.reason) == (
                grpc.StatusCode.PERMISSION_DENIED,
                "KEY_REVOKED",
            )
            return
        start += 1
        assert time.monotonic() < deadline, "replica two still accepts the revoked key"
        time.sleep(0.2)


def test_a_batch_above_the_nats_payload_limit_is_refused_and_not_stored(
    world: World, replicas: tuple[RunningGateway, RunningGateway]
) -> None:
    one, _ = replicas
    rows = [dict(person(i), name="x" * 600_000) for i in range(2)]  # ~1.2 MB > 1 MiB
    big = signed_batch(
        world.systems["PSB-HUKOU"].signer,
        "RESIDENTS",
        PERSON_SCHEMA,
        encode(PERSON_SCHEMA, rows),
        batch_id="big",
    )
    outcome = publish(one.target, world.systems["PSB-HUKOU"].token, [big])
    assert (outcome.code, outcome.reason) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "BATCH_TOO_LARGE",
    )
    assert int(outcome.metadata["limit"]) > 0
    assert one.stored_batches() == 0
