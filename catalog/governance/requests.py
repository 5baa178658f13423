"""Access and backflow requests: submitting, routing, the steps of a request, reading."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from catalog import validation
from catalog.credentials import Identity
from catalog.governance.backflow import check_backflow_direction
from catalog.governance.base import WorkflowBase
from catalog.governance.grants import check_fields, check_region, grant_for
from catalog.governance.rules import (
    MAX_DURATION_DAYS,
    OPEN_STATES,
    PLATFORM,
    GovernanceRules,
    check_text,
)
from catalog.governance.visibility import may_see, visible
from catalog.models import (
    AccessRequest,
    Classification,
    Correction,
    CorrectionState,
    Department,
    Grant,
    RequestKind,
    RequestState,
    RequestTransition,
    Resource,
    Role,
    SharingType,
    System,
    utcnow,
)
from envelope.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Reason

if TYPE_CHECKING:
    from catalog.service import Page


def load_request(session: Session, request_id: str) -> AccessRequest:
    """Returns a request or raises NotFound (UNKNOWN_REQUEST)."""
    row = session.scalar(select(AccessRequest).where(AccessRequest.public_id == request_id))
    if row is None:
        raise NotFound(Reason.UNKNOWN_REQUEST, f"no request with id {request_id!r}")
    return row


def step(request: AccessRequest, to: RequestState, actor: str, reason: str) -> None:
    """Moves a request to state ``to``, keeping the step in its history."""
    request.transitions.append(
        RequestTransition(
            from_state=request.state.value if request.transitions else "",
            to_state=to.value,
            actor=actor,
            reason=reason,
        )
    )
    request.state = to


def finish(
    request: AccessRequest,
    state: RequestState,
    actor: str,
    reason: str,
    grant: Grant | None = None,
) -> None:
    """Decides a request: its last step, who decided, why, and the grant it made."""
    step(request, state, actor, reason)
    request.due_at = None
    request.decided_by = actor
    request.decided_at = utcnow()
    request.decision_reason = reason
    if grant is not None:
        request.grant_id = grant.public_id


def to_provider(request: AccessRequest, rules: GovernanceRules, actor: str, reason: str) -> None:
    """Passes a request to the owning department, due within its working days."""
    step(request, RequestState.PENDING_PROVIDER, actor, reason)
    request.due_at = rules.calendar.add_working_days(utcnow(), rules.provider_days)


class Requests(WorkflowBase):
    """Submits requests, decides at once what needs no human, and reads requests."""

    def submit(
        self,
        actor: Identity,
        *,
        resource_code: str,
        system_code: str,
        fields: Sequence[str],
        purpose: str,
        legal_basis: str,
        duration_days: int,
        region: str = "",
    ) -> AccessRequest:
        """Submits an access request; unconditional and refused ones are decided at once."""
        return self._submit(
            actor,
            RequestKind.ACCESS,
            resource_code,
            system_code,
            fields,
            purpose,
            legal_basis,
            duration_days,
            region,
        )

    def submit_backflow(
        self,
        actor: Identity,
        *,
        resource_code: str,
        system_code: str,
        fields: Sequence[str],
        purpose: str,
        legal_basis: str,
        duration_days: int,
    ) -> AccessRequest:
        """Submits a backflow request: the row filter is the requester's own region."""
        with self.catalog.sessions() as session:
            system = self.catalog.system(session, system_code)
            department = system.department
            resource = self.catalog.resource(session, resource_code)
            check_backflow_direction(department, resource)
            region = department.region_code
        return self._submit(
            actor,
            RequestKind.BACKFLOW,
            resource_code,
            system_code,
            fields,
            purpose,
            legal_basis,
            duration_days,
            region,
        )

    def _submit(
        self,
        actor: Identity,
        kind: RequestKind,
        resource_code: str,
        system_code: str,
        fields: Sequence[str],
        purpose: str,
        legal_basis: str,
        duration_days: int,
        region: str,
    ) -> AccessRequest:
        purpose = check_text("purpose", purpose)
        legal_basis = check_text("legal_basis", legal_basis)
        if not 1 <= duration_days <= MAX_DURATION_DAYS:
            raise InvalidArgument(
                Reason.INVALID_FIELD,
                f"duration_days must be 1..{MAX_DURATION_DAYS}",
                {"field": "duration_days"},
            )
        if region:
            validation.region_code("row_filter.region_code", region)
        with self.catalog.sessions() as session:
            system = self.catalog.system(session, system_code)
            resource = self.catalog.resource(session, resource_code)
            if actor.role is Role.SYSTEM and actor.system != system.code:
                raise PermissionDenied(
                    Reason.ROLE_NOT_ALLOWED, f"system {actor.system} may only ask for itself"
                )
            if actor.role not in (Role.SYSTEM, Role.DATA_OFFICER):
                raise PermissionDenied(
                    Reason.ROLE_NOT_ALLOWED,
                    "requests are made by a system for itself or by a data officer of its "
                    "department",
                )
            if actor.department != system.department.code:
                raise PermissionDenied(
                    Reason.ROLE_NOT_ALLOWED,
                    f"{system.code} belongs to {system.department.code}, not to {actor.department}",
                )
            if system.department_id == resource.owner_department_id:
                raise FailedPrecondition(
                    Reason.OWN_RESOURCE,
                    f"{system.department.code} owns {resource.code}; its own systems get "
                    "grants from an administrator, not through a request",
                )
            if not fields:
                raise InvalidArgument(
                    Reason.INVALID_FIELD,
                    "name the fields you need (minimum necessary, PIPL §6)",
                    {"field": "fields"},
                )
            check_fields(resource, fields)
            check_region(resource, region)
            request = AccessRequest(
                public_id="r-" + secrets.token_hex(8),
                kind=kind,
                state=RequestState.SUBMITTED,
                resource=resource,
                requesting_system=system,
                requester=actor.name,
                fields=list(dict.fromkeys(fields)),
                purpose=purpose,
                legal_basis=legal_basis,
                duration_days=duration_days,
                region_filter=region,
            )
            session.add(request)
            step(request, RequestState.SUBMITTED, actor.name, purpose)
            self._route(session, request, resource)
            session.commit()
            return load_request(session, request.public_id)

    def _route(self, session: Session, request: AccessRequest, resource: Resource) -> None:
        """Decides what happens to a new request: at once, or to review, or to the provider."""
        if resource.sharing_type is SharingType.NOT_SHARED:
            finish(
                request,
                RequestState.REJECTED,
                PLATFORM,
                f"不予共享 NOT_SHARED: {resource.sharing_conditions}",
            )
        elif resource.classification is Classification.CORE:
            finish(
                request,
                RequestState.REJECTED,
                PLATFORM,
                "核心数据 CORE data never leaves its owner through the exchange",
            )
        elif (
            resource.sharing_type is SharingType.UNCONDITIONAL
            and resource.classification is not Classification.IMPORTANT
        ):
            grant = grant_for(session, request, PLATFORM, request.fields, (), None)
            finish(
                request,
                RequestState.APPROVED,
                PLATFORM,
                "无条件共享 UNCONDITIONAL: granted on request",
                grant,
            )
            request.approved_days = request.duration_days
        elif self.rules.review_enabled:
            step(request, RequestState.UNDER_REVIEW, PLATFORM, "compliance review")
            request.due_at = self.rules.calendar.add_working_days(utcnow(), self.rules.review_days)
        else:
            to_provider(request, self.rules, PLATFORM, "compliance review switched off")

    # --- reading --------------------------------------------------------------------

    def get(self, request_id: str, viewer: Identity | None = None) -> AccessRequest:
        """Returns a request with its history, if ``viewer`` may see it.

        Platform officers, administrators and auditors see every request; others only
        those their department made or received (others look unknown, not forbidden).
        """
        with self.catalog.sessions() as session:
            request = load_request(session, request_id)
            made_by = request.requesting_system.department.code
            if not may_see(viewer, made_by, request.resource.owner.code):
                raise NotFound(Reason.UNKNOWN_REQUEST, f"no request with id {request_id!r}")
            return request

    def list_requests(
        self,
        *,
        state: RequestState | None = None,
        resource: str = "",
        requesting_department: str = "",
        owner_department: str = "",
        overdue_only: bool = False,
        page_size: int = 0,
        page_token: str = "",
        viewer: Identity | None = None,
    ) -> Page[AccessRequest]:
        """Pages through the requests ``viewer`` may see, newest first."""
        query: Select[Any] = visible(
            select(AccessRequest),
            viewer,
            made_by=lambda mine: AccessRequest.requesting_system_id.in_(
                select(System.id).where(System.department_id == mine)
            ),
            resource_id=AccessRequest.resource_id,
        )
        if state is not None:
            query = query.where(AccessRequest.state == state)
        if resource or owner_department:
            query = query.join(AccessRequest.resource)
            if resource:
                query = query.where(Resource.code == resource)
            if owner_department:
                query = query.join(Resource.owner).where(Department.code == owner_department)
        if requesting_department:
            query = (
                query.join(AccessRequest.requesting_system)
                .join(System.department)
                .where(Department.code == requesting_department)
            )
        if overdue_only:
            query = query.where(
                AccessRequest.state.in_(OPEN_STATES), AccessRequest.due_at < utcnow()
            )
        return self.catalog.page_desc(query, AccessRequest.id, page_size, page_token)

    def overdue(self, request: AccessRequest, now: datetime | None = None) -> bool:
        """Whether an open request is past its current step's due time."""
        now = now or utcnow()
        return request.state in OPEN_STATES and request.due_at is not None and request.due_at < now

    def counts(self) -> tuple[dict[str, int], int, int]:
        """Requests by state, overdue requests and open corrections (for metrics)."""
        with self.catalog.sessions() as session:
            by_state: dict[str, int] = dict.fromkeys((s.value for s in RequestState), 0)
            overdue = 0
            now = utcnow()
            for state, due in session.execute(select(AccessRequest.state, AccessRequest.due_at)):
                by_state[state.value] += 1
                if state in OPEN_STATES and due is not None and due < now:
                    overdue += 1
            corrections = len(
                session.scalars(
                    select(Correction.id).where(Correction.state == CorrectionState.OPEN)
                ).all()
            )
            return by_state, overdue, corrections
