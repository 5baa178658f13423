"""``lijiao requests|backflow|grants|corrections ...``: the sharing workflow for officers.

A command-line client of ``catalog.v1.ApprovalService`` built from the pieces of
:mod:`exchange.cli.catalog` (client, console, option types), so options are named after
the proto fields they fill and every command prints text or, with ``--json``, the
response. Who may do what is the gateway's decision (:mod:`catalog.governance`): these
commands ask, and print the gateway's refusal whole (status, reason, what to do next).
"""

from __future__ import annotations

import functools
from typing import Any

import click

from catalog.governance import MAX_DURATION_DAYS
from catalog.v1 import approval_pb2 as pb
from catalog.v1 import approval_pb2_grpc
from exchange.cli.catalog import grants as catalog_grants
from exchange.cli.client import (
    REGION,
    Console,
    Parsed,
    ProtoEnumChoice,
    catalog_command,
    print_table,
    text_of,
)

_approval_command = functools.partial(
    catalog_command, stub_class=approval_pb2_grpc.ApprovalServiceStub
)
_DAYS = click.IntRange(1, MAX_DURATION_DAYS)
_REQUEST_STATE = ProtoEnumChoice(pb.RequestState.DESCRIPTOR)
_CORRECTION_STATE = ProtoEnumChoice(pb.CorrectionState.DESCRIPTOR)
_REQUEST_COLUMNS = ("id", "kind", "state", "resource", "requesting_system", "due_time", "overdue")
_HISTORY_COLUMNS = ("time", "from_state", "to_state", "actor", "reason")
_ENROLMENT_COLUMNS = ("id", "department", "region_code", "enrolled_by", "enroll_time", "reason")
_WITHDRAWAL_COLUMNS = ("withdrawn_by", "withdraw_time", "withdraw_reason")
_CORRECTION_COLUMNS = (
    "id", "resource", "batch_id", "record_key", "state", "flagging_department", "comment", "answer",
)  # fmt: skip


def _key_value(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not name or not equals:
        raise ValueError("write FIELD=VALUE, e.g. id_number=510104199001010011")
    return name, value


_KEY = Parsed("FIELD=VALUE", _key_value)


def _either(ctx: click.Context, param: click.Parameter, value: bool | None) -> bool:
    """Makes an ``--on/--off`` flag pair required, naming both flags when neither is given."""
    if value is None:
        flags = " or ".join(param.opts + param.secondary_opts)
        raise click.UsageError(f"give {flags}", ctx)
    return value


def _show_request(console: Console, method: str, request: Any) -> Any:
    """Calls ``method`` and prints the request it returns, then its history, oldest first."""
    response = console.show(method, request, "request", skip=("history",))
    if not console.as_json:
        click.echo("history:")
        print_table(response.request.history, _HISTORY_COLUMNS, "  ")
    return response


def _request_options(command: Any) -> Any:
    """The options of a new request, shared by access and backflow requests."""
    options = (
        click.option("--resource", required=True, help="Code of the resource, e.g. PSB-RESIDENT."),
        click.option(
            "--system",
            "requesting_system",
            required=True,
            help="Code of your department's system that will receive the records.",
        ),
        click.option(
            "--field",
            "fields",
            multiple=True,
            required=True,
            help="A field you need; repeat for each. Ask only for what the duty needs "
            "(minimum necessary, PIPL §6).",
        ),
        click.option(
            "--purpose",
            required=True,
            help="What the records are for; they may be used for nothing else.",
        ),
        click.option(
            "--legal-basis",
            required=True,
            help="The law, regulation or statutory duty the use serves (PIPL §13(3)).",
        ),
        click.option(
            "--days",
            "duration_days",
            required=True,
            type=_DAYS,
            help=f"Days of access wanted (1..{MAX_DURATION_DAYS}).",
        ),
    )
    for option in reversed(options):
        command = option(command)
    return command


# --- requests ---------------------------------------------------------------------------


@click.group("requests")
def requests() -> None:
    """Access requests: ask for another department's data, review and decide.

    \b
    A request moves:
      submitted -> under-review      the platform's compliance review (platform officers)
                -> pending-provider  the owning department's data officers decide
                -> approved (a grant is made) or rejected (with a written reason)
    By default the review is due in 2 working days and the decision in 10.
    Unconditional resources are granted at once; not-shared and core resources are
    refused at once; important resources always need an approval. Nobody decides a
    request their own department made (four eyes).
    """


@requests.command("submit")
@_request_options
@click.option("--region", "row_filter", type=REGION, help="Only rows of this region code.")
@_approval_command
def requests_submit(console: Console, **request: Any) -> None:
    """Ask for a resource for one of your department's systems.

    Prints the request with its id: keep it to follow the request with
    `lijiao requests show ID`. An unconditional resource is granted at once (the
    grant id is shown); otherwise the request waits for the platform's review.
    """
    _show_request(console, "SubmitAccessRequest", pb.SubmitAccessRequestRequest(**request))


@requests.command("list")
@click.option("--state", type=_REQUEST_STATE, help="Only requests in this state.")
@click.option("--resource", help="Only requests for this resource.")
@click.option("--requesting-department", help="Only requests made by this department.")
@click.option("--owner-department", help="Only requests for resources of this department.")
@click.option(
    "--overdue", "overdue_only", is_flag=True, help="Only open requests past their due time."
)
@_approval_command
def requests_list(console: Console, **filters: Any) -> None:
    """List requests, newest first.

    OVERDUE says "yes" for an open request whose current step (review or decision)
    is past its due time: escalate it. Data officers: `--owner-department` with your
    department lists what waits for your decision (`--state pending-provider`).
    """
    request = pb.ListAccessRequestsRequest(**filters)
    console.list("ListAccessRequests", request, "requests", _REQUEST_COLUMNS)


@requests.command("show")
@click.argument("id")
@_approval_command
def requests_show(console: Console, **given: str) -> None:
    """Show request ID with its history: who moved it, when and why."""
    _show_request(console, "GetAccessRequest", pb.GetAccessRequestRequest(**given))


@requests.command("review")
@click.argument("id")
@click.option(
    "--pass/--fail",
    "passed",
    default=None,
    callback=_either,
    help="Pass the request on to the owning department, or fail it (which rejects it).",
)
@click.option("--reason", default="", help="Why; required to fail a request.")
@_approval_command
def requests_review(console: Console, **given: Any) -> None:
    """Record the platform's compliance review of request ID (platform officers).

    Check that the fields asked are the minimum the purpose needs and that the legal
    basis covers the purpose. A passed request goes to the owning department's data
    officers, due within their working days; a failed one is rejected with your reason.
    """
    _show_request(console, "ReviewAccessRequest", pb.ReviewAccessRequestRequest(**given))


@requests.command("approve")
@click.argument("id")
@click.option(
    "--field",
    "fields",
    multiple=True,
    help="A field to grant; repeat for each [default: every field asked]. "
    "You may grant fewer fields than asked, never others.",
)
@click.option(
    "--days",
    "duration_days",
    type=_DAYS,
    help="Days to grant [default: the days asked]; at most the days asked.",
)
@click.option(
    "--clear",
    "clear_fields",
    multiple=True,
    help="A granted sensitive field to deliver in clear text; repeat for each. "
    "Other sensitive fields are masked (phone 138****5678).",
)
@click.option("--reason", help="Why (optional; kept in the history).")
@_approval_command
def requests_approve(console: Console, **given: Any) -> None:
    """Approve request ID and make its grant (data officers of the owning department).

    The approval may be narrower than the request (fewer fields, fewer days), never
    wider. The receiving system can fetch the records as soon as this returns.
    Prints the grant, then the request's state and the grant id.
    """
    request = pb.ApproveAccessRequestRequest(**given)
    response = console.show("ApproveAccessRequest", request, "grant")
    if not console.as_json:
        state = text_of(response.request, "state")
        click.echo(f"request {response.request.id}: {state}; grant {response.grant.id}")


@requests.command("reject")
@click.argument("id")
@click.option("--reason", required=True, help="Why, in writing; shown to the requester.")
@_approval_command
def requests_reject(console: Console, **given: str) -> None:
    """Reject request ID with a written reason.

    Data officers of the owning department reject pending-provider requests; platform
    officers reject requests under review. Refusing by conditions the catalog does not
    state (擅自增设条件) is not allowed: give the real reason, e.g. the legal basis
    does not cover the purpose, or name the fields that can be shared instead.
    """
    _show_request(console, "RejectAccessRequest", pb.RejectAccessRequestRequest(**given))


# --- backflow ---------------------------------------------------------------------------


@click.group("backflow")
def backflow() -> None:
    """Data backflow (数据回流): districts and towns get their own rows of city data.

    A district or town asks once per resource (`backflow request`), or a platform
    officer enrols it (`backflow enrol`) and it then receives its own region's rows of
    every backflow-eligible resource with no request. Every delivery is logged.
    """


@backflow.command("request")
@_request_options
@_approval_command
def backflow_request(console: Console, **request: Any) -> None:
    """Ask for your district's (or town's) own rows of an upper level's resource.

    The rows are fixed to your department's region code and its sub-regions. The
    request is reviewed and decided like any other (`lijiao requests ...`).
    """
    _show_request(console, "SubmitBackflowRequest", pb.SubmitBackflowRequestRequest(**request))


@backflow.command("eligible")
@click.argument("resource")
@click.option(
    "--on/--off",
    "eligible",
    default=None,
    callback=_either,
    help="Eligible for proactive backflow, or no longer.",
)
@_approval_command
def backflow_eligible(console: Console, **given: Any) -> None:
    """Mark RESOURCE eligible for proactive backflow, or no longer.

    For data officers of the owning department (and administrators). Enrolled
    districts and towns then receive its rows of their region without a request;
    `--off` stops that at once. The resource needs a region field and must be
    neither not-shared nor core.
    """
    request = pb.SetBackflowEligibilityRequest(**given)
    console.show("SetBackflowEligibility", request, "resource")


@backflow.command("enrol")
@click.argument("department")
@click.option("--reason", required=True, help="Why, in writing; kept with the enrolment.")
@_approval_command
def backflow_enrol(console: Console, **given: str) -> None:
    """Enrol district or town DEPARTMENT in proactive backflow (platform officers).

    From now on its systems receive its region's rows of every backflow-eligible
    resource, with no request per resource.
    """
    console.show("EnrolBackflow", pb.EnrolBackflowRequest(**given), "enrolment")


@backflow.command("withdraw")
@click.argument("department")
@click.option("--reason", required=True, help="Why, in writing; kept with the enrolment.")
@_approval_command
def backflow_withdraw(console: Console, **given: str) -> None:
    """End DEPARTMENT's backflow enrolment (platform officers).

    Its proactive deliveries stop at once; grants from approved backflow requests
    are not touched (revoke them with `lijiao grants revoke`).
    """
    console.show("WithdrawBackflow", pb.WithdrawBackflowRequest(**given), "enrolment")


@backflow.command("list")
@click.option("--all", "include_withdrawn", is_flag=True, help="Also list withdrawn enrolments.")
@_approval_command
def backflow_list(console: Console, include_withdrawn: bool) -> None:
    """List the departments enrolled in proactive backflow, oldest first."""
    columns = _ENROLMENT_COLUMNS + (_WITHDRAWAL_COLUMNS if include_withdrawn else ())
    request = pb.ListBackflowEnrolmentsRequest(include_withdrawn=include_withdrawn)
    console.list("ListBackflowEnrolments", request, "enrolments", columns)


# --- grants -----------------------------------------------------------------------------


@click.group("grants")
def grants() -> None:
    """Grants: which system may receive which resource, which fields, until when.

    Approvals make grants; `lijiao catalog grants` lists the same, and lets administrators
    add grants directly.
    """


grants.add_command(catalog_grants.commands["list"])
grants.add_command(catalog_grants.commands["show"])


@grants.command("revoke")
@click.argument("id")
@click.option("--reason", required=True, help="Why, in writing; kept with the grant.")
@_approval_command
def grants_revoke(console: Console, **given: str) -> None:
    """End grant ID at once (data officers of the owning department, administrators).

    Deliveries under it stop at once; the receiving department must request again.
    """
    console.show("RevokeGrant", pb.RevokeGrantRequest(**given), "grant")


# --- corrections ------------------------------------------------------------------------


@click.group("corrections")
def corrections() -> None:
    """Corrections (疑义数据): flag a received record as wrong; its provider answers."""


@corrections.command("flag")
@click.option("--resource", required=True, help="Code of the resource the record belongs to.")
@click.option("--batch", "batch_id", required=True, help="Id of the batch the record came in.")
@click.option(
    "--key",
    "record_key",
    multiple=True,
    required=True,
    type=_KEY,
    help="A key field of the record and its value; repeat for each key field.",
)
@click.option("--comment", required=True, help="What is wrong with the record.")
@_approval_command
def corrections_flag(
    console: Console, record_key: tuple[tuple[str, str], ...], **given: str
) -> None:
    """Flag a record your department received as wrong.

    Name the record by its batch and the values of the resource's key fields
    (`lijiao catalog resources show RESOURCE` lists them). The owning department's data
    officers answer; follow it with `lijiao corrections list --state open`.
    """
    request = pb.FlagRecordRequest(record_key=dict(record_key), **given)
    console.show("FlagRecord", request, "correction")


@corrections.command("answer")
@click.argument("id")
@click.option("--answer", required=True, help="What was corrected, or why the record stands.")
@_approval_command
def corrections_answer(console: Console, **given: str) -> None:
    """Answer flagged record ID (data officers of the owning department)."""
    console.show("AnswerCorrection", pb.AnswerCorrectionRequest(**given), "correction")


@corrections.command("list")
@click.option("--resource", help="Only records of this resource.")
@click.option("--state", type=_CORRECTION_STATE, help="Only open or only answered records.")
@_approval_command
def corrections_list(console: Console, **filters: Any) -> None:
    """List flagged records, oldest first; open ones wait for the provider's answer."""
    request = pb.ListCorrectionsRequest(**filters)
    console.list("ListCorrections", request, "corrections", _CORRECTION_COLUMNS)


GROUPS = (requests, backflow, grants, corrections)
