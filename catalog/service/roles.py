"""Who may change the registry: the role checks of the catalog's methods."""

from __future__ import annotations

from catalog.credentials import Identity
from catalog.models import Role
from envelope.errors import PermissionDenied, Reason


def require_role(actor: Identity, *roles: Role) -> None:
    """Refuses an actor whose role is not one of ``roles``.

    Raises:
        PermissionDenied: ROLE_NOT_ALLOWED, naming the roles allowed.
    """
    if actor.role not in roles:
        allowed = ", ".join(r.value.lower().replace("_", " ") for r in roles)
        raise PermissionDenied(
            Reason.ROLE_NOT_ALLOWED,
            f"{actor.name} ({actor.role.value.lower()}) may not do this; allowed: {allowed}",
        )


def require_owner_officer(actor: Identity, department: str) -> None:
    """Refuses a data officer acting for a department other than their own.

    Raises:
        PermissionDenied: ROLE_NOT_ALLOWED.
    """
    if actor.role is Role.DATA_OFFICER and actor.department != department:
        raise PermissionDenied(
            Reason.ROLE_NOT_ALLOWED,
            f"{actor.name} is a data officer of {actor.department}, not of {department}",
        )
