"""Decisions on requests: the platform's compliance review, approval and rejection."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from catalog.credentials import Identity
from catalog.governance.base import WorkflowBase
from catalog.governance.grants import check_clear_fields, grant_for
from catalog.governance.requests import finish, load_request, to_provider
from catalog.governance.rules import (
    check_text,
    require_owner_officer,
    require_platform_officer,
    written_reason,
)
from catalog.models import AccessRequest, Grant, RequestState
from envelope.errors import Aborted, FailedPrecondition, InvalidArgument, PermissionDenied, Reason


def _in_state(request: AccessRequest, state: RequestState, verb: str) -> None:
    if request.state is not state:
        raise FailedPrecondition(
            Reason.WRONG_STATE,
            f"request {request.public_id} is {request.state.value}; only {state.value} "
            f"requests can be {verb}",
            {"state": request.state.value},
        )


def _not_own(actor: Identity, request: AccessRequest) -> None:
    """Four eyes: nobody decides a request their own department made."""
    if actor.department and actor.department == request.requesting_system.department.code:
        raise PermissionDenied(
            Reason.SELF_DECISION,
            f"{actor.name} belongs to {actor.department}, which made this request; "
            "another officer must decide (four eyes)",
        )


class Decisions(WorkflowBase):
    """Reviews, approves and rejects requests."""

    def review(self, actor: Identity, request_id: str, passed: bool, reason: str) -> AccessRequest:
        """Passes a request on to the provider, or rejects it (platform officers)."""
        require_platform_officer(actor, "run the compliance review")
        if passed:
            reason = check_text("reason", reason, required=False)
        else:
            reason = written_reason(reason, "failing a review")
        with self.catalog.sessions() as session:
            request = load_request(session, request_id)
            _not_own(actor, request)
            _in_state(request, RequestState.UNDER_REVIEW, "reviewed")
            if passed:
                to_provider(request, self.rules, actor.name, reason or "compliance review passed")
            else:
                finish(request, RequestState.REJECTED, actor.name, reason)
            self._commit(session)
            return load_request(session, request_id)

    def approve(
        self,
        actor: Identity,
        request_id: str,
        *,
        fields: Sequence[str] = (),
        duration_days: int = 0,
        clear_fields: Sequence[str] = (),
        reason: str = "",
    ) -> tuple[AccessRequest, Grant]:
        """Approves a request, as asked or narrower, and makes its grant."""
        reason = check_text("reason", reason, required=False)
        clear_fields = list(dict.fromkeys(clear_fields))
        with self.catalog.sessions() as session:
            request = load_request(session, request_id)
            require_owner_officer(actor, request.resource, "approve requests for it")
            _not_own(actor, request)
            _in_state(request, RequestState.PENDING_PROVIDER, "approved")
            approved = list(dict.fromkeys(fields)) or list(request.fields)
            wider = [name for name in approved if name not in request.fields]
            if wider:
                raise InvalidArgument(
                    Reason.WIDER_THAN_REQUESTED,
                    f"fields {', '.join(wider)} were not requested; an approval can be "
                    "narrower than the request, not wider",
                    {"field": "fields"},
                )
            if duration_days < 0:
                raise InvalidArgument(
                    Reason.INVALID_FIELD,
                    "duration_days must be positive (0 approves the days asked)",
                    {"field": "duration_days"},
                )
            days = duration_days or request.duration_days
            if days > request.duration_days:
                raise InvalidArgument(
                    Reason.WIDER_THAN_REQUESTED,
                    f"{days} days is longer than the {request.duration_days} requested",
                    {"field": "duration_days"},
                )
            check_clear_fields(request.resource, approved, clear_fields, granted="an approved")
            request.approved_days = days
            grant = grant_for(session, request, actor.name, approved, clear_fields, days)
            finish(request, RequestState.APPROVED, actor.name, reason or "approved", grant)
            self._commit(session)
            session.refresh(grant)
            return load_request(session, request_id), grant

    def reject(self, actor: Identity, request_id: str, reason: str) -> AccessRequest:
        """Rejects a request with a reason: the provider's officers, or the platform in review."""
        reason = written_reason(reason, "a rejection")
        with self.catalog.sessions() as session:
            request = load_request(session, request_id)
            if request.state is RequestState.UNDER_REVIEW:
                require_platform_officer(actor, "reject a request under review")
                _not_own(actor, request)
            else:
                require_owner_officer(actor, request.resource, "reject requests for it")
                _not_own(actor, request)
                _in_state(request, RequestState.PENDING_PROVIDER, "rejected")
            finish(request, RequestState.REJECTED, actor.name, reason)
            self._commit(session)
            return load_request(session, request_id)

    def _commit(self, session: Session) -> None:
        """Commits a decision, refusing it when someone else decided at the same time."""
        try:
            session.commit()
        except StaleDataError as exc:
            session.rollback()
            raise Aborted(
                Reason.CONCURRENT_DECISION,
                "someone else changed this request at the same time; reload it and decide again",
            ) from exc
        self._granted_changed()
