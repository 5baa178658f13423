"""The workflow's settings, and the checks its steps share: texts, reasons and roles."""

from __future__ import annotations

from dataclasses import dataclass, field

from catalog import validation
from catalog.credentials import Identity
from catalog.deadlines import DEFAULT_CALENDAR, WorkingCalendar
from catalog.models import RequestState, Resource, Role
from envelope.errors import InvalidArgument, PermissionDenied, Reason

PLATFORM = "platform"
"""The actor named in the steps the platform takes by itself."""
MAX_DURATION_DAYS = 3650
OPEN_STATES = (RequestState.UNDER_REVIEW, RequestState.PENDING_PROVIDER)


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


def check_text(
    field_name: str, value: str, limit: int = validation.REASON_LIMIT, *, required: bool = True
) -> str:
    """Checks a free text of the workflow (a purpose, a reason, a comment).

    Raises:
        InvalidArgument: INVALID_FIELD, a text that is empty, too long or holds controls.
    """
    return validation.text(field_name, value, limit=limit, required=required)


def written_reason(value: str, what: str) -> str:
    """Checks the written reason a refusal or a platform decision needs.

    Raises:
        InvalidArgument: REASON_REQUIRED for a blank reason.
    """
    if not value.strip():
        raise InvalidArgument(
            Reason.REASON_REQUIRED,
            f"{what} needs a written reason (adding unstated conditions to block sharing "
            "is not allowed)",
            {"field": "reason"},
        )
    return check_text("reason", value)


def require_owner_officer(actor: Identity, resource: Resource, what: str) -> None:
    """Refuses anyone but a data officer of the department that owns ``resource``.

    Raises:
        PermissionDenied: ROLE_NOT_ALLOWED.
    """
    if actor.role is not Role.DATA_OFFICER or actor.department != resource.owner.code:
        raise PermissionDenied(
            Reason.ROLE_NOT_ALLOWED,
            f"only data officers of {resource.owner.code}, which owns {resource.code}, "
            f"may {what}; ask one of them",
        )


def require_platform_officer(actor: Identity, what: str) -> None:
    """Refuses anyone but a platform data officer.

    Raises:
        PermissionDenied: ROLE_NOT_ALLOWED.
    """
    if actor.role is not Role.PLATFORM_OFFICER:
        raise PermissionDenied(Reason.ROLE_NOT_ALLOWED, f"only platform data officers may {what}")
