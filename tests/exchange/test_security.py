"""Key lifecycle, replay and substitution, sequence anomalies, rate and stream limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import REGISTRY

from adapters.connection import auth_metadata, open_blocking_channel, open_channel
from adapters.errors import error_info, retry_delay
from adapters.publisher import Publisher
from catalog import ledger
from catalog.ledger import EntryFilter, EntryKind
from catalog.v1 import catalog_pb2 as pb
from envelope.digest import digest_of_batch
from envelope.signing import Ed25519Signer
from exchange.v1 import exchange_pb2, exchange_pb2_grpc
from tests.gateway_harness import RunningGateway
from tests.wire import encode, publish, signed_batch
from tests.world import PERSON_SCHEMA, World, build_world, person


@pytest.fixture
def world(gateway: RunningGateway) -> World:
    return build_world(gateway)


def batch(world: World, batch_id: str, *, signer: Ed25519Signer | None = None, **kw: Any) -> Any:
    publisher = world.systems["PSB-HUKOU"]
    return signed_batch(
        signer or publisher.signer,
        "RESIDENTS",
        PERSON_SCHEMA,
        encode(PERSON_SCHEMA, [person(kw.pop("row", 0))]),
        batch_id=batch_id,
        **kw,
    )


def resign(signer: Ed25519Signer, b: Any) -> Any:
    b.signing_key_id = signer.key_id
    b.signature = signer.sign(digest_of_batch(b))
    return b


def stored(world: World) -> int:
    return world.gateway.stored_batches()


def entries(world: World, kind: EntryKind) -> list[Any]:
    sessions = world.gateway.gateway.catalog.sessions  # type: ignore[union-attr]
    return ledger.entries(sessions, EntryFilter(kinds=(kind,)), 1000)


# --- signing keys -------------------------------------------------------------------


def test_rotation_keeps_a_publisher_running_without_a_refused_batch(world: World) -> None:
    old = world.systems["PSB-HUKOU"].signer
    new = Ed25519Signer.generate()
    token = world.systems["PSB-HUKOU"].token

    async def run() -> list[Any]:
        acks: list[Any] = []
        async with Publisher(world.gateway.target, token, old, insecure=True) as first:
            for i in range(5):
                acks.append(await first.publish("RESIDENTS", PERSON_SCHEMA, [person(i)]))
            world.stub.AddSigningKey(
                pb.AddSigningKeyRequest(system="PSB-HUKOU", public_key=new.public_key),
                metadata=world.admin(),
            )
            async with Publisher(world.gateway.target, token, new, insecure=True) as second:
                for i in range(5, 10):  # both keys valid: the old publisher drains
                    acks.append(await first.publish("RESIDENTS", PERSON_SCHEMA, [person(i)]))
                    acks.append(await second.publish("RESIDENTS", PERSON_SCHEMA, [person(i)]))
                world.stub.RevokeSigningKey(
                    pb.RevokeSigningKeyRequest(
                        system="PSB-HUKOU", key_id=old.key_id, reason="rotated (2026 Q4)"
                    ),
                    metadata=world.admin(),
                )
                for i in range(10, 15):
                    acks.append(await second.publish("RESIDENTS", PERSON_SCHEMA, [person(i)]))
        return acks

    acks = asyncio.run(run())
    assert len(acks) == 20 and stored(world) == 20
    system = world.stub.GetSystem(pb.GetSystemRequest(code="PSB-HUKOU"), metadata=world.admin())
    keys = {k.key_id: k for k in system.system.signing_keys}
    assert keys[old.key_id].revoke_reason == "rotated (2026 Q4)"
    assert not keys[new.key_id].HasField("revoke_time")
    actions = [e.action for e in entries(world, EntryKind.CATALOG)]
    assert "signing_key.created" in actions and "signing_key.updated" in actions


def test_a_revocation_applies_to_batches_created_after_it_only(world: World) -> None:
    old = world.systems["PSB-HUKOU"].signer
    before = batch(world, "signed-before")  # created now, before the revocation
    time.sleep(0.01)
    world.stub.RevokeSigningKey(
        pb.RevokeSigningKeyRequest(system="PSB-HUKOU", key_id=old.key_id, reason="key leaked"),
        metadata=world.admin(),
    )
    token = world.systems["PSB-HUKOU"].token
    assert publish(world.gateway.target, token, [before]).code is None
    after = publish(world.gateway.target, token, [batch(world, "signed-after")])
    assert (after.code, after.reason) == (grpc.StatusCode.PERMISSION_DENIED, "KEY_REVOKED")
    assert stored(world) == 1


def test_revoking_needs_an_administrator_and_a_known_key(world: World) -> None:
    publisher = world.systems["PSB-HUKOU"]
    with pytest.raises(grpc.RpcError) as raised:
        world.stub.RevokeSigningKey(
            pb.RevokeSigningKeyRequest(
                system="PSB-HUKOU", key_id=publisher.signer.key_id, reason="x"
            ),
            metadata=auth_metadata(publisher.token),
        )
    assert error_info(raised.value)[0] == "ROLE_NOT_ALLOWED"
    with pytest.raises(grpc.RpcError) as raised:
        world.stub.RevokeSigningKey(
            pb.RevokeSigningKeyRequest(system="PSB-HUKOU", key_id="0" * 16, reason="x"),
            metadata=world.admin(),
        )
    assert error_info(raised.value)[0] == "UNKNOWN_SIGNING_KEY"
    with pytest.raises(grpc.RpcError) as raised:
        world.stub.AddSigningKey(
            pb.AddSigningKeyRequest(system="PSB-HUKOU", public_key=b"short"),
            metadata=world.admin(),
        )
    assert error_info(raised.value)[0] == "INVALID_FIELD"


# --- replay and substitution ------------------------------------------------------


def test_a_batch_replayed_under_another_resource_or_sequence_is_refused(world: World) -> None:
    world.resource("OTHER", "PSB")
    token = world.systems["PSB-HUKOU"].token
    original = batch(world, "orig", sequence=7)
    moved = exchange_pb2.RecordBatch()
    moved.CopyFrom(original)
    moved.resource = "OTHER"
    renumbered = exchange_pb2.RecordBatch()
    renumbered.CopyFrom(original)
    renumbered.sequence = 8
    for forged in (moved, renumbered):
        outcome = publish(world.gateway.target, token, [forged])
        assert outcome.reason == "BAD_SIGNATURE"
    assert publish(world.gateway.target, token, [original]).code is None
    again = publish(world.gateway.target, token, [original])  # an exact replay: stored once
    assert again.code is None and again.acks[0].duplicate
    assert stored(world) == 1


@pytest.mark.parametrize(("offset", "words"), [(3600, "ahead"), (-8 * 86_400, "old")])
def test_a_batch_outside_the_clock_window_is_refused(world: World, offset: int, words: str) -> None:
    signer = world.systems["PSB-HUKOU"].signer
    b = batch(world, f"skewed-{words}")
    b.create_time.CopyFrom(Timestamp(seconds=int(time.time()) + offset))
    outcome = publish(world.gateway.target, world.systems["PSB-HUKOU"].token, [resign(signer, b)])
    assert (outcome.code, outcome.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CLOCK_SKEW")
    assert words in outcome.details and stored(world) == 0


def test_sequence_gaps_and_regressions_are_reported_not_refused(world: World) -> None:
    token = world.systems["PSB-HUKOU"].token
    gaps = (
        REGISTRY.get_sample_value(
            "lijiao_sequence_anomalies_total", {"department": "PSB", "kind": "gap"}
        )
        or 0.0
    )
    for sequence in (1, 2, 5, 3):
        outcome = publish(
            world.gateway.target, token, [batch(world, f"s{sequence}", sequence=sequence)]
        )
        assert outcome.code is None
    publish(world.gateway.target, token, [batch(world, "s2", sequence=2)])  # a resend: silent
    anomalies = entries(world, EntryKind.ANOMALY)
    assert [(a.action, a.subject) for a in anomalies] == [
        ("sequence.gap", "s5"),
        ("sequence.regression", "s3"),
    ]
    assert '"missing":2' in anomalies[0].content
    assert (
        REGISTRY.get_sample_value(
            "lijiao_sequence_anomalies_total", {"department": "PSB", "kind": "gap"}
        )
        == gaps + 1
    )


# --- limits -------------------------------------------------------------------------


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[World]:
    gateway = RunningGateway(
        tmp_path / "gw",
        rate_limit_records_per_second=20.0,
        rate_limit_record_burst=20,
        rate_limit_calls_per_second=50.0,
        rate_limit_call_burst=50,
        max_streams_per_principal=2,
    )
    try:
        yield build_world(gateway)
    finally:
        gateway.stop()


def test_over_the_record_rate_a_publisher_is_told_when_to_retry(limited: World) -> None:
    publisher = limited.systems["PSB-HUKOU"]
    big = signed_batch(
        publisher.signer,
        "RESIDENTS",
        PERSON_SCHEMA,
        encode(PERSON_SCHEMA, [person(i) for i in range(15)]),
        batch_id="big-1",
    )
    more = signed_batch(
        publisher.signer,
        "RESIDENTS",
        PERSON_SCHEMA,
        encode(PERSON_SCHEMA, [person(i) for i in range(15)]),
        batch_id="big-2",
        sequence=2,
    )
    outcome = publish(limited.gateway.target, publisher.token, [big, more])
    assert len(outcome.acks) == 1
    assert (outcome.code, outcome.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert 0 < float(outcome.metadata["retry_after_ms"]) <= 1000


def test_the_sdk_slows_down_under_the_rate_limit_instead_of_failing(limited: World) -> None:
    publisher = limited.systems["PSB-HUKOU"]

    async def run() -> int:
        async with Publisher(
            limited.gateway.target, publisher.token, publisher.signer, insecure=True
        ) as sdk:
            for i in range(6):  # 60 records at 20 a second, burst 20
                await sdk.publish(
                    "RESIDENTS", PERSON_SCHEMA, [person(i * 10 + j) for j in range(10)]
                )
        return stored(limited)

    assert asyncio.run(run()) == 6


def test_the_retry_hint_is_a_retry_info_detail(limited: World) -> None:
    with open_blocking_channel(limited.gateway.target, insecure=True, quiet=True) as channel:
        stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
        token = limited.systems["CIVIL-AFFAIRS"].token
        for _ in range(400):  # far more than the burst of 50 plus what refills meanwhile
            try:
                stub.GetGatewayKey(
                    exchange_pb2.GetGatewayKeyRequest(), metadata=auth_metadata(token), timeout=5
                )
            except grpc.RpcError as error:
                assert error_info(error)[0] == "RATE_LIMITED"
                delay = retry_delay(error)
                assert delay is not None and 0 < delay <= 1
                return
    pytest.fail("400 calls at once passed a limit of 50 a second")


def test_concurrent_streams_per_principal_are_capped(limited: World) -> None:
    token = limited.systems["CIVIL-AFFAIRS"].token

    async def run() -> tuple[str, int]:
        channel = open_channel(limited.gateway.target, insecure=True, quiet=True)
        stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
        calls = []

        async def opening(name: str) -> Any:
            yield exchange_pb2.SubscribeRequest(
                open=exchange_pb2.SubscriptionOpen(resource="RESIDENTS", subscription=name)
            )
            await asyncio.sleep(30)

        for name in ("a", "b"):
            call = stub.Subscribe(opening(name), metadata=auth_metadata(token))
            await call.initial_metadata()
            calls.append(call)
        third = stub.Subscribe(opening("c"), metadata=auth_metadata(token))
        try:
            await third.read()
            reason = ""
        except grpc.aio.AioRpcError as error:
            reason = error_info(error)[0]
        for call in calls:
            call.cancel()
        await asyncio.sleep(0.2)
        fourth = stub.Subscribe(opening("d"), metadata=auth_metadata(token))
        opened = await fourth.initial_metadata()  # a closed stream frees its slot
        fourth.cancel()
        await channel.close()
        return reason, len(opened or ())

    reason, opened = asyncio.run(run())
    assert reason == "TOO_MANY_STREAMS" and opened >= 1


def test_a_flood_of_refusals_is_recorded_once_a_second(limited: World) -> None:
    sessions = limited.gateway.gateway.catalog.sessions  # type: ignore[union-attr]
    before = len(ledger.entries(sessions, EntryFilter(kinds=(EntryKind.DENIAL,)), 10_000))
    started = time.monotonic()
    for _ in range(30):
        publish(limited.gateway.target, "lj_nobody_nothing", [])
    seconds = time.monotonic() - started
    denials = ledger.entries(sessions, EntryFilter(kinds=(EntryKind.DENIAL,)), 10_000)[before:]
    assert 1 <= len(denials) <= int(seconds) + 2  # one a second, not thirty


def test_a_compromised_key_is_refused_even_for_backdated_batches(world: World) -> None:
    old = world.systems["PSB-HUKOU"].signer
    backdated = batch(world, "backdated")  # a thief signs with a creation time before...
    time.sleep(0.01)
    world.stub.RevokeSigningKey(  # ...the revocation of the leaked key
        pb.RevokeSigningKeyRequest(
            system="PSB-HUKOU", key_id=old.key_id, reason="key leaked", compromised=True
        ),
        metadata=world.admin(),
    )
    outcome = publish(world.gateway.target, world.systems["PSB-HUKOU"].token, [backdated])
    assert (outcome.code, outcome.reason) == (grpc.StatusCode.PERMISSION_DENIED, "KEY_REVOKED")
    assert "compromised" in outcome.details and stored(world) == 0
