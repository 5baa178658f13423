"""gRPC ``ApprovalService``: the sharing workflow on the wire."""

from __future__ import annotations

from typing import Any

from catalog import models
from catalog.credentials import Identity
from catalog.governance import Governance
from catalog.models import Role
from catalog.v1 import approval_pb2 as pb
from catalog.v1 import approval_pb2_grpc, catalog_pb2
from exchange import metrics
from exchange.gate.rpc import Authenticator, unary
from exchange.services.catalog import from_wire, grant_message, resource_message, timestamp, to_wire


def request_message(row: models.AccessRequest, governance: Governance) -> pb.AccessRequest:
    """Converts a request with its history."""
    return pb.AccessRequest(
        id=row.public_id,
        kind=to_wire(pb.RequestKind, "REQUEST_KIND_", row.kind),
        state=to_wire(pb.RequestState, "REQUEST_STATE_", row.state),
        resource=row.resource.code,
        owner_department=row.resource.owner.code,
        requesting_department=row.requesting_system.department.code,
        requesting_system=row.requesting_system.code,
        requester=row.requester,
        fields=row.fields,
        purpose=row.purpose,
        legal_basis=row.legal_basis,
        duration_days=row.duration_days,
        approved_duration_days=row.approved_days,
        row_filter=catalog_pb2.RowFilter(region_code=row.region_filter),
        due_time=timestamp(row.due_at),
        overdue=governance.overdue(row),
        grant_id=row.grant_id,
        decision_reason=row.decision_reason,
        history=[
            pb.Transition(
                from_state=(
                    to_wire(pb.RequestState, "REQUEST_STATE_", models.RequestState(t.from_state))
                    if t.from_state
                    else pb.REQUEST_STATE_UNSPECIFIED
                ),
                to_state=to_wire(
                    pb.RequestState, "REQUEST_STATE_", models.RequestState(t.to_state)
                ),
                actor=t.actor,
                reason=t.reason,
                time=timestamp(t.at),
            )
            for t in row.transitions
        ],
        create_time=timestamp(row.created_at),
    )


def enrolment_message(row: models.BackflowEnrolment) -> pb.BackflowEnrolment:
    """Converts a backflow enrolment."""
    return pb.BackflowEnrolment(
        id=str(row.id),
        department=row.department.code,
        region_code=row.department.region_code,
        enrolled_by=row.enrolled_by,
        enroll_time=timestamp(row.enrolled_at),
        reason=row.reason,
        withdrawn_by=row.withdrawn_by,
        withdraw_time=timestamp(row.withdrawn_at),
        withdraw_reason=row.withdraw_reason,
    )


def correction_message(row: models.Correction) -> pb.Correction:
    """Converts a flagged record."""
    return pb.Correction(
        id=row.public_id,
        resource=row.resource.code,
        batch_id=row.batch_id,
        record_key={str(k): str(v) for k, v in row.record_key.items()},
        comment=row.comment,
        flagged_by=row.flagged_by,
        flagging_department=row.flagging_department.code,
        state=to_wire(pb.CorrectionState, "CORRECTION_STATE_", row.state),
        answer=row.answer,
        answered_by=row.answered_by,
        create_time=timestamp(row.created_at),
        answer_time=timestamp(row.answered_at),
    )


def _optional_state(number: int) -> models.RequestState | None:
    if number == pb.REQUEST_STATE_UNSPECIFIED:
        return None
    return from_wire(pb.RequestState, "REQUEST_STATE_", number, models.RequestState, "state")


def _count_decision(row: models.AccessRequest) -> None:
    """Counts a request that reached its decision, and how long that took."""
    if row.state not in (models.RequestState.APPROVED, models.RequestState.REJECTED):
        return
    if row.decided_at is None:
        return
    metrics.DECISIONS.labels(row.kind.value, row.state.value).inc()
    seconds = (row.decided_at - row.created_at).total_seconds()
    metrics.DECISION_SECONDS.labels(row.kind.value).observe(max(seconds, 0.0))


class ApprovalServicer(approval_pb2_grpc.ApprovalServiceServicer):
    """Binds :class:`catalog.governance.Governance` to the wire."""

    def __init__(self, auth: Authenticator, governance: Governance) -> None:
        self.auth = auth
        self.governance = governance

    def _request(self, row: models.AccessRequest) -> pb.AccessRequest:
        return request_message(row, self.governance)

    @unary(Role.SYSTEM, Role.DATA_OFFICER)
    async def SubmitAccessRequest(
        self, request: pb.SubmitAccessRequestRequest, identity: Identity, context: Any
    ) -> pb.SubmitAccessRequestResponse:
        row = self.governance.submit(
            identity,
            resource_code=request.resource,
            system_code=request.requesting_system or identity.system or "",
            fields=list(request.fields),
            purpose=request.purpose,
            legal_basis=request.legal_basis,
            duration_days=request.duration_days,
            region=request.row_filter.region_code,
        )
        return pb.SubmitAccessRequestResponse(request=self._request(row))

    @unary(Role.SYSTEM, Role.DATA_OFFICER)
    async def SubmitBackflowRequest(
        self, request: pb.SubmitBackflowRequestRequest, identity: Identity, context: Any
    ) -> pb.SubmitBackflowRequestResponse:
        row = self.governance.submit_backflow(
            identity,
            resource_code=request.resource,
            system_code=request.requesting_system or identity.system or "",
            fields=list(request.fields),
            purpose=request.purpose,
            legal_basis=request.legal_basis,
            duration_days=request.duration_days,
        )
        return pb.SubmitBackflowRequestResponse(request=self._request(row))

    @unary()
    async def GetAccessRequest(
        self, request: pb.GetAccessRequestRequest, identity: Identity, context: Any
    ) -> pb.GetAccessRequestResponse:
        row = self.governance.get(request.id, viewer=identity)
        return pb.GetAccessRequestResponse(request=self._request(row))

    @unary()
    async def ListAccessRequests(
        self, request: pb.ListAccessRequestsRequest, identity: Identity, context: Any
    ) -> pb.ListAccessRequestsResponse:
        page = self.governance.list_requests(
            state=_optional_state(request.state),
            resource=request.resource,
            requesting_department=request.requesting_department,
            owner_department=request.owner_department,
            overdue_only=request.overdue_only,
            page_size=request.page_size,
            page_token=request.page_token,
            viewer=identity,
        )
        return pb.ListAccessRequestsResponse(
            requests=[self._request(r) for r in page.items], next_page_token=page.next_page_token
        )

    @unary(Role.PLATFORM_OFFICER)
    async def ReviewAccessRequest(
        self, request: pb.ReviewAccessRequestRequest, identity: Identity, context: Any
    ) -> pb.ReviewAccessRequestResponse:
        row = self.governance.review(identity, request.id, request.passed, request.reason)
        _count_decision(row)
        return pb.ReviewAccessRequestResponse(request=self._request(row))

    @unary(Role.DATA_OFFICER)
    async def ApproveAccessRequest(
        self, request: pb.ApproveAccessRequestRequest, identity: Identity, context: Any
    ) -> pb.ApproveAccessRequestResponse:
        row, grant = self.governance.approve(
            identity,
            request.id,
            fields=list(request.fields),
            duration_days=request.duration_days,
            clear_fields=list(request.clear_fields),
            reason=request.reason,
        )
        _count_decision(row)
        grant = self.governance.catalog.get_grant(grant.public_id)
        return pb.ApproveAccessRequestResponse(
            request=self._request(row), grant=grant_message(grant)
        )

    @unary(Role.DATA_OFFICER, Role.PLATFORM_OFFICER)
    async def RejectAccessRequest(
        self, request: pb.RejectAccessRequestRequest, identity: Identity, context: Any
    ) -> pb.RejectAccessRequestResponse:
        row = self.governance.reject(identity, request.id, request.reason)
        _count_decision(row)
        return pb.RejectAccessRequestResponse(request=self._request(row))

    @unary(Role.DATA_OFFICER, Role.ADMINISTRATOR)
    async def RevokeGrant(
        self, request: pb.RevokeGrantRequest, identity: Identity, context: Any
    ) -> pb.RevokeGrantResponse:
        grant = self.governance.revoke_grant(identity, request.id, request.reason)
        return pb.RevokeGrantResponse(grant=grant_message(grant))

    @unary(Role.DATA_OFFICER, Role.ADMINISTRATOR)
    async def SetBackflowEligibility(
        self, request: pb.SetBackflowEligibilityRequest, identity: Identity, context: Any
    ) -> pb.SetBackflowEligibilityResponse:
        self.governance.set_backflow_eligible(identity, request.resource, request.eligible)
        resource = self.governance.catalog.get_resource(request.resource)
        return pb.SetBackflowEligibilityResponse(resource=resource_message(resource))

    @unary(Role.PLATFORM_OFFICER)
    async def EnrolBackflow(
        self, request: pb.EnrolBackflowRequest, identity: Identity, context: Any
    ) -> pb.EnrolBackflowResponse:
        row = self.governance.enrol(identity, request.department, request.reason)
        return pb.EnrolBackflowResponse(enrolment=enrolment_message(row))

    @unary(Role.PLATFORM_OFFICER)
    async def WithdrawBackflow(
        self, request: pb.WithdrawBackflowRequest, identity: Identity, context: Any
    ) -> pb.WithdrawBackflowResponse:
        row = self.governance.withdraw(identity, request.department, request.reason)
        return pb.WithdrawBackflowResponse(enrolment=enrolment_message(row))

    @unary()
    async def ListBackflowEnrolments(
        self, request: pb.ListBackflowEnrolmentsRequest, identity: Identity, context: Any
    ) -> pb.ListBackflowEnrolmentsResponse:
        rows = self.governance.enrolments(request.include_withdrawn)
        return pb.ListBackflowEnrolmentsResponse(enrolments=[enrolment_message(r) for r in rows])

    @unary(Role.SYSTEM, Role.DATA_OFFICER)
    async def FlagRecord(
        self, request: pb.FlagRecordRequest, identity: Identity, context: Any
    ) -> pb.FlagRecordResponse:
        row = self.governance.flag(
            identity,
            resource_code=request.resource,
            batch_id=request.batch_id,
            record_key=dict(request.record_key),
            comment=request.comment,
        )
        return pb.FlagRecordResponse(correction=correction_message(row))

    @unary(Role.DATA_OFFICER)
    async def AnswerCorrection(
        self, request: pb.AnswerCorrectionRequest, identity: Identity, context: Any
    ) -> pb.AnswerCorrectionResponse:
        row = self.governance.answer(identity, request.id, request.answer)
        return pb.AnswerCorrectionResponse(correction=correction_message(row))

    @unary()
    async def ListCorrections(
        self, request: pb.ListCorrectionsRequest, identity: Identity, context: Any
    ) -> pb.ListCorrectionsResponse:
        state = None
        if request.state != pb.CORRECTION_STATE_UNSPECIFIED:
            state = from_wire(
                pb.CorrectionState,
                "CORRECTION_STATE_",
                request.state,
                models.CorrectionState,
                "state",
            )
        page = self.governance.corrections(
            resource=request.resource,
            state=state,
            page_size=request.page_size,
            page_token=request.page_token,
            viewer=identity,
        )
        return pb.ListCorrectionsResponse(
            corrections=[correction_message(r) for r in page.items],
            next_page_token=page.next_page_token,
        )
