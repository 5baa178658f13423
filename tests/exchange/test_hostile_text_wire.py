"""Hostile texts over the real gRPC wire (issue 12, findings 4, 11 and 12).

A live gateway: a megabyte or a terminal escape in a reason or a record key, C1 and
bidirectional controls in names, purposes and legal bases, and region codes of
non-ASCII digits are refused as INVALID_ARGUMENT / INVALID_FIELD naming the field.
Nothing changes but a DENIAL entry, and that entry stays small.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from adapters.connection import auth_metadata, open_blocking_channel
from adapters.errors import error_info
from catalog.models import Role
from catalog.v1 import approval_pb2 as apb
from catalog.v1 import approval_pb2_grpc, catalog_pb2_grpc
from catalog.v1 import catalog_pb2 as pb
from tests.gateway_harness import RunningGateway
from tests.world import World

MEGABYTE = "x" * (1 << 20)
ESCAPE = "ok\x1b]0;pwned\x07\x1b[2J"
Metadata = tuple[tuple[str, str], ...]


@dataclass
class City:
    """PSB owns RESIDENTS; CIVIL asks for it; BIGDATA's zhao reviews; wang decides."""

    world: World
    approvals: approval_pb2_grpc.ApprovalServiceStub
    tokens: dict[str, str]

    def who(self, name: str) -> Metadata:
        if name in self.world.systems:
            return auth_metadata(self.world.systems[name].token)
        return auth_metadata(self.tokens[name])

    def engine(self) -> sa.Engine:
        assert self.world.gateway.gateway is not None
        engine: sa.Engine = self.world.gateway.gateway.catalog.sessions.kw["bind"]
        return engine

    def submit(self, **overrides: Any) -> apb.AccessRequest:
        values: dict[str, Any] = {
            "resource": "RESIDENTS",
            "fields": ["id_number", "name"],
            "purpose": "最低生活保障 eligibility checks",
            "legal_basis": "《社会救助暂行办法》第十一条",
            "duration_days": 30,
        }
        values.update(overrides)
        response = self.approvals.SubmitAccessRequest(
            apb.SubmitAccessRequestRequest(**values), metadata=self.who("CIVIL-AFFAIRS"), timeout=10
        )
        request: apb.AccessRequest = response.request
        return request

    def state_of(self, request_id: str) -> int:
        return int(
            self.approvals.GetAccessRequest(
                apb.GetAccessRequestRequest(id=request_id), metadata=self.who("zhao"), timeout=10
            ).request.state
        )


@pytest.fixture
def city(gateway: RunningGateway) -> City:
    channel = open_blocking_channel(gateway.target, insecure=True, quiet=True)
    world = World(gateway, catalog_pb2_grpc.CatalogServiceStub(channel))
    for code in ("PSB", "CIVIL", "BIGDATA"):
        world.department(code)
    world.system("PSB-HUKOU", "PSB")
    world.system("CIVIL-AFFAIRS", "CIVIL")
    world.resource("RESIDENTS", "PSB")
    tokens = {
        "admin": gateway.admin_token,
        "wang": gateway.issue_token("wang", Role.DATA_OFFICER, department="PSB"),
        "zhao": gateway.issue_token("zhao", Role.PLATFORM_OFFICER, department="BIGDATA"),
    }
    return City(world, approval_pb2_grpc.ApprovalServiceStub(channel), tokens)


def _ledger(city: City) -> tuple[int, int, int]:
    """(entries other than denials, denials, length of the longest entry)."""
    with city.engine().connect() as conn:
        others, denials, longest = conn.execute(
            sa.text(
                "SELECT sum(CASE WHEN kind != 'DENIAL' THEN 1 ELSE 0 END), "
                "sum(CASE WHEN kind = 'DENIAL' THEN 1 ELSE 0 END), max(length(content)) "
                "FROM ledger_entries"
            )
        ).one()
    return int(others or 0), int(denials or 0), int(longest or 0)


@contextmanager
def only_a_denial(city: City) -> Iterator[None]:
    """Asserts the block changed nothing but added denial entries of bounded size."""
    others, denials, _ = _ledger(city)
    yield
    after_others, after_denials, longest = _ledger(city)
    assert after_others == others, "a refusal changed the catalog"
    assert after_denials > denials, "a refusal left no denial entry"
    assert longest < 8192, f"a ledger entry of {longest} characters"


def refused(city: City, call: Callable[..., Any], request: Any, who: str, field: str) -> None:
    """Makes a call that must be refused as INVALID_FIELD naming ``field``, changing
    nothing but the ledger's denials."""
    with only_a_denial(city), pytest.raises(grpc.RpcError) as raised:
        call(request, metadata=city.who(who), timeout=30)
    error: Any = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    reason, metadata = error_info(error)
    assert (reason, metadata.get("field")) == ("INVALID_FIELD", field), error.details()


# --- finding 4 ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", [MEGABYTE, ESCAPE], ids=["1 MB", "terminal escape"])
def test_a_review_reason_is_bounded_and_free_of_controls_over_the_wire(
    city: City, text: str
) -> None:
    request = city.submit()
    review = apb.ReviewAccessRequestRequest(id=request.id, passed=True, reason=text)
    refused(city, city.approvals.ReviewAccessRequest, review, "zhao", "reason")
    assert city.state_of(request.id) == apb.REQUEST_STATE_UNDER_REVIEW
    city.approvals.ReviewAccessRequest(
        apb.ReviewAccessRequestRequest(id=request.id, passed=True, reason="合法 lawful"),
        metadata=city.who("zhao"),
        timeout=10,
    )
    approve = apb.ApproveAccessRequestRequest(id=request.id, reason=text)
    refused(city, city.approvals.ApproveAccessRequest, approve, "wang", "reason")
    assert city.state_of(request.id) == apb.REQUEST_STATE_PENDING_PROVIDER


@pytest.mark.parametrize(
    "record_key",
    [{"id_number": MEGABYTE}, {"id_number": ESCAPE}, {"id_number": "510104\u202e"}],
    ids=["1 MB", "terminal escape", "bidi override"],
)
def test_a_flagged_record_key_is_bounded_and_free_of_controls_over_the_wire(
    city: City, record_key: dict[str, str]
) -> None:
    city.world.grant("RESIDENTS", "CIVIL-AFFAIRS")
    flag = apb.FlagRecordRequest(
        resource="RESIDENTS", batch_id="b-1", record_key=record_key, comment="wrong"
    )
    refused(city, city.approvals.FlagRecord, flag, "CIVIL-AFFAIRS", "record_key")
    listed = city.approvals.ListCorrections(
        apb.ListCorrectionsRequest(), metadata=city.who("wang"), timeout=10
    )
    assert not listed.corrections


# --- finding 11 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["PSB\u202e局", "a\x9b31mb", "a\x85b", "a\u2066b\u2069", "a\u200fb", "a\u2028b"],
    ids=["RLO", "C1 CSI", "C1 NEL", "isolate", "RLM", "line separator"],
)
def test_c1_and_bidi_controls_are_refused_in_names_purposes_and_legal_bases_over_the_wire(
    city: City, text: str
) -> None:
    department = pb.CreateDepartmentRequest(
        department=pb.Department(
            code="EVIL", name=text, level=pb.ADMINISTRATIVE_LEVEL_CITY, region_code="510100"
        )
    )
    refused(city, city.world.stub.CreateDepartment, department, "admin", "name")
    for field in ("purpose", "legal_basis"):
        values: dict[str, Any] = {
            "resource": "RESIDENTS",
            "fields": ["name"],
            "purpose": "checks",
            "legal_basis": "law",
            "duration_days": 10,
            field: text,
        }
        submit = apb.SubmitAccessRequestRequest(**values)
        refused(city, city.approvals.SubmitAccessRequest, submit, "CIVIL-AFFAIRS", field)


def test_chinese_texts_of_the_demo_still_pass_over_the_wire(city: City) -> None:
    city.world.stub.CreateDepartment(
        pb.CreateDepartmentRequest(
            department=pb.Department(
                code="JINJIANG",
                name="锦江区政务服务和网络理政办公室",
                level=pb.ADMINISTRATIVE_LEVEL_DISTRICT,
                region_code="510104",
            )
        ),
        metadata=city.who("admin"),
    )
    request = city.submit(
        purpose="“最低生活保障”核查 (checks)", legal_basis="《政务数据共享条例》第十条"
    )
    assert request.purpose == "“最低生活保障”核查 (checks)"


# --- finding 12 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "region",
    ["５１０１００", "٥١٠١٠٤", "५१०१०४", "51010４"],
    ids=["fullwidth", "Arabic-Indic", "Devanagari", "one fullwidth digit"],
)
def test_region_codes_of_non_ascii_digits_are_refused_over_the_wire(
    city: City, region: str
) -> None:
    department = pb.CreateDepartmentRequest(
        department=pb.Department(
            code="LOOKALIKE", name="x", level=pb.ADMINISTRATIVE_LEVEL_DISTRICT, region_code=region
        )
    )
    refused(city, city.world.stub.CreateDepartment, department, "admin", "region_code")
    grant = pb.CreateGrantRequest(
        grant=pb.Grant(
            resource="RESIDENTS",
            grantee_system="CIVIL-AFFAIRS",
            row_filter=pb.RowFilter(region_code=region),
        )
    )
    refused(city, city.world.stub.CreateGrant, grant, "admin", "row_filter.region_code")
    submit = apb.SubmitAccessRequestRequest(
        resource="RESIDENTS",
        fields=["name"],
        purpose="checks",
        legal_basis="law",
        duration_days=10,
        row_filter=pb.RowFilter(region_code=region),
    )
    refused(
        city, city.approvals.SubmitAccessRequest, submit, "CIVIL-AFFAIRS", "row_filter.region_code"
    )
