"""SQLAlchemy models of the resource catalog (政务数据资源目录).

Departments own systems and resources; resources have versioned Avro schemas; grants
say which system may receive which resource; principals and their credentials say who
is calling. Times are stored as timezone-aware UTC.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """Returns the current time in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A DateTime that always comes back timezone-aware in UTC (SQLite drops zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    """Declarative base of the catalog."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class AdministrativeLevel(enum.StrEnum):
    """Where a department sits: city (市), district/county (区县), town/street (乡镇街道)."""

    CITY = "CITY"
    DISTRICT = "DISTRICT"
    TOWN = "TOWN"


class SystemStatus(enum.StrEnum):
    """Whether a system may exchange."""

    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"


class SharingType(enum.StrEnum):
    """共享类型: unconditional, conditional, not shared."""

    UNCONDITIONAL = "UNCONDITIONAL"
    CONDITIONAL = "CONDITIONAL"
    NOT_SHARED = "NOT_SHARED"


class Classification(enum.StrEnum):
    """Data security grade (GB/T 43697-2024)."""

    GENERAL = "GENERAL"
    IMPORTANT = "IMPORTANT"
    CORE = "CORE"


class Sensitivity(enum.StrEnum):
    """Sensitivity tag of a field."""

    NONE = "NONE"
    ID_NUMBER = "ID_NUMBER"
    NAME = "NAME"
    PHONE = "PHONE"
    ADDRESS = "ADDRESS"
    PERSONAL = "PERSONAL"


class GrantStatus(enum.StrEnum):
    """Life of a grant."""

    ACTIVE = "ACTIVE"
    EXPIRED = "EXPIRED"
    REVOKED = "REVOKED"


class GrantOrigin(enum.StrEnum):
    """How a grant came to be."""

    ADMINISTRATOR = "ADMINISTRATOR"
    ACCESS_REQUEST = "ACCESS_REQUEST"
    BACKFLOW = "BACKFLOW"


class Role(enum.StrEnum):
    """What a principal is."""

    SYSTEM = "SYSTEM"
    DATA_OFFICER = "DATA_OFFICER"
    PLATFORM_OFFICER = "PLATFORM_OFFICER"
    AUDITOR = "AUDITOR"
    ADMINISTRATOR = "ADMINISTRATOR"


class RequestKind(enum.StrEnum):
    """An access request, or a data backflow (数据回流) request."""

    ACCESS = "ACCESS"
    BACKFLOW = "BACKFLOW"


class RequestState(enum.StrEnum):
    """Where a request is in its workflow."""

    SUBMITTED = "SUBMITTED"
    UNDER_REVIEW = "UNDER_REVIEW"
    PENDING_PROVIDER = "PENDING_PROVIDER"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class CorrectionState(enum.StrEnum):
    """A flagged record (疑义数据): open until the provider answers."""

    OPEN = "OPEN"
    ANSWERED = "ANSWERED"


def _enum(kind: type[enum.Enum]) -> Enum:
    return Enum(kind, native_enum=False, length=32, validate_strings=True)


class Department(Base):
    """A government department (部门)."""

    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[AdministrativeLevel] = mapped_column(_enum(AdministrativeLevel))
    region_code: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class System(Base):
    """An information system of a department (业务系统)."""

    __tablename__ = "systems"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    status: Mapped[SystemStatus] = mapped_column(_enum(SystemStatus), default=SystemStatus.ACTIVE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    department: Mapped[Department] = relationship(lazy="joined")
    signing_keys: Mapped[list[SigningKey]] = relationship(
        back_populates="system", order_by="SigningKey.id", lazy="selectin"
    )


class SigningKey(Base):
    """A system's Ed25519 public signing key."""

    __tablename__ = "signing_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    system_id: Mapped[int] = mapped_column(ForeignKey("systems.id"))
    algorithm: Mapped[str] = mapped_column(String(16), default="ed25519")
    public_key: Mapped[bytes] = mapped_column(LargeBinary(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    revoke_reason: Mapped[str] = mapped_column(Text, default="")
    compromised: Mapped[bool] = mapped_column(default=False)

    system: Mapped[System] = relationship(back_populates="signing_keys")


class Resource(Base):
    """An entry of the resource catalog."""

    __tablename__ = "resources"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    owner_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    summary: Mapped[str] = mapped_column(Text, default="")
    format: Mapped[str] = mapped_column(String(64), default="database")
    sharing_type: Mapped[SharingType] = mapped_column(_enum(SharingType))
    sharing_conditions: Mapped[str] = mapped_column(Text, default="")
    classification: Mapped[Classification] = mapped_column(_enum(Classification))
    update_cycle: Mapped[str] = mapped_column(String(64), default="")
    key_fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    region_field: Mapped[str] = mapped_column(String(128), default="")
    fields: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    compatibility: Mapped[str] = mapped_column(String(32), default="BACKWARD")
    backflow_eligible: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    owner: Mapped[Department] = relationship(lazy="joined")
    schemas: Mapped[list[SchemaVersion]] = relationship(
        back_populates="resource", order_by="SchemaVersion.version", lazy="selectin"
    )


class SchemaVersion(Base):
    """A registered Avro schema version of a resource."""

    __tablename__ = "schema_versions"
    __table_args__ = (
        UniqueConstraint("resource_id", "version"),
        UniqueConstraint("resource_id", "fingerprint"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[str] = mapped_column(Text)
    canonical_form: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    resource: Mapped[Resource] = relationship(back_populates="schemas")


class Grant(Base):
    """Permission for one system to receive one resource (fields, rows, until when)."""

    __tablename__ = "grants"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"))
    grantee_system_id: Mapped[int] = mapped_column(ForeignKey("systems.id"))
    fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    clear_fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    region_filter: Mapped[str] = mapped_column(String(12), default="")
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    origin: Mapped[GrantOrigin] = mapped_column(_enum(GrantOrigin))
    request_id: Mapped[str] = mapped_column(String(40), default="")
    status: Mapped[GrantStatus] = mapped_column(_enum(GrantStatus), default=GrantStatus.ACTIVE)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    revoke_reason: Mapped[str] = mapped_column(Text, default="")

    resource: Mapped[Resource] = relationship(lazy="joined")
    grantee: Mapped[System] = relationship(lazy="joined")

    def is_active(self, now: datetime) -> bool:
        """Whether deliveries may happen under this grant at ``now``."""
        if self.status is not GrantStatus.ACTIVE:
            return False
        return self.expires_at is None or now < self.expires_at


class AccessRequest(Base):
    """A department's request to receive a resource, and its decision."""

    __tablename__ = "access_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[RequestKind] = mapped_column(_enum(RequestKind))
    state: Mapped[RequestState] = mapped_column(_enum(RequestState))
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"))
    requesting_system_id: Mapped[int] = mapped_column(ForeignKey("systems.id"))
    requester: Mapped[str] = mapped_column(String(128))
    fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    purpose: Mapped[str] = mapped_column(Text)
    legal_basis: Mapped[str] = mapped_column(Text)
    duration_days: Mapped[int] = mapped_column(Integer)
    approved_days: Mapped[int] = mapped_column(Integer, default=0)
    region_filter: Mapped[str] = mapped_column(String(12), default="")
    due_at: Mapped[datetime | None] = mapped_column(default=None)
    decided_by: Mapped[str] = mapped_column(String(128), default="")
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    decision_reason: Mapped[str] = mapped_column(Text, default="")
    grant_id: Mapped[str] = mapped_column(String(40), default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    resource: Mapped[Resource] = relationship(lazy="joined")
    requesting_system: Mapped[System] = relationship(lazy="joined")
    transitions: Mapped[list[RequestTransition]] = relationship(
        back_populates="request", order_by="RequestTransition.id", lazy="selectin"
    )

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (SQLAlchemy's own form)


class RequestTransition(Base):
    """One step of a request: who moved it, when, from where to where, and why."""

    __tablename__ = "request_transitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("access_requests.id"))
    from_state: Mapped[str] = mapped_column(String(32), default="")
    to_state: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)

    request: Mapped[AccessRequest] = relationship(back_populates="transitions")


class BackflowEnrolment(Base):
    """A district or town enrolled in proactive backflow (主动式数据回流)."""

    __tablename__ = "backflow_enrolments"
    __table_args__ = (
        # at most one current enrolment per department, even when two officers race
        Index(
            "one_current_enrolment",
            "department_id",
            unique=True,
            sqlite_where=text("withdrawn_at IS NULL"),
            postgresql_where=text("withdrawn_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    enrolled_by: Mapped[str] = mapped_column(String(128))
    enrolled_at: Mapped[datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(Text, default="")
    withdrawn_by: Mapped[str] = mapped_column(String(128), default="")
    withdrawn_at: Mapped[datetime | None] = mapped_column(default=None)
    withdraw_reason: Mapped[str] = mapped_column(Text, default="")

    department: Mapped[Department] = relationship(lazy="joined")


class Correction(Base):
    """A delivered record a consumer flagged as wrong (疑义数据), and the provider's answer."""

    __tablename__ = "corrections"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"))
    batch_id: Mapped[str] = mapped_column(String(128))
    record_key: Mapped[dict[str, Any]] = mapped_column(JSON)
    comment: Mapped[str] = mapped_column(Text)
    flagged_by: Mapped[str] = mapped_column(String(128))
    flagging_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    state: Mapped[CorrectionState] = mapped_column(
        _enum(CorrectionState), default=CorrectionState.OPEN
    )
    answer: Mapped[str] = mapped_column(Text, default="")
    answered_by: Mapped[str] = mapped_column(String(128), default="")
    answered_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    resource: Mapped[Resource] = relationship(lazy="joined")
    flagging_department: Mapped[Department] = relationship(lazy="joined")


class Principal(Base):
    """Someone or something that calls the gateway: a system, an officer, an auditor."""

    __tablename__ = "principals"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[Role] = mapped_column(_enum(Role))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    system_id: Mapped[int | None] = mapped_column(ForeignKey("systems.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    department: Mapped[Department | None] = relationship(lazy="joined")
    system: Mapped[System | None] = relationship(lazy="joined")


class Credential(Base):
    """A way a principal proves who it is. Tokens are stored as SHA-256 hashes only."""

    __tablename__ = "credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id"))
    kind: Mapped[str] = mapped_column(String(16), default="TOKEN")
    lookup: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    principal: Mapped[Principal] = relationship(lazy="joined")


class DeliveryAttempt(Base):
    """How often a batch was delivered to a subscription without an acknowledgement,
    kept when a stream ends with it unacknowledged: the maximum delivery count
    (LIJIAO_MAX_DELIVERIES) then holds across reconnections, restarts and replicas.
    Rows at or below the subscription's cursor are removed when it opens again."""

    __tablename__ = "delivery_attempts"

    system: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource: Mapped[str] = mapped_column(String(64), primary_key=True)
    subscription: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    attempts: Mapped[int] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
