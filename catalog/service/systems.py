"""Systems of departments and the Ed25519 keys they sign batches with."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog import validation
from catalog.credentials import Identity
from catalog.models import Department, Role, SigningKey, System, utcnow
from catalog.service.departments import Departments
from catalog.service.paging import Page
from catalog.service.roles import require_role
from envelope.errors import InvalidArgument, NotFound, Reason
from envelope.signing import key_id_of


class Systems(Departments):
    """Registers systems, adds and revokes their signing keys, and looks them up."""

    def create_system(
        self, actor: Identity, *, code: str, name: str, department: str, public_key: bytes | None
    ) -> System:
        """Registers a system of a department with its first signing key (administrators)."""
        require_role(actor, Role.ADMINISTRATOR)
        validation.code("code", code)
        name = validation.text("name", name)
        if public_key is not None and len(public_key) != 32:
            raise InvalidArgument(
                Reason.INVALID_FIELD,
                f"an Ed25519 public key has 32 bytes, got {len(public_key)}",
                {"field": "signing_keys"},
            )
        with self.sessions() as session:
            owner = self.department(session, department)
            row = System(code=code, name=name, department_id=owner.id)
            session.add(row)
            if public_key is not None:
                row.signing_keys.append(
                    SigningKey(key_id=key_id_of(public_key), public_key=public_key)
                )
            self._commit(session, f"system {code!r} (or its signing key)")
            return self.system(session, code)

    def add_signing_key(self, actor: Identity, system_code: str, public_key: bytes) -> System:
        """Registers another signing key of a system (administrators)."""
        require_role(actor, Role.ADMINISTRATOR)
        if len(public_key) != 32:
            raise InvalidArgument(
                Reason.INVALID_FIELD,
                f"an Ed25519 public key has 32 bytes, got {len(public_key)}",
                {"field": "public_key"},
            )
        with self.sessions() as session:
            row = self.system(session, system_code)
            row.signing_keys.append(SigningKey(key_id=key_id_of(public_key), public_key=public_key))
            self._commit(session, f"signing key {key_id_of(public_key)}")
            return self.system(session, system_code)

    def revoke_signing_key(
        self,
        actor: Identity,
        system_code: str,
        key_id: str,
        reason: str,
        at: datetime | None = None,
        compromised: bool = False,
    ) -> System:
        """Revokes a system's key from ``at`` (default now) on, with a reason (administrators).

        A key already revoked keeps its earlier time unless ``at`` is earlier still.
        ``compromised``: the key leaked, so batches received after ``at`` are refused
        whatever creation time they claim.
        """
        require_role(actor, Role.ADMINISTRATOR)
        reason = validation.text("reason", reason, limit=validation.REASON_LIMIT)
        with self.sessions() as session:
            row = self.system(session, system_code)
            key = next((k for k in row.signing_keys if k.key_id == key_id), None)
            if key is None:
                raise NotFound(
                    Reason.UNKNOWN_SIGNING_KEY,
                    f"system {system_code} has no signing key {key_id[:64]!r}",
                    {"key_id": key_id[:32]},
                )
            when = at or utcnow()
            if key.revoked_at is None or when < key.revoked_at:
                key.revoked_at = when
                key.revoke_reason = reason
            key.compromised = key.compromised or compromised
            session.commit()
            return self.system(session, system_code)

    def system(self, session: Session, code: str) -> System:
        """Returns a system or raises NotFound."""
        row = session.scalar(select(System).where(System.code == code))
        if row is None:
            raise NotFound(Reason.UNKNOWN_SYSTEM, f"no system with code {code!r}")
        return row

    def get_system(self, code: str) -> System:
        """Returns a system by code."""
        with self.sessions() as session:
            return self.system(session, code)

    def list_systems(
        self, department: str = "", page_size: int = 0, page_token: str = ""
    ) -> Page[System]:
        """Pages through systems by code, optionally of one department."""
        query = select(System)
        if department:
            query = query.join(System.department).where(Department.code == department)
        return self.page(query, System.code, page_size, page_token)
