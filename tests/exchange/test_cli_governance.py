"""``lijiao requests|backflow|grants|corrections ...`` against a real gateway."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from click.testing import CliRunner, Result

from catalog.credentials import authenticate_token
from catalog.db import open_catalog
from catalog.models import Role
from catalog.v1 import catalog_pb2 as pb
from exchange.cli import main
from exchange.cli.catalog import catalog
from exchange.cli.governance import grants
from tests.gateway_harness import RunningGateway
from tests.world import World, build_world

PURPOSE = ["--purpose", "最低生活保障 eligibility checks", "--legal-basis", "社会救助暂行办法 §11"]


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GATEWAY", "TOKEN", "CA_CERT", "INSECURE"):
        monkeypatch.delenv(f"LIJIAO_{name}", raising=False)


@dataclass
class City:
    """build_world's city plus a data bureau, a district and an officer token each.

    wang: data officer of PSB (owns RESIDENTS); li: data officer of CIVIL (receives);
    zhao: platform officer of DATA-BUREAU; chen: data officer of district JINJIANG.
    """

    gateway: RunningGateway
    world: World
    tokens: dict[str, str]

    def run(self, who: str, *args: str) -> Result:
        """Runs ``lijiao ARGS`` as ``who`` over plaintext."""
        connection = ["--gateway", self.gateway.target, "--insecure", "--token", self.tokens[who]]
        return CliRunner().invoke(main, [*args, *connection])

    def ok(self, who: str, *args: str) -> str:
        result = self.run(who, *args)
        assert result.exit_code == 0, result.output
        return result.stdout

    def json(self, who: str, *args: str) -> Any:
        return json.loads(self.ok(who, *args, "--json"))

    def submit(self, *fields: str, system: str = "CIVIL-AFFAIRS", days: str = "30") -> str:
        """Submits an access request for RESIDENTS as li; returns its id."""
        field_args = [arg for name in fields or ("id_number",) for arg in ("--field", name)]
        return str(self.json(
            "li", "requests", "submit", "--resource", "RESIDENTS", "--system", system,
            *field_args, *PURPOSE, "--days", days,
        )["request"]["id"])  # fmt: skip


@pytest.fixture
def city(gateway: RunningGateway) -> City:
    world = build_world(gateway)
    world.department("DATA-BUREAU")
    world.department("JINJIANG", level=pb.ADMINISTRATIVE_LEVEL_DISTRICT, region="510104")
    world.system("JINJIANG-GRID", "JINJIANG")
    tokens = {
        "admin": gateway.admin_token,
        "wang": gateway.issue_token("wang", Role.DATA_OFFICER, department="PSB"),
        "li": gateway.issue_token("li", Role.DATA_OFFICER, department="CIVIL"),
        "zhao": gateway.issue_token("zhao", Role.PLATFORM_OFFICER, department="DATA-BUREAU"),
        "chen": gateway.issue_token("chen", Role.DATA_OFFICER, department="JINJIANG"),
    }
    return City(gateway, world, tokens)


def table(text: str) -> list[list[str]]:
    """The rows of a printed table, split on runs of two or more spaces."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if line.strip()]


def block(text: str) -> dict[str, str]:
    """The ``key: value`` lines of a printed block (table rows are left out)."""
    pairs = (line.split(":", 1) for line in text.splitlines() if not line.startswith(" "))
    return {key: value.strip() for key, value in pairs if not key.endswith(" ")}


def test_request_is_submitted_reviewed_approved_narrower_and_shown(city: City) -> None:
    submitted = city.ok(
        "li", "requests", "submit", "--resource", "RESIDENTS", "--system", "CIVIL-AFFAIRS",
        "--field", "id_number", "--field", "name", "--field", "phone", *PURPOSE, "--days", "30",
    )  # fmt: skip
    fields = block(submitted)
    request_id = fields["id"]
    assert fields["state"] == "under-review"
    assert fields["kind"] == "access"
    assert fields["overdue"] == "no"
    assert "history:" in submitted

    rows = table(city.ok("zhao", "requests", "list", "--state", "under-review"))
    assert rows[0] == ["ID", "KIND", "STATE", "RESOURCE", "REQUESTING_SYSTEM", "DUE_TIME",
                       "OVERDUE"]  # fmt: skip
    assert rows[1][:5] == [request_id, "access", "under-review", "RESIDENTS", "CIVIL-AFFAIRS"]
    assert rows[1][6] == "no"
    for filters in (["--resource", "RESIDENTS"], ["--owner-department", "PSB"],
                    ["--requesting-department", "CIVIL"]):  # fmt: skip
        assert [row[0] for row in table(city.ok("wang", "requests", "list", *filters))[1:]] == [
            request_id
        ]
    assert len(table(city.ok("wang", "requests", "list", "--requesting-department", "PSB"))) == 1

    reviewed = block(city.ok("zhao", "requests", "review", request_id, "--pass"))
    assert reviewed["state"] == "pending-provider"

    approved = city.ok(
        "wang", "requests", "approve", request_id, "--field", "id_number", "--field", "name",
        "--days", "10", "--reason", "民政 needs names, not phones",
    )  # fmt: skip
    grant = block(approved)
    assert grant["fields"] == "id_number, name"
    assert grant["clear_fields"] == "-"
    assert grant["request_id"] == request_id
    assert f"request {request_id}: approved; grant {grant['id']}" in approved

    shown = city.ok("li", "requests", "show", request_id)
    assert block(shown)["grant_id"] == grant["id"]
    assert block(shown)["duration_days"] == "30"
    assert block(shown)["approved_duration_days"] == "10"
    history = table(shown.split("history:\n", 1)[1])
    assert history[0] == ["TIME", "FROM_STATE", "TO_STATE", "ACTOR", "REASON"]
    assert [row[1:4] for row in history[1:]] == [
        ["-", "submitted", "li"],
        ["submitted", "under-review", "platform"],
        ["under-review", "pending-provider", "zhao"],
        ["pending-provider", "approved", "wang"],
    ]
    assert history[4][4] == "民政 needs names, not phones"

    granted = block(city.ok("li", "grants", "show", grant["id"]))
    assert granted["status"] == "active"
    assert granted["origin"] == "access-request"
    listed = table(city.ok("li", "grants", "list", "--resource", "RESIDENTS"))
    assert grant["id"] in [row[0] for row in listed[1:]]


def test_grants_list_and_show_are_the_catalog_commands() -> None:
    catalog_grants = catalog.commands["grants"]
    assert isinstance(catalog_grants, type(grants))
    assert grants.commands["list"] is catalog_grants.commands["list"]
    assert grants.commands["show"] is catalog_grants.commands["show"]


def test_approving_more_than_asked_or_as_another_department_is_refused(city: City) -> None:
    request_id = city.submit("id_number", days="30")
    city.ok("zhao", "requests", "review", request_id, "--pass")

    wider = city.run("wang", "requests", "approve", request_id, "--field", "phone")
    assert wider.exit_code == 1
    assert (
        "INVALID_ARGUMENT WIDER_THAN_REQUESTED: fields phone were not requested; an approval "
        "can be narrower than the request, not wider [field=fields]"
    ) in wider.stderr
    longer = city.run("wang", "requests", "approve", request_id, "--days", "31")
    assert longer.exit_code == 1
    assert "31 days is longer than the 30 requested" in longer.stderr
    clear = city.run("wang", "requests", "approve", request_id, "--clear", "name")
    assert "clear field 'name' must be an approved field tagged sensitive" in clear.stderr
    own = city.run("li", "requests", "approve", request_id)
    assert own.exit_code == 1
    assert (
        "PERMISSION_DENIED ROLE_NOT_ALLOWED: only data officers of PSB, which owns RESIDENTS, "
        "may approve requests for it; ask one of them"
    ) in own.stderr
    assert own.stdout == ""


def test_reject_needs_a_reason_and_records_it(city: City) -> None:
    request_id = city.submit()
    city.ok("zhao", "requests", "review", request_id, "--pass")

    missing = city.run("wang", "requests", "reject", request_id)
    assert missing.exit_code == 2
    assert "Missing option '--reason'" in missing.output

    rejected = city.ok("wang", "requests", "reject", request_id, "--reason", "用途与法律依据不符")
    assert block(rejected)["state"] == "rejected"
    assert block(rejected)["decision_reason"] == "用途与法律依据不符"
    assert table(rejected.split("history:\n", 1)[1])[-1][1:] == [
        "pending-provider", "rejected", "wang", "用途与法律依据不符",
    ]  # fmt: skip
    again = city.run("wang", "requests", "reject", request_id, "--reason", "twice")
    assert "FAILED_PRECONDITION WRONG_STATE" in again.stderr
    assert "only PENDING_PROVIDER requests can be rejected" in again.stderr


def test_failing_a_review_needs_a_reason(city: City) -> None:
    request_id = city.submit()

    result = city.run("zhao", "requests", "review", request_id, "--fail")

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: INVALID_ARGUMENT REASON_REQUIRED: failing a review needs a written reason "
        "(adding unstated conditions to block sharing is not allowed) [field=reason]"
    )
    failed = city.ok("zhao", "requests", "review", request_id, "--fail", "--reason", "no basis")
    assert block(failed)["state"] == "rejected"
    neither = city.run("zhao", "requests", "review", request_id)
    assert neither.exit_code == 2
    assert "give --pass or --fail" in neither.output


def test_grant_is_revoked_with_a_reason(city: City) -> None:
    grant_id = city.world.grant("RESIDENTS", "JINJIANG-GRID").id
    assert city.run("wang", "grants", "revoke", grant_id).exit_code == 2

    revoked = block(city.ok("wang", "grants", "revoke", grant_id, "--reason", "duty ended"))

    assert revoked["status"] == "revoked"
    assert revoked["revoke_reason"] == "wang: duty ended"
    assert block(city.ok("li", "grants", "show", grant_id))["status"] == "revoked"
    again = city.run("wang", "grants", "revoke", grant_id, "--reason", "again")
    assert f"FAILED_PRECONDITION WRONG_STATE: grant {grant_id} is REVOKED, not ACTIVE" in (
        again.stderr
    )
    stranger = city.run("li", "grants", "revoke", "g-nope", "--reason", "x")
    assert "NOT_FOUND" in stranger.stderr


def test_backflow_eligibility_enrolment_and_withdrawal(city: City) -> None:
    eligible = block(city.ok("wang", "backflow", "eligible", "RESIDENTS", "--on"))
    assert eligible["backflow_eligible"] == "yes"
    refused = city.run("li", "backflow", "eligible", "RESIDENTS", "--off")
    assert "ask one of them" in refused.stderr

    not_platform = city.run("wang", "backflow", "enrol", "JINJIANG", "--reason", "x")
    assert (
        "PERMISSION_DENIED ROLE_NOT_ALLOWED: wang has role DATA_OFFICER; this call needs "
        "PLATFORM_OFFICER [allowed_roles=PLATFORM_OFFICER]" in not_platform.stderr
    )
    city_level = city.run("zhao", "backflow", "enrol", "PSB", "--reason", "x")
    assert "PSB is city-level; only districts and towns are enrolled" in city_level.stderr
    enrolled = block(city.ok("zhao", "backflow", "enrol", "JINJIANG", "--reason", "网格化治理"))
    assert enrolled["department"] == "JINJIANG"
    assert enrolled["region_code"] == "510104"
    assert enrolled["enrolled_by"] == "zhao"

    rows = table(city.ok("chen", "backflow", "list"))
    assert rows[0] == ["ID", "DEPARTMENT", "REGION_CODE", "ENROLLED_BY", "ENROLL_TIME", "REASON"]
    assert rows[1][1:4] == ["JINJIANG", "510104", "zhao"]
    assert rows[1][5] == "网格化治理"

    withdrawn = block(city.ok("zhao", "backflow", "withdraw", "JINJIANG", "--reason", "merged"))
    assert withdrawn["withdrawn_by"] == "zhao"
    assert withdrawn["withdraw_reason"] == "merged"
    assert len(table(city.ok("chen", "backflow", "list"))) == 1
    everything = table(city.ok("chen", "backflow", "list", "--all"))
    assert everything[0][-3:] == ["WITHDRAWN_BY", "WITHDRAW_TIME", "WITHDRAW_REASON"]
    assert everything[1][-1] == "merged"
    twice = city.run("zhao", "backflow", "withdraw", "JINJIANG", "--reason", "x")
    assert "NOT_FOUND NOT_ENROLLED: JINJIANG is not enrolled" in twice.stderr
    assert city.run("zhao", "backflow", "enrol", "JINJIANG").exit_code == 2
    assert "give --on or --off" in city.run("wang", "backflow", "eligible", "RESIDENTS").output


def test_backflow_request_is_fixed_to_the_district_region(city: City) -> None:
    shown = city.ok(
        "chen", "backflow", "request", "--resource", "RESIDENTS", "--system", "JINJIANG-GRID",
        "--field", "id_number", *PURPOSE, "--days", "90",
    )  # fmt: skip
    assert block(shown)["kind"] == "backflow"
    assert block(shown)["row_filter.region_code"] == "510104"
    assert block(shown)["state"] == "under-review"
    city_level = city.run(
        "li", "backflow", "request", "--resource", "RESIDENTS", "--system", "CIVIL-AFFAIRS",
        "--field", "id_number", *PURPOSE, "--days", "90",
    )  # fmt: skip
    assert "CIVIL is city-level: submit an access request instead" in city_level.stderr

    access = ["requests", "submit", "--resource", "RESIDENTS", "--system", "CIVIL-AFFAIRS",
              "--field", "name", *PURPOSE, "--days", "9"]  # fmt: skip
    regional = block(city.ok("li", *access, "--region", "510104"))
    assert regional["kind"] == "access"
    assert regional["row_filter.region_code"] == "510104"
    bad_region = city.run("li", *access, "--region", "Jinjiang")
    assert bad_region.exit_code == 1
    assert "INVALID_ARGUMENT" in bad_region.stderr
    assert "row_filter.region_code" in bad_region.stderr


def test_corrections_are_flagged_answered_and_listed(city: City) -> None:
    flagged = block(city.ok(
        "li", "corrections", "flag", "--resource", "RESIDENTS", "--batch", "b-0001",
        "--key", "id_number=510104199001000007", "--comment", "姓名错误 wrong name",
    ))  # fmt: skip
    correction_id = flagged["id"]
    assert flagged["record_key"] == "id_number=510104199001000007"
    assert flagged["state"] == "open"
    assert flagged["flagging_department"] == "CIVIL"
    bad_key = city.run(
        "li", "corrections", "flag", "--resource", "RESIDENTS", "--batch", "b-1",
        "--key", "name=x", "--comment", "c",
    )  # fmt: skip
    assert "record_key names the record by the key fields of RESIDENTS: id_number" in (
        bad_key.stderr
    )

    rows = table(city.ok("wang", "corrections", "list", "--state", "open"))
    assert rows[0][:5] == ["ID", "RESOURCE", "BATCH_ID", "RECORD_KEY", "STATE"]
    assert rows[1][:5] == [correction_id, "RESIDENTS", "b-0001", "id_number=510104199001000007",
                           "open"]  # fmt: skip

    not_owner = city.run("li", "corrections", "answer", correction_id, "--answer", "x")
    assert "may answer its flagged records; ask one of them" in not_owner.stderr
    answered = block(city.ok("wang", "corrections", "answer", correction_id,
                             "--answer", "已更正 corrected in batch b-0002"))  # fmt: skip
    assert answered["state"] == "answered"
    assert answered["answered_by"] == "wang"
    assert len(table(city.ok("li", "corrections", "list", "--state", "open"))) == 1
    rows = table(city.ok("li", "corrections", "list", "--resource", "RESIDENTS"))
    assert rows[1][-1] == "已更正 corrected in batch b-0002"


def test_bad_record_key_is_a_usage_error_naming_the_flag() -> None:
    result = CliRunner().invoke(
        main,
        ["corrections", "flag", "--resource", "R", "--batch", "b", "--key", "id_number",
         "--comment", "c", "--token", "t"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--key" in result.output
    assert "FIELD=VALUE" in result.output


def test_every_command_prints_json(city: City) -> None:
    request_id = city.submit()
    documents = [
        city.json("li", "requests", "list"),
        city.json("li", "requests", "show", request_id),
        city.json("zhao", "requests", "review", request_id, "--pass"),
        city.json("wang", "requests", "approve", request_id),
        city.json("li", "grants", "list"),
        city.json("wang", "backflow", "eligible", "RESIDENTS", "--on"),
        city.json("zhao", "backflow", "enrol", "JINJIANG", "--reason", "r"),
        city.json("zhao", "backflow", "list", "--all"),
        city.json("li", "corrections", "list"),
    ]
    assert documents[0]["requests"][0]["state"] == "REQUEST_STATE_UNDER_REVIEW"
    assert documents[1]["request"]["history"][0]["toState"] == "REQUEST_STATE_SUBMITTED"
    approval = documents[3]
    assert approval["request"]["state"] == "REQUEST_STATE_APPROVED"
    assert approval["grant"]["id"] == approval["request"]["grantId"]
    assert documents[5]["resource"]["backflowEligible"] is True
    assert documents[7]["enrolments"][0]["department"] == "JINJIANG"
    assert documents[8] == {}
    revoked = city.json("wang", "grants", "revoke", approval["grant"]["id"], "--reason", "r")
    assert revoked["grant"]["status"] == "GRANT_STATUS_REVOKED"
    rejected_id = city.submit()
    rejected = city.json("zhao", "requests", "reject", rejected_id, "--reason", "r")
    assert rejected["request"]["state"] == "REQUEST_STATE_REJECTED"


def test_overdue_requests_are_listed_and_marked(city: City) -> None:
    late, on_time = city.submit(), city.submit()
    engine = sqlalchemy.create_engine(city.gateway.settings.catalog_url)
    with engine.begin() as connection:
        changed = connection.execute(
            sqlalchemy.text("UPDATE access_requests SET due_at = :due WHERE public_id = :id"),
            {"due": "2024-01-02 00:00:00.000000", "id": late},
        )
        assert changed.rowcount == 1
    engine.dispose()

    rows = table(city.ok("zhao", "requests", "list", "--overdue"))
    assert [(row[0], row[5], row[6]) for row in rows[1:]] == [
        (late, "2024-01-02T00:00:00+00:00", "yes")
    ]
    everything = {row[0]: row[6] for row in table(city.ok("zhao", "requests", "list"))[1:]}
    assert everything == {late: "yes", on_time: "no"}
    assert block(city.ok("li", "requests", "show", late))["overdue"] == "yes"


def test_not_shared_requests_are_refused_at_once_citing_the_catalog(city: City) -> None:
    city.world.resource(
        "SECRETS", "PSB", sharing_type=pb.SHARING_TYPE_NOT_SHARED, sharing_conditions="保密法 §9"
    )
    base = ["requests", "submit", "--system", "CIVIL-AFFAIRS", "--field", "name", *PURPOSE]

    refused = block(city.ok("li", *base, "--resource", "SECRETS", "--days", "5"))

    assert refused["state"] == "rejected"
    assert refused["decision_reason"] == "不予共享 NOT_SHARED: 保密法 §9"
    too_long = city.run("li", *base, "--resource", "SECRETS", "--days", "3651")
    assert too_long.exit_code == 2
    assert "--days" in too_long.output


def test_unconditional_requests_are_granted_at_once(city: City) -> None:
    city.world.resource("BIRTHS", "PSB", sharing_type=pb.SHARING_TYPE_UNCONDITIONAL)

    granted = block(city.ok(
        "li", "requests", "submit", "--system", "CIVIL-AFFAIRS", "--field", "name", *PURPOSE,
        "--resource", "BIRTHS", "--days", "5",
    ))  # fmt: skip

    assert granted["state"] == "approved"
    assert granted["grant_id"].startswith("g-")


def test_tokens_issue_makes_platform_officers(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["tokens", "issue", "--role", "platform-officer", "--name", "zhao",
         "--data-dir", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    sessions = open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    with sessions() as session:
        assert authenticate_token(session, result.stdout.strip()).role is Role.PLATFORM_OFFICER
    sessions.kw["bind"].dispose()
