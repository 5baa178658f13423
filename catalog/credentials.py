"""Principals and their credentials.

An :class:`Identity` is what the gateway knows about a caller once authenticated. It
comes from a verified TLS client certificate (mutual TLS, the default), whose SHA-256
fingerprint is a ``CERT`` credential of its principal, or in development mode from a
bearer token (a ``TOKEN`` credential, stored as a hash).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog import validation
from catalog.db import close_catalog, open_catalog
from catalog.ledger import ACTOR
from catalog.models import Credential, Department, Principal, Role, System, utcnow
from envelope.errors import AlreadyExists, InvalidArgument, NotFound, Reason, Unauthenticated

TOKEN_PREFIX = "lj"  # noqa: S105 (a format marker, not a secret)
TOKEN = "TOKEN"  # noqa: S105 (a credential kind)
CERT = "CERT"


@dataclass(frozen=True)
class Identity:
    """An authenticated caller.

    Attributes:
        name: Principal name, unique in the catalog.
        role: What the principal is.
        department: Code of its department (systems and data officers), else None.
        system: Code of the system it is (systems only), else None.
    """

    name: str
    role: Role
    department: str | None = None
    system: str | None = None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def ensure_principal(
    session: Session,
    *,
    name: str,
    role: Role,
    department: str | None = None,
    system: str | None = None,
) -> Principal:
    """Returns the principal, creating it when new (not committed).

    A system's principal is named after the system; officers belong to a department.

    Raises:
        InvalidArgument: The name is empty, too long or holds a control character; the
            role's required department or system is missing, or the principal exists
            with another role.
        NotFound: The department or system does not exist.
    """
    validation.text("name", name, limit=validation.FIELD_NAME_LIMIT)
    department_row: Department | None = None
    system_row: System | None = None
    if role is Role.SYSTEM:
        if not system:
            raise InvalidArgument(Reason.INVALID_FIELD, "a system principal needs --system")
        system_row = session.scalar(select(System).where(System.code == system))
        if system_row is None:
            raise NotFound(Reason.UNKNOWN_SYSTEM, f"no system with code {system!r}")
        department_row = system_row.department
        name = system_row.code
    elif role is Role.DATA_OFFICER and not department:
        raise InvalidArgument(
            Reason.INVALID_FIELD, "a data officer belongs to a department: pass --department"
        )
    if not name:
        raise InvalidArgument(Reason.INVALID_FIELD, "a principal needs a --name")
    if department and department_row is None:
        department_row = session.scalar(select(Department).where(Department.code == department))
        if department_row is None:
            raise NotFound(Reason.UNKNOWN_DEPARTMENT, f"no department with code {department!r}")
    principal = session.scalar(select(Principal).where(Principal.name == name))
    if principal is None:
        principal = Principal(
            name=name,
            role=role,
            department_id=department_row.id if department_row else None,
            system_id=system_row.id if system_row else None,
        )
        session.add(principal)
        session.flush()
    elif principal.role is not role:
        raise InvalidArgument(
            Reason.INVALID_FIELD,
            f"principal {name!r} exists with role {principal.role.value}, not {role.value}",
        )
    return principal


def issue_token(
    session: Session,
    *,
    name: str,
    role: Role,
    department: str | None = None,
    system: str | None = None,
) -> str:
    """Creates the principal if new and issues it a bearer token.

    The token is returned once; only its hash is stored.

    Raises:
        InvalidArgument, NotFound: As :func:`ensure_principal`.
    """
    principal = ensure_principal(
        session, name=name, role=role, department=department, system=system
    )
    lookup = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    session.add(Credential(principal_id=principal.id, lookup=lookup, secret_hash=_hash(secret)))
    session.commit()
    return f"{TOKEN_PREFIX}_{lookup}_{secret}"


def bind_certificate(session: Session, principal: Principal, fingerprint: str) -> None:
    """Makes the certificate with this SHA-256 fingerprint (hex) a credential of
    ``principal`` (committed).

    Raises:
        AlreadyExists: The certificate is bound already.
    """
    if session.scalar(select(Credential).where(Credential.lookup == fingerprint)) is not None:
        raise AlreadyExists(Reason.ALREADY_EXISTS, "this certificate is registered already")
    session.add(
        Credential(principal_id=principal.id, kind=CERT, lookup=fingerprint, secret_hash="")
    )
    session.commit()


def bind_certificate_at(
    catalog_url: str,
    fingerprint: str,
    *,
    name: str,
    role: Role,
    department: str | None = None,
    system: str | None = None,
) -> str:
    """Binds a certificate to its principal (created when new) in the catalog at
    ``catalog_url``, as ``lijiao pki issue`` does; returns the principal's name.

    Raises:
        InvalidArgument, NotFound: As :func:`ensure_principal`.
        AlreadyExists: The certificate is bound already.
    """
    sessions = open_catalog(catalog_url)
    token = ACTOR.set("pki")
    try:
        with sessions() as session:
            principal = ensure_principal(
                session, name=name, role=role, department=department, system=system
            )
            bind_certificate(session, principal, fingerprint)
            return principal.name
    finally:
        ACTOR.reset(token)
        close_catalog(sessions)


def revoke_certificate(session: Session, fingerprint: str) -> bool:
    """Revokes a certificate credential now (committed); False when it is not bound."""
    credential = session.scalar(
        select(Credential).where(Credential.lookup == fingerprint, Credential.kind == CERT)
    )
    if credential is None:
        return False
    if credential.revoked_at is None:
        credential.revoked_at = utcnow()
        session.commit()
    return True


def _identity(principal: Principal) -> Identity:
    return Identity(
        name=principal.name,
        role=principal.role,
        department=principal.department.code if principal.department else None,
        system=principal.system.code if principal.system else None,
    )


def authenticate_certificate(session: Session, fingerprint: str) -> Identity:
    """Resolves a verified client certificate (by fingerprint) to an identity.

    Raises:
        Unauthenticated: No principal holds this certificate, or it was revoked.
    """
    credential = session.scalar(
        select(Credential).where(Credential.lookup == fingerprint, Credential.kind == CERT)
    )
    if credential is None:
        raise Unauthenticated(
            Reason.UNKNOWN_CERTIFICATE,
            "the client certificate is not registered to any principal (lijiao pki issue or "
            "lijiao pki register binds one)",
        )
    if credential.revoked_at is not None and credential.revoked_at <= utcnow():
        raise Unauthenticated(Reason.CERTIFICATE_REVOKED, "the client certificate was revoked")
    return _identity(credential.principal)


def authenticate_token(session: Session, token: str) -> Identity:
    """Resolves a bearer token to an identity.

    Raises:
        Unauthenticated: The token is malformed, unknown or revoked. The message never
            echoes the token.
    """
    prefix, _, rest = token.partition("_")
    lookup, _, secret = rest.partition("_")
    if prefix != TOKEN_PREFIX or not lookup or not secret:
        raise Unauthenticated(Reason.UNAUTHENTICATED, "the bearer token is malformed")
    credential = session.scalar(
        select(Credential).where(Credential.lookup == lookup, Credential.kind == TOKEN)
    )
    if credential is None or not hmac.compare_digest(credential.secret_hash, _hash(secret)):
        raise Unauthenticated(Reason.UNAUTHENTICATED, "the bearer token is not valid")
    if credential.revoked_at is not None and credential.revoked_at <= utcnow():
        raise Unauthenticated(Reason.UNAUTHENTICATED, "the bearer token was revoked")
    return _identity(credential.principal)


def issue_token_at(
    catalog_url: str,
    *,
    name: str,
    role: Role,
    department: str | None = None,
    system: str | None = None,
) -> str:
    """Issues a token in the catalog at ``catalog_url``, as ``lijiao tokens issue`` does.

    Raises:
        InvalidArgument, NotFound: As :func:`issue_token`.
    """
    sessions = open_catalog(catalog_url)
    try:
        with sessions() as session:
            return issue_token(session, name=name, role=role, department=department, system=system)
    finally:
        close_catalog(sessions)
