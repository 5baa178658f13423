"""Departments: the registry's owners of systems and resources."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog import validation
from catalog.credentials import Identity
from catalog.models import AdministrativeLevel, Department, Role
from catalog.service.paging import Page
from catalog.service.roles import require_role
from catalog.service.store import Store
from envelope.errors import NotFound, Reason


class Departments(Store):
    """Registers and looks up departments."""

    def create_department(
        self, actor: Identity, *, code: str, name: str, level: AdministrativeLevel, region_code: str
    ) -> Department:
        """Registers a department (administrators)."""
        require_role(actor, Role.ADMINISTRATOR)
        row = Department(
            code=validation.code("code", code),
            name=validation.text("name", name),
            level=level,
            region_code=validation.region_code("region_code", region_code),
        )
        return self._insert(row, f"department {code!r}")

    def department(self, session: Session, code: str) -> Department:
        """Returns a department or raises NotFound."""
        row = session.scalar(select(Department).where(Department.code == code))
        if row is None:
            raise NotFound(Reason.UNKNOWN_DEPARTMENT, f"no department with code {code!r}")
        return row

    def get_department(self, code: str) -> Department:
        """Returns a department by code."""
        with self.sessions() as session:
            return self.department(session, code)

    def list_departments(self, page_size: int = 0, page_token: str = "") -> Page[Department]:
        """Pages through departments by code."""
        return self.page(select(Department), Department.code, page_size, page_token)
