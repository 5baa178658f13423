"""Grants: the one check of what a grant may deliver, the grant a decision makes, and
revocation.

The checks here hold for every grant, whether an administrator makes it directly
(:meth:`catalog.service.Catalog.create_grant`) or a decision on a request makes it.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.orm import Session

from catalog import validation
from catalog.credentials import Identity
from catalog.governance.base import WorkflowBase
from catalog.governance.rules import require_owner_officer, written_reason
from catalog.models import (
    AccessRequest,
    Grant,
    GrantOrigin,
    GrantStatus,
    RequestKind,
    Resource,
    Role,
    Sensitivity,
    utcnow,
)
from envelope import schemas
from envelope.errors import FailedPrecondition, InvalidArgument, Reason


def check_fields(resource: Resource, fields: Sequence[str]) -> None:
    """Refuses a field that is not a top-level field of the resource's latest schema.

    Raises:
        InvalidArgument: INVALID_FIELD, naming the field.
    """
    known = schemas.parse(resource.schemas[-1].definition).top_level_fields()
    for name in fields:
        if name not in known:
            raise InvalidArgument(
                Reason.INVALID_FIELD,
                f"field {name!r} is not in {resource.code} (fields: {', '.join(known)})",
                {"field": name},
            )


def check_clear_fields(
    resource: Resource,
    fields: Sequence[str],
    clear_fields: Sequence[str],
    *,
    granted: str = "a granted",
) -> None:
    """Refuses a clear field that is not delivered or not tagged sensitive.

    Args:
        resource: The resource granted.
        fields: The fields delivered; empty means all.
        clear_fields: The sensitive fields to deliver in clear text.
        granted: How the refusal calls the fields delivered ("an approved" for an
            approval).

    Raises:
        InvalidArgument: INVALID_FIELD on ``clear_fields``.
    """
    tagged = {f["name"] for f in resource.fields if f["sensitivity"] != Sensitivity.NONE.value}
    for name in clear_fields:
        if name not in tagged or (fields and name not in fields):
            raise InvalidArgument(
                Reason.INVALID_FIELD,
                f"clear field {name!r} must be {granted} field tagged sensitive",
                {"field": "clear_fields"},
            )


def check_region(resource: Resource, region: str) -> None:
    """Refuses a region row filter that is not a region code, or a resource without a
    region field to filter by; an empty region (all rows) passes.

    Raises:
        InvalidArgument: INVALID_FIELD on ``row_filter.region_code``.
        FailedPrecondition: INVALID_FIELD, the resource has no region field.
    """
    if not region:
        return
    validation.region_code("row_filter.region_code", region)
    if not resource.region_field:
        raise FailedPrecondition(
            Reason.INVALID_FIELD,
            f"{resource.code} has no region field to filter rows by",
            {"field": "row_filter.region_code"},
        )


def delivered_fields(resource: Resource, fields: Sequence[str], region: str) -> list[str]:
    """The fields a grant stores: each once, with the region field a region filter needs
    (empty still means all)."""
    delivered = list(dict.fromkeys(fields))
    if region and delivered and resource.region_field not in delivered:
        delivered.append(resource.region_field)
    return delivered


def check_grant(
    resource: Resource,
    *,
    fields: Sequence[str] = (),
    clear_fields: Sequence[str] = (),
    region: str = "",
) -> list[str]:
    """Checks what a grant of ``resource`` would deliver, and returns its fields.

    Args:
        resource: The resource granted.
        fields: The fields delivered; empty means all.
        clear_fields: The sensitive fields delivered in clear text.
        region: The region row filter; empty means all rows.

    Returns:
        The fields to store (see :func:`delivered_fields`).

    Raises:
        InvalidArgument: INVALID_FIELD, a field not in the schema, a clear field not
            granted or not sensitive, or a malformed region code.
        FailedPrecondition: INVALID_FIELD, a region filter on a resource without a
            region field.
    """
    check_fields(resource, fields)
    check_clear_fields(resource, fields, clear_fields)
    check_region(resource, region)
    return delivered_fields(resource, fields, region)


def grant_for(
    session: Session,
    request: AccessRequest,
    actor: str,
    fields: Sequence[str],
    clear_fields: Sequence[str],
    days: int | None,
) -> Grant:
    """Adds the grant a decision on ``request`` makes, for ``days`` (default: as asked)."""
    resource = request.resource
    grant = Grant(
        public_id="g-" + secrets.token_hex(8),
        resource=resource,
        grantee=request.requesting_system,
        fields=delivered_fields(resource, fields, request.region_filter),
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


class Grants(WorkflowBase):
    """Ends grants."""

    def revoke_grant(self, actor: Identity, grant_id: str, reason: str) -> Grant:
        """Revokes an active grant: deliveries under it stop at once."""
        reason = written_reason(reason, "a revocation")
        with self.catalog.sessions() as session:
            grant = self.catalog.grant(session, grant_id)
            if actor.role is not Role.ADMINISTRATOR:
                require_owner_officer(actor, grant.resource, "revoke its grants")
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
