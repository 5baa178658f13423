"""The sharing workflow on the wire (ApprovalService), and what its grants deliver.

A real gateway on a loopback port: requests, reviews and decisions over gRPC with their
ErrorInfo reasons; deliveries that carry only what the grant allows (fields, region,
masks); a revocation that ends an open stream; proactive backflow; workflow gauges.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import update

from adapters.connection import auth_metadata, open_blocking_channel
from adapters.errors import GatewayRefusal, error_info
from adapters.subscriber import ReceivedBatch, Subscriber
from catalog.db import open_catalog
from catalog.models import AccessRequest, Role, utcnow
from catalog.v1 import approval_pb2 as apb
from catalog.v1 import approval_pb2_grpc, catalog_pb2_grpc
from catalog.v1 import catalog_pb2 as pb
from tests.gateway_harness import RunningGateway
from tests.wire import encode, publish, signed_batch
from tests.world import PERSON_SCHEMA, World, person

SENSITIVE = [
    pb.FieldSpec(name="id_number", description="citizen ID", sensitivity=pb.SENSITIVITY_ID_NUMBER),
    pb.FieldSpec(name="name", description="name", sensitivity=pb.SENSITIVITY_NAME),
    pb.FieldSpec(name="phone", description="mobile", sensitivity=pb.SENSITIVITY_PHONE),
    pb.FieldSpec(name="region_code", description="行政区划代码", sensitivity=pb.SENSITIVITY_NONE),
]
OFFICERS = {
    "wang": (Role.DATA_OFFICER, "PSB"),
    "li": (Role.DATA_OFFICER, "CIVIL"),
    "zhao": (Role.PLATFORM_OFFICER, "BIGDATA"),
    "sun": (Role.PLATFORM_OFFICER, "CIVIL"),
    "qian": (Role.AUDITOR, None),
}


@dataclass
class City:
    """A gateway with PSB (owner), CIVIL, two districts, officers and ApprovalService."""

    world: World
    approvals: approval_pb2_grpc.ApprovalServiceStub
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def gateway(self) -> RunningGateway:
        return self.world.gateway

    def who(self, name: str) -> tuple[tuple[str, str], ...]:
        """Call metadata of an officer ("wang") or a system ("CIVIL-AFFAIRS")."""
        if name in self.world.systems:
            return auth_metadata(self.world.systems[name].token)
        return auth_metadata(self.tokens[name])


@pytest.fixture
def city(gateway: RunningGateway) -> City:
    channel = open_blocking_channel(gateway.target, insecure=True, quiet=True)
    world = World(gateway, catalog_pb2_grpc.CatalogServiceStub(channel))
    for code in ("PSB", "CIVIL", "BIGDATA"):
        world.department(code)
    world.department("JINJIANG", level=pb.ADMINISTRATIVE_LEVEL_DISTRICT, region="510104")
    world.department("WUHOU", level=pb.ADMINISTRATIVE_LEVEL_DISTRICT, region="510107")
    for system, department in (
        ("PSB-HUKOU", "PSB"),
        ("CIVIL-AFFAIRS", "CIVIL"),
        ("JINJIANG-GRID", "JINJIANG"),
        ("WUHOU-GRID", "WUHOU"),
    ):
        world.system(system, department)
    world.resource("RESIDENTS", "PSB", fields=SENSITIVE)
    city = City(world, approval_pb2_grpc.ApprovalServiceStub(channel))
    for name, (role, of) in OFFICERS.items():
        city.tokens[name] = gateway.issue_token(name, role, department=of)
    return city


# --- helpers ----------------------------------------------------------------------------


def refused(call: Callable[..., Any], request: Any, who: tuple[tuple[str, str], ...]) -> Any:
    """Makes a call that must fail; returns (status code, ErrorInfo reason)."""
    with pytest.raises(grpc.RpcError) as error:
        call(request, metadata=who, timeout=10)
    return error.value.code(), error_info(error.value)[0]  # type: ignore[attr-defined]


def submit(
    city: City,
    system: str = "CIVIL-AFFAIRS",
    fields: tuple[str, ...] = ("id_number", "name", "phone", "region_code"),
    days: int = 30,
    resource: str = "RESIDENTS",
) -> apb.AccessRequest:
    response = city.approvals.SubmitAccessRequest(
        apb.SubmitAccessRequestRequest(
            resource=resource,
            fields=list(fields),
            purpose="最低生活保障 eligibility checks",
            legal_basis="《社会救助暂行办法》第十一条",
            duration_days=days,
        ),
        metadata=city.who(system),
        timeout=10,
    )
    request: apb.AccessRequest = response.request
    return request


def submit_backflow(city: City, system: str = "JINJIANG-GRID") -> apb.AccessRequest:
    response = city.approvals.SubmitBackflowRequest(
        apb.SubmitBackflowRequestRequest(
            resource="RESIDENTS",
            fields=["id_number", "name", "phone"],
            purpose="grid management",
            legal_basis="《政务数据共享条例》",
            duration_days=365,
        ),
        metadata=city.who(system),
        timeout=10,
    )
    request: apb.AccessRequest = response.request
    return request


def review(city: City, request_id: str) -> apb.AccessRequest:
    response = city.approvals.ReviewAccessRequest(
        apb.ReviewAccessRequestRequest(id=request_id, passed=True, reason="lawful purpose"),
        metadata=city.who("zhao"),
        timeout=10,
    )
    request: apb.AccessRequest = response.request
    return request


def approve(city: City, request_id: str, **decision: Any) -> apb.ApproveAccessRequestResponse:
    response: apb.ApproveAccessRequestResponse = city.approvals.ApproveAccessRequest(
        apb.ApproveAccessRequestRequest(id=request_id, **decision),
        metadata=city.who("wang"),
        timeout=10,
    )
    return response


def granted(city: City, system: str = "CIVIL-AFFAIRS", **decision: Any) -> pb.Grant:
    """Runs a request of ``system`` through review and approval; returns its grant."""
    request = submit(city, system)
    review(city, request.id)
    return approve(city, request.id, **decision).grant


def publish_people(
    city: City, batch_id: str, indices: range | list[int], region: str = "510104"
) -> None:
    publisher = city.world.systems["PSB-HUKOU"]
    batch = signed_batch(
        publisher.signer,
        "RESIDENTS",
        PERSON_SCHEMA,
        encode(PERSON_SCHEMA, [person(i, region) for i in indices]),
        batch_id=batch_id,
    )
    outcome = publish(city.gateway.target, publisher.token, [batch])
    assert outcome.code is None and len(outcome.acks) == 1, outcome.details


def receive(
    city: City, system: str, last_batch: str, subscription: str = "default"
) -> list[ReceivedBatch]:
    """Receives with the SDK until the batch ``last_batch`` arrived."""
    got: list[ReceivedBatch] = []

    async def run() -> None:
        subscriber = Subscriber(
            city.gateway.target,
            city.world.systems[system].token,
            "RESIDENTS",
            subscription=subscription,
            insecure=True,
            retry_seconds=5,
        )

        def handle(batch: ReceivedBatch) -> None:
            got.append(batch)
            if batch.batch_id == last_batch:
                subscriber.stop()

        try:
            await asyncio.wait_for(subscriber.run(handle), 15)
        finally:
            await subscriber.close()

    asyncio.run(run())
    return got


def refused_subscription(city: City, system: str, subscription: str = "default") -> GatewayRefusal:
    with pytest.raises(GatewayRefusal) as refusal:
        receive(city, system, "never", subscription)
    return refusal.value


# --- the workflow over gRPC -------------------------------------------------------------


def test_the_full_workflow_runs_over_grpc(city: City) -> None:
    request = submit(city)
    assert request.state == apb.REQUEST_STATE_UNDER_REVIEW
    assert request.kind == apb.REQUEST_KIND_ACCESS
    assert (request.requesting_system, request.requesting_department) == ("CIVIL-AFFAIRS", "CIVIL")
    assert request.owner_department == "PSB"
    assert request.due_time.seconds > time.time()
    assert not request.overdue

    reviewed = review(city, request.id)
    assert reviewed.state == apb.REQUEST_STATE_PENDING_PROVIDER
    assert reviewed.due_time.seconds > request.due_time.seconds

    response = approve(
        city,
        request.id,
        fields=["id_number", "name", "region_code"],
        duration_days=10,
        clear_fields=["name"],
        reason="phone not needed",
    )
    done, grant = response.request, response.grant
    assert done.state == apb.REQUEST_STATE_APPROVED
    assert done.grant_id == grant.id
    assert done.decision_reason == "phone not needed"
    assert (done.duration_days, done.approved_duration_days) == (30, 10)
    assert list(grant.fields) == ["id_number", "name", "region_code"]
    assert list(grant.clear_fields) == ["name"]
    assert grant.origin == pb.GRANT_ORIGIN_ACCESS_REQUEST
    assert grant.status == pb.GRANT_STATUS_ACTIVE
    assert (grant.grantee_system, grant.request_id, grant.creator) == (
        "CIVIL-AFFAIRS",
        request.id,
        "wang",
    )
    expires = grant.expire_time.ToDatetime(tzinfo=datetime.UTC)
    assert abs(expires - (utcnow() + datetime.timedelta(days=10))) < datetime.timedelta(minutes=1)

    stored = city.approvals.GetAccessRequest(
        apb.GetAccessRequestRequest(id=request.id), metadata=city.who("qian"), timeout=10
    ).request
    assert [(t.to_state, t.actor) for t in stored.history] == [
        (apb.REQUEST_STATE_SUBMITTED, "CIVIL-AFFAIRS"),
        (apb.REQUEST_STATE_UNDER_REVIEW, "platform"),
        (apb.REQUEST_STATE_PENDING_PROVIDER, "zhao"),
        (apb.REQUEST_STATE_APPROVED, "wang"),
    ]
    assert all(t.time.seconds > 0 for t in stored.history)
    assert stored.history[0].from_state == apb.REQUEST_STATE_UNSPECIFIED
    listed = city.approvals.ListAccessRequests(
        apb.ListAccessRequestsRequest(state=apb.REQUEST_STATE_APPROVED),
        metadata=city.who("wang"),
        timeout=10,
    )
    assert [r.id for r in listed.requests] == [request.id]


def test_a_rejection_over_grpc_records_its_reason(city: City) -> None:
    request = submit(city)
    review(city, request.id)
    rejected = city.approvals.RejectAccessRequest(
        apb.RejectAccessRequestRequest(id=request.id, reason="ID numbers not needed"),
        metadata=city.who("wang"),
        timeout=10,
    ).request
    assert rejected.state == apb.REQUEST_STATE_REJECTED
    assert rejected.decision_reason == "ID numbers not needed"
    assert rejected.history[-1].actor == "wang"
    assert rejected.grant_id == ""


def test_an_unconditional_resource_is_granted_at_once_over_grpc(city: City) -> None:
    city.world.resource(
        "ADDRESSES", "PSB", sharing_type=pb.SHARING_TYPE_UNCONDITIONAL, fields=SENSITIVE
    )
    request = submit(city, resource="ADDRESSES", fields=("region_code",))
    assert request.state == apb.REQUEST_STATE_APPROVED
    assert request.grant_id
    assert request.history[-1].actor == "platform"


def test_refusals_of_submissions_carry_their_reasons(city: City) -> None:
    def ask(who: str, **overrides: Any) -> Any:
        values: dict[str, Any] = {
            "resource": "RESIDENTS",
            "fields": ["name"],
            "purpose": "checks",
            "legal_basis": "law",
            "duration_days": 10,
        }
        values.update(overrides)
        return refused(
            city.approvals.SubmitAccessRequest,
            apb.SubmitAccessRequestRequest(**values),
            city.who(who),
        )

    denied, precondition, invalid = (
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert ask("qian", requesting_system="CIVIL-AFFAIRS") == (denied, "ROLE_NOT_ALLOWED")
    assert ask("zhao", requesting_system="CIVIL-AFFAIRS") == (denied, "ROLE_NOT_ALLOWED")
    assert ask("CIVIL-AFFAIRS", requesting_system="JINJIANG-GRID") == (denied, "ROLE_NOT_ALLOWED")
    assert ask("li", requesting_system="JINJIANG-GRID") == (denied, "ROLE_NOT_ALLOWED")
    assert ask("PSB-HUKOU") == (precondition, "OWN_RESOURCE")
    assert ask("CIVIL-AFFAIRS", fields=[]) == (invalid, "INVALID_FIELD")
    assert ask("CIVIL-AFFAIRS", fields=["salary"]) == (invalid, "INVALID_FIELD")
    assert ask("CIVIL-AFFAIRS", resource="NOTHING") == (
        grpc.StatusCode.NOT_FOUND,
        "UNKNOWN_RESOURCE",
    )
    backflow = refused(
        city.approvals.SubmitBackflowRequest,
        apb.SubmitBackflowRequestRequest(
            resource="RESIDENTS", fields=["name"], purpose="p", legal_basis="l", duration_days=5
        ),
        city.who("CIVIL-AFFAIRS"),
    )
    assert backflow == (precondition, "NOT_BACKFLOW_ELIGIBLE")
    listed = city.approvals.ListAccessRequests(
        apb.ListAccessRequestsRequest(), metadata=city.who("qian"), timeout=10
    )
    assert list(listed.requests) == []


def test_refusals_of_decisions_carry_their_reasons(city: City) -> None:
    a = city.approvals
    denied, precondition, invalid = (
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    request = submit(city, fields=("id_number", "name", "region_code"), days=30)
    rid = request.id
    assert refused(
        a.ApproveAccessRequest, apb.ApproveAccessRequestRequest(id=rid), city.who("wang")
    ) == (
        precondition,
        "WRONG_STATE",
    )
    assert refused(
        a.ReviewAccessRequest, apb.ReviewAccessRequestRequest(id=rid, passed=True), city.who("sun")
    ) == (denied, "SELF_DECISION")
    assert refused(
        a.ReviewAccessRequest, apb.ReviewAccessRequestRequest(id=rid, passed=True), city.who("wang")
    ) == (denied, "ROLE_NOT_ALLOWED")
    assert refused(
        a.ReviewAccessRequest,
        apb.ReviewAccessRequestRequest(id=rid, passed=False),
        city.who("zhao"),
    ) == (invalid, "REASON_REQUIRED")

    review(city, rid)
    for who in ("li", "zhao", "qian", "CIVIL-AFFAIRS"):
        assert refused(
            a.ApproveAccessRequest, apb.ApproveAccessRequestRequest(id=rid), city.who(who)
        ) == (denied, "ROLE_NOT_ALLOWED"), who
    wider_fields = apb.ApproveAccessRequestRequest(id=rid, fields=["id_number", "phone"])
    assert refused(a.ApproveAccessRequest, wider_fields, city.who("wang")) == (
        invalid,
        "WIDER_THAN_REQUESTED",
    )
    longer = apb.ApproveAccessRequestRequest(id=rid, duration_days=31)
    assert refused(a.ApproveAccessRequest, longer, city.who("wang")) == (
        invalid,
        "WIDER_THAN_REQUESTED",
    )
    clear_plain = apb.ApproveAccessRequestRequest(id=rid, clear_fields=["region_code"])
    assert refused(a.ApproveAccessRequest, clear_plain, city.who("wang")) == (
        invalid,
        "INVALID_FIELD",
    )
    no_reason = apb.RejectAccessRequestRequest(id=rid, reason="  ")
    assert refused(a.RejectAccessRequest, no_reason, city.who("wang")) == (
        invalid,
        "REASON_REQUIRED",
    )
    unknown = apb.GetAccessRequestRequest(id="r-0000000000000000")
    assert refused(a.GetAccessRequest, unknown, city.who("wang")) == (
        grpc.StatusCode.NOT_FOUND,
        "UNKNOWN_REQUEST",
    )

    grant = approve(city, rid).grant
    assert refused(
        a.ApproveAccessRequest, apb.ApproveAccessRequestRequest(id=rid), city.who("wang")
    ) == (
        precondition,
        "WRONG_STATE",
    )
    no_reason_revoke = apb.RevokeGrantRequest(id=grant.id, reason="")
    assert refused(a.RevokeGrant, no_reason_revoke, city.who("wang")) == (
        invalid,
        "REASON_REQUIRED",
    )
    revoke = apb.RevokeGrantRequest(id=grant.id, reason="purpose fulfilled")
    assert refused(a.RevokeGrant, revoke, city.who("li")) == (denied, "ROLE_NOT_ALLOWED")
    revoked = a.RevokeGrant(revoke, metadata=city.who("wang"), timeout=10).grant
    assert revoked.status == pb.GRANT_STATUS_REVOKED
    assert "purpose fulfilled" in revoked.revoke_reason
    assert refused(a.RevokeGrant, revoke, city.who("wang")) == (precondition, "WRONG_STATE")


def test_backflow_enrolment_and_corrections_refuse_with_their_reasons(city: City) -> None:
    a = city.approvals
    enrol = apb.EnrolBackflowRequest(department="JINJIANG", reason="grid duty")
    assert refused(a.EnrolBackflow, enrol, city.who("wang")) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "ROLE_NOT_ALLOWED",
    )
    assert refused(
        a.EnrolBackflow, apb.EnrolBackflowRequest(department="JINJIANG"), city.who("zhao")
    ) == (grpc.StatusCode.INVALID_ARGUMENT, "REASON_REQUIRED")
    assert refused(
        a.EnrolBackflow, apb.EnrolBackflowRequest(department="CIVIL", reason="x"), city.who("zhao")
    ) == (grpc.StatusCode.FAILED_PRECONDITION, "NOT_BACKFLOW_ELIGIBLE")
    enrolment = a.EnrolBackflow(enrol, metadata=city.who("zhao"), timeout=10).enrolment
    assert (enrolment.department, enrolment.region_code, enrolment.enrolled_by) == (
        "JINJIANG",
        "510104",
        "zhao",
    )
    assert refused(a.EnrolBackflow, enrol, city.who("zhao")) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "ALREADY_EXISTS",
    )

    granted(city)
    flag = apb.FlagRecordRequest(
        resource="RESIDENTS",
        batch_id="b-1",
        record_key={"id_number": "510104199001000001"},
        comment="died in 2023",
    )
    assert refused(a.FlagRecord, flag, city.who("WUHOU-GRID")) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "NO_GRANT",
    )
    correction = a.FlagRecord(flag, metadata=city.who("CIVIL-AFFAIRS"), timeout=10).correction
    assert correction.state == apb.CORRECTION_STATE_OPEN
    assert correction.flagging_department == "CIVIL"
    answer = apb.AnswerCorrectionRequest(id=correction.id, answer="corrected")
    assert refused(a.AnswerCorrection, answer, city.who("li")) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "ROLE_NOT_ALLOWED",
    )
    answered = a.AnswerCorrection(answer, metadata=city.who("wang"), timeout=10).correction
    assert (answered.state, answered.answered_by) == (apb.CORRECTION_STATE_ANSWERED, "wang")
    assert refused(a.AnswerCorrection, answer, city.who("wang")) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "WRONG_STATE",
    )


# --- what a grant delivers --------------------------------------------------------------


def test_a_delivery_carries_only_the_approved_fields_with_sensitive_ones_masked(
    city: City,
) -> None:
    granted(city, fields=["id_number", "name", "phone"])
    publish_people(city, "b-1", [1, 2])
    (batch,) = receive(city, "CIVIL-AFFAIRS", "b-1")
    assert batch.schema.top_level_fields() == ["id_number", "name", "phone"]
    assert batch.records == [
        {"id_number": "510104********0001", "name": "张*", "phone": "138****0001"},
        {"id_number": "510104********0002", "name": "张*", "phone": "138****0002"},
    ]
    assert not batch.provider_verified, "reshaped by the gateway, countersigned by it"


def test_clear_fields_are_delivered_in_clear_text_and_the_rest_stay_masked(city: City) -> None:
    granted(city, fields=["id_number", "name", "phone"], clear_fields=["name", "phone"])
    publish_people(city, "b-1", [1, 3])
    (batch,) = receive(city, "CIVIL-AFFAIRS", "b-1")
    assert batch.records == [
        {"id_number": "510104********0001", "name": "张1", "phone": "13800000001"},
        {"id_number": "510104********0003", "name": "张3", "phone": None},
    ]


def test_a_subscriber_receives_nothing_beyond_its_grant_whatever_it_opens(city: City) -> None:
    granted(city, fields=["name", "region_code"])
    publish_people(city, "b-1", [1, 2])
    for subscription in ("default", "everything-please"):
        (batch,) = receive(city, "CIVIL-AFFAIRS", "b-1", subscription)
        assert batch.schema.top_level_fields() == ["name", "region_code"], subscription
        assert batch.records == [
            {"name": "张*", "region_code": "510104"},
            {"name": "张*", "region_code": "510104"},
        ], subscription
    assert refused_subscription(city, "WUHOU-GRID").reason == "NO_GRANT"


def test_a_grant_for_one_region_delivers_only_that_region_and_its_sub_regions(
    city: City,
) -> None:
    request = submit_backflow(city)
    assert request.kind == apb.REQUEST_KIND_BACKFLOW
    assert request.row_filter.region_code == "510104"
    review(city, request.id)
    grant = approve(city, request.id).grant
    assert grant.row_filter.region_code == "510104"
    assert grant.origin == pb.GRANT_ORIGIN_BACKFLOW

    publish_people(city, "wuhou-1", [1, 2], region="510107")
    publish_people(city, "jinjiang-1", [3, 4], region="510104")
    publish_people(city, "town-1", [5], region="510104001")
    publish_people(city, "city-1", [6], region="510100")
    publish_people(city, "jinjiang-2", [7], region="510104")
    batches = receive(city, "JINJIANG-GRID", "jinjiang-2")
    rows = [(r["region_code"], r["id_number"]) for b in batches for r in b.records]
    assert rows == [
        ("510104", "510104********0003"),
        ("510104", "510104********0004"),
        ("510104001", "510104********0005"),
        ("510104", "510104********0007"),
    ]
    assert all(
        set(b.schema.top_level_fields()) == {"id_number", "name", "phone", "region_code"}
        for b in batches
    )


def test_revoking_a_grant_ends_an_open_subscription_stream(city: City) -> None:
    grant = granted(city, fields=["name", "region_code"])
    publish_people(city, "b-1", [1])

    async def run() -> tuple[list[str], GatewayRefusal, float]:
        got: list[str] = []
        revoked_at = 0.0
        subscriber = Subscriber(
            city.gateway.target,
            city.world.systems["CIVIL-AFFAIRS"].token,
            "RESIDENTS",
            insecure=True,
            retry_seconds=2,
        )

        def revoke_then_publish() -> None:
            nonlocal revoked_at
            city.approvals.RevokeGrant(
                apb.RevokeGrantRequest(id=grant.id, reason="purpose fulfilled"),
                metadata=city.who("wang"),
                timeout=10,
            )
            revoked_at = time.monotonic()
            publish_people(city, "b-2", [2])

        async def handle(batch: ReceivedBatch) -> None:
            got.append(batch.batch_id)
            if batch.batch_id == "b-1":
                await asyncio.to_thread(revoke_then_publish)

        try:
            with pytest.raises(GatewayRefusal) as refusal:
                await asyncio.wait_for(subscriber.run(handle), 10)
        finally:
            await subscriber.close()
        return got, refusal.value, time.monotonic() - revoked_at

    got, refusal, after = asyncio.run(run())
    assert got[0] == "b-1"
    assert refusal.code == grpc.StatusCode.PERMISSION_DENIED
    assert refusal.reason == "NO_GRANT"
    assert after < 4.0, f"the stream ended {after:.1f}s after the revocation"
    assert refused_subscription(city, "CIVIL-AFFAIRS", "later").reason == "NO_GRANT"


def test_no_batch_published_after_a_revocation_is_delivered(city: City) -> None:
    grant = granted(city, fields=["name", "region_code"])
    publish_people(city, "b-1", [1])

    async def run() -> tuple[list[str], float]:
        got: list[str] = []
        opened = time.monotonic()
        published_after = 0.0
        subscriber = Subscriber(
            city.gateway.target,
            city.world.systems["CIVIL-AFFAIRS"].token,
            "RESIDENTS",
            insecure=True,
            retry_seconds=2,
        )

        def revoke_then_publish() -> None:
            nonlocal published_after
            city.approvals.RevokeGrant(
                apb.RevokeGrantRequest(id=grant.id, reason="purpose fulfilled"),
                metadata=city.who("wang"),
                timeout=10,
            )
            publish_people(city, "b-2", [2])
            published_after = time.monotonic() - opened

        async def handle(batch: ReceivedBatch) -> None:
            got.append(batch.batch_id)
            if batch.batch_id == "b-1":
                await asyncio.to_thread(revoke_then_publish)

        try:
            with pytest.raises(GatewayRefusal):
                await asyncio.wait_for(subscriber.run(handle), 10)
        finally:
            await subscriber.close()
        return got, published_after

    got, published_after = asyncio.run(run())
    if published_after > 0.8 and got == ["b-1"]:
        pytest.skip(f"too slow to probe the window: published {published_after:.2f}s after open")
    assert got == ["b-1"]


def test_an_enrolled_district_receives_its_rows_of_an_eligible_resource_without_a_request(
    city: City,
) -> None:
    a = city.approvals
    eligible = a.SetBackflowEligibility(
        apb.SetBackflowEligibilityRequest(resource="RESIDENTS", eligible=True),
        metadata=city.who("wang"),
        timeout=10,
    ).resource
    assert eligible.backflow_eligible
    assert refused_subscription(city, "JINJIANG-GRID").reason == "NO_GRANT", "not enrolled yet"
    a.EnrolBackflow(
        apb.EnrolBackflowRequest(department="JINJIANG", reason="grid management duty"),
        metadata=city.who("zhao"),
        timeout=10,
    )
    publish_people(city, "wuhou-1", [1], region="510107")
    publish_people(city, "jinjiang-1", [2, 3], region="510104")
    publish_people(city, "town-1", [4], region="510104001")
    batches = receive(city, "JINJIANG-GRID", "town-1")
    records = [r for b in batches for r in b.records]
    assert [r["region_code"] for r in records] == ["510104", "510104", "510104001"]
    assert records[0]["id_number"] == "510104********0002"
    assert records[0]["name"] == "张*"
    assert records[0]["phone"] == "138****0002"
    assert {b.raw.grant_id for b in batches} == {batches[0].raw.grant_id}
    assert batches[0].raw.grant_id.startswith("backflow-")
    assert refused_subscription(city, "WUHOU-GRID").reason == "NO_GRANT"
    listed = a.ListAccessRequests(
        apb.ListAccessRequestsRequest(), metadata=city.who("qian"), timeout=10
    )
    assert list(listed.requests) == [], "no request was needed"

    a.WithdrawBackflow(
        apb.WithdrawBackflowRequest(department="JINJIANG", reason="duty moved to the city"),
        metadata=city.who("zhao"),
        timeout=10,
    )
    assert refused_subscription(city, "JINJIANG-GRID", "after").reason == "NO_GRANT"
    enrolments = a.ListBackflowEnrolments(
        apb.ListBackflowEnrolmentsRequest(include_withdrawn=True),
        metadata=city.who("qian"),
        timeout=10,
    ).enrolments
    assert [(e.department, e.withdrawn_by, e.withdraw_reason) for e in enrolments] == [
        ("JINJIANG", "zhao", "duty moved to the city")
    ]


# --- metrics ----------------------------------------------------------------------------


def test_the_workflow_gauges_count_requests_overdue_steps_and_open_corrections(
    city: City,
) -> None:
    waiting = submit(city)
    late = submit_backflow(city)
    approved = submit(city, fields=("name",))
    review(city, approved.id)
    approve(city, approved.id)
    rejected = submit(city, fields=("phone",))
    city.approvals.RejectAccessRequest(
        apb.RejectAccessRequestRequest(id=rejected.id, reason="no duty shown"),
        metadata=city.who("zhao"),
        timeout=10,
    )
    at_provider = submit(city, fields=("region_code",))
    review(city, at_provider.id)

    sessions = open_catalog(city.gateway.settings.catalog_url)
    try:
        with sessions() as session:
            session.execute(
                update(AccessRequest)
                .where(AccessRequest.public_id.in_([late.id, at_provider.id]))
                .values(due_at=utcnow() - datetime.timedelta(hours=1))
            )
            session.commit()
    finally:
        sessions.kw["bind"].dispose()

    for i in range(2):
        city.approvals.FlagRecord(
            apb.FlagRecordRequest(
                resource="RESIDENTS",
                batch_id=f"b-{i}",
                record_key={"id_number": str(i)},
                comment="wrong",
            ),
            metadata=city.who("CIVIL-AFFAIRS"),
            timeout=10,
        )
    answered = city.approvals.ListCorrections(
        apb.ListCorrectionsRequest(), metadata=city.who("wang"), timeout=10
    ).corrections[0]
    city.approvals.AnswerCorrection(
        apb.AnswerCorrectionRequest(id=answered.id, answer="fixed"),
        metadata=city.who("wang"),
        timeout=10,
    )

    def gauge(name: str, **labels: str) -> float | None:
        return REGISTRY.get_sample_value(name, labels)

    assert {
        state: gauge("lijiao_access_requests", state=state)
        for state in ("SUBMITTED", "UNDER_REVIEW", "PENDING_PROVIDER", "APPROVED", "REJECTED")
    } == {
        "SUBMITTED": 0,
        "UNDER_REVIEW": 2,
        "PENDING_PROVIDER": 1,
        "APPROVED": 1,
        "REJECTED": 1,
    }
    assert gauge("lijiao_overdue_requests") == 2
    assert gauge("lijiao_open_corrections") == 1
    overdue = city.approvals.ListAccessRequests(
        apb.ListAccessRequestsRequest(overdue_only=True), metadata=city.who("zhao"), timeout=10
    ).requests
    assert {r.id for r in overdue} == {late.id, at_provider.id}
    assert all(r.overdue for r in overdue)
    assert waiting.id not in {r.id for r in overdue}
