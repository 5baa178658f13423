"""The sharing workflow (catalog.governance), on a real SQLite file.

Requests, reviews, decisions and grants; four eyes; working-day deadlines; revocation;
data backflow (数据回流) and proactive backflow (主动式数据回流); corrections (疑义数据).
Time is never slept through: due and expiry times are moved into the past in the
database instead.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from catalog.credentials import Identity
from catalog.db import open_catalog
from catalog.deadlines import WorkingCalendar
from catalog.governance import PLATFORM, Governance, GovernanceRules
from catalog.models import (
    AccessRequest,
    AdministrativeLevel,
    Classification,
    CorrectionState,
    Grant,
    GrantOrigin,
    GrantStatus,
    RequestKind,
    RequestState,
    Role,
    Sensitivity,
    SharingType,
    utcnow,
)
from catalog.service import Catalog, FieldSpec, ResourceSpec
from envelope.errors import LijiaoError
from tests.world import PERSON_SCHEMA

ADMIN = Identity("admin", Role.ADMINISTRATOR)
PSB_OFFICER = Identity("wang", Role.DATA_OFFICER, department="PSB")
CIVIL_OFFICER = Identity("li", Role.DATA_OFFICER, department="CIVIL")
JINJIANG_OFFICER = Identity("chen", Role.DATA_OFFICER, department="JINJIANG")
CIVIL_SYSTEM = Identity("CIVIL-AID", Role.SYSTEM, department="CIVIL", system="CIVIL-AID")
JINJIANG_SYSTEM = Identity(
    "JINJIANG-GRID", Role.SYSTEM, department="JINJIANG", system="JINJIANG-GRID"
)
PLATFORM_OFFICER = Identity("zhao", Role.PLATFORM_OFFICER, department="BIGDATA")
CIVIL_PLATFORM_OFFICER = Identity("sun", Role.PLATFORM_OFFICER, department="CIVIL")
AUDITOR = Identity("qian", Role.AUDITOR)

PERSON_FIELDS = (
    FieldSpec("id_number", "citizen ID", Sensitivity.ID_NUMBER),
    FieldSpec("name", "name", Sensitivity.NAME),
    FieldSpec("phone", "mobile", Sensitivity.PHONE),
    FieldSpec("region_code", "行政区划代码"),
)
NO_REGION_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Licence",
    "namespace": "gov.samr",
    "fields": [
        {"name": "licence_no", "type": "string"},
        {"name": "holder", "type": "string"},
    ],
}


# --- the city ---------------------------------------------------------------------------


def make_catalog(path: Path) -> Catalog:
    catalog = Catalog(open_catalog(f"sqlite:///{path}"))
    for code, level, region in (
        ("PSB", AdministrativeLevel.CITY, "510100"),
        ("CIVIL", AdministrativeLevel.CITY, "510100"),
        ("BIGDATA", AdministrativeLevel.CITY, "510100"),
        ("JINJIANG", AdministrativeLevel.DISTRICT, "510104"),
        ("WUHOU", AdministrativeLevel.DISTRICT, "510107"),
        ("CHUNXI", AdministrativeLevel.TOWN, "510104001"),
    ):
        catalog.create_department(
            ADMIN, code=code, name=f"{code} bureau", level=level, region_code=region
        )
    for code, department in (
        ("PSB-HUKOU", "PSB"),
        ("CIVIL-AID", "CIVIL"),
        ("CIVIL-MARRIAGE", "CIVIL"),
        ("JINJIANG-GRID", "JINJIANG"),
        ("WUHOU-GRID", "WUHOU"),
        ("CHUNXI-GRID", "CHUNXI"),
    ):
        catalog.create_system(
            ADMIN, code=code, name=f"{code} system", department=department, public_key=None
        )
    register(catalog, "RESIDENTS")
    register(catalog, "ADDRESSES", sharing_type=SharingType.UNCONDITIONAL)
    register(
        catalog,
        "HOUSEHOLDS",
        sharing_type=SharingType.UNCONDITIONAL,
        classification=Classification.IMPORTANT,
    )
    register(
        catalog,
        "FUGITIVES",
        sharing_type=SharingType.NOT_SHARED,
        sharing_conditions="《中华人民共和国人民警察法》第二十二条: 不得泄露国家秘密、警务工作秘密",
    )
    register(catalog, "BIOMETRICS", classification=Classification.CORE)
    register(catalog, "JJ-GRID-EVENTS", owner="JINJIANG")
    catalog.create_resource(
        ADMIN,
        ResourceSpec(
            code="LICENCES",
            name="Licences",
            owner_department="PSB",
            sharing_type=SharingType.CONDITIONAL,
            classification=Classification.GENERAL,
            key_fields=["licence_no"],
        ),
        json.dumps(NO_REGION_SCHEMA),
    )
    return catalog


def register(catalog: Catalog, code: str, owner: str = "PSB", **overrides: Any) -> None:
    values: dict[str, Any] = {
        "code": code,
        "name": f"{code} records",
        "owner_department": owner,
        "sharing_type": SharingType.CONDITIONAL,
        "classification": Classification.GENERAL,
        "key_fields": ["id_number"],
        "region_field": "region_code",
        "fields": PERSON_FIELDS,
    }
    values.update(overrides)
    catalog.create_resource(ADMIN, ResourceSpec(**values), json.dumps(PERSON_SCHEMA))


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return make_catalog(tmp_path / "catalog.db")


@pytest.fixture
def governance(catalog: Catalog) -> Governance:
    return Governance(catalog, GovernanceRules())


def refusal(reason: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> LijiaoError:
    with pytest.raises(LijiaoError) as error:
        fn(*args, **kwargs)
    assert error.value.reason == reason, error.value.message
    return error.value


def ask(
    governance: Governance,
    actor: Identity = CIVIL_SYSTEM,
    *,
    resource: str = "RESIDENTS",
    system: str = "CIVIL-AID",
    fields: tuple[str, ...] = ("id_number", "name", "phone"),
    days: int = 90,
    region: str = "",
) -> AccessRequest:
    return governance.submit(
        actor,
        resource_code=resource,
        system_code=system,
        fields=fields,
        purpose="最低生活保障 eligibility checks",
        legal_basis="《社会救助暂行办法》第十一条",
        duration_days=days,
        region=region,
    )


def ask_backflow(
    governance: Governance,
    actor: Identity = JINJIANG_SYSTEM,
    *,
    resource: str = "RESIDENTS",
    system: str = "JINJIANG-GRID",
    fields: tuple[str, ...] = ("id_number", "name"),
) -> AccessRequest:
    return governance.submit_backflow(
        actor,
        resource_code=resource,
        system_code=system,
        fields=fields,
        purpose="grid management of the district's residents",
        legal_basis="《政务数据共享条例》: 上级部门应当及时、完整回流",
        duration_days=365,
    )


def pending(governance: Governance, **kwargs: Any) -> AccessRequest:
    """A request that passed the review and waits for the provider."""
    request = ask(governance, **kwargs)
    return governance.review(PLATFORM_OFFICER, request.public_id, True, "")


def set_due(catalog: Catalog, request_id: str, due: datetime.datetime) -> None:
    with catalog.sessions() as session:
        session.execute(
            update(AccessRequest).where(AccessRequest.public_id == request_id).values(due_at=due)
        )
        session.commit()


def set_expiry(catalog: Catalog, grant_id: str, expires: datetime.datetime) -> None:
    with catalog.sessions() as session:
        session.execute(update(Grant).where(Grant.public_id == grant_id).values(expires_at=expires))
        session.commit()


def states(request: AccessRequest) -> list[tuple[str, str]]:
    return [(t.from_state, t.to_state) for t in request.transitions]


# --- the states a request goes through --------------------------------------------------


def test_a_conditional_request_goes_through_review_to_the_provider_and_is_approved(
    catalog: Catalog, governance: Governance
) -> None:
    request = ask(governance)
    assert request.state is RequestState.UNDER_REVIEW
    assert request.kind is RequestKind.ACCESS
    assert request.requester == "CIVIL-AID"
    assert request.fields == ["id_number", "name", "phone"]
    assert catalog.active_grant("CIVIL-AID", "RESIDENTS") is None

    reviewed = governance.review(PLATFORM_OFFICER, request.public_id, True, "purpose is lawful")
    assert reviewed.state is RequestState.PENDING_PROVIDER
    assert catalog.active_grant("CIVIL-AID", "RESIDENTS") is None

    approved, grant = governance.approve(PSB_OFFICER, request.public_id, reason="duty shown")
    assert approved.state is RequestState.APPROVED
    assert approved.grant_id == grant.public_id
    assert grant.origin is GrantOrigin.ACCESS_REQUEST
    assert grant.request_id == request.public_id
    assert grant.created_by == "wang"
    assert grant.fields == ["id_number", "name", "phone"]
    assert grant.clear_fields == []
    active = catalog.active_grant("CIVIL-AID", "RESIDENTS")
    assert active is not None and active.public_id == grant.public_id
    assert states(approved) == [
        ("", "SUBMITTED"),
        ("SUBMITTED", "UNDER_REVIEW"),
        ("UNDER_REVIEW", "PENDING_PROVIDER"),
        ("PENDING_PROVIDER", "APPROVED"),
    ]


def test_a_failed_review_rejects_the_request_with_its_reason(governance: Governance) -> None:
    request = ask(governance)
    rejected = governance.review(
        PLATFORM_OFFICER, request.public_id, False, "purpose does not need phone numbers"
    )
    assert rejected.state is RequestState.REJECTED
    assert rejected.decided_by == "zhao"
    assert rejected.decision_reason == "purpose does not need phone numbers"
    assert rejected.grant_id == ""
    assert states(rejected)[-1] == ("UNDER_REVIEW", "REJECTED")


def test_a_platform_officer_may_reject_a_request_under_review(governance: Governance) -> None:
    request = ask(governance)
    rejected = governance.reject(PLATFORM_OFFICER, request.public_id, "no legal basis cited")
    assert rejected.state is RequestState.REJECTED
    assert rejected.decision_reason == "no legal basis cited"


def test_the_provider_may_reject_with_a_written_reason(
    catalog: Catalog, governance: Governance
) -> None:
    request = pending(governance)
    rejected = governance.reject(PSB_OFFICER, request.public_id, "ID numbers not needed for aid")
    assert rejected.state is RequestState.REJECTED
    assert rejected.decided_by == "wang"
    assert rejected.decision_reason == "ID numbers not needed for aid"
    assert states(rejected)[-1] == ("PENDING_PROVIDER", "REJECTED")
    assert catalog.active_grant("CIVIL-AID", "RESIDENTS") is None


def test_with_the_review_switched_off_a_request_goes_straight_to_the_provider(
    catalog: Catalog,
) -> None:
    governance = Governance(catalog, GovernanceRules(review_enabled=False))
    request = ask(governance)
    assert request.state is RequestState.PENDING_PROVIDER
    assert states(request) == [("", "SUBMITTED"), ("SUBMITTED", "PENDING_PROVIDER")]
    assert request.transitions[-1].actor == PLATFORM
    refusal("WRONG_STATE", governance.review, PLATFORM_OFFICER, request.public_id, True, "")
    approved, _ = governance.approve(PSB_OFFICER, request.public_id)
    assert approved.state is RequestState.APPROVED


def test_an_unconditional_general_resource_is_granted_at_once_by_the_platform(
    catalog: Catalog, governance: Governance
) -> None:
    request = ask(governance, resource="ADDRESSES", fields=("name", "region_code"))
    assert request.state is RequestState.APPROVED
    assert request.decided_by == PLATFORM
    assert request.decided_at is not None
    assert "UNCONDITIONAL" in request.decision_reason
    assert request.due_at is None
    assert states(request) == [("", "SUBMITTED"), ("SUBMITTED", "APPROVED")]
    grant = catalog.active_grant("CIVIL-AID", "ADDRESSES")
    assert grant is not None
    assert grant.public_id == request.grant_id
    assert grant.created_by == PLATFORM
    assert grant.fields == ["name", "region_code"]
    assert grant.expires_at is not None
    assert grant.expires_at - utcnow() > datetime.timedelta(days=89)


def test_an_unconditional_but_important_resource_still_needs_approval(
    catalog: Catalog, governance: Governance
) -> None:
    request = ask(governance, resource="HOUSEHOLDS")
    assert request.state is RequestState.UNDER_REVIEW
    assert request.grant_id == ""
    assert catalog.active_grant("CIVIL-AID", "HOUSEHOLDS") is None


def test_a_not_shared_resource_is_refused_at_once_citing_its_legal_basis(
    catalog: Catalog, governance: Governance
) -> None:
    request = ask(governance, resource="FUGITIVES")
    assert request.state is RequestState.REJECTED
    assert request.decided_by == PLATFORM
    assert "NOT_SHARED" in request.decision_reason
    assert "人民警察法" in request.decision_reason
    assert request.due_at is None
    assert catalog.active_grant("CIVIL-AID", "FUGITIVES") is None


def test_core_data_is_refused_at_once(catalog: Catalog, governance: Governance) -> None:
    request = ask(governance, resource="BIOMETRICS")
    assert request.state is RequestState.REJECTED
    assert request.decided_by == PLATFORM
    assert "CORE" in request.decision_reason
    assert catalog.active_grant("CIVIL-AID", "BIOMETRICS") is None


def test_a_data_officer_may_ask_on_behalf_of_a_system_of_their_department(
    governance: Governance,
) -> None:
    request = ask(governance, CIVIL_OFFICER, system="CIVIL-MARRIAGE")
    assert request.state is RequestState.UNDER_REVIEW
    assert request.requester == "li"
    assert request.requesting_system.code == "CIVIL-MARRIAGE"


# --- refusals ---------------------------------------------------------------------------


def test_an_officer_of_another_department_cannot_decide(governance: Governance) -> None:
    request = pending(governance)
    refusal("ROLE_NOT_ALLOWED", governance.approve, JINJIANG_OFFICER, request.public_id)
    refusal("ROLE_NOT_ALLOWED", governance.reject, JINJIANG_OFFICER, request.public_id, "no")
    assert governance.get(request.public_id).state is RequestState.PENDING_PROVIDER


def test_the_requesting_departments_officer_cannot_decide_its_own_request(
    governance: Governance,
) -> None:
    request = pending(governance)
    refusal("ROLE_NOT_ALLOWED", governance.approve, CIVIL_OFFICER, request.public_id)
    refusal("ROLE_NOT_ALLOWED", governance.reject, CIVIL_OFFICER, request.public_id, "withdrawn")


def test_a_platform_officer_cannot_approve(governance: Governance) -> None:
    request = pending(governance)
    refusal("ROLE_NOT_ALLOWED", governance.approve, PLATFORM_OFFICER, request.public_id)
    refusal("ROLE_NOT_ALLOWED", governance.reject, PLATFORM_OFFICER, request.public_id, "no")


def test_only_platform_officers_run_the_review(governance: Governance) -> None:
    request = ask(governance)
    refusal("ROLE_NOT_ALLOWED", governance.review, PSB_OFFICER, request.public_id, True, "")
    refusal("ROLE_NOT_ALLOWED", governance.reject, PSB_OFFICER, request.public_id, "no")
    refusal("ROLE_NOT_ALLOWED", governance.review, ADMIN, request.public_id, True, "")
    assert governance.get(request.public_id).state is RequestState.UNDER_REVIEW


def test_nobody_reviews_a_request_of_their_own_department(governance: Governance) -> None:
    request = ask(governance)
    refusal("SELF_DECISION", governance.review, CIVIL_PLATFORM_OFFICER, request.public_id, True, "")
    refusal(
        "SELF_DECISION",
        governance.review,
        CIVIL_PLATFORM_OFFICER,
        request.public_id,
        False,
        "fails",
    )
    refusal("SELF_DECISION", governance.reject, CIVIL_PLATFORM_OFFICER, request.public_id, "no")
    assert governance.get(request.public_id).state is RequestState.UNDER_REVIEW


@pytest.mark.parametrize("reason", ["", "   ", "\t\n"])
def test_a_rejection_needs_a_reason(governance: Governance, reason: str) -> None:
    under_review = ask(governance)
    refusal(
        "REASON_REQUIRED",
        governance.review,
        PLATFORM_OFFICER,
        under_review.public_id,
        False,
        reason,
    )
    refusal("REASON_REQUIRED", governance.reject, PLATFORM_OFFICER, under_review.public_id, reason)
    at_provider = pending(governance, system="CIVIL-MARRIAGE", actor=CIVIL_OFFICER)
    refusal("REASON_REQUIRED", governance.reject, PSB_OFFICER, at_provider.public_id, reason)
    assert governance.get(under_review.public_id).state is RequestState.UNDER_REVIEW
    assert governance.get(at_provider.public_id).state is RequestState.PENDING_PROVIDER


def test_a_revocation_needs_a_reason(catalog: Catalog, governance: Governance) -> None:
    _, grant = governance.approve(PSB_OFFICER, pending(governance).public_id)
    refusal("REASON_REQUIRED", governance.revoke_grant, PSB_OFFICER, grant.public_id, " ")
    assert catalog.active_grant("CIVIL-AID", "RESIDENTS") is not None


def test_enrolment_and_withdrawal_need_a_reason(governance: Governance) -> None:
    refusal("REASON_REQUIRED", governance.enrol, PLATFORM_OFFICER, "JINJIANG", "")
    governance.enrol(PLATFORM_OFFICER, "JINJIANG", "grid management duty")
    refusal("REASON_REQUIRED", governance.withdraw, PLATFORM_OFFICER, "JINJIANG", "  ")
    assert [e.department.code for e in governance.enrolments()] == ["JINJIANG"]


def test_an_approval_cannot_be_wider_than_the_request(governance: Governance) -> None:
    request = pending(governance, fields=("id_number", "name"), days=30)
    error = refusal(
        "WIDER_THAN_REQUESTED",
        governance.approve,
        PSB_OFFICER,
        request.public_id,
        fields=["id_number", "name", "phone"],
    )
    assert error.metadata["field"] == "fields"
    error = refusal(
        "WIDER_THAN_REQUESTED", governance.approve, PSB_OFFICER, request.public_id, duration_days=31
    )
    assert error.metadata["field"] == "duration_days"
    assert governance.get(request.public_id).state is RequestState.PENDING_PROVIDER


def test_a_request_is_decided_only_in_its_current_step(governance: Governance) -> None:
    under_review = ask(governance)
    refusal("WRONG_STATE", governance.approve, PSB_OFFICER, under_review.public_id)

    at_provider = pending(governance, system="CIVIL-MARRIAGE", actor=CIVIL_OFFICER)
    refusal("WRONG_STATE", governance.review, PLATFORM_OFFICER, at_provider.public_id, True, "")

    governance.approve(PSB_OFFICER, at_provider.public_id)
    refusal("WRONG_STATE", governance.approve, PSB_OFFICER, at_provider.public_id)
    refusal("WRONG_STATE", governance.reject, PSB_OFFICER, at_provider.public_id, "changed mind")

    governance.review(PLATFORM_OFFICER, under_review.public_id, False, "no duty shown")
    error = refusal(
        "WRONG_STATE", governance.review, PLATFORM_OFFICER, under_review.public_id, True, ""
    )
    assert error.metadata["state"] == "REJECTED"
    refusal("WRONG_STATE", governance.reject, PSB_OFFICER, under_review.public_id, "again")


def test_an_unknown_request_is_not_found(governance: Governance) -> None:
    refusal("UNKNOWN_REQUEST", governance.get, "r-0000000000000000")
    refusal("UNKNOWN_REQUEST", governance.approve, PSB_OFFICER, "r-0000000000000000")


def test_a_system_asks_only_for_itself(governance: Governance) -> None:
    refusal("ROLE_NOT_ALLOWED", ask, governance, CIVIL_SYSTEM, system="CIVIL-MARRIAGE")
    refusal("ROLE_NOT_ALLOWED", ask, governance, CIVIL_SYSTEM, system="JINJIANG-GRID")


def test_a_data_officer_asks_only_for_systems_of_their_department(governance: Governance) -> None:
    refusal("ROLE_NOT_ALLOWED", ask, governance, JINJIANG_OFFICER, system="CIVIL-AID")


@pytest.mark.parametrize("actor", [AUDITOR, PLATFORM_OFFICER, ADMIN], ids=lambda a: a.role.value)
def test_only_systems_and_data_officers_submit_requests(
    governance: Governance, actor: Identity
) -> None:
    refusal("ROLE_NOT_ALLOWED", ask, governance, actor)
    assert governance.list_requests().items == []


def test_a_department_does_not_ask_for_its_own_resource(governance: Governance) -> None:
    owner = Identity("PSB-HUKOU", Role.SYSTEM, department="PSB", system="PSB-HUKOU")
    refusal("OWN_RESOURCE", ask, governance, owner, system="PSB-HUKOU")


def test_a_request_names_the_fields_it_needs_from_the_schema(governance: Governance) -> None:
    error = refusal("INVALID_FIELD", ask, governance, fields=())
    assert error.metadata["field"] == "fields"
    error = refusal("INVALID_FIELD", ask, governance, fields=("id_number", "salary"))
    assert error.metadata["field"] == "salary"


@pytest.mark.parametrize("days", [0, 3651])
def test_a_request_asks_for_1_to_3650_days(governance: Governance, days: int) -> None:
    error = refusal("INVALID_FIELD", ask, governance, days=days)
    assert error.metadata["field"] == "duration_days"


def test_a_purpose_and_a_legal_basis_are_required(governance: Governance) -> None:
    for missing in ("purpose", "legal_basis"):
        values = {"purpose": "aid checks", "legal_basis": "社会救助暂行办法", missing: " "}
        error = refusal(
            "INVALID_FIELD",
            governance.submit,
            CIVIL_SYSTEM,
            resource_code="RESIDENTS",
            system_code="CIVIL-AID",
            fields=["name"],
            duration_days=10,
            **values,
        )
        assert error.metadata["field"] == missing


def test_clear_fields_must_be_approved_sensitive_fields(governance: Governance) -> None:
    request = pending(governance, fields=("id_number", "name", "phone", "region_code"))
    not_approved = refusal(
        "INVALID_FIELD",
        governance.approve,
        PSB_OFFICER,
        request.public_id,
        fields=["name", "region_code"],
        clear_fields=["phone"],
    )
    assert not_approved.metadata["field"] == "clear_fields"
    refusal(
        "INVALID_FIELD",
        governance.approve,
        PSB_OFFICER,
        request.public_id,
        clear_fields=["region_code"],
    )
    refusal(
        "INVALID_FIELD", governance.approve, PSB_OFFICER, request.public_id, clear_fields=["salary"]
    )
    assert governance.get(request.public_id).state is RequestState.PENDING_PROVIDER


# --- approving narrower than asked ------------------------------------------------------


def test_an_approval_narrower_than_asked_grants_exactly_what_was_approved(
    catalog: Catalog, governance: Governance
) -> None:
    request = pending(governance, fields=("id_number", "name", "phone"), days=90)
    before = utcnow()
    approved, grant = governance.approve(
        PSB_OFFICER,
        request.public_id,
        fields=["name", "id_number"],
        duration_days=30,
        clear_fields=["name"],
        reason="phone numbers are not needed for the purpose",
    )
    after = utcnow()
    assert grant.fields == ["name", "id_number"]
    assert grant.clear_fields == ["name"]
    assert grant.region_filter == ""
    assert grant.expires_at is not None
    assert before + datetime.timedelta(days=30) <= grant.expires_at
    assert grant.expires_at <= after + datetime.timedelta(days=30)

    assert approved.state is RequestState.APPROVED
    assert approved.decided_by == "wang"
    assert approved.decided_at is not None and before <= approved.decided_at <= after
    assert approved.decision_reason == "phone numbers are not needed for the purpose"
    assert approved.grant_id == grant.public_id
    assert approved.fields == ["id_number", "name", "phone"], "the request keeps what was asked"

    stored = catalog.get_grant(grant.public_id)
    assert stored.fields == ["name", "id_number"]
    assert stored.status is GrantStatus.ACTIVE


def test_the_request_keeps_the_duration_it_asked_for_after_a_shorter_approval(
    governance: Governance,
) -> None:
    request = pending(governance, days=90)
    approved, grant = governance.approve(PSB_OFFICER, request.public_id, duration_days=30)
    assert grant.expires_at is not None
    assert grant.expires_at - utcnow() < datetime.timedelta(days=31)
    assert approved.duration_days == 90
    assert approved.approved_days == 30


def test_an_approval_for_a_negative_number_of_days_is_refused(governance: Governance) -> None:
    request = pending(governance, days=90)
    refusal("INVALID_FIELD", governance.approve, PSB_OFFICER, request.public_id, duration_days=-5)


def test_approving_without_fields_or_days_grants_what_was_asked(
    catalog: Catalog, governance: Governance
) -> None:
    request = pending(governance, fields=("name", "phone"), days=10)
    _, grant = governance.approve(PSB_OFFICER, request.public_id)
    assert grant.fields == ["name", "phone"]
    assert grant.expires_at is not None
    remaining = grant.expires_at - utcnow()
    assert datetime.timedelta(days=9, hours=23) < remaining <= datetime.timedelta(days=10)


# --- every step is recorded -------------------------------------------------------------


def test_every_transition_records_actor_time_and_reason(governance: Governance) -> None:
    before = utcnow()
    request = ask(governance)
    governance.review(PLATFORM_OFFICER, request.public_id, True, "lawful purpose")
    governance.approve(PSB_OFFICER, request.public_id, reason="duty shown")
    after = utcnow()
    done = governance.get(request.public_id)
    assert [(t.to_state, t.actor, t.reason) for t in done.transitions] == [
        ("SUBMITTED", "CIVIL-AID", "最低生活保障 eligibility checks"),
        ("UNDER_REVIEW", PLATFORM, "compliance review"),
        ("PENDING_PROVIDER", "zhao", "lawful purpose"),
        ("APPROVED", "wang", "duty shown"),
    ]
    times = [t.at for t in done.transitions]
    assert all(before <= at <= after for at in times)
    assert times == sorted(times)
    assert all(at.tzinfo is not None for at in times)
    assert done.decided_by == "wang" and done.decision_reason == "duty shown"


def test_a_rejection_records_who_when_and_why(governance: Governance) -> None:
    request = pending(governance)
    before = utcnow()
    rejected = governance.reject(PSB_OFFICER, request.public_id, "purpose too broad")
    last = rejected.transitions[-1]
    assert (last.actor, last.reason, last.to_state) == ("wang", "purpose too broad", "REJECTED")
    assert last.at >= before
    assert rejected.decided_at is not None and rejected.decided_at >= before
    assert rejected.decided_by == "wang"


# --- deadlines --------------------------------------------------------------------------


def _calendar_with_a_week_of_holidays() -> tuple[WorkingCalendar, datetime.date]:
    zone = WorkingCalendar().timezone
    today = utcnow().astimezone(zone).date()
    holidays = frozenset(today + datetime.timedelta(days=i) for i in range(1, 8))
    return WorkingCalendar(holidays=holidays), today + datetime.timedelta(days=7)


def test_the_review_is_due_in_working_days_of_the_calendar(catalog: Catalog) -> None:
    calendar, last_holiday = _calendar_with_a_week_of_holidays()
    governance = Governance(catalog, GovernanceRules(calendar=calendar, review_days=2))
    before = utcnow()
    request = ask(governance)
    after = utcnow()
    assert request.due_at in {
        calendar.add_working_days(before, 2),
        calendar.add_working_days(after, 2),
    }
    due_day = request.due_at.astimezone(calendar.timezone).date()
    assert due_day > last_holiday
    assert calendar.is_working_day(due_day)
    assert not governance.overdue(request)


def test_the_provider_is_due_in_its_own_working_days_after_the_review(catalog: Catalog) -> None:
    calendar, _ = _calendar_with_a_week_of_holidays()
    governance = Governance(
        catalog, GovernanceRules(calendar=calendar, review_days=2, provider_days=10)
    )
    request = ask(governance)
    before = utcnow()
    reviewed = governance.review(PLATFORM_OFFICER, request.public_id, True, "")
    after = utcnow()
    assert reviewed.due_at in {
        calendar.add_working_days(before, 10),
        calendar.add_working_days(after, 10),
    }
    assert reviewed.due_at is not None and request.due_at is not None
    assert reviewed.due_at > request.due_at
    approved, _ = governance.approve(PSB_OFFICER, request.public_id)
    assert approved.due_at is None


def test_the_default_deadlines_are_2_and_10_working_days() -> None:
    rules = GovernanceRules()
    assert (rules.review_enabled, rules.review_days, rules.provider_days) == (True, 2, 10)


def test_a_request_past_its_due_time_is_listed_and_counted_as_overdue(
    catalog: Catalog, governance: Governance
) -> None:
    late = ask(governance)
    on_time = ask(governance, CIVIL_OFFICER, system="CIVIL-MARRIAGE")
    late_at_provider = pending(governance, actor=JINJIANG_SYSTEM, system="JINJIANG-GRID")
    decided = ask(governance, resource="FUGITIVES", fields=("name",))
    yesterday = utcnow() - datetime.timedelta(days=1)
    set_due(catalog, late.public_id, yesterday)
    set_due(catalog, late_at_provider.public_id, yesterday)
    set_due(catalog, decided.public_id, yesterday)  # decided requests are never overdue

    overdue = governance.list_requests(overdue_only=True).items
    assert {r.public_id for r in overdue} == {late.public_id, late_at_provider.public_id}
    assert governance.overdue(governance.get(late.public_id))
    assert not governance.overdue(governance.get(on_time.public_id))
    assert not governance.overdue(governance.get(decided.public_id))

    by_state, overdue_count, open_corrections = governance.counts()
    assert overdue_count == 2
    assert by_state == {
        "SUBMITTED": 0,
        "UNDER_REVIEW": 2,
        "PENDING_PROVIDER": 1,
        "APPROVED": 0,
        "REJECTED": 1,
    }
    assert open_corrections == 0

    governance.review(PLATFORM_OFFICER, late.public_id, True, "late but fine")
    assert {r.public_id for r in governance.list_requests(overdue_only=True).items} == {
        late_at_provider.public_id
    }
    assert governance.counts()[1] == 1


def test_requests_are_listed_newest_first_and_filtered(governance: Governance) -> None:
    first = ask(governance)
    second = ask(governance, actor=JINJIANG_SYSTEM, system="JINJIANG-GRID")
    third = ask(governance, resource="FUGITIVES", fields=("name",))
    assert [r.public_id for r in governance.list_requests().items] == [
        third.public_id,
        second.public_id,
        first.public_id,
    ]
    assert [r.public_id for r in governance.list_requests(state=RequestState.REJECTED).items] == [
        third.public_id
    ]
    assert [
        r.public_id for r in governance.list_requests(requesting_department="JINJIANG").items
    ] == [second.public_id]
    assert len(governance.list_requests(owner_department="PSB").items) == 3
    assert governance.list_requests(owner_department="CIVIL").items == []
    page = governance.list_requests(page_size=2)
    rest = governance.list_requests(page_size=2, page_token=page.next_page_token)
    assert [r.public_id for r in rest.items] == [first.public_id]


# --- revocation and expiry --------------------------------------------------------------


def test_a_revoked_grant_is_no_longer_active(catalog: Catalog, governance: Governance) -> None:
    _, grant = governance.approve(PSB_OFFICER, pending(governance).public_id)
    changes: list[str] = []
    governance.on_grant_change(lambda: changes.append("changed"))
    revoked = governance.revoke_grant(PSB_OFFICER, grant.public_id, "purpose fulfilled")
    assert revoked.status is GrantStatus.REVOKED
    assert "purpose fulfilled" in revoked.revoke_reason
    assert "wang" in revoked.revoke_reason
    assert revoked.revoked_at is not None
    assert changes == ["changed"]
    assert catalog.active_grant("CIVIL-AID", "RESIDENTS") is None
    assert governance.effective_grant("CIVIL-AID", "RESIDENTS") is None
    refusal("WRONG_STATE", governance.revoke_grant, PSB_OFFICER, grant.public_id, "again")
    refusal("UNKNOWN_GRANT", governance.revoke_grant, PSB_OFFICER, "g-nonexistent", "why")


def test_only_the_owners_officers_or_administrators_revoke(
    catalog: Catalog, governance: Governance
) -> None:
    _, grant = governance.approve(PSB_OFFICER, pending(governance).public_id)
    refusal("ROLE_NOT_ALLOWED", governance.revoke_grant, CIVIL_OFFICER, grant.public_id, "mine")
    refusal("ROLE_NOT_ALLOWED", governance.revoke_grant, PLATFORM_OFFICER, grant.public_id, "x")
    refusal("ROLE_NOT_ALLOWED", governance.revoke_grant, CIVIL_SYSTEM, grant.public_id, "x")
    assert catalog.active_grant("CIVIL-AID", "RESIDENTS") is not None
    revoked = governance.revoke_grant(ADMIN, grant.public_id, "court order")
    assert revoked.status is GrantStatus.REVOKED


def test_an_expired_grant_is_not_active(catalog: Catalog, governance: Governance) -> None:
    _, grant = governance.approve(PSB_OFFICER, pending(governance).public_id, duration_days=1)
    assert governance.effective_grant("CIVIL-AID", "RESIDENTS") is not None
    set_expiry(catalog, grant.public_id, utcnow() - datetime.timedelta(seconds=1))
    assert catalog.active_grant("CIVIL-AID", "RESIDENTS") is None
    assert governance.effective_grant("CIVIL-AID", "RESIDENTS") is None


def test_a_new_grant_after_an_expired_one_is_the_active_one(
    catalog: Catalog, governance: Governance
) -> None:
    _, old = governance.approve(PSB_OFFICER, pending(governance).public_id)
    set_expiry(catalog, old.public_id, utcnow() - datetime.timedelta(days=1))
    _, new = governance.approve(PSB_OFFICER, pending(governance, fields=("name",)).public_id)
    active = governance.effective_grant("CIVIL-AID", "RESIDENTS")
    assert active is not None and active.id == new.public_id and active.fields == ("name",)


# --- data backflow (数据回流) ------------------------------------------------------------


def test_a_districts_backflow_request_is_filtered_to_its_own_region(
    governance: Governance,
) -> None:
    request = ask_backflow(governance)
    assert request.kind is RequestKind.BACKFLOW
    assert request.region_filter == "510104"
    assert request.state is RequestState.UNDER_REVIEW
    governance.review(PLATFORM_OFFICER, request.public_id, True, "")
    approved, grant = governance.approve(PSB_OFFICER, request.public_id)
    assert grant.origin is GrantOrigin.BACKFLOW
    assert grant.region_filter == "510104"
    assert set(grant.fields) == {"id_number", "name", "region_code"}
    effective = governance.effective_grant("JINJIANG-GRID", "RESIDENTS")
    assert effective is not None
    assert (effective.id, effective.region) == (grant.public_id, "510104")
    assert approved.grant_id == grant.public_id


def test_a_town_asks_for_backflow_of_its_own_region(governance: Governance) -> None:
    town = Identity("CHUNXI-GRID", Role.SYSTEM, department="CHUNXI", system="CHUNXI-GRID")
    request = ask_backflow(governance, town, system="CHUNXI-GRID")
    assert request.region_filter == "510104001"
    district_resource = ask_backflow(
        governance, town, resource="JJ-GRID-EVENTS", system="CHUNXI-GRID"
    )
    assert district_resource.region_filter == "510104001"


def test_a_city_department_cannot_ask_for_backflow(governance: Governance) -> None:
    refusal("NOT_BACKFLOW_ELIGIBLE", ask_backflow, governance, CIVIL_SYSTEM, system="CIVIL-AID")


def test_a_resource_without_a_region_field_cannot_flow_back(governance: Governance) -> None:
    refusal(
        "NOT_BACKFLOW_ELIGIBLE", ask_backflow, governance, resource="LICENCES", fields=("holder",)
    )


def test_backflow_comes_only_from_a_level_above(governance: Governance) -> None:
    wuhou = Identity("WUHOU-GRID", Role.SYSTEM, department="WUHOU", system="WUHOU-GRID")
    refusal(
        "NOT_BACKFLOW_ELIGIBLE",
        ask_backflow,
        governance,
        wuhou,
        resource="JJ-GRID-EVENTS",
        system="WUHOU-GRID",
    )


def test_a_backflow_request_names_fields_like_any_request(governance: Governance) -> None:
    refusal("INVALID_FIELD", ask_backflow, governance, fields=())


def test_proactive_backflow_gives_an_enrolled_district_its_region_of_eligible_resources(
    governance: Governance,
) -> None:
    assert governance.effective_grant("JINJIANG-GRID", "RESIDENTS") is None
    resource = governance.set_backflow_eligible(PSB_OFFICER, "RESIDENTS", True)
    assert resource.backflow_eligible
    assert governance.effective_grant("JINJIANG-GRID", "RESIDENTS") is None, "not enrolled yet"

    enrolment = governance.enrol(PLATFORM_OFFICER, "JINJIANG", "grid management duty")
    effective = governance.effective_grant("JINJIANG-GRID", "RESIDENTS")
    assert effective is not None
    assert effective.id == f"backflow-{enrolment.id}"
    assert effective.region == "510104"
    assert effective.fields == () and effective.clear_fields == ()
    assert effective.expires_at is None

    assert governance.effective_grant("WUHOU-GRID", "RESIDENTS") is None, "WUHOU not enrolled"
    assert governance.effective_grant("JINJIANG-GRID", "HOUSEHOLDS") is None, "not eligible"
    assert governance.effective_grant("CIVIL-AID", "RESIDENTS") is None
    assert governance.list_requests().items == [], "no request was needed"


def test_a_resource_made_eligible_after_the_enrolment_flows_back_too(
    catalog: Catalog, governance: Governance
) -> None:
    governance.enrol(PLATFORM_OFFICER, "JINJIANG", "grid management duty")
    register(catalog, "DEATHS", backflow_eligible=True)
    register(catalog, "BIRTHS")
    governance.set_backflow_eligible(PSB_OFFICER, "BIRTHS", True)
    for code in ("DEATHS", "BIRTHS"):
        effective = governance.effective_grant("JINJIANG-GRID", code)
        assert effective is not None and effective.region == "510104", code
    governance.set_backflow_eligible(PSB_OFFICER, "BIRTHS", False)
    assert governance.effective_grant("JINJIANG-GRID", "BIRTHS") is None


def test_an_enrolled_town_receives_its_own_region(governance: Governance) -> None:
    governance.set_backflow_eligible(PSB_OFFICER, "RESIDENTS", True)
    governance.enrol(PLATFORM_OFFICER, "CHUNXI", "street-level duty")
    effective = governance.effective_grant("CHUNXI-GRID", "RESIDENTS")
    assert effective is not None and effective.region == "510104001"


def test_a_withdrawal_ends_proactive_backflow(governance: Governance) -> None:
    governance.set_backflow_eligible(PSB_OFFICER, "RESIDENTS", True)
    governance.enrol(PLATFORM_OFFICER, "JINJIANG", "grid management duty")
    governance.withdraw(PLATFORM_OFFICER, "JINJIANG", "duty moved to the city")
    assert governance.effective_grant("JINJIANG-GRID", "RESIDENTS") is None
    assert governance.enrolments() == []
    refusal("NOT_ENROLLED", governance.withdraw, PLATFORM_OFFICER, "JINJIANG", "again")


def test_enrolment_and_withdrawal_record_who_when_and_why(governance: Governance) -> None:
    before = utcnow()
    enrolled = governance.enrol(PLATFORM_OFFICER, "JINJIANG", "grid management duty")
    assert (enrolled.enrolled_by, enrolled.reason) == ("zhao", "grid management duty")
    assert enrolled.enrolled_at >= before
    assert enrolled.withdrawn_at is None
    withdrawn = governance.withdraw(
        Identity("zhou", Role.PLATFORM_OFFICER), "JINJIANG", "duty moved to the city"
    )
    assert withdrawn.id == enrolled.id
    assert (withdrawn.withdrawn_by, withdrawn.withdraw_reason) == ("zhou", "duty moved to the city")
    assert withdrawn.withdrawn_at is not None and withdrawn.withdrawn_at >= enrolled.enrolled_at
    (kept,) = governance.enrolments(include_withdrawn=True)
    assert (kept.enrolled_by, kept.withdrawn_by) == ("zhao", "zhou")


def test_a_city_department_cannot_be_enrolled(governance: Governance) -> None:
    refusal("NOT_BACKFLOW_ELIGIBLE", governance.enrol, PLATFORM_OFFICER, "CIVIL", "why not")
    refusal("UNKNOWN_DEPARTMENT", governance.enrol, PLATFORM_OFFICER, "NOWHERE", "why not")


def test_a_department_is_enrolled_only_once_at_a_time(governance: Governance) -> None:
    governance.enrol(PLATFORM_OFFICER, "JINJIANG", "grid management duty")
    refusal("ALREADY_EXISTS", governance.enrol, PLATFORM_OFFICER, "JINJIANG", "again")
    governance.withdraw(PLATFORM_OFFICER, "JINJIANG", "pause")
    again = governance.enrol(PLATFORM_OFFICER, "JINJIANG", "resumed")
    assert [e.id for e in governance.enrolments()] == [again.id]
    assert len(governance.enrolments(include_withdrawn=True)) == 2


def test_only_platform_officers_enrol_and_withdraw(governance: Governance) -> None:
    for actor in (PSB_OFFICER, JINJIANG_OFFICER, ADMIN, AUDITOR):
        refusal("ROLE_NOT_ALLOWED", governance.enrol, actor, "JINJIANG", "please")
    governance.enrol(PLATFORM_OFFICER, "JINJIANG", "grid management duty")
    refusal("ROLE_NOT_ALLOWED", governance.withdraw, JINJIANG_OFFICER, "JINJIANG", "no more")


def test_only_resources_with_a_region_that_may_be_shared_are_made_eligible(
    governance: Governance,
) -> None:
    for code in ("FUGITIVES", "BIOMETRICS", "HOUSEHOLDS", "LICENCES"):
        refusal("NOT_BACKFLOW_ELIGIBLE", governance.set_backflow_eligible, PSB_OFFICER, code, True)
    refusal("ROLE_NOT_ALLOWED", governance.set_backflow_eligible, CIVIL_OFFICER, "RESIDENTS", True)
    refusal(
        "ROLE_NOT_ALLOWED", governance.set_backflow_eligible, PLATFORM_OFFICER, "RESIDENTS", True
    )
    assert governance.set_backflow_eligible(ADMIN, "RESIDENTS", True).backflow_eligible


@pytest.mark.parametrize(
    "restriction",
    [
        {"classification": Classification.CORE},
        {"sharing_type": SharingType.NOT_SHARED, "sharing_conditions": "保密法第九条"},
        {"classification": Classification.IMPORTANT},
    ],
    ids=["core", "not-shared", "important"],
)
def test_restricted_data_never_flows_back_without_a_request_even_if_registered_eligible(
    catalog: Catalog, governance: Governance, restriction: dict[str, Any]
) -> None:
    governance.enrol(PLATFORM_OFFICER, "JINJIANG", "grid management duty")
    try:
        register(catalog, "SECRETS", backflow_eligible=True, **restriction)
    except LijiaoError as refused:
        assert refused.reason in ("NOT_BACKFLOW_ELIGIBLE", "INVALID_FIELD")
    assert governance.effective_grant("JINJIANG-GRID", "SECRETS") is None


# --- corrections (疑义数据) --------------------------------------------------------------


def _granted(governance: Governance) -> None:
    governance.approve(PSB_OFFICER, pending(governance).public_id)


def test_a_receiving_department_flags_a_record_and_the_owner_answers(
    governance: Governance,
) -> None:
    _granted(governance)
    flagged = governance.flag(
        CIVIL_SYSTEM,
        resource_code="RESIDENTS",
        batch_id="b-510104-0",
        record_key={"id_number": "510104199001000001"},
        comment="this resident died in 2023",
    )
    assert flagged.state is CorrectionState.OPEN
    assert flagged.record_key == {"id_number": "510104199001000001"}
    assert flagged.flagged_by == "CIVIL-AID"
    assert flagged.flagging_department.code == "CIVIL"
    assert governance.counts()[2] == 1

    before = utcnow()
    answered = governance.answer(PSB_OFFICER, flagged.public_id, "corrected in batch b-9")
    assert answered.state is CorrectionState.ANSWERED
    assert (answered.answer, answered.answered_by) == ("corrected in batch b-9", "wang")
    assert answered.answered_at is not None and answered.answered_at >= before
    assert governance.counts()[2] == 0


def test_a_data_officer_of_the_receiving_department_may_flag_too(governance: Governance) -> None:
    _granted(governance)
    flagged = governance.flag(
        CIVIL_OFFICER,
        resource_code="RESIDENTS",
        batch_id="b-1",
        record_key={"id_number": "x"},
        comment="wrong name",
    )
    assert flagged.flagged_by == "li"


def test_a_department_never_granted_cannot_flag(governance: Governance) -> None:
    _granted(governance)
    refusal(
        "NO_GRANT",
        governance.flag,
        JINJIANG_SYSTEM,
        resource_code="RESIDENTS",
        batch_id="b-1",
        record_key={"id_number": "510104199001000001"},
        comment="wrong",
    )
    refusal(
        "ROLE_NOT_ALLOWED",
        governance.flag,
        AUDITOR,
        resource_code="RESIDENTS",
        batch_id="b-1",
        record_key={"id_number": "1"},
        comment="wrong",
    )


def test_a_flagged_record_is_named_by_its_key_fields(governance: Governance) -> None:
    _granted(governance)
    for key in ({}, {"name": "张1"}):
        error = refusal(
            "INVALID_FIELD",
            governance.flag,
            CIVIL_SYSTEM,
            resource_code="RESIDENTS",
            batch_id="b-1",
            record_key=key,
            comment="wrong",
        )
        assert error.metadata["field"] == "record_key"


def test_a_correction_is_answered_once_by_the_owners_officers(governance: Governance) -> None:
    _granted(governance)
    flagged = governance.flag(
        CIVIL_SYSTEM,
        resource_code="RESIDENTS",
        batch_id="b-1",
        record_key={"id_number": "510104199001000001"},
        comment="wrong phone",
    )
    refusal("ROLE_NOT_ALLOWED", governance.answer, CIVIL_OFFICER, flagged.public_id, "fine")
    refusal("ROLE_NOT_ALLOWED", governance.answer, JINJIANG_OFFICER, flagged.public_id, "fine")
    refusal("ROLE_NOT_ALLOWED", governance.answer, PLATFORM_OFFICER, flagged.public_id, "fine")
    governance.answer(PSB_OFFICER, flagged.public_id, "phone updated")
    refusal("WRONG_STATE", governance.answer, PSB_OFFICER, flagged.public_id, "again")
    refusal("UNKNOWN_CORRECTION", governance.answer, PSB_OFFICER, "c-nonexistent", "?")


def test_corrections_are_listed_by_state(governance: Governance) -> None:
    _granted(governance)
    ids = [
        governance.flag(
            CIVIL_SYSTEM,
            resource_code="RESIDENTS",
            batch_id=f"b-{i}",
            record_key={"id_number": str(i)},
            comment=f"wrong record {i}",
        ).public_id
        for i in range(3)
    ]
    governance.answer(PSB_OFFICER, ids[1], "fixed")
    open_ids = {c.public_id for c in governance.corrections(state=CorrectionState.OPEN).items}
    answered = governance.corrections(state=CorrectionState.ANSWERED).items
    assert open_ids == {ids[0], ids[2]}
    assert [c.public_id for c in answered] == [ids[1]]
    assert len(governance.corrections(resource="RESIDENTS").items) == 3
    assert governance.corrections(resource="ADDRESSES").items == []
    assert governance.counts()[2] == 2


def test_a_department_whose_grant_was_revoked_may_still_flag_what_it_received(
    governance: Governance,
) -> None:
    _, grant = governance.approve(PSB_OFFICER, pending(governance).public_id)
    governance.revoke_grant(PSB_OFFICER, grant.public_id, "purpose fulfilled")
    flagged = governance.flag(
        CIVIL_SYSTEM,
        resource_code="RESIDENTS",
        batch_id="b-1",
        record_key={"id_number": "1"},
        comment="was wrong when received",
    )
    assert flagged.state is CorrectionState.OPEN


def test_an_enrolled_district_may_flag_records_of_an_eligible_resource(
    governance: Governance,
) -> None:
    governance.set_backflow_eligible(PSB_OFFICER, "RESIDENTS", True)
    governance.enrol(PLATFORM_OFFICER, "JINJIANG", "grid management duty")
    flagged = governance.flag(
        JINJIANG_SYSTEM,
        resource_code="RESIDENTS",
        batch_id="b-1",
        record_key={"id_number": "1"},
        comment="moved to WUHOU",
    )
    assert flagged.flagging_department.code == "JINJIANG"
