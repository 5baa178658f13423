"""The publish path: what is accepted, stored once, and what is refused (and how)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import grpc
import pytest

from catalog.models import Role
from catalog.v1 import catalog_pb2 as pb
from envelope.signing import Ed25519Signer
from tests.gateway_harness import RunningGateway
from tests.wire import encode, publish, rejections, signed_batch
from tests.world import PERSON_SCHEMA, World, build_world, person


@pytest.fixture
def world(gateway: RunningGateway) -> World:
    return build_world(gateway)


def stored_batches(gateway: RunningGateway) -> int:
    return gateway.stored_batches()


def good_batch(world: World, batch_id: str = "b-1", n: int = 3) -> Any:
    publisher = world.systems["PSB-HUKOU"]
    records = encode(PERSON_SCHEMA, [person(i) for i in range(n)])
    return signed_batch(publisher.signer, "RESIDENTS", PERSON_SCHEMA, records, batch_id=batch_id)


def test_a_valid_batch_is_acknowledged_after_it_is_stored(world: World) -> None:
    outcome = publish(world.gateway.target, world.systems["PSB-HUKOU"].token, [good_batch(world)])
    assert outcome.code is None
    assert [a.batch_id for a in outcome.acks] == ["b-1"]
    assert outcome.acks[0].offset >= 1 and not outcome.acks[0].duplicate
    assert stored_batches(world.gateway) == 1


def test_the_same_batch_id_is_stored_once_and_acknowledged_again(world: World) -> None:
    token = world.systems["PSB-HUKOU"].token
    batch = good_batch(world)
    first = publish(world.gateway.target, token, [batch, batch])
    again = publish(world.gateway.target, token, [batch])
    acks = first.acks + again.acks
    assert [a.duplicate for a in acks] == [False, True, True]
    assert len({a.offset for a in acks}) == 1
    assert stored_batches(world.gateway) == 1


def test_acks_come_in_order_for_many_batches_on_one_stream(world: World) -> None:
    batches = [good_batch(world, f"b-{i}", n=2) for i in range(25)]
    outcome = publish(world.gateway.target, world.systems["PSB-HUKOU"].token, batches)
    assert [a.batch_id for a in outcome.acks] == [f"b-{i}" for i in range(25)]
    offsets = [a.offset for a in outcome.acks]
    assert offsets == sorted(offsets)


def _refused(
    world: World, batch: Any, reason: str, code: grpc.StatusCode, token: str | None = None
) -> dict[str, str]:
    before_count = rejections(reason)
    before_rows = stored_batches(world.gateway)
    outcome = publish(
        world.gateway.target,
        token if token is not None else world.systems["PSB-HUKOU"].token,
        [batch],
    )
    assert outcome.code == code, outcome.details
    assert outcome.reason == reason, outcome.details
    assert outcome.acks == []
    assert stored_batches(world.gateway) == before_rows, "a refusal must change nothing"
    assert rejections(reason) == before_count + 1, "every refusal is counted"
    return outcome.metadata


def test_an_unknown_resource_is_refused(world: World) -> None:
    batch = good_batch(world)
    batch.resource = "NO-SUCH-RESOURCE"
    batch.signature = world.systems["PSB-HUKOU"].signer.sign(
        __import__("envelope.digest", fromlist=["x"]).digest_of_batch(batch)
    )
    _refused(world, batch, "UNKNOWN_RESOURCE", grpc.StatusCode.NOT_FOUND)


def test_an_unregistered_schema_fingerprint_is_refused(world: World) -> None:
    publisher = world.systems["PSB-HUKOU"]
    records = encode(PERSON_SCHEMA, [person(1)])
    batch = signed_batch(
        publisher.signer, "RESIDENTS", PERSON_SCHEMA, records, fingerprint=b"\x01" * 8
    )
    metadata = _refused(world, batch, "UNKNOWN_SCHEMA", grpc.StatusCode.FAILED_PRECONDITION)
    assert metadata["fingerprint"] == "01" * 8


def test_a_forged_signature_is_refused(world: World) -> None:
    batch = good_batch(world)
    batch.signature = bytes(64)
    _refused(world, batch, "BAD_SIGNATURE", grpc.StatusCode.INVALID_ARGUMENT)


def test_a_record_changed_after_signing_is_refused(world: World) -> None:
    batch = good_batch(world)
    batch.records[1] = encode(PERSON_SCHEMA, [person(99)])[0]
    _refused(world, batch, "BAD_SIGNATURE", grpc.StatusCode.INVALID_ARGUMENT)


def test_a_signature_by_another_systems_key_is_refused(world: World) -> None:
    other = world.systems["CIVIL-AFFAIRS"].signer
    records = encode(PERSON_SCHEMA, [person(1)])
    batch = signed_batch(other, "RESIDENTS", PERSON_SCHEMA, records)
    _refused(world, batch, "UNKNOWN_SIGNING_KEY", grpc.StatusCode.FAILED_PRECONDITION)


def test_a_key_id_pointing_at_the_real_key_with_a_foreign_signature_is_refused(
    world: World,
) -> None:
    batch = good_batch(world)
    forged = copy.deepcopy(batch)
    forged.signature = Ed25519Signer.generate().sign(b"x" * 32)
    _refused(world, forged, "BAD_SIGNATURE", grpc.StatusCode.INVALID_ARGUMENT)


def test_a_system_cannot_publish_a_resource_its_department_does_not_own(world: World) -> None:
    intruder = world.systems["CIVIL-AFFAIRS"]
    records = encode(PERSON_SCHEMA, [person(1)])
    batch = signed_batch(intruder.signer, "RESIDENTS", PERSON_SCHEMA, records)
    _refused(world, batch, "NOT_OWNER", grpc.StatusCode.PERMISSION_DENIED, token=intruder.token)


def test_a_record_that_does_not_decode_is_refused_with_its_index(world: World) -> None:
    publisher = world.systems["PSB-HUKOU"]
    records = encode(PERSON_SCHEMA, [person(i) for i in range(4)])
    records[2] = b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
    batch = signed_batch(publisher.signer, "RESIDENTS", PERSON_SCHEMA, records)
    metadata = _refused(world, batch, "RECORD_DECODE_FAILED", grpc.StatusCode.INVALID_ARGUMENT)
    assert metadata["record_index"] == "2"


def test_a_record_with_trailing_bytes_is_refused(world: World) -> None:
    publisher = world.systems["PSB-HUKOU"]
    records = encode(PERSON_SCHEMA, [person(1), person(2)])
    records[1] += b"\x00"
    batch = signed_batch(publisher.signer, "RESIDENTS", PERSON_SCHEMA, records)
    metadata = _refused(world, batch, "RECORD_DECODE_FAILED", grpc.StatusCode.INVALID_ARGUMENT)
    assert metadata["record_index"] == "1"


def test_a_batch_over_the_record_limit_is_refused(tmp_path: Any) -> None:
    gateway = RunningGateway(tmp_path / "small", max_batch_records=5)
    try:
        world = build_world(gateway)
        _refused(
            world, good_batch(world, n=6), "BATCH_TOO_LARGE", grpc.StatusCode.RESOURCE_EXHAUSTED
        )
    finally:
        gateway.stop()


def test_an_oversized_record_is_refused(tmp_path: Any) -> None:
    gateway = RunningGateway(tmp_path / "small", max_record_bytes=40)
    try:
        world = build_world(gateway)
        _refused(world, good_batch(world), "RECORD_TOO_LARGE", grpc.StatusCode.RESOURCE_EXHAUSTED)
    finally:
        gateway.stop()


def test_a_batch_id_reused_for_other_records_is_refused(world: World) -> None:
    publish(world.gateway.target, world.systems["PSB-HUKOU"].token, [good_batch(world, n=2)])
    _refused(world, good_batch(world, n=3), "BATCH_ID_REUSED", grpc.StatusCode.ALREADY_EXISTS)


def test_an_empty_batch_is_refused(world: World) -> None:
    batch = good_batch(world)
    del batch.records[:]
    _refused(world, batch, "INVALID_BATCH", grpc.StatusCode.INVALID_ARGUMENT)


def test_a_call_without_a_token_is_refused(world: World) -> None:
    _refused(world, good_batch(world), "UNAUTHENTICATED", grpc.StatusCode.UNAUTHENTICATED, token="")


def test_a_call_with_an_unknown_token_is_refused(world: World) -> None:
    _refused(
        world,
        good_batch(world),
        "UNAUTHENTICATED",
        grpc.StatusCode.UNAUTHENTICATED,
        token="lj_0000000000000000_forged",
    )


def test_only_systems_publish(world: World) -> None:
    officer = world.gateway.issue_token("wang", Role.DATA_OFFICER, department="PSB")
    _refused(
        world,
        good_batch(world),
        "ROLE_NOT_ALLOWED",
        grpc.StatusCode.PERMISSION_DENIED,
        token=officer,
    )


def test_a_suspended_system_is_refused(world: World) -> None:
    from sqlalchemy import update

    from catalog.db import open_catalog
    from catalog.models import System, SystemStatus

    sessions = open_catalog(world.gateway.settings.catalog_url)
    with sessions() as session:
        session.execute(
            update(System).where(System.code == "PSB-HUKOU").values(status=SystemStatus.SUSPENDED)
        )
        session.commit()
    world.gateway.restart()  # drop the gateway's short catalog cache
    _refused(world, good_batch(world), "SYSTEM_SUSPENDED", grpc.StatusCode.PERMISSION_DENIED)


def test_batches_before_a_refused_one_stay_acknowledged(world: World) -> None:
    bad = good_batch(world, "b-bad")
    bad.signature = bytes(64)
    outcome = publish(
        world.gateway.target,
        world.systems["PSB-HUKOU"].token,
        [good_batch(world, "b-ok-1"), good_batch(world, "b-ok-2"), bad, good_batch(world, "b-3")],
    )
    assert [a.batch_id for a in outcome.acks] == ["b-ok-1", "b-ok-2"]
    assert outcome.reason == "BAD_SIGNATURE"
    assert stored_batches(world.gateway) == 2


def test_the_gateway_keeps_serving_others_after_a_refusal(world: World) -> None:
    bad = good_batch(world, "b-bad")
    bad.signature = bytes(64)
    publish(world.gateway.target, world.systems["PSB-HUKOU"].token, [bad])
    outcome = publish(world.gateway.target, world.systems["PSB-HUKOU"].token, [good_batch(world)])
    assert outcome.code is None and len(outcome.acks) == 1


def test_the_same_signed_batch_sent_again_after_a_restart_is_a_duplicate(world: World) -> None:
    from adapters.publisher import Publisher

    publisher = world.systems["PSB-HUKOU"]

    async def run() -> list[Any]:
        async with Publisher(
            world.gateway.target, publisher.token, publisher.signer, insecure=True
        ) as sdk:
            schema = sdk.schema(PERSON_SCHEMA)
            batch = sdk.build("RESIDENTS", schema, encode(PERSON_SCHEMA, [person(1)]), "same")
            first = await (await sdk.send(batch))
            world.gateway.restart()
            second = await (await sdk.send(batch))
            return [first, second]

    first, second = asyncio.run(run())
    assert first.offset == second.offset and second.duplicate
    assert stored_batches(world.gateway) == 1


def test_the_publisher_sdk_waits_out_a_gateway_outage(world: World) -> None:
    from adapters.publisher import Publisher

    publisher = world.systems["PSB-HUKOU"]
    world.gateway.stop()

    async def run() -> Any:
        async with Publisher(
            world.gateway.settings.listen, publisher.token, publisher.signer, insecure=True
        ) as sdk:
            pending = asyncio.ensure_future(
                sdk.publish("RESIDENTS", PERSON_SCHEMA, [person(1), person(2)])
            )
            await asyncio.sleep(0.5)
            assert not pending.done(), "nothing can be acknowledged while the gateway is down"
            await asyncio.to_thread(world.gateway.start)
            return await asyncio.wait_for(pending, 30)

    ack = asyncio.run(run())
    assert not ack.duplicate
    assert stored_batches(world.gateway) == 1


def test_the_publisher_sdk_reports_a_refusal_with_its_reason(world: World) -> None:
    from adapters.errors import GatewayRefusal
    from adapters.publisher import Publisher

    intruder = world.systems["CIVIL-AFFAIRS"]

    async def run() -> None:
        async with Publisher(
            world.gateway.target, intruder.token, intruder.signer, insecure=True
        ) as sdk:
            await sdk.publish("RESIDENTS", PERSON_SCHEMA, [person(1)])

    with pytest.raises(GatewayRefusal) as refusal:
        asyncio.run(run())
    assert refusal.value.reason == "NOT_OWNER"
    assert refusal.value.code == grpc.StatusCode.PERMISSION_DENIED


def test_catalog_rejections_carry_reasons_too(world: World) -> None:
    with pytest.raises(grpc.RpcError) as error:
        world.stub.GetResource(pb.GetResourceRequest(code="NOPE"), metadata=world.admin())
    from adapters.errors import error_info

    assert error.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    assert error_info(error.value)[0] == "UNKNOWN_RESOURCE"
