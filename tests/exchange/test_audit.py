"""The audit trail of a real gateway: what it records, and the auditor's API and CLI."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fastavro import reader
from prometheus_client import REGISTRY

from adapters.connection import auth_metadata, open_blocking_channel
from adapters.errors import error_info
from adapters.subscriber import ReceivedBatch, Subscriber
from catalog import ledger, ledger_files
from catalog.models import Role
from catalog.v1 import audit_pb2 as pb
from catalog.v1 import audit_pb2_grpc
from envelope import digest as envelope
from exchange.cli import main
from exchange.log import NewBatch, open_log
from tests.exchange.test_subscribe import publish_batches, receive
from tests.gateway_harness import RunningGateway
from tests.wire import encode, publish, signed_batch
from tests.world import PERSON_SCHEMA, World, build_world, person


@pytest.fixture
def world(gateway: RunningGateway) -> World:
    return build_world(gateway)


class Auditor:
    """An auditor's client of the AuditService."""

    def __init__(self, gateway: RunningGateway) -> None:
        self.token = gateway.issue_token("shen", Role.AUDITOR)
        self.channel = open_blocking_channel(gateway.target, insecure=True, quiet=True)
        self.stub = audit_pb2_grpc.AuditServiceStub(self.channel)
        self.metadata = auth_metadata(self.token)
        self.gateway = gateway

    def call(self, method: str, request: Any) -> Any:
        return getattr(self.stub, method)(request, metadata=self.metadata, timeout=30)

    def entries(self, **filters: Any) -> list[pb.LedgerEntry]:
        request = pb.ListLedgerEntriesRequest(filter=pb.LedgerFilter(**filters), page_size=1000)
        return list(self.call("ListLedgerEntries", request).entries)

    def wait_for(self, count: int, **filters: Any) -> list[pb.LedgerEntry]:
        """Deliveries are recorded just after their acknowledgement: wait for them."""
        deadline = time.monotonic() + 20
        while True:
            found = self.entries(**filters)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


@pytest.fixture
def auditor(gateway: RunningGateway) -> Iterator[Auditor]:
    made = Auditor(gateway)
    yield made
    made.channel.close()


def raw_sql(world: World, statement: str, **params: Any) -> None:
    """Tampers with the catalog database behind the gateway's back (SQLite or PostgreSQL)."""
    engine = world.gateway.gateway.catalog.sessions.kw["bind"]  # type: ignore[union-attr]
    with engine.begin() as conn:
        conn.execute(sa.text(statement), params)


DELIVERY = pb.LEDGER_ENTRY_KIND_DELIVERY
BATCH = pb.LEDGER_ENTRY_KIND_BATCH
DENIAL = pb.LEDGER_ENTRY_KIND_DENIAL


def test_a_trace_shows_the_batch_and_every_delivery(world: World, auditor: Auditor) -> None:
    world.system("CIVIL-AID", "CIVIL")
    world.grant("RESIDENTS", "CIVIL-AID", fields=["id_number", "name", "region_code"])
    publish_batches(world, 1, per_batch=3)
    first = receive(world, "CIVIL-AFFAIRS", until=3)
    second = receive(world, "CIVIL-AID", until=3)
    auditor.wait_for(2, kinds=[DELIVERY])

    trace = auditor.call("TraceBatch", pb.TraceBatchRequest(batch_id="b-510104-0"))
    assert len(trace.stored) == 1
    stored = trace.stored[0]
    assert (stored.system, stored.resource, stored.provider) == ("PSB-HUKOU", "RESIDENTS", "PSB")
    assert stored.operation.records == 3 and stored.operation.outcome == "STORED"
    assert stored.operation.receive_time.seconds and stored.operation.store_time.seconds
    details = json.loads(stored.content)["details"]
    assert details["provider_signature"] == first[0].raw.provider_signature.hex()
    assert details["provider_digest"] == first[0].raw.provider_digest.hex()

    by_system = {d.system: d for d in trace.deliveries}
    assert set(by_system) == {"CIVIL-AFFAIRS", "CIVIL-AID"}
    for got in (first[0], second[0]):
        entry = by_system[got.raw.subscriber_system]
        body = json.loads(entry.content)["details"]
        assert body["gateway_signature"] == got.raw.gateway_signature.hex()
        assert body["delivered_digest"] == envelope.digest_of_delivery(got.raw).hex()
        assert entry.grant_id == got.raw.grant_id
        assert entry.operation.client_department == "CIVIL"
        assert entry.operation.provider_system == "PSB-HUKOU"
        assert (
            entry.operation.ack_time.ToNanoseconds() >= entry.operation.deliver_time.ToNanoseconds()
        )
        assert entry.operation.outcome == "DELIVERED"
    # the narrower grant delivered fewer bytes of the same three records
    assert by_system["CIVIL-AID"].operation.records == 3
    assert by_system["CIVIL-AID"].operation.bytes < by_system["CIVIL-AFFAIRS"].operation.bytes


def test_refusals_are_denial_entries_and_change_nothing_else(
    world: World, auditor: Auditor
) -> None:
    before = auditor.entries()
    publisher = world.systems["PSB-HUKOU"]
    forged = signed_batch(
        world.systems["CIVIL-AFFAIRS"].signer,
        "RESIDENTS",
        PERSON_SCHEMA,
        encode(PERSON_SCHEMA, [person(1)]),
        batch_id="forged-1",
    )
    forged.signing_key_id = publisher.signer.key_id
    failures_before = (
        REGISTRY.get_sample_value("lijiao_signature_failures_total", {"department": "PSB"}) or 0.0
    )
    outcome = publish(world.gateway.target, publisher.token, [forged])
    assert outcome.reason == "BAD_SIGNATURE"
    assert (
        REGISTRY.get_sample_value("lijiao_signature_failures_total", {"department": "PSB"})
        == failures_before + 1
    )
    after = auditor.entries()
    assert len(after) == len(before) + 1
    denial = after[-1]
    assert denial.kind == DENIAL and denial.action == "call.refused"
    assert (denial.principal, denial.system, denial.department) == ("PSB-HUKOU", "PSB-HUKOU", "PSB")
    assert (denial.subject, denial.resource) == ("forged-1", "RESIDENTS")
    assert denial.operation.outcome == "REFUSED"
    assert denial.operation.fault_reason == "BAD_SIGNATURE"
    assert json.loads(denial.content)["details"]["rpc"] == "/exchange.v1.ExchangeService/Publish"
    trace = auditor.call("TraceBatch", pb.TraceBatchRequest(batch_id="forged-1"))
    assert (len(trace.stored), len(trace.refusals)) == (0, 1)


def test_an_unauthenticated_call_is_recorded_as_anonymous(world: World, auditor: Auditor) -> None:
    outcome = publish(world.gateway.target, "lj_nobody_nothing", [])
    assert outcome.reason == "UNAUTHENTICATED"
    denial = auditor.entries(kinds=[DENIAL])[-1]
    assert denial.principal == "anonymous"
    assert json.loads(denial.content)["details"]["peer"].startswith("ipv4:127.0.0.1")


@pytest.mark.parametrize(
    ("name", "role", "department", "system"),
    [
        ("admin2", Role.ADMINISTRATOR, None, None),
        ("wang", Role.DATA_OFFICER, "PSB", None),
        ("zhao", Role.PLATFORM_OFFICER, "PSB", None),
        ("sys", Role.SYSTEM, "PSB", "PSB-HUKOU"),
    ],
)
def test_only_auditors_may_read_the_ledger(
    world: World,
    auditor: Auditor,
    name: str,
    role: Role,
    department: str | None,
    system: str | None,
) -> None:
    token = world.gateway.issue_token(name, role, department=department, system=system)
    denials = len(auditor.entries(kinds=[DENIAL]))
    for method, request in (
        ("ListLedgerEntries", pb.ListLedgerEntriesRequest()),
        ("TraceBatch", pb.TraceBatchRequest(batch_id="b")),
        ("SummarizeExchanges", pb.SummarizeExchangesRequest()),
        ("VerifyLedger", pb.VerifyLedgerRequest()),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            getattr(auditor.stub, method)(request, metadata=auth_metadata(token), timeout=10)
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_info(raised.value)[0] == "ROLE_NOT_ALLOWED"
    with pytest.raises(grpc.RpcError) as raised:
        list(auditor.stub.ExportLedger(pb.ExportLedgerRequest(), metadata=auth_metadata(token)))
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    refusals = auditor.entries(kinds=[DENIAL])[denials:]
    # a burst of the same refusal is one entry a second, with its count
    assert sum(json.loads(r.content)["details"]["count"] for r in refusals) <= 5
    assert refusals and {r.system for r in refusals} == {system or ""}


def test_listing_filters_and_pages(world: World, auditor: Auditor) -> None:
    publish_batches(world, 5)
    batches = auditor.entries(kinds=[BATCH])
    assert [b.subject for b in batches] == [f"b-510104-{i}" for i in range(5)]
    grants = auditor.entries(kinds=[pb.LEDGER_ENTRY_KIND_GRANT], department="CIVIL")
    assert [g.action for g in grants] == ["grant.created"]
    assert grants[0].principal == "admin"
    assert auditor.entries(resource="RESIDENTS", kinds=[BATCH], system="CIVIL-AFFAIRS") == []
    seen: list[int] = []
    request = pb.ListLedgerEntriesRequest(page_size=3)
    while True:
        page = auditor.call("ListLedgerEntries", request)
        seen += [e.sequence for e in page.entries]
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    assert seen == list(range(1, len(seen) + 1)) and len(seen) > 6
    with pytest.raises(grpc.RpcError) as raised:
        auditor.call("ListLedgerEntries", pb.ListLedgerEntriesRequest(page_token="garbage!"))
    assert error_info(raised.value)[0] == "INVALID_PAGE_TOKEN"


def test_summary_totals_records_per_department_pair_and_day(world: World, auditor: Auditor) -> None:
    publish_batches(world, 4, per_batch=5)
    receive(world, "CIVIL-AFFAIRS", until=20)
    auditor.wait_for(4, kinds=[DELIVERY])
    totals = auditor.call("SummarizeExchanges", pb.SummarizeExchangesRequest()).totals
    assert len(totals) == 1
    total = totals[0]
    assert (total.provider_department, total.receiving_department) == ("PSB", "CIVIL")
    assert (total.batches, total.records) == (4, 20) and total.bytes > 0
    with pytest.raises(grpc.RpcError) as raised:
        auditor.call("SummarizeExchanges", pb.SummarizeExchangesRequest(time_zone="Mars/Base"))
    assert error_info(raised.value)[0] == "INVALID_FIELD"


def test_export_round_trips_in_avro_and_json_lines(world: World, auditor: Auditor) -> None:
    publish_batches(world, 3)
    listed = auditor.entries()
    chunks = auditor.stub.ExportLedger(
        pb.ExportLedgerRequest(format=pb.EXPORT_FORMAT_AVRO), metadata=auditor.metadata
    )
    data = b"".join(c.chunk for c in chunks)
    records = list(reader(io.BytesIO(data)))
    assert [r["sequence"] for r in records] == [e.sequence for e in listed]
    assert [r["hash"] for r in records] == [e.hash for e in listed]
    assert ledger_files.verify_records(records) == (len(listed), "")
    lines = (
        b"".join(
            c.chunk
            for c in auditor.stub.ExportLedger(
                pb.ExportLedgerRequest(
                    format=pb.EXPORT_FORMAT_JSONL,
                    filter=pb.LedgerFilter(kinds=[BATCH]),
                ),
                metadata=auditor.metadata,
            )
        )
        .decode()
        .splitlines()
    )
    assert [json.loads(line)["subject"] for line in lines] == [f"b-510104-{i}" for i in range(3)]


def test_verify_passes_then_pinpoints_raw_tampering(world: World, auditor: Auditor) -> None:
    publish_batches(world, 3)
    world.gateway.gateway.audit.checkpoint()  # type: ignore[union-attr]
    result = auditor.call("VerifyLedger", pb.VerifyLedgerRequest())
    assert result.ok and result.checkpoints >= 1 and result.last_checkpoint == result.last_sequence
    assert list(result.trusted_key_ids) == [world.gateway.gateway.signer.key_id]  # type: ignore[union-attr]
    assert REGISTRY.get_sample_value("lijiao_ledger_verification_ok") == 1
    target = auditor.entries(kinds=[BATCH])[1].sequence
    raw_sql(
        world,
        "UPDATE ledger_entries SET content = replace(content, 'PSB-HUKOU', 'PSB-HUK0U') "
        "WHERE sequence = :target",
        target=target,
    )
    result = auditor.call("VerifyLedger", pb.VerifyLedgerRequest())
    assert (result.ok, result.problem, result.broken_sequence) == (False, "MODIFIED", target)
    assert result.verified_through == target - 1
    assert REGISTRY.get_sample_value("lijiao_ledger_verification_ok") == 0


def test_the_cli_answers_an_auditors_questions(
    world: World, auditor: Auditor, tmp_path: Any
) -> None:
    publish_batches(world, 2)
    receive(world, "CIVIL-AFFAIRS", until=4)
    auditor.wait_for(2, kinds=[DELIVERY])
    env = {
        "LIJIAO_GATEWAY": world.gateway.target,
        "LIJIAO_TOKEN": auditor.token,
        "LIJIAO_INSECURE": "1",
    }
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(main, ["audit", *args], env=env, catch_exceptions=False)

    listed = run("list", "--kind", "batch")
    assert listed.exit_code == 0, listed.output
    assert "b-510104-0" in listed.output and "b-510104-1" in listed.output
    traced = run("trace", "b-510104-1")
    assert traced.exit_code == 0 and "deliveries: 1" in traced.output
    assert "CIVIL-AFFAIRS" in traced.output
    summary = run("summary")
    assert summary.exit_code == 0 and "PSB" in summary.output and "CIVIL" in summary.output
    out = tmp_path / "ledger.avro"
    exported = run("export", "--output", str(out))
    assert exported.exit_code == 0 and "exported" in exported.output
    assert run("verify", "--archive", str(out)).output.startswith("OK:")
    verified = run("verify")
    assert verified.exit_code == 0 and verified.output.startswith("OK:")
    as_json = json.loads(run("verify", "--json").stdout)
    assert as_json["ok"] is True
    bad = run("list", "--since", "yesterday")
    assert bad.exit_code == 2 and "write a date or time" in bad.output
    stranger = runner.invoke(
        main, ["audit", "verify"], env={**env, "LIJIAO_TOKEN": world.gateway.admin_token}
    )
    assert stranger.exit_code == 1 and "ROLE_NOT_ALLOWED" in stranger.output


def test_dead_letters_reported_in_acks_are_counted_and_recorded(
    world: World, auditor: Auditor
) -> None:
    publish_batches(world, 1, per_batch=4)
    before = (
        REGISTRY.get_sample_value(
            "lijiao_dead_letter_records_total", {"department": "CIVIL", "resource": "RESIDENTS"}
        )
        or 0.0
    )

    async def run() -> None:
        subscriber = Subscriber(
            world.gateway.target, world.systems["CIVIL-AFFAIRS"].token, "RESIDENTS", insecure=True
        )

        def handle(batch: ReceivedBatch) -> int:
            subscriber.stop()
            return 2  # two of the four rows did not fit the department's system

        try:
            await asyncio.wait_for(subscriber.run(handle), 20)
        finally:
            await subscriber.close()

    asyncio.run(run())
    delivered = auditor.wait_for(1, kinds=[DELIVERY])
    assert json.loads(delivered[0].content)["details"]["dead_lettered_records"] == 2
    assert (
        REGISTRY.get_sample_value(
            "lijiao_dead_letter_records_total", {"department": "CIVIL", "resource": "RESIDENTS"}
        )
        == before + 2
    )


def test_a_stored_batch_missing_from_the_ledger_is_recorded_at_start(
    world: World, auditor: Auditor
) -> None:
    publish_batches(world, 1)
    gateway = world.gateway
    gateway.stop()
    # a crash between the log's commit and the ledger's: the log has a batch the ledger lacks
    batch = signed_batch(
        world.systems["PSB-HUKOU"].signer,
        "RESIDENTS",
        PERSON_SCHEMA,
        encode(PERSON_SCHEMA, [person(7)]),
        batch_id="crashed-1",
    )

    async def append() -> None:
        log = await open_log(gateway.settings.log_url, gateway.settings.log_path)
        await log.append(
            NewBatch(
                "RESIDENTS",
                "crashed-1",
                "PSB-HUKOU",
                0,
                batch.schema_fingerprint,
                envelope.digest_of_batch(batch),
                1,
                len(batch.records[0]),
                time.time_ns(),
                batch.SerializeToString(),
            )
        )
        await log.close()

    asyncio.run(append())
    gateway.start()
    # on a log shared by replicas the newest batches are looked at once they settle
    deadline = time.monotonic() + 30
    while not (recovered := auditor.entries(kinds=[BATCH], subject="crashed-1")):
        assert time.monotonic() < deadline, "the stored batch never reached the ledger"
        time.sleep(0.5)
    assert len(recovered) == 1
    assert json.loads(recovered[0].content)["details"]["recovered"] is True
    assert auditor.call("VerifyLedger", pb.VerifyLedgerRequest()).ok
    gateway.restart()  # nothing is recorded twice
    assert len(auditor.entries(kinds=[BATCH])) == 2


def test_a_stop_signs_a_checkpoint_of_the_head(world: World) -> None:
    publish_batches(world, 1)
    world.gateway.restart()
    sessions = world.gateway.gateway.catalog.sessions  # type: ignore[union-attr]
    head, _ = ledger.head(sessions)
    assert ledger.last_checkpoint(sessions).sequence == head


def test_the_gateway_will_not_sign_over_a_rewritten_ledger(world: World, auditor: Auditor) -> None:
    from exchange.audit.tasks import LedgerTampered

    publish_batches(world, 2)
    audit = world.gateway.gateway.audit  # type: ignore[union-attr]
    signed = audit.checkpoint()
    assert audit.witness() is not None and audit.witness()[0] == signed  # type: ignore[index]
    raw_sql(world, "DELETE FROM ledger_checkpoints")
    raw_sql(
        world,
        "UPDATE ledger_entries SET hash = :zero WHERE sequence = :n",
        zero=bytes(32),
        n=signed,
    )
    publish_batches(world, 1, start=5)
    with pytest.raises(LedgerTampered):
        audit.checkpoint()
    result = auditor.call("VerifyLedger", pb.VerifyLedgerRequest())
    assert not result.ok


def test_a_batch_stored_but_not_recorded_is_recorded_when_it_is_sent_again(
    world: World, auditor: Auditor
) -> None:
    """The ledger commit fails after the log's: the publisher gets INTERNAL and resends;
    the duplicate is recorded before it is acknowledged."""
    writer = world.gateway.gateway.ledger  # type: ignore[union-attr]
    original = writer.record
    failures = []

    async def failing_once(entries: Any) -> int:
        if not failures:
            failures.append(1)
            raise OSError("disk full")
        return await original(entries)

    writer.record = failing_once  # type: ignore[method-assign]
    publisher = world.systems["PSB-HUKOU"]
    batch = signed_batch(
        publisher.signer,
        "RESIDENTS",
        PERSON_SCHEMA,
        encode(PERSON_SCHEMA, [person(1)]),
        batch_id="unlucky",
    )
    first = publish(world.gateway.target, publisher.token, [batch])
    assert first.code == grpc.StatusCode.INTERNAL
    assert auditor.entries(kinds=[BATCH], subject="unlucky") == []
    again = publish(world.gateway.target, publisher.token, [batch])
    assert again.code is None and again.acks[0].duplicate
    recorded = auditor.entries(kinds=[BATCH], subject="unlucky")
    assert len(recorded) == 1 and json.loads(recorded[0].content)["details"]["recovered"]
    publish(world.gateway.target, publisher.token, [batch])  # recorded once, not twice
    assert len(auditor.entries(kinds=[BATCH], subject="unlucky")) == 1
