"""The bad-input suite: hostile envelopes, records, names and filters against a live gateway.

For every case: the precise status and ErrorInfo reason, nothing stored or changed but
a DENIAL entry in the ledger, and the gateway still serving an honest publisher right
after. Other suites attack other doors: test_mtls.py (certificates: expired, revoked,
another CA), test_security.py (revoked keys, replays, limits), test_publish.py and
test_hostile_input.py (signatures, sizes, malformed protobuf), tests/adapters/test_files.py
(path traversal in file names).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from fastavro import parse_schema, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.connection import auth_metadata, open_blocking_channel
from adapters.errors import error_info
from adapters.files import FileSink
from catalog import ledger
from catalog.ledger import EntryFilter, EntryKind
from catalog.models import Role
from catalog.v1 import approval_pb2 as ap
from catalog.v1 import approval_pb2_grpc, audit_pb2, audit_pb2_grpc
from catalog.v1 import catalog_pb2 as pb
from envelope import schemas
from envelope.digest import digest_of_batch
from exchange.v1 import exchange_pb2
from tests.gateway_harness import RunningGateway
from tests.wire import encode, publish, signed_batch
from tests.world import PERSON_SCHEMA, World, build_world, person

INJECTIONS = (
    "'; DROP TABLE departments; --",
    "x' OR '1'='1",
    '") OR 1=1 --',
    "1; DELETE FROM grants",
    "Robert'); DROP TABLE ledger_entries;--",
    "%' UNION SELECT secret_hash FROM credentials --",
)


@pytest.fixture
def world(gateway: RunningGateway) -> World:
    return build_world(gateway)


def state(world: World) -> tuple[int, int, int]:
    """(stored batches, cursors, ledger entries other than denials)."""
    batches = world.gateway.stored_batches()
    cursors = world.gateway.cursor_count()
    engine = world.gateway.gateway.catalog.sessions.kw["bind"]  # type: ignore[union-attr]
    with engine.connect() as conn:
        others = conn.execute(
            sa.text("SELECT count(*) FROM ledger_entries WHERE kind != 'DENIAL'")
        ).scalar_one()
    return int(batches), int(cursors), int(others)


def denials(world: World) -> int:
    sessions = world.gateway.gateway.catalog.sessions  # type: ignore[union-attr]
    return len(ledger.entries(sessions, EntryFilter(kinds=(EntryKind.DENIAL,)), 100_000))


@contextmanager
def only_a_denial(world: World) -> Iterator[None]:
    """Asserts the block changed nothing but added denial entries, and that the
    gateway then still serves an honest publisher."""
    before, denied = state(world), denials(world)
    yield
    assert state(world) == before
    assert denials(world) > denied
    honest = world.systems["PSB-HUKOU"]
    check = signed_batch(
        honest.signer,
        "RESIDENTS",
        PERSON_SCHEMA,
        encode(PERSON_SCHEMA, [person(99)]),
        batch_id=f"honest-{denials(world)}",
    )
    assert publish(world.gateway.target, honest.token, [check]).code is None


def send(world: World, build: Callable[[Any], Any]) -> Any:
    publisher = world.systems["PSB-HUKOU"]
    b = signed_batch(
        publisher.signer,
        "RESIDENTS",
        PERSON_SCHEMA,
        encode(PERSON_SCHEMA, [person(1)]),
        batch_id="hostile",
    )
    b = build(b) or b
    return publish(world.gateway.target, publisher.token, [b])


def resigned(world: World, b: Any) -> Any:
    signer = world.systems["PSB-HUKOU"].signer
    b.signature = signer.sign(digest_of_batch(b))
    return b


OTHER_SCHEMA = {
    "type": "record",
    "name": "Licence",
    "fields": [
        {"name": "licence_no", "type": "long"},
        {"name": "capital", "type": "double"},
    ],
}


def _avro(schema: Any, row: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, parse_schema(schema), row)
    return out.getvalue()


@pytest.mark.parametrize(
    ("case", "mutate", "code", "reason"),
    [
        (
            "truncated Avro",
            lambda w, b: b.records.__setitem__(0, b.records[0][:-3]),
            "INVALID_ARGUMENT",
            "RECORD_DECODE_FAILED",
        ),
        (
            "garbage Avro",
            lambda w, b: b.records.__setitem__(0, b"\xff\x00\xfe\x81\x80\x80\x80\x80\x80\x01"),
            "INVALID_ARGUMENT",
            "RECORD_DECODE_FAILED",
        ),
        (
            "a record of another schema under this schema's fingerprint",
            lambda w, b: b.records.__setitem__(
                0, _avro(OTHER_SCHEMA, {"licence_no": 7, "capital": 1e6})
            ),
            "INVALID_ARGUMENT",
            "RECORD_DECODE_FAILED",
        ),
        (
            "an unregistered fingerprint",
            lambda w, b: setattr(b, "schema_fingerprint", b"\x01" * 8),
            "FAILED_PRECONDITION",
            "UNKNOWN_SCHEMA",
        ),
        (
            "another resource's fingerprint",
            lambda w, b: setattr(b, "schema_fingerprint", schemas.parse(OTHER_SCHEMA).fingerprint),
            "FAILED_PRECONDITION",
            "UNKNOWN_SCHEMA",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and " " in v else "",
)
def test_bad_records_and_fingerprints_are_refused_and_change_nothing(
    world: World, case: str, mutate: Any, code: str, reason: str
) -> None:
    with only_a_denial(world):
        outcome = send(world, lambda b: resigned(world, mutate(world, b) or b))
    assert (outcome.code.name, outcome.reason) == (code, reason), case


def test_a_forged_signature_and_another_systems_key_change_nothing(world: World) -> None:
    civil = world.systems["CIVIL-AFFAIRS"]
    with only_a_denial(world):
        outcome = send(world, lambda b: setattr(b, "signature", bytes(64)))
    assert outcome.reason == "BAD_SIGNATURE"
    with only_a_denial(world):

        def theirs(b: Any) -> Any:
            b.signing_key_id = civil.signer.key_id
            b.signature = civil.signer.sign(digest_of_batch(b))
            return b

        outcome = send(world, theirs)
    assert (outcome.code, outcome.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "UNKNOWN_SIGNING_KEY",
    )


def test_an_oversized_message_is_refused_by_grpc_and_serving_goes_on(tmp_path: Path) -> None:
    gateway = RunningGateway(tmp_path / "gw", max_message_bytes=64 << 10)
    try:
        small = build_world(gateway)
        with _no_change(small):
            publisher = small.systems["PSB-HUKOU"]
            huge = signed_batch(
                publisher.signer,
                "RESIDENTS",
                PERSON_SCHEMA,
                encode(PERSON_SCHEMA, [person(i) for i in range(3000)]),
            )
            outcome = publish(gateway.target, publisher.token, [huge])
            assert outcome.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        honest = signed_batch(
            publisher.signer,
            "RESIDENTS",
            PERSON_SCHEMA,
            encode(PERSON_SCHEMA, [person(1)]),
            batch_id="after",
        )
        assert publish(gateway.target, publisher.token, [honest]).code is None
    finally:
        gateway.stop()


@contextmanager
def _no_change(world: World) -> Iterator[None]:
    """gRPC refuses an oversized message before any servicer runs: no state at all."""
    before = state(world)
    yield
    assert state(world) == before


@pytest.mark.parametrize("text", INJECTIONS)
def test_sql_injection_in_catalog_texts_is_stored_verbatim_or_refused(
    world: World, text: str
) -> None:
    # a code must be a code
    with pytest.raises(grpc.RpcError) as raised:
        world.stub.CreateDepartment(
            pb.CreateDepartmentRequest(
                department=pb.Department(code=text, name="x", level=1, region_code="510100")
            ),
            metadata=world.admin(),
        )
    assert error_info(raised.value)[0] == "INVALID_FIELD"
    # a name is only text: stored as given, harming nothing
    created = world.stub.CreateDepartment(
        pb.CreateDepartmentRequest(
            department=pb.Department(code="EVIL", name=text, level=1, region_code="510100")
        ),
        metadata=world.admin(),
    )
    assert created.department.name == text
    listed = world.stub.ListDepartments(pb.ListDepartmentsRequest(), metadata=world.admin())
    assert {d.code for d in listed.departments} == {"PSB", "CIVIL", "EVIL"}


@pytest.mark.parametrize("text", INJECTIONS)
def test_sql_injection_in_every_list_filter_matches_nothing(world: World, text: str) -> None:
    admin = world.admin()
    assert not world.stub.ListSystems(
        pb.ListSystemsRequest(department=text), metadata=admin
    ).systems
    assert not world.stub.ListGrants(pb.ListGrantsRequest(resource=text), metadata=admin).grants
    assert not world.stub.ListGrants(
        pb.ListGrantsRequest(grantee_system=text), metadata=admin
    ).grants
    assert not world.stub.ListResources(
        pb.ListResourcesRequest(owner_department=text), metadata=admin
    ).resources
    auditor = world.gateway.issue_token("shen", Role.AUDITOR)
    with open_blocking_channel(world.gateway.target, insecure=True, quiet=True) as channel:
        approvals = approval_pb2_grpc.ApprovalServiceStub(channel)
        requests = approvals.ListAccessRequests(
            ap.ListAccessRequestsRequest(resource=text, requesting_department=text),
            metadata=admin,
        )
        assert not requests.requests
        audit = audit_pb2_grpc.AuditServiceStub(channel)
        for field in ("department", "system", "resource", "grant_id", "subject"):
            found = audit.ListLedgerEntries(
                audit_pb2.ListLedgerEntriesRequest(filter=audit_pb2.LedgerFilter(**{field: text})),
                metadata=auth_metadata(auditor),
            )
            assert not found.entries, field
    # and the tables are all still there
    assert (
        len(world.stub.ListDepartments(pb.ListDepartmentsRequest(), metadata=admin).departments)
        == 2
    )


def test_a_sink_file_name_never_escapes_its_folder_whatever_the_batch_id(tmp_path: Path) -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "id", "type": "long"}]}

    @settings(max_examples=60, deadline=None)
    @given(batch_id=st.text(min_size=1, max_size=128))
    def check(batch_id: str) -> None:
        out = tmp_path / "out"
        out.mkdir(exist_ok=True)
        sink = FileSink({"folder": str(out), "format": "jsonl"})
        asyncio.run(sink.write(schema, ["id"], [{"id": 1}], batch_id))
        for path in tmp_path.rglob("*"):
            assert path == out or path.parent == out, path

    check()


# Hypothesis-made envelopes: whatever comes, a precise refusal or an acknowledgement.
_ENVELOPES = st.builds(
    lambda resource, fingerprint, batch_id, sequence, records, key_id, signature, seconds: (
        exchange_pb2.RecordBatch(
            resource=resource,
            schema_fingerprint=fingerprint,
            batch_id=batch_id,
            sequence=sequence,
            records=records,
            signing_key_id=key_id,
            signature=signature,
            create_time={"seconds": seconds},
        )
    ),
    resource=st.sampled_from(["RESIDENTS", "", "NOPE", "RESIDENTS\x00"]),
    fingerprint=st.binary(max_size=12),
    batch_id=st.text(max_size=140),
    sequence=st.integers(0, 2**64 - 1),
    records=st.lists(st.binary(max_size=64), max_size=4),
    key_id=st.text(max_size=20),
    signature=st.binary(max_size=70),
    seconds=st.integers(-(2**40), 2**40),
)


def test_hypothesis_envelopes_get_a_precise_answer_and_never_crash_the_gateway(
    world: World,
) -> None:
    publisher = world.systems["PSB-HUKOU"]
    before = state(world)

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(batch=_ENVELOPES)
    def check(batch: exchange_pb2.RecordBatch) -> None:
        outcome = publish(world.gateway.target, publisher.token, [batch])
        assert outcome.code is not None  # unsigned junk is never accepted
        assert outcome.code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
        assert outcome.reason, f"{outcome.code} without an ErrorInfo reason"

    check()
    assert state(world) == before


def test_hypothesis_records_signed_correctly_are_decoded_or_refused_precisely(
    world: World,
) -> None:
    publisher = world.systems["PSB-HUKOU"]
    fingerprint = schemas.parse(PERSON_SCHEMA).fingerprint

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(records=st.lists(st.binary(min_size=0, max_size=80), min_size=1, max_size=3))
    def check(records: list[bytes]) -> None:
        batch = signed_batch(
            publisher.signer,
            "RESIDENTS",
            PERSON_SCHEMA,
            records,
            batch_id=f"h-{hash(tuple(records)) & 0xFFFFFFFF:x}",
            fingerprint=fingerprint,
        )
        outcome = publish(world.gateway.target, publisher.token, [batch])
        if outcome.code is not None:
            assert (outcome.code, outcome.reason) in {
                (grpc.StatusCode.INVALID_ARGUMENT, "RECORD_DECODE_FAILED"),
                (grpc.StatusCode.ALREADY_EXISTS, "BATCH_ID_REUSED"),
            }, (outcome.code, outcome.reason, outcome.details)

    check()
    honest = signed_batch(
        publisher.signer,
        "RESIDENTS",
        PERSON_SCHEMA,
        encode(PERSON_SCHEMA, [person(1)]),
        batch_id="after-hypothesis",
    )
    assert publish(world.gateway.target, publisher.token, [honest]).code is None


def test_a_nul_character_in_any_text_field_is_refused_precisely(world: World) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        world.stub.GetResource(pb.GetResourceRequest(code="RESIDENTS\x00"), metadata=world.admin())
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(raised.value) == ("INVALID_FIELD", {"field": "code"})
    with only_a_denial(world):
        outcome = send(world, lambda b: setattr(b, "batch_id", "evil\x00id"))
    assert (outcome.reason, outcome.metadata.get("field")) == ("INVALID_FIELD", "batch_id")
