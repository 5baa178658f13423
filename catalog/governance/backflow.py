"""Data backflow (数据回流): who may receive a lower level's rows of an upper level's
resource, proactive backflow enrolments, and the grant a delivery runs under."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog import validation
from catalog.credentials import Identity
from catalog.governance.base import WorkflowBase
from catalog.governance.rules import (
    require_owner_officer,
    require_platform_officer,
    written_reason,
)
from catalog.models import (
    AdministrativeLevel,
    BackflowEnrolment,
    Classification,
    Department,
    Resource,
    Role,
    SharingType,
    System,
    utcnow,
)
from envelope.errors import AlreadyExists, FailedPrecondition, NotFound, Reason

_LEVEL_RANK = {
    AdministrativeLevel.CITY: 0,
    AdministrativeLevel.DISTRICT: 1,
    AdministrativeLevel.TOWN: 2,
}


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


def check_backflow_eligible(resource: Resource) -> None:
    """Refuses proactive backflow for a resource that must not flow without a decision.

    It needs a region field to split rows by; NOT_SHARED and CORE data never leave their
    owner, and IMPORTANT data always needs an approved request.

    Raises:
        FailedPrecondition: NOT_BACKFLOW_ELIGIBLE.
    """
    if (
        not resource.region_field
        or resource.sharing_type is SharingType.NOT_SHARED
        or resource.classification in (Classification.CORE, Classification.IMPORTANT)
    ):
        raise FailedPrecondition(
            Reason.NOT_BACKFLOW_ELIGIBLE,
            f"{resource.code} cannot flow back without a request: proactive backflow needs "
            "a region field, and is not for NOT_SHARED, CORE or IMPORTANT data",
        )


def check_backflow_direction(department: Department, resource: Resource) -> None:
    """Refuses backflow of ``resource`` to ``department`` unless the department is a
    district or town inside the region of the upper level that owns the resource, and
    the resource has a region field to split rows by.

    Raises:
        FailedPrecondition: NOT_BACKFLOW_ELIGIBLE.
    """
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


def active_enrolment(session: Session, department_id: int) -> BackflowEnrolment | None:
    """A department's current (not withdrawn) proactive backflow enrolment, if any."""
    return session.scalar(
        select(BackflowEnrolment).where(
            BackflowEnrolment.department_id == department_id,
            BackflowEnrolment.withdrawn_at.is_(None),
        )
    )


class Backflow(WorkflowBase):
    """Proactive backflow: eligible resources, enrolled departments, effective grants."""

    def set_backflow_eligible(
        self, actor: Identity, resource_code: str, eligible: bool
    ) -> Resource:
        """Marks a resource eligible for proactive backflow (its owner's officers, admins)."""
        with self.catalog.sessions() as session:
            resource = self.catalog.resource(session, resource_code)
            if actor.role is not Role.ADMINISTRATOR:
                require_owner_officer(actor, resource, "change its backflow eligibility")
            if eligible:
                check_backflow_eligible(resource)
            resource.backflow_eligible = eligible
            session.commit()
            self._granted_changed()
            return self.catalog.resource(session, resource_code)

    def enrol(self, actor: Identity, department_code: str, reason: str) -> BackflowEnrolment:
        """Enrols a district or town in proactive backflow (platform officers)."""
        require_platform_officer(actor, "enrol departments in proactive backflow")
        reason = written_reason(reason, "an enrolment")
        with self.catalog.sessions() as session:
            department = self.catalog.department(session, department_code)
            if department.level is AdministrativeLevel.CITY:
                raise FailedPrecondition(
                    Reason.NOT_BACKFLOW_ELIGIBLE,
                    f"{department.code} is city-level; only districts and towns are enrolled",
                )
            if active_enrolment(session, department.id) is not None:
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
        require_platform_officer(actor, "withdraw backflow enrolments")
        reason = written_reason(reason, "a withdrawal")
        with self.catalog.sessions() as session:
            department = self.catalog.department(session, department_code)
            enrolment = active_enrolment(session, department.id)
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
            enrolment = active_enrolment(session, system.department_id)
            if enrolment is None:
                return None
            try:
                check_backflow_eligible(resource)
                check_backflow_direction(system.department, resource)
            except FailedPrecondition:
                return None
            return EffectiveGrant(
                f"backflow-{enrolment.id}", (), (), system.department.region_code, None
            )
