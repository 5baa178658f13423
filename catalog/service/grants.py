"""Direct grants: which system may receive which resource, which fields and rows."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.credentials import Identity
from catalog.governance.grants import check_grant
from catalog.models import (
    Classification,
    Grant,
    GrantOrigin,
    Resource,
    Role,
    SharingType,
    System,
    utcnow,
)
from catalog.service.paging import Page
from catalog.service.resources import Resources
from catalog.service.roles import require_role
from catalog.service.systems import Systems
from envelope.errors import FailedPrecondition, InvalidArgument, NotFound, Reason


class Grants(Resources, Systems):
    """Creates and looks up grants, and finds the one a delivery runs under."""

    def create_grant(
        self,
        actor: Identity,
        *,
        resource_code: str,
        system_code: str,
        fields: Sequence[str] = (),
        clear_fields: Sequence[str] = (),
        region: str = "",
        expires_at: datetime | None = None,
        origin: GrantOrigin = GrantOrigin.ADMINISTRATOR,
    ) -> Grant:
        """Lets a system receive a resource (administrators).

        The grant may name the fields delivered (default: all) and a region row filter.
        NOT_SHARED and CORE resources never go to another department's system.
        """
        require_role(actor, Role.ADMINISTRATOR)
        if expires_at is not None and expires_at <= utcnow():
            raise InvalidArgument(
                Reason.INVALID_FIELD, "expire_time must lie in the future", {"field": "expire_time"}
            )
        with self.sessions() as session:
            resource = self.resource(session, resource_code)
            grantee = self.system(session, system_code)
            foreign = grantee.department_id != resource.owner_department_id
            if foreign and resource.sharing_type is SharingType.NOT_SHARED:
                raise FailedPrecondition(
                    Reason.NOT_SHARED,
                    f"resource {resource.code!r} is not shared (不予共享): "
                    f"{resource.sharing_conditions}",
                )
            if foreign and resource.classification is Classification.CORE:
                raise FailedPrecondition(
                    Reason.CORE_DATA,
                    f"resource {resource.code!r} is core data (核心数据) and never leaves "
                    f"{resource.owner.code}",
                )
            fields = check_grant(resource, fields=fields, clear_fields=clear_fields, region=region)
            grant = Grant(
                public_id="g-" + secrets.token_hex(8),
                resource_id=resource.id,
                grantee_system_id=grantee.id,
                fields=fields,
                clear_fields=list(dict.fromkeys(clear_fields)),
                region_filter=region,
                expires_at=expires_at,
                origin=origin,
                created_by=actor.name,
            )
            session.add(grant)
            self._commit(session, "grant")
            return self.grant(session, grant.public_id)

    def grant(self, session: Session, grant_id: str) -> Grant:
        """Returns a grant or raises NotFound."""
        row = session.scalar(select(Grant).where(Grant.public_id == grant_id))
        if row is None:
            raise NotFound(Reason.UNKNOWN_GRANT, f"no grant with id {grant_id!r}")
        return row

    def get_grant(self, grant_id: str) -> Grant:
        """Returns a grant by id."""
        with self.sessions() as session:
            return self.grant(session, grant_id)

    def list_grants(
        self, resource: str = "", grantee_system: str = "", page_size: int = 0, page_token: str = ""
    ) -> Page[Grant]:
        """Pages through grants, optionally of one resource or grantee system."""
        query = select(Grant)
        if resource:
            query = query.join(Grant.resource).where(Resource.code == resource)
        if grantee_system:
            query = query.join(Grant.grantee).where(System.code == grantee_system)
        return self.page(query, Grant.id, page_size, page_token)

    def active_grant(self, system_code: str, resource_code: str) -> Grant | None:
        """Returns the newest grant letting a system receive a resource now, if any."""
        now = utcnow()
        with self.sessions() as session:
            rows = session.scalars(
                select(Grant)
                .join(Grant.resource)
                .join(Grant.grantee)
                .where(Resource.code == resource_code, System.code == system_code)
                .order_by(Grant.id.desc())
            ).unique()
            for row in rows:
                if row.is_active(now):
                    return row
        return None
