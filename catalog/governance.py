"""The sharing workflow: access requests, reviews, decisions, backflow, corrections.

Rules, from DOMAIN.md:

- UNCONDITIONAL resources are granted at once on request (logged, no human step);
  CONDITIONAL ones need the owning department's approval; NOT_SHARED ones are refused at
  once, citing the legal basis in the catalog. CORE data never leaves its owner;
  IMPORTANT data always needs an approval, whatever its sharing type.
- A request names the fields it needs (minimum necessary), its purpose, its legal basis
  and how long. It goes SUBMITTED -> UNDER_REVIEW (the platform's compliance review,
  which can be switched off) -> PENDING_PROVIDER -> APPROVED or REJECTED. A rejection
  needs a written reason. An approval may be narrower than the request, never wider.
- Four eyes: only data officers of the owning department decide; platform officers run
  the review; nobody decides a request of their own department.
- Each step is due within working days; late steps are overdue.
- Data backflow (数据回流): a district or town asks for its own region's rows of an upper
  level's resource; proactive backflow (主动式数据回流) gives an enrolled district its
  rows of every eligible resource without a request.
- Corrections (疑义数据): a receiving department flags a wrong record; the provider answers.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from catalog import validation
from catalog.credentials import Identity
from catalog.deadlines import DEFAULT_CALENDAR, WorkingCalendar
from catalog.models import (
    AccessRequest,
    AdministrativeLevel,
    BackflowEnrolment,
    Classification,
    Correction,
    CorrectionState,
    Department,
    Grant,
    GrantOrigin,
    GrantStatus,
    RequestKind,
    RequestState,
    RequestTransition,
    Resource,
    Role,
    Sensitivity,
    SharingType,
    System,
    utcnow,
)
from catalog.service import MAX_KEY_FIELDS, Catalog, Page, check_backflow_eligible
from envelope import schemas
from envelope.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Reason,
)

PLATFORM = "platform"
MAX_DURATION_DAYS = 3650
OPEN_STATES = (RequestState.UNDER_REVIEW, RequestState.PENDING_PROVIDER)
_LEVEL_RANK = {
    AdministrativeLevel.CITY: 0,
    AdministrativeLevel.DISTRICT: 1,
    AdministrativeLevel.TOWN: 2,
}


@dataclass(frozen=True)
class GovernanceRules:
    """Settings of the workflow.

    Attributes:
        review_enabled: Run the platform's compliance review before the provider decides.
        review_days: Working days the review may take.
        provider_days: Working days the provider has to decide.
        calendar: Working days and holidays.
    """

    review_enabled: bool = True
    review_days: int = 2
    provider_days: int = 10
    calendar: WorkingCalendar = field(default_factory=lambda: DEFAULT_CALENDAR)


@dataclass(frozen=True)
class EffectiveGrant:
    """What lets a system receive a resource now: a stored grant or a backflow enrolment.

    Attributes:
        id: Grant id (``backflow-<n>`` for an enrolment).
        fields: Fields delivered; empty means all.
        clear_fields: Sensitive fields delivered in clear text.
        region: Region row filter; empty means all rows.
        expires_at: End of the grant, if any.
    """

    id: str
    fields: tuple[str, ...]
    clear_fields: tuple[str, ...]
    region: str
    expires_at: datetime | None


def _sees_everything(viewer: Identity) -> bool:
    return viewer.role in (Role.PLATFORM_OFFICER, Role.ADMINISTRATOR, Role.AUDITOR)


def _department_id(viewer: Identity) -> Any:
    return (
        select(Department.id).where(Department.code == (viewer.department or "")).scalar_subquery()
    )


def _text(
    field_name: str, value: str, limit: int = validation.REASON_LIMIT, *, required: bool = True
) -> str:
    return validation.text(field_name, value, limit=limit, required=required)


def _record_key(record_key: Mapping[str, str]) -> dict[str, str]:
    """Checks a flagged record's key: a few key fields, each value short, kept exactly."""
    if len(record_key) > MAX_KEY_FIELDS:
        raise InvalidArgument(
            Reason.INVALID_FIELD,
            f"record_key names at most {MAX_KEY_FIELDS} key fields, got {len(record_key)}",
            {"field": "record_key"},
        )
    for value in record_key.values():
        validation.text("record_key", value, limit=validation.KEY_VALUE_LIMIT, strip=False)
    return dict(record_key)


def _reason(value: str, what: str) -> str:
    if not value.strip():
        raise InvalidArgument(
            Reason.REASON_REQUIRED,
            f"{what} needs a written reason (adding unstated conditions to block sharing "
            "is not allowed)",
            {"field": "reason"},
        )
    return _text("reason", value)


def _owner_officer(actor: Identity, resource: Resource, what: str) -> None:
    if actor.role is not Role.DATA_OFFICER or actor.department != resource.owner.code:
        raise PermissionDenied(
            Reason.ROLE_NOT_ALLOWED,
            f"only data officers of {resource.owner.code}, which owns {resource.code}, "
            f"may {what}; ask one of them",
        )


def _platform_officer(actor: Identity, what: str) -> None:
    if actor.role is not Role.PLATFORM_OFFICER:
        raise PermissionDenied(Reason.ROLE_NOT_ALLOWED, f"only platform data officers may {what}")


class Governance:
    """The workflow over the catalog's database."""

    def __init__(self, catalog: Catalog, rules: GovernanceRules | None = None) -> None:
        self.catalog = catalog
        self.rules = rules or GovernanceRules()
        self._listeners: list[Callable[[], None]] = []

    def on_grant_change(self, listener: Callable[[], None]) -> None:
        """Calls ``listener`` after every change of who may receive what."""
        self._listeners.append(listener)

    def _granted_changed(self) -> None:
        for listener in self._listeners:
            listener()

    # --- submitting -----------------------------------------------------------------

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
            self._check_backflow_direction(department, resource)
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

    @staticmethod
    def _check_backflow_direction(department: Department, resource: Resource) -> None:
        if department.level is AdministrativeLevel.CITY:
            raise FailedPrecondition(
                Reason.NOT_BACKFLOW_ELIGIBLE,
                f"backflow is for districts and towns; {department.code} is city-level: "
                "submit an access request instead",
            )
        owner = resource.owner
        if _LEVEL_RANK[owner.level] >= _LEVEL_RANK[department.level]:
            raise FailedPrecondition(
                Reason.NOT_BACKFLOW_ELIGIBLE,
                f"{resource.code} is owned by {owner.code} ({owner.level.value.lower()}), "
                f"not by a level above {department.code}",
            )
        if not resource.region_field:
            raise FailedPrecondition(
                Reason.NOT_BACKFLOW_ELIGIBLE,
                f"{resource.code} has no region field, so its rows cannot be split by region",
            )
        if not validation.region_contains(owner.region_code, department.region_code):
            raise FailedPrecondition(
                Reason.NOT_BACKFLOW_ELIGIBLE,
                f"region {department.region_code} of {department.code} is not inside "
                f"{owner.region_code} of {owner.code}",
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
        purpose = _text("purpose", purpose)
        legal_basis = _text("legal_basis", legal_basis)
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
            self._check_fields(resource, fields)
            if region and not resource.region_field:
                raise FailedPrecondition(
                    Reason.INVALID_FIELD,
                    f"{resource.code} has no region field to filter rows by",
                    {"field": "row_filter.region_code"},
                )
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
            self._step(request, RequestState.SUBMITTED, actor.name, purpose)
            self._route(session, request, resource)
            session.commit()
            return self._load(session, request.public_id)

    @staticmethod
    def _check_fields(resource: Resource, fields: Sequence[str]) -> None:
        if not fields:
            raise InvalidArgument(
                Reason.INVALID_FIELD,
                "name the fields you need (minimum necessary, PIPL §6)",
                {"field": "fields"},
            )
        known = schemas.parse(resource.schemas[-1].definition).top_level_fields()
        for name in fields:
            if name not in known:
                raise InvalidArgument(
                    Reason.INVALID_FIELD,
                    f"field {name!r} is not in {resource.code} (fields: {', '.join(known)})",
                    {"field": name},
                )

    def _route(self, session: Session, request: AccessRequest, resource: Resource) -> None:
        """Decides what happens to a new request: at once, or to review, or to the provider."""
        if resource.sharing_type is SharingType.NOT_SHARED:
            self._finish(
                request,
                RequestState.REJECTED,
                PLATFORM,
                f"不予共享 NOT_SHARED: {resource.sharing_conditions}",
            )
        elif resource.classification is Classification.CORE:
            self._finish(
                request,
                RequestState.REJECTED,
                PLATFORM,
                "核心数据 CORE data never leaves its owner through the exchange",
            )
        elif (
            resource.sharing_type is SharingType.UNCONDITIONAL
            and resource.classification is not Classification.IMPORTANT
        ):
            grant = self._grant(session, request, PLATFORM, request.fields, (), None)
            self._finish(
                request,
                RequestState.APPROVED,
                PLATFORM,
                "无条件共享 UNCONDITIONAL: granted on request",
                grant,
            )
            request.approved_days = request.duration_days
        elif self.rules.review_enabled:
            self._step(request, RequestState.UNDER_REVIEW, PLATFORM, "compliance review")
            request.due_at = self.rules.calendar.add_working_days(utcnow(), self.rules.review_days)
        else:
            self._to_provider(request, PLATFORM, "compliance review switched off")

    def _to_provider(self, request: AccessRequest, actor: str, reason: str) -> None:
        self._step(request, RequestState.PENDING_PROVIDER, actor, reason)
        request.due_at = self.rules.calendar.add_working_days(utcnow(), self.rules.provider_days)

    # --- deciding -------------------------------------------------------------------

    def review(self, actor: Identity, request_id: str, passed: bool, reason: str) -> AccessRequest:
        """Passes a request on to the provider, or rejects it (platform officers)."""
        _platform_officer(actor, "run the compliance review")
        if passed:
            reason = _text("reason", reason, required=False)
        else:
            reason = _reason(reason, "failing a review")
        with self.catalog.sessions() as session:
            request = self._load(session, request_id)
            self._not_own(actor, request)
            self._in_state(request, RequestState.UNDER_REVIEW, "reviewed")
            if passed:
                self._to_provider(request, actor.name, reason or "compliance review passed")
            else:
                self._finish(request, RequestState.REJECTED, actor.name, reason)
            self._commit(session)
            return self._load(session, request_id)

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
        reason = _text("reason", reason, required=False)
        clear_fields = list(dict.fromkeys(clear_fields))
        with self.catalog.sessions() as session:
            request = self._load(session, request_id)
            _owner_officer(actor, request.resource, "approve requests for it")
            self._not_own(actor, request)
            self._in_state(request, RequestState.PENDING_PROVIDER, "approved")
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
            tags = {f["name"]: f["sensitivity"] for f in request.resource.fields}
            for name in clear_fields:
                if name not in approved or tags.get(name, "NONE") == Sensitivity.NONE.value:
                    raise InvalidArgument(
                        Reason.INVALID_FIELD,
                        f"clear field {name!r} must be an approved field tagged sensitive",
                        {"field": "clear_fields"},
                    )
            request.approved_days = days
            grant = self._grant(session, request, actor.name, approved, clear_fields, days)
            self._finish(request, RequestState.APPROVED, actor.name, reason or "approved", grant)
            self._commit(session)
            session.refresh(grant)
            return self._load(session, request_id), grant

    def reject(self, actor: Identity, request_id: str, reason: str) -> AccessRequest:
        """Rejects a request with a reason: the provider's officers, or the platform in review."""
        reason = _reason(reason, "a rejection")
        with self.catalog.sessions() as session:
            request = self._load(session, request_id)
            if request.state is RequestState.UNDER_REVIEW:
                _platform_officer(actor, "reject a request under review")
                self._not_own(actor, request)
            else:
                _owner_officer(actor, request.resource, "reject requests for it")
                self._not_own(actor, request)
                self._in_state(request, RequestState.PENDING_PROVIDER, "rejected")
            self._finish(request, RequestState.REJECTED, actor.name, reason)
            self._commit(session)
            return self._load(session, request_id)

    def revoke_grant(self, actor: Identity, grant_id: str, reason: str) -> Grant:
        """Revokes an active grant: deliveries under it stop at once."""
        reason = _reason(reason, "a revocation")
        with self.catalog.sessions() as session:
            grant = self.catalog.grant(session, grant_id)
            if actor.role is not Role.ADMINISTRATOR:
                _owner_officer(actor, grant.resource, "revoke its grants")
            if grant.status is not GrantStatus.ACTIVE:
                raise FailedPrecondition(
                    Reason.WRONG_STATE, f"grant {grant_id} is {grant.status.value}, not ACTIVE"
                )
            grant.status = GrantStatus.REVOKED
            grant.revoked_at = utcnow()
            grant.revoke_reason = f"{actor.name}: {reason}"
            session.commit()
            self._granted_changed()
            return self.catalog.grant(session, grant_id)

    # --- reading --------------------------------------------------------------------

    def get(self, request_id: str, viewer: Identity | None = None) -> AccessRequest:
        """Returns a request with its history, if ``viewer`` may see it.

        Platform officers, administrators and auditors see every request; others only
        those their department made or received (others look unknown, not forbidden).
        """
        with self.catalog.sessions() as session:
            request = self._load(session, request_id)
            if viewer is None or _sees_everything(viewer):
                return request
            departments = (request.requesting_system.department.code, request.resource.owner.code)
            if viewer.department not in departments:
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
        query: Select[Any] = select(AccessRequest)
        if viewer is not None and not _sees_everything(viewer):
            mine = _department_id(viewer)
            query = query.where(
                or_(
                    AccessRequest.requesting_system_id.in_(
                        select(System.id).where(System.department_id == mine)
                    ),
                    AccessRequest.resource_id.in_(
                        select(Resource.id).where(Resource.owner_department_id == mine)
                    ),
                )
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

    # --- backflow -------------------------------------------------------------------

    def set_backflow_eligible(
        self, actor: Identity, resource_code: str, eligible: bool
    ) -> Resource:
        """Marks a resource eligible for proactive backflow (its owner's officers, admins)."""
        with self.catalog.sessions() as session:
            resource = self.catalog.resource(session, resource_code)
            if actor.role is not Role.ADMINISTRATOR:
                _owner_officer(actor, resource, "change its backflow eligibility")
            if eligible:
                check_backflow_eligible(resource)
            resource.backflow_eligible = eligible
            session.commit()
            self._granted_changed()
            return self.catalog.resource(session, resource_code)

    def enrol(self, actor: Identity, department_code: str, reason: str) -> BackflowEnrolment:
        """Enrols a district or town in proactive backflow (platform officers)."""
        _platform_officer(actor, "enrol departments in proactive backflow")
        reason = _reason(reason, "an enrolment")
        with self.catalog.sessions() as session:
            department = self.catalog.department(session, department_code)
            if department.level is AdministrativeLevel.CITY:
                raise FailedPrecondition(
                    Reason.NOT_BACKFLOW_ELIGIBLE,
                    f"{department.code} is city-level; only districts and towns are enrolled",
                )
            if self._enrolment(session, department.id) is not None:
                raise AlreadyExists(Reason.ALREADY_EXISTS, f"{department.code} is already enrolled")
            enrolment = BackflowEnrolment(
                department_id=department.id, enrolled_by=actor.name, reason=reason
            )
            session.add(enrolment)
            try:
                session.commit()
            except IntegrityError as exc:
                session.rollback()
                raise AlreadyExists(
                    Reason.ALREADY_EXISTS, f"{department.code} is already enrolled"
                ) from exc
            self._granted_changed()
            session.refresh(enrolment)
            return enrolment

    def withdraw(self, actor: Identity, department_code: str, reason: str) -> BackflowEnrolment:
        """Ends a department's enrolment (platform officers); deliveries stop at once."""
        _platform_officer(actor, "withdraw backflow enrolments")
        reason = _reason(reason, "a withdrawal")
        with self.catalog.sessions() as session:
            department = self.catalog.department(session, department_code)
            enrolment = self._enrolment(session, department.id)
            if enrolment is None:
                raise NotFound(Reason.NOT_ENROLLED, f"{department.code} is not enrolled")
            enrolment.withdrawn_by = actor.name
            enrolment.withdrawn_at = utcnow()
            enrolment.withdraw_reason = reason
            session.commit()
            self._granted_changed()
            session.refresh(enrolment)
            return enrolment

    def enrolments(self, include_withdrawn: bool = False) -> list[BackflowEnrolment]:
        """Enrolments, oldest first."""
        with self.catalog.sessions() as session:
            query = select(BackflowEnrolment).order_by(BackflowEnrolment.id)
            if not include_withdrawn:
                query = query.where(BackflowEnrolment.withdrawn_at.is_(None))
            return list(session.scalars(query))

    @staticmethod
    def _enrolment(session: Session, department_id: int) -> BackflowEnrolment | None:
        return session.scalar(
            select(BackflowEnrolment).where(
                BackflowEnrolment.department_id == department_id,
                BackflowEnrolment.withdrawn_at.is_(None),
            )
        )

    def effective_grant(self, system_code: str, resource_code: str) -> EffectiveGrant | None:
        """What lets a system receive a resource now: its newest active grant, else its
        department's backflow enrolment when the resource is eligible."""
        grant = self.catalog.active_grant(system_code, resource_code)
        if grant is not None:
            return EffectiveGrant(
                grant.public_id,
                tuple(grant.fields),
                tuple(grant.clear_fields),
                grant.region_filter,
                grant.expires_at,
            )
        with self.catalog.sessions() as session:
            resource = session.scalar(select(Resource).where(Resource.code == resource_code))
            system = session.scalar(select(System).where(System.code == system_code))
            if resource is None or system is None or not resource.backflow_eligible:
                return None
            enrolment = self._enrolment(session, system.department_id)
            if enrolment is None:
                return None
            try:
                check_backflow_eligible(resource)
                self._check_backflow_direction(system.department, resource)
            except FailedPrecondition:
                return None
            return EffectiveGrant(
                f"backflow-{enrolment.id}", (), (), system.department.region_code, None
            )

    # --- corrections ----------------------------------------------------------------

    def flag(
        self,
        actor: Identity,
        *,
        resource_code: str,
        batch_id: str,
        record_key: Mapping[str, str],
        comment: str,
    ) -> Correction:
        """Flags a delivered record as wrong (a receiving system or its officers)."""
        comment = _text("comment", comment)
        batch_id = _text("batch_id", batch_id, 128)
        key = _record_key(record_key)
        if actor.role not in (Role.SYSTEM, Role.DATA_OFFICER) or not actor.department:
            raise PermissionDenied(
                Reason.ROLE_NOT_ALLOWED, "records are flagged by receiving systems or officers"
            )
        with self.catalog.sessions() as session:
            resource = self.catalog.resource(session, resource_code)
            department = self.catalog.department(session, actor.department)
            unknown = [k for k in key if k not in resource.key_fields]
            if not key or unknown:
                raise InvalidArgument(
                    Reason.INVALID_FIELD,
                    f"record_key names the record by the key fields of {resource.code}: "
                    f"{', '.join(resource.key_fields) or '(none registered)'}",
                    {"field": "record_key"},
                )
            received = session.scalar(
                select(Grant.id)
                .join(Grant.grantee)
                .where(Grant.resource_id == resource.id, System.department_id == department.id)
                .limit(1)
            )
            enrolled = resource.backflow_eligible and self._enrolment(session, department.id)
            if received is None and not enrolled:
                raise PermissionDenied(
                    Reason.NO_GRANT,
                    f"{department.code} has never been granted {resource.code}",
                )
            correction = Correction(
                public_id="c-" + secrets.token_hex(8),
                resource_id=resource.id,
                batch_id=batch_id,
                record_key=key,
                comment=comment,
                flagged_by=actor.name,
                flagging_department_id=department.id,
            )
            session.add(correction)
            session.commit()
            return self._correction(session, correction.public_id)

    def answer(self, actor: Identity, correction_id: str, answer: str) -> Correction:
        """Answers a flagged record (data officers of the owning department)."""
        answer = _text("answer", answer)
        with self.catalog.sessions() as session:
            correction = self._correction(session, correction_id)
            _owner_officer(actor, correction.resource, "answer its flagged records")
            if correction.state is not CorrectionState.OPEN:
                raise FailedPrecondition(
                    Reason.WRONG_STATE, f"correction {correction_id} is already answered"
                )
            correction.state = CorrectionState.ANSWERED
            correction.answer = answer
            correction.answered_by = actor.name
            correction.answered_at = utcnow()
            session.commit()
            return self._correction(session, correction_id)

    def corrections(
        self,
        *,
        resource: str = "",
        state: CorrectionState | None = None,
        page_size: int = 0,
        page_token: str = "",
        viewer: Identity | None = None,
    ) -> Page[Correction]:
        """Pages through the flagged records ``viewer`` may see, oldest first."""
        query: Select[Any] = select(Correction)
        if viewer is not None and not _sees_everything(viewer):
            mine = _department_id(viewer)
            query = query.where(
                or_(
                    Correction.flagging_department_id == mine,
                    Correction.resource_id.in_(
                        select(Resource.id).where(Resource.owner_department_id == mine)
                    ),
                )
            )
        if resource:
            query = query.join(Correction.resource).where(Resource.code == resource)
        if state is not None:
            query = query.where(Correction.state == state)
        return self.catalog.page(query, Correction.id, page_size, page_token)

    @staticmethod
    def _correction(session: Session, correction_id: str) -> Correction:
        row = session.scalar(select(Correction).where(Correction.public_id == correction_id))
        if row is None:
            raise NotFound(Reason.UNKNOWN_CORRECTION, f"no correction with id {correction_id!r}")
        return row

    # --- helpers --------------------------------------------------------------------

    @staticmethod
    def _load(session: Session, request_id: str) -> AccessRequest:
        row = session.scalar(select(AccessRequest).where(AccessRequest.public_id == request_id))
        if row is None:
            raise NotFound(Reason.UNKNOWN_REQUEST, f"no request with id {request_id!r}")
        return row

    @staticmethod
    def _in_state(request: AccessRequest, state: RequestState, verb: str) -> None:
        if request.state is not state:
            raise FailedPrecondition(
                Reason.WRONG_STATE,
                f"request {request.public_id} is {request.state.value}; only {state.value} "
                f"requests can be {verb}",
                {"state": request.state.value},
            )

    @staticmethod
    def _not_own(actor: Identity, request: AccessRequest) -> None:
        if actor.department and actor.department == request.requesting_system.department.code:
            raise PermissionDenied(
                Reason.SELF_DECISION,
                f"{actor.name} belongs to {actor.department}, which made this request; "
                "another officer must decide (four eyes)",
            )

    @staticmethod
    def _step(request: AccessRequest, to: RequestState, actor: str, reason: str) -> None:
        request.transitions.append(
            RequestTransition(
                from_state=request.state.value if request.transitions else "",
                to_state=to.value,
                actor=actor,
                reason=reason,
            )
        )
        request.state = to

    def _finish(
        self,
        request: AccessRequest,
        state: RequestState,
        actor: str,
        reason: str,
        grant: Grant | None = None,
    ) -> None:
        self._step(request, state, actor, reason)
        request.due_at = None
        request.decided_by = actor
        request.decided_at = utcnow()
        request.decision_reason = reason
        if grant is not None:
            request.grant_id = grant.public_id

    def _grant(
        self,
        session: Session,
        request: AccessRequest,
        actor: str,
        fields: Sequence[str],
        clear_fields: Sequence[str],
        days: int | None,
    ) -> Grant:
        resource = request.resource
        fields = list(fields)
        if request.region_filter and resource.region_field not in fields:
            fields.append(resource.region_field)
        grant = Grant(
            public_id="g-" + secrets.token_hex(8),
            resource=resource,
            grantee=request.requesting_system,
            fields=fields,
            clear_fields=list(clear_fields),
            region_filter=request.region_filter,
            expires_at=utcnow() + timedelta(days=days or request.duration_days),
            origin=(
                GrantOrigin.BACKFLOW
                if request.kind is RequestKind.BACKFLOW
                else GrantOrigin.ACCESS_REQUEST
            ),
            created_by=actor,
            request_id=request.public_id,
        )
        session.add(grant)
        return grant

    def _commit(self, session: Session) -> None:
        try:
            session.commit()
        except StaleDataError as exc:
            session.rollback()
            raise Aborted(
                Reason.CONCURRENT_DECISION,
                "someone else changed this request at the same time; reload it and decide again",
            ) from exc
        self._granted_changed()
