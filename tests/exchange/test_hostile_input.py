"""Regression specifications from an adversarial review: hostile input stays contained."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from adapters.errors import GatewayRefusal, error_info
from adapters.publisher import Publisher
from catalog.v1 import catalog_pb2 as pb
from envelope.digest import digest_of_batch
from exchange.log import NewBatch, SqliteLog
from tests.gateway_harness import RunningGateway
from tests.wire import encode, publish, signed_batch
from tests.world import PERSON_SCHEMA, World, build_world, person


@pytest.fixture
def world(gateway: RunningGateway) -> World:
    return build_world(gateway)


def _resign(world: World, batch: Any) -> Any:
    batch.signature = world.systems["PSB-HUKOU"].signer.sign(digest_of_batch(batch))
    return batch


def _batch(world: World, batch_id: str = "b-1") -> Any:
    signer = world.systems["PSB-HUKOU"].signer
    return signed_batch(
        signer, "RESIDENTS", PERSON_SCHEMA, encode(PERSON_SCHEMA, [person(1)]), batch_id=batch_id
    )


@pytest.mark.parametrize("field", ["negative_nanos", "huge_sequence", "year_10000"])
def test_out_of_range_batch_fields_are_refused_precisely(world: World, field: str) -> None:
    batch = _batch(world)
    if field == "negative_nanos":
        batch.create_time.nanos = -1
    elif field == "huge_sequence":
        batch.sequence = 2**63
    else:
        batch.create_time.seconds = 253_402_300_800
    if field != "negative_nanos":  # the shape is checked before the signature anyway
        _resign(world, batch)
    outcome = publish(world.gateway.target, world.systems["PSB-HUKOU"].token, [batch])
    assert (outcome.code, outcome.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_BATCH")
    assert outcome.metadata["batch_id"] == "b-1"


def test_a_batch_the_log_cannot_store_fails_alone_in_its_commit_group(tmp_path: Path) -> None:
    def new(batch_id: str, sequence: int) -> NewBatch:
        return NewBatch(
            "R",
            batch_id,
            "SYS",
            sequence,
            b"\0" * 8,
            b"d" + batch_id.encode(),
            1,
            1,
            time.time_ns(),
            b"payload",
        )

    async def run() -> list[Any]:
        log = SqliteLog(tmp_path / "log.db")
        try:
            return await asyncio.gather(
                log.append(new("good-1", 1)),
                log.append(new("bad", 2**64)),
                log.append(new("good-2", 2)),
                return_exceptions=True,
            )
        finally:
            await log.close()

    first, bad, second = asyncio.run(run())
    assert isinstance(bad, OverflowError)
    assert not isinstance(first, BaseException) and not first.duplicate
    assert not isinstance(second, BaseException) and not second.duplicate


def test_two_publishers_may_use_the_same_batch_id(world: World) -> None:
    world.department("TAX")
    tax = world.system("TAX-CORE", "TAX")
    world.resource("TAXPAYERS", "TAX")
    taxes = signed_batch(
        tax.signer,
        "TAXPAYERS",
        PERSON_SCHEMA,
        encode(PERSON_SCHEMA, [person(7)]),
        batch_id="2024-06-01",
    )
    assert publish(world.gateway.target, tax.token, [taxes]).code is None
    mine = publish(
        world.gateway.target, world.systems["PSB-HUKOU"].token, [_batch(world, "2024-06-01")]
    )
    assert mine.code is None and not mine.acks[0].duplicate


def test_the_sdk_fails_only_the_batch_the_gateway_refused(world: World) -> None:
    publisher = world.systems["PSB-HUKOU"]

    async def run() -> list[Any]:
        async with Publisher(
            world.gateway.target, publisher.token, publisher.signer, insecure=True
        ) as sdk:
            schema = sdk.schema(PERSON_SCHEMA)
            batches = [
                sdk.build("RESIDENTS", schema, encode(PERSON_SCHEMA, [person(i)]), f"b-{i}")
                for i in range(6)
            ]
            batches[2].signature = bytes(64)
            futures = [await sdk.send(b) for b in batches]
            return await asyncio.gather(*futures, return_exceptions=True)

    results = asyncio.run(run())
    assert isinstance(results[2], GatewayRefusal) and results[2].reason == "BAD_SIGNATURE"
    assert [r.batch_id for i, r in enumerate(results) if i != 2] == [
        "b-0",
        "b-1",
        "b-3",
        "b-4",
        "b-5",
    ]


def test_the_sdk_refuses_a_batch_too_large_to_send(world: World) -> None:
    publisher = world.systems["PSB-HUKOU"]

    async def run() -> None:
        async with Publisher(
            world.gateway.target, publisher.token, publisher.signer, insecure=True
        ) as sdk:
            schema = sdk.schema(PERSON_SCHEMA)
            await sdk.send(sdk.build("RESIDENTS", schema, [b"x" * (33 << 20)]))

    with pytest.raises(ValueError, match="split it"):
        asyncio.run(run())


def test_malformed_protobuf_is_invalid_argument_on_unary_and_streaming_calls(
    world: World,
) -> None:
    with grpc.insecure_channel(world.gateway.target) as channel:
        stream = channel.stream_stream(
            "/exchange.v1.ExchangeService/Publish",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        unary = channel.unary_unary(
            "/catalog.v1.CatalogService/GetDepartment",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        token = (("authorization", "Bearer " + world.systems["PSB-HUKOU"].token),)
        for call in (
            lambda: list(stream(iter([b"\xff\xff\xff"]), metadata=token, timeout=10)),
            lambda: unary(b"\xff\xff\xff", metadata=token, timeout=10),
        ):
            with pytest.raises(grpc.RpcError) as error:
                call()
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
            assert error_info(error.value)[0] == "MALFORMED_MESSAGE"


def test_a_schema_with_a_field_named_twice_is_refused(world: World) -> None:
    schema = json.loads(json.dumps(PERSON_SCHEMA))
    schema["fields"].append({"name": "name", "type": "string"})
    with pytest.raises(grpc.RpcError) as error:
        world.resource("TWICE", "PSB", schema)
    assert error_info(error.value)[0] == "INVALID_SCHEMA"


def test_a_grant_of_fields_keeps_union_branches_and_named_types(world: World) -> None:
    schema = {
        "type": "record",
        "name": "Licence",
        "namespace": "gov.samr",
        "fields": [
            {"name": "id_number", "type": "string"},
            {
                "name": "registered_address",
                "type": {
                    "type": "record",
                    "name": "Address",
                    "fields": [{"name": "street", "type": "string"}],
                },
            },
            {"name": "office_address", "type": "Address"},
            {
                "name": "who",
                "type": [
                    {
                        "type": "record",
                        "name": "Person",
                        "fields": [{"name": "id", "type": "string"}],
                    },
                    {
                        "type": "record",
                        "name": "Firm",
                        "fields": [{"name": "id", "type": "string"}],
                    },
                ],
            },
            {"name": "region_code", "type": "string"},
        ],
    }
    world.resource("LICENCES", "PSB", schema)
    world.grant("LICENCES", "CIVIL-AFFAIRS", fields=["id_number", "office_address", "who"])
    record = {
        "id_number": "1",
        "registered_address": {"street": "a"},
        "office_address": {"street": "b"},
        "who": ("gov.samr.Firm", {"id": "F-1"}),
        "region_code": "510104",
    }
    publisher = world.systems["PSB-HUKOU"]
    batch = signed_batch(publisher.signer, "LICENCES", schema, encode(schema, [record]))
    assert publish(world.gateway.target, publisher.token, [batch]).code is None

    from adapters.subscriber import Subscriber

    async def run() -> Any:
        got: list[Any] = []
        subscriber = Subscriber(
            world.gateway.target, world.systems["CIVIL-AFFAIRS"].token, "LICENCES", insecure=True
        )

        def handle(received: Any) -> None:
            import io

            from fastavro import schemaless_reader

            got.append(
                schemaless_reader(
                    io.BytesIO(received.raw_records[0]),
                    received.schema.parsed,
                    None,
                    return_record_name=True,
                )
            )
            subscriber.stop()

        await asyncio.wait_for(subscriber.run(handle), 15)
        await subscriber.close()
        return got[0]

    delivered = asyncio.run(run())
    assert delivered == {
        "id_number": "1",
        "office_address": {"street": "b"},
        "who": ("gov.samr.Firm", {"id": "F-1"}),
    }


def test_a_field_added_later_and_left_undescribed_is_delivered_masked(world: World) -> None:
    from adapters.subscriber import Subscriber

    schema = json.loads(json.dumps(PERSON_SCHEMA))
    schema["fields"].append({"name": "mobile", "type": ["null", "string"], "default": None})
    world.stub.CreateSchema(
        pb.CreateSchemaRequest(resource="RESIDENTS", definition=json.dumps(schema)),
        metadata=world.admin(),
    )
    row = {**person(1), "mobile": "13812345678"}
    publisher = world.systems["PSB-HUKOU"]
    batch = signed_batch(publisher.signer, "RESIDENTS", schema, encode(schema, [row]))
    assert publish(world.gateway.target, publisher.token, [batch]).code is None

    async def run() -> Any:
        got: list[Any] = []
        subscriber = Subscriber(
            world.gateway.target, world.systems["CIVIL-AFFAIRS"].token, "RESIDENTS", insecure=True
        )

        def handle(received: Any) -> None:
            got.extend(received.records)
            subscriber.stop()

        await asyncio.wait_for(subscriber.run(handle), 15)
        await subscriber.close()
        return got[0]

    assert asyncio.run(run())["mobile"] == "****"
