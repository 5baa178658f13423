"""Hostile records: none crashes or stalls the gateway, and only exact Avro is stored.

Regression specifications of issue 12's findings 1, 2, 3, 5, 8 and 13.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc

from adapters.connection import open_blocking_channel
from adapters.errors import error_info
from catalog.ledger import EntryKind
from catalog.models import Resource, SchemaVersion
from catalog.v1 import catalog_pb2 as pb
from catalog.v1 import catalog_pb2_grpc
from envelope import schemas
from envelope.errors import InvalidArgument
from exchange.publish.record_checker import RecordChecker, check_chunk, schema_key
from exchange.v1 import exchange_pb2
from tests.exchange.test_security import entries
from tests.gateway_harness import RunningGateway
from tests.wire import encode, publish, signed_batch
from tests.world import PERSON_SCHEMA, World, build_world, person

NODE_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Node",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "child", "type": ["null", "Node"]},
    ],
}

# One value of every kind a reader can read in more than one way.
EXACT_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Permit",
    "namespace": "gov.test",
    "fields": [
        {"name": "id_number", "type": "string"},
        {"name": "note", "type": ["null", "string"]},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
        {"name": "valid", "type": "boolean"},
        {"name": "rooms", "type": "int"},
        {
            "name": "fee",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2},
        },
        {"name": "tags", "type": {"type": "map", "values": "int"}},
        {"name": "serial", "type": "long"},
        {"name": "region_code", "type": "string"},
    ],
}
EXACT_VALUE = {
    "id_number": "1",
    "note": "a",
    "kind": "A",
    "valid": True,
    "rooms": 1,
    "fee": Decimal("1.00"),
    "tags": {"a": 1},
    "serial": 5,
    "region_code": "510104",
}
# The same value written field by field, as an Avro writer writes it.
CANONICAL_PARTS = {
    "id_number": b"\x021",
    "note": b"\x02\x02a",
    "kind": b"\x00",
    "valid": b"\x01",
    "rooms": b"\x02",
    "fee": b"\x02\x64",
    "tags": b"\x02\x02a\x02\x00",
    "serial": b"\x0a",
    "region_code": b"\x0c510104",
}


def _unsigned(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _varint(value: int) -> bytes:
    """Avro's zigzag varint of a long."""
    return _unsigned((value << 1) ^ (value >> 63))


HOSTILE_PARTS = {
    "union_index_minus_one": ("note", _varint(-1) + b"\x02a"),
    "enum_index_minus_one": ("kind", _varint(-1)),
    "boolean_byte_two": ("valid", b"\x02"),
    "int_beyond_32_bits": ("rooms", _varint(2**40)),
    "decimal_beyond_precision": ("fee", b"\x06" + (123456).to_bytes(3, "big", signed=True)),
    "map_key_twice": ("tags", b"\x04\x02a\x02\x02a\x04\x00"),
    "padded_varint": ("serial", b"\x8a\x00"),
    "array_in_two_blocks": ("tags", b"\x02\x02a\x02\x02\x02b\x04\x00"),
}


def _record(**replaced: bytes) -> bytes:
    return b"".join(replaced.get(name, part) for name, part in CANONICAL_PARTS.items())


@pytest.fixture
def world(gateway: RunningGateway) -> World:
    return build_world(gateway)


def _refusal_of_create(world: World, schema_text: str) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as refused:
        world.stub.CreateResource(
            pb.CreateResourceRequest(
                resource=pb.Resource(
                    code="TREE",
                    name="tree",
                    owner_department="PSB",
                    sharing_type=pb.SHARING_TYPE_CONDITIONAL,
                    classification=pb.CLASSIFICATION_GENERAL,
                    key_fields=["id"],
                ),
                schema=schema_text,
            ),
            metadata=world.admin(),
        )
    reason, _ = error_info(refused.value)
    return refused.value.code(), reason  # type: ignore[attr-defined]


def _resource_codes(world: World) -> set[str]:
    listed = world.stub.ListResources(pb.ListResourcesRequest(), metadata=world.admin())
    return {r.code for r in listed.resources}


# --- finding 1 and 8: recursion and depth ------------------------------------------


def test_a_recursive_schema_is_refused_at_registration(world: World) -> None:
    mutual = {
        "type": "record",
        "name": "A",
        "fields": [
            {
                "name": "b",
                "type": {
                    "type": "record",
                    "name": "B",
                    "fields": [{"name": "a", "type": {"type": "array", "items": "A"}}],
                },
            }
        ],
    }
    for schema in (NODE_SCHEMA, mutual):
        code, reason = _refusal_of_create(world, json.dumps(schema))
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_SCHEMA")
    assert "TREE" not in _resource_codes(world)


@pytest.mark.parametrize("levels", [schemas.MAX_DEPTH + 1, 5_000])
def test_a_schema_nested_too_deeply_is_invalid_schema_not_internal(
    world: World, levels: int
) -> None:
    nested = '"string"'
    for _ in range(levels - 1):
        nested = f'{{"type": "array", "items": {nested}}}'
    schema = f'{{"type": "record", "name": "Deep", "fields": [{{"name": "id", "type": {nested}}}]}}'
    code, reason = _refusal_of_create(world, schema)
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_SCHEMA")
    assert "TREE" not in _resource_codes(world)


def test_a_schema_at_the_depth_limit_is_registered() -> None:
    nested: Any = "string"
    for _ in range(schemas.MAX_DEPTH - 1):
        nested = {"type": "array", "items": nested}
    parsed = schemas.parse(
        {"type": "record", "name": "Deep", "fields": [{"name": "x", "type": nested}]}
    )
    assert parsed.depth == schemas.MAX_DEPTH
    assert parsed.decodable


def _deep_node_record(levels: int) -> bytes:
    return b"\x00\x02" * levels + b"\x00\x00"  # id "", child: Node ... then null


def test_records_of_a_recursive_schema_registered_before_the_rule_are_refused() -> None:
    stored = schemas.parse(NODE_SCHEMA, stored=True)
    assert stored.depth is None and not stored.decodable

    async def check() -> None:
        await RecordChecker().check("PSB-HUKOU", stored, [_deep_node_record(3)], 8)

    with pytest.raises(InvalidArgument) as refused:
        asyncio.run(check())
    assert refused.value.reason == "RECORD_DECODE_FAILED"


def test_a_deep_record_of_a_recursive_schema_stored_earlier_is_refused_and_serving_goes_on(
    world: World,
) -> None:
    """A deployment upgraded with a recursive schema in its catalog: the record that
    used to kill the gateway is refused, and the gateway answers the next call."""
    world.resource("TREE", "PSB", {**PERSON_SCHEMA, "name": "Tree"})
    gateway = world.gateway.gateway
    assert gateway is not None
    with gateway.catalog.sessions() as session, session.begin():
        row = session.scalars(
            sa.select(SchemaVersion).join(Resource).where(Resource.code == "TREE")
        ).one()
        stored = schemas.parse(NODE_SCHEMA, stored=True)
        row.definition = json.dumps(NODE_SCHEMA)
        row.canonical_form = stored.canonical_form
        row.fingerprint = stored.fingerprint_hex
    publisher = world.systems["PSB-HUKOU"]
    batch = signed_batch(
        publisher.signer,
        "TREE",
        NODE_SCHEMA,
        [_deep_node_record(10_000)],
        fingerprint=stored.fingerprint,
    )
    outcome = publish(world.gateway.target, publisher.token, [batch])
    assert (outcome.code, outcome.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "RECORD_DECODE_FAILED",
    )
    assert "recursive" in outcome.details
    assert world.gateway.stored_batches("TREE") == 0
    assert _resource_codes(world) >= {"RESIDENTS", "TREE"}


def test_a_decoder_crash_ends_a_worker_not_the_gateway() -> None:
    """A record nested 10,000 levels overflows fastavro's C stack (SIGSEGV). Forced
    past the registration rule into a worker, it kills the worker; the batch is
    refused and the next batch is checked by a new worker."""
    stored = schemas.parse(NODE_SCHEMA, stored=True)
    key = schema_key(stored)
    checker = RecordChecker(workers=1, inline_bytes=0)

    async def run() -> Any:
        try:
            deep = [_deep_node_record(10_000)]
            with pytest.raises(InvalidArgument) as refused:
                await checker.run("PSB-HUKOU", check_chunk, key, stored.definition, deep, 0)
            shallow = [_deep_node_record(2)]
            again, _ = await checker.run(
                "PSB-HUKOU", check_chunk, key, stored.definition, shallow, 0
            )
            return refused.value, again
        finally:
            checker.close()

    refusal, verdict = asyncio.run(run())
    assert refusal.reason == "RECORD_DECODE_FAILED"
    assert "checker stopped" in refusal.message
    assert verdict is None


# --- finding 3: exact Avro ------------------------------------------------------------


def _exact_world(world: World) -> World:
    world.resource("PERMITS", "PSB", EXACT_SCHEMA, key_fields=["id_number"])
    return world


def test_the_canonical_encoding_is_what_the_writer_writes(world: World) -> None:
    assert encode(EXACT_SCHEMA, [EXACT_VALUE]) == [_record()]
    _exact_world(world)
    publisher = world.systems["PSB-HUKOU"]
    batch = signed_batch(publisher.signer, "PERMITS", EXACT_SCHEMA, [_record()])
    outcome = publish(world.gateway.target, publisher.token, [batch])
    assert outcome.code is None and len(outcome.acks) == 1


@pytest.mark.parametrize("case", sorted(HOSTILE_PARTS))
def test_avro_that_readers_could_read_differently_is_refused_and_nothing_is_stored(
    world: World, case: str
) -> None:
    _exact_world(world)
    field, hostile = HOSTILE_PARTS[case]
    publisher = world.systems["PSB-HUKOU"]
    records = [_record(), _record(**{field: hostile})]
    batch = signed_batch(publisher.signer, "PERMITS", EXACT_SCHEMA, records)
    outcome = publish(world.gateway.target, publisher.token, [batch])
    assert (outcome.code, outcome.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "RECORD_DECODE_FAILED",
    )
    assert outcome.metadata["record_index"] == "1"
    assert world.gateway.stored_batches("PERMITS") == 0
    assert not entries(world, EntryKind.BATCH)


def test_big_batches_are_checked_exactly_too(world: World) -> None:
    """Past the inline size, records are checked in worker processes, by the same rule."""
    _exact_world(world)
    publisher = world.systems["PSB-HUKOU"]
    big_id = "x" * 100_000
    good = b"".join(
        (_varint(len(big_id)) + big_id.encode()) if name == "id_number" else part
        for name, part in CANONICAL_PARTS.items()
    )
    bad = good.replace(CANONICAL_PARTS["valid"] + CANONICAL_PARTS["rooms"], b"\x02\x02", 1)
    accepted = signed_batch(publisher.signer, "PERMITS", EXACT_SCHEMA, [good, good])
    refused = signed_batch(
        publisher.signer, "PERMITS", EXACT_SCHEMA, [good, good, bad], batch_id="b-2", sequence=2
    )
    outcome = publish(world.gateway.target, publisher.token, [accepted, refused])
    assert len(outcome.acks) == 1
    assert (outcome.reason, outcome.metadata.get("record_index")) == ("RECORD_DECODE_FAILED", "2")
    assert world.gateway.stored_batches("PERMITS") == 1


# --- finding 5: a refusal leaves the sequence bookkeeping as it was --------------------


def _resident_batch(
    signer: Any, batch_id: str, sequence: int, serial: int
) -> exchange_pb2.RecordBatch:
    return signed_batch(
        signer,
        "RESIDENTS",
        PERSON_SCHEMA,
        encode(PERSON_SCHEMA, [person(serial)]),
        batch_id=batch_id,
        sequence=sequence,
    )


def test_a_batch_refused_as_a_reused_id_leaves_the_publishers_sequence_alone(
    world: World,
) -> None:
    publisher = world.systems["PSB-HUKOU"]
    batch = functools.partial(_resident_batch, publisher.signer)

    assert publish(world.gateway.target, publisher.token, [batch("b-1", 1, 1)]).code is None
    reused = publish(world.gateway.target, publisher.token, [batch("b-1", 1000, 2)])
    assert reused.reason == "BATCH_ID_REUSED"
    honest = publish(world.gateway.target, publisher.token, [batch("b-2", 2, 3)])
    assert honest.code is None
    assert entries(world, EntryKind.ANOMALY) == []


# --- finding 13: unknown fields ----------------------------------------------------------


def test_unknown_fields_of_a_batch_are_not_stored(world: World) -> None:
    publisher = world.systems["PSB-HUKOU"]
    clean = signed_batch(
        publisher.signer, "RESIDENTS", PERSON_SCHEMA, encode(PERSON_SCHEMA, [person(1)])
    )
    unknown = _unsigned(1023 << 3 | 2) + _unsigned(100_000) + b"u" * 100_000  # field 1023
    padded = exchange_pb2.RecordBatch.FromString(clean.SerializeToString() + unknown)
    assert len(padded.SerializeToString()) > 100_000
    assert publish(world.gateway.target, publisher.token, [padded]).code is None

    gateway = world.gateway.gateway
    assert gateway is not None
    stored = world.gateway.on_loop(lambda: gateway.log.read_after("RESIDENTS", 0, 10))
    assert [s.payload for s in stored] == [clean.SerializeToString()]


# --- finding 2: a valid worst-case batch does not stall the others ---------------------


def _worst_case_batch(world: World) -> exchange_pb2.RecordBatch:
    schema = {
        "type": "record",
        "name": "Flags",
        "fields": [
            {"name": "id_number", "type": "string"},
            {"name": "flags", "type": {"type": "array", "items": "boolean"}},
        ],
    }
    world.resource("FLAGS", "PSB", schema, region_field="")
    items = 999_936
    record = b"\x021" + _varint(items) + b"\x01" * items + b"\x00"
    assert len(record) <= 1 << 20
    return signed_batch(world.systems["PSB-HUKOU"].signer, "FLAGS", schema, [record] * 31)


def test_a_worst_case_batch_does_not_stall_another_systems_calls(world: World) -> None:
    """31 records of a million booleans each take seconds to check. Meanwhile another
    system's calls, and health checks, go on answering within 100 ms."""
    batch = _worst_case_batch(world)
    publisher = world.systems["PSB-HUKOU"]
    outcome: list[Any] = []
    sender = threading.Thread(
        target=lambda: outcome.append(publish(world.gateway.target, publisher.token, [batch]))
    )
    latencies: list[float] = []
    other = world.systems["CIVIL-AFFAIRS"]
    with open_blocking_channel(world.gateway.target, insecure=True, quiet=True) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        catalog = catalog_pb2_grpc.CatalogServiceStub(channel)
        metadata = (("authorization", f"Bearer {other.token}"),)
        health.Check(health_pb2.HealthCheckRequest())  # the channel is up
        sender.start()
        while sender.is_alive():
            started = time.perf_counter()
            health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            catalog.GetResource(
                pb.GetResourceRequest(code="RESIDENTS"), metadata=metadata, timeout=10
            )
            latencies.append(time.perf_counter() - started)
            time.sleep(0.01)
        sender.join()
    # checked either way; a JetStream log then refuses to store a message that large
    assert (outcome[0].code, outcome[0].reason) in {
        (None, ""),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "BATCH_TOO_LARGE"),
    }, outcome[0].details
    assert len(latencies) >= 10, "the batch was checked too fast to observe"
    within = sum(1 for x in latencies if x < 0.1) / len(latencies)
    slowest = max(latencies)
    # The arrival of a 31 MB message (parsing it, copying it) holds the loop briefly;
    # checking it must not: before, calls waited for the whole batch (seconds).
    assert within >= 0.95, f"only {within:.0%} of the calls answered within 100 ms"
    assert slowest < 1.0, f"a call waited {slowest * 1000:.0f} ms behind the batch"


def test_a_publisher_over_its_checking_cpu_is_told_when_to_retry(tmp_path: Path) -> None:
    running = RunningGateway(
        tmp_path / "gateway",
        rate_limit_check_cpu_per_second=0.000_001,
        rate_limit_check_cpu_burst=0.000_001,
    )
    try:
        world = build_world(running)
        publisher = world.systems["PSB-HUKOU"]
        first = signed_batch(
            publisher.signer, "RESIDENTS", PERSON_SCHEMA, encode(PERSON_SCHEMA, [person(1)])
        )
        second = signed_batch(
            publisher.signer,
            "RESIDENTS",
            PERSON_SCHEMA,
            encode(PERSON_SCHEMA, [person(2)]),
            batch_id="b-2",
            sequence=2,
        )
        assert publish(running.target, publisher.token, [first]).code is None
        refused = publish(running.target, publisher.token, [second])
        assert (refused.code, refused.reason) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "RATE_LIMITED",
        )
        assert "retry_after_ms" in refused.metadata
        assert running.stored_batches("RESIDENTS") == 1
    finally:
        running.stop()


def test_the_checking_limits_are_settings() -> None:
    from exchange.settings import Settings

    loaded = Settings.load(
        env={
            "LIJIAO_RATE_LIMIT_CHECK_CPU_PER_SECOND": "0.5",
            "LIJIAO_RATE_LIMIT_CHECK_CPU_BURST": "3",
            "LIJIAO_RECORD_CHECK_WORKERS": "1",
        }
    )
    assert (
        loaded.rate_limit_check_cpu_per_second,
        loaded.rate_limit_check_cpu_burst,
        loaded.record_check_workers,
    ) == (0.5, 3.0, 1)


def test_where_no_worker_process_may_start_big_batches_are_checked_in_a_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A gateway embedded in a daemonic process (which may not start children) still
    checks big batches, by the same rule, off its event loop."""
    import multiprocessing
    from types import SimpleNamespace

    monkeypatch.setattr(multiprocessing, "current_process", lambda: SimpleNamespace(daemon=True))
    checker = RecordChecker(inline_bytes=0)
    good, bad = _record(), _record(valid=b"\x02")

    async def run() -> None:
        await checker.check("PSB-HUKOU", schemas.parse(EXACT_SCHEMA), [good], len(good))
        await checker.check("PSB-HUKOU", schemas.parse(EXACT_SCHEMA), [good, bad], 2 * len(good))

    with pytest.raises(InvalidArgument) as refused:
        asyncio.run(run())
    assert refused.value.metadata == {"record_index": "1"}
    assert checker._pool is None


def test_a_refused_batch_pipelined_before_honest_ones_leaves_no_sequence_behind(
    world: World,
) -> None:
    """As the SDK sends: several batches on one stream, the refused one first."""
    publisher = world.systems["PSB-HUKOU"]
    batch = functools.partial(_resident_batch, publisher.signer)

    assert publish(world.gateway.target, publisher.token, [batch("b-1", 1, 1)]).code is None
    honest = [batch("b-2", 2, 3), batch("b-3", 3, 4)]
    outcome = publish(world.gateway.target, publisher.token, [batch("b-1", 1000, 2), *honest])
    assert outcome.reason == "BATCH_ID_REUSED"
    resent = publish(world.gateway.target, publisher.token, honest)  # as the SDK resends
    assert resent.code is None and len(resent.acks) == 2
    assert entries(world, EntryKind.ANOMALY) == []


def test_schemas_that_share_a_fingerprint_keep_their_own_decimal_rules() -> None:
    """The canonical form drops logical types: two resources' schemas can share a
    fingerprint and differ in a decimal's precision. One's checks never stand for the
    other's."""

    def with_precision(precision: int) -> schemas.ParsedSchema:
        fee = {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": 2}
        return schemas.parse(
            {"type": "record", "name": "Fee", "fields": [{"name": "fee", "type": fee}]}
        )

    narrow, wide = with_precision(3), with_precision(12)
    assert narrow.fingerprint == wide.fingerprint
    honest = encode(wide.definition, [{"fee": Decimal("1234.56")}])
    for inline in (1 << 20, 0):
        checker = RecordChecker(workers=1, inline_bytes=inline)

        async def run(checker: RecordChecker = checker) -> None:
            try:
                with pytest.raises(InvalidArgument):
                    await checker.check("ATTACKER", narrow, honest, len(honest[0]))
                await checker.check("VICTIM", wide, honest, len(honest[0]))
            finally:
                checker.close()

        asyncio.run(run())


@pytest.mark.parametrize(
    "text",
    [
        "0E984725-C51C-4BF4-9960-E1C80E27ABA0",  # Oracle's SYS_GUID, as many systems print it
        "0e984725c51c4bf49960e1c80e27aba0",
        "{0e984725-c51c-4bf4-9960-e1c80e27aba0}",
        "urn:uuid:0e984725-c51c-4bf4-9960-e1c80e27aba0",
    ],
)
def test_a_uuid_written_in_any_form_a_uuid_reader_reads_is_accepted(text: str) -> None:
    from envelope.avro import ExactReader

    schema = {
        "type": "record",
        "name": "T",
        "fields": [{"name": "id", "type": {"type": "string", "logicalType": "uuid"}}],
    }
    raw = _varint(len(text)) + text.encode()
    assert ExactReader(schema).first_refusal([raw]) is None


def test_a_long_decimal_is_refused_by_its_length_before_it_is_converted() -> None:
    from envelope.avro import ExactReader

    fee = {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 2}
    reader = ExactReader({"type": "record", "name": "Fee", "fields": [{"name": "f", "type": fee}]})
    value = b"\x01" * 60_000
    refusal = reader.first_refusal([_varint(len(value)) + value])
    assert refusal is not None and "38 digits" in refusal.message


def test_delivering_a_worst_case_batch_through_a_projection_does_not_stall_others(
    world: World,
) -> None:
    """A grant of some fields makes the gateway decode, reshape and re-encode every
    record it delivers: a batch of a million booleans a record must not hold the
    event loop while it does (finding 1 and 2, on the delivery side)."""
    from adapters.connection import auth_metadata, open_channel
    from exchange.v1 import exchange_pb2_grpc
    from tests.gateway_harness import log_on_nats
    from tests.wire import RawSubscription

    batch = _worst_case_batch(world)
    if log_on_nats():  # NATS stores messages of at most max_payload (1 MiB here)
        del batch.records[1:]
        batch.signature = world.systems["PSB-HUKOU"].signer.sign(
            __import__("envelope.digest", fromlist=["x"]).digest_of_batch(batch)
        )
    world.grant("FLAGS", "CIVIL-AFFAIRS", fields=["flags"])
    publisher = world.systems["PSB-HUKOU"]
    assert publish(world.gateway.target, publisher.token, [batch]).code is None

    async def receive() -> int:
        channel = open_channel(world.gateway.target, insecure=True, quiet=True)
        try:
            stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
            opening = exchange_pb2.SubscriptionOpen(resource="FLAGS", subscription="slow")
            token = world.systems["CIVIL-AFFAIRS"].token
            stream = RawSubscription(stub, opening, auth_metadata(token))
            async for response in stream.call:
                if response.HasField("batch"):
                    return len(response.batch.records)
            return 0
        finally:
            await channel.close()

    delivered: list[int] = []
    receiver = threading.Thread(target=lambda: delivered.append(asyncio.run(receive())))
    latencies: list[float] = []
    with open_blocking_channel(world.gateway.target, insecure=True, quiet=True) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        health.Check(health_pb2.HealthCheckRequest())
        receiver.start()
        while receiver.is_alive():
            started = time.perf_counter()
            health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            latencies.append(time.perf_counter() - started)
            time.sleep(0.01)
        receiver.join()
    assert delivered == [len(batch.records)]
    assert len(latencies) >= 3, "the batch was delivered too fast to observe"
    within = sum(1 for x in latencies if x < 0.1) / len(latencies)
    assert within >= 0.9, f"only {within:.0%} of the health checks answered within 100 ms"
    assert max(latencies) < 1.0, f"a health check waited {max(latencies) * 1000:.0f} ms"
