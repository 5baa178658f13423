"""Who sees which requests and flagged records: the one visibility rule of governance.

Platform officers, administrators and auditors see every row; everyone else sees the
rows their department made and those about a resource it owns. Rows a viewer may not
see look unknown, not forbidden. No viewer means the gateway itself, which sees all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, Select, or_, select

from catalog.credentials import Identity
from catalog.models import Department, Resource, Role


def sees_everything(viewer: Identity) -> bool:
    """Whether ``viewer`` sees every row: platform officers, administrators, auditors."""
    return viewer.role in (Role.PLATFORM_OFFICER, Role.ADMINISTRATOR, Role.AUDITOR)


def may_see(viewer: Identity | None, made_by: str, owner: str) -> bool:
    """Whether ``viewer`` may see one row, made by department ``made_by`` about a
    resource of department ``owner``."""
    return viewer is None or sees_everything(viewer) or viewer.department in (made_by, owner)


def visible(
    query: Select[Any],
    viewer: Identity | None,
    *,
    made_by: Callable[[Any], ColumnElement[bool]],
    resource_id: Any,
) -> Select[Any]:
    """Narrows ``query`` to the rows ``viewer`` may see.

    Args:
        query: A query of requests or of flagged records.
        viewer: Who reads; None for the gateway itself.
        made_by: Given the id of the viewer's department (a scalar subquery), the
            condition that a row was made by that department.
        resource_id: The column of the row's resource.
    """
    if viewer is None or sees_everything(viewer):
        return query
    mine = (
        select(Department.id).where(Department.code == (viewer.department or "")).scalar_subquery()
    )
    return query.where(
        or_(
            made_by(mine),
            resource_id.in_(select(Resource.id).where(Resource.owner_department_id == mine)),
        )
    )
