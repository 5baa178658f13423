"""The resource catalog's rules: who may register what, and what is valid.

:class:`Catalog` serves the gateway's ``CatalogService`` and the publish and subscribe
paths. Methods that change the catalog take the acting
:class:`~catalog.credentials.Identity` and raise :mod:`envelope.errors` refusals.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from catalog import compatibility, validation
from catalog.credentials import Identity
from catalog.models import (
    AdministrativeLevel,
    Classification,
    Department,
    Grant,
    GrantOrigin,
    Resource,
    Role,
    SchemaVersion,
    Sensitivity,
    SharingType,
    SigningKey,
    System,
    utcnow,
)
from envelope import schemas
from envelope.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Reason,
)
from envelope.signing import key_id_of

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_KEY_FIELDS = 16

Row = TypeVar("Row", Department, System, Resource, SchemaVersion, Grant)
T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing."""

    items: list[T]
    next_page_token: str


@dataclass(frozen=True)
class FieldSpec:
    """Description and sensitivity tag of one top-level field."""

    name: str
    description: str = ""
    sensitivity: Sensitivity = Sensitivity.NONE


@dataclass(frozen=True)
class ResourceSpec:
    """What a data officer registers about a resource."""

    code: str
    name: str
    owner_department: str
    sharing_type: SharingType
    classification: Classification
    summary: str = ""
    format: str = "database"
    sharing_conditions: str = ""
    update_cycle: str = ""
    key_fields: Sequence[str] = ()
    region_field: str = ""
    fields: Sequence[FieldSpec] = ()
    compatibility: compatibility.CompatibilityMode = compatibility.CompatibilityMode.BACKWARD
    backflow_eligible: bool = False


def _require(actor: Identity, *roles: Role) -> None:
    if actor.role not in roles:
        allowed = ", ".join(r.value.lower().replace("_", " ") for r in roles)
        raise PermissionDenied(
            Reason.ROLE_NOT_ALLOWED,
            f"{actor.name} ({actor.role.value.lower()}) may not do this; allowed: {allowed}",
        )


def _page_size(size: int) -> int:
    if size < 0 or size > MAX_PAGE_SIZE:
        raise InvalidArgument(
            Reason.INVALID_FIELD, f"page_size must be 0..{MAX_PAGE_SIZE}", {"field": "page_size"}
        )
    return size or DEFAULT_PAGE_SIZE


def decode_page_token(token: str) -> Any:
    """The position a page token carries (None for no token).

    Raises:
        InvalidArgument: INVALID_PAGE_TOKEN, a token no gateway issued.
    """
    if not token:
        return None
    try:
        after = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
    except (ValueError, KeyError, TypeError) as exc:
        after = exc
    if isinstance(after, bool) or not isinstance(after, str | int) or not _in_int64(after):
        raise InvalidArgument(
            Reason.INVALID_PAGE_TOKEN,
            "page_token is not one this gateway issued; start again without it",
        )
    return after


def _in_int64(value: str | int) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


def _maskable(avro_type: Any) -> bool:
    """Whether every value of a type is built from strings and nulls only (maps are not:
    their keys would go out unmasked)."""
    if isinstance(avro_type, list):
        return all(_maskable(branch) for branch in avro_type)
    if isinstance(avro_type, dict):
        kind = avro_type.get("type")
        if kind == "record":
            return all(_maskable(f["type"]) for f in avro_type.get("fields", []))
        if kind == "array":
            return _maskable(avro_type.get("items"))
        return _maskable(kind)
    return avro_type in ("string", "null")


def _check_field_names(names: Sequence[str], request_field: str) -> None:
    """Refuses a schema whose top-level field names the catalog would store are not Avro
    names: they enter the catalog's rows and the ledger as text."""
    for name in names:
        if not validation.field_name(name):
            raise InvalidArgument(
                Reason.INVALID_SCHEMA,
                f"top-level field {name[:32]!r} is not an Avro name: 1-"
                f"{validation.FIELD_NAME_LIMIT} ASCII letters, digits or '_', not starting "
                "with a digit",
                {"field": request_field},
            )


def _key_fields(names: Sequence[str]) -> list[str]:
    """A resource's key fields, each once, at most ``MAX_KEY_FIELDS``."""
    unique = list(dict.fromkeys(names))
    if len(unique) > MAX_KEY_FIELDS:
        raise InvalidArgument(
            Reason.INVALID_FIELD,
            f"key_fields names at most {MAX_KEY_FIELDS} fields, got {len(unique)}",
            {"field": "key_fields"},
        )
    return unique


def encode_page_token(after: Any) -> str:
    """A page token carrying the last position of a page (keyset paging)."""
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode()


def check_backflow_eligible(resource: Resource) -> None:
    """Refuses proactive backflow for a resource that must not flow without a decision.

    It needs a region field to split rows by; NOT_SHARED and CORE data never leave their
    owner, and IMPORTANT data always needs an approved request.
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


class Catalog:
    """The resource catalog over a SQLAlchemy session factory."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    # --- paging ---------------------------------------------------------------------

    def page(self, query: Select[Any], key: Any, page_size: int, page_token: str) -> Page[Any]:
        """Runs one page of ``query`` in ascending order of ``key`` (keyset paging)."""
        return self._keyset(query, key, page_size, page_token, descending=False)

    def page_desc(self, query: Select[Any], key: Any, page_size: int, page_token: str) -> Page[Any]:
        """Runs one page of ``query`` in descending order of ``key``."""
        return self._keyset(query, key, page_size, page_token, descending=True)

    def _keyset(
        self, query: Select[Any], key: Any, page_size: int, page_token: str, *, descending: bool
    ) -> Page[Any]:
        size = _page_size(page_size)
        after = decode_page_token(page_token)
        if after is not None:
            query = query.where(key < after if descending else key > after)
        order = key.desc() if descending else key
        with self.sessions() as session:
            rows = list(session.scalars(query.order_by(order).limit(size + 1)).unique())
        more = len(rows) > size
        rows = rows[:size]
        token = encode_page_token(getattr(rows[-1], key.key)) if more else ""
        return Page(rows, token)

    # --- departments ----------------------------------------------------------------

    def create_department(
        self, actor: Identity, *, code: str, name: str, level: AdministrativeLevel, region_code: str
    ) -> Department:
        """Registers a department (administrators)."""
        _require(actor, Role.ADMINISTRATOR)
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

    # --- systems --------------------------------------------------------------------

    def create_system(
        self, actor: Identity, *, code: str, name: str, department: str, public_key: bytes | None
    ) -> System:
        """Registers a system of a department with its first signing key (administrators)."""
        _require(actor, Role.ADMINISTRATOR)
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
        _require(actor, Role.ADMINISTRATOR)
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
        _require(actor, Role.ADMINISTRATOR)
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

    # --- resources and schemas ------------------------------------------------------

    def create_resource(
        self, actor: Identity, spec: ResourceSpec, schema_text: str
    ) -> tuple[Resource, SchemaVersion]:
        """Registers a resource and its first schema version.

        Administrators may register for any department; data officers for their own.
        """
        _require(actor, Role.ADMINISTRATOR, Role.DATA_OFFICER)
        self._require_owner_officer(actor, spec.owner_department)
        validation.code("code", spec.code)
        texts = {
            "name": validation.text("name", spec.name),
            "summary": validation.text("summary", spec.summary, required=False, limit=4000),
            "format": validation.text("format", spec.format or "database", limit=64),
            "sharing_conditions": validation.text(
                "sharing_conditions", spec.sharing_conditions, required=False, limit=4000
            ),
            "update_cycle": validation.text(
                "update_cycle", spec.update_cycle, required=False, limit=64
            ),
        }
        described = [
            {
                "name": f.name,
                "description": validation.text(
                    "fields.description", f.description, required=False, limit=1000
                ),
                "sensitivity": f.sensitivity.value,
            }
            for f in spec.fields
        ]
        key_fields = _key_fields(spec.key_fields)
        parsed = schemas.parse(schema_text)
        fields = set(parsed.top_level_fields())
        if not fields:
            raise InvalidArgument(
                Reason.INVALID_SCHEMA, "a resource's schema must be an Avro record"
            )
        _check_field_names(parsed.top_level_fields(), "schema")
        named = [*key_fields, *([spec.region_field] if spec.region_field else [])]
        named += [f.name for f in spec.fields]
        for name in named:
            if name not in fields:
                raise InvalidArgument(
                    Reason.INVALID_FIELD,
                    f"field {name!r} is not a top-level field of the schema "
                    f"(fields: {', '.join(sorted(fields))})",
                    {"field": name},
                )
        seen: set[str] = set()
        for tagged in spec.fields:
            if tagged.name in seen:
                raise InvalidArgument(
                    Reason.INVALID_FIELD,
                    f"field {tagged.name!r} is described twice; describe each field once",
                    {"field": tagged.name},
                )
            seen.add(tagged.name)
        types = {f["name"]: f["type"] for f in parsed.definition["fields"]}
        for tagged in spec.fields:
            if tagged.sensitivity is not Sensitivity.NONE and not _maskable(types[tagged.name]):
                raise InvalidArgument(
                    Reason.INVALID_FIELD,
                    f"field {tagged.name!r} is tagged {tagged.sensitivity.value} but holds "
                    "more than strings: a sensitive field must be a string, or a record, "
                    "array, map or union of strings and nulls, so deliveries can mask it",
                    {"field": tagged.name},
                )
        if spec.sharing_type is SharingType.NOT_SHARED and not spec.sharing_conditions.strip():
            raise InvalidArgument(
                Reason.INVALID_FIELD,
                "a NOT_SHARED resource must cite its legal basis in sharing_conditions",
                {"field": "sharing_conditions"},
            )
        with self.sessions() as session:
            owner = self.department(session, spec.owner_department)
            resource = Resource(
                code=spec.code,
                name=texts["name"],
                owner_department_id=owner.id,
                summary=texts["summary"],
                format=texts["format"],
                sharing_type=spec.sharing_type,
                sharing_conditions=texts["sharing_conditions"],
                classification=spec.classification,
                update_cycle=texts["update_cycle"],
                key_fields=key_fields,
                region_field=spec.region_field,
                fields=described,
                compatibility=spec.compatibility.value,
                backflow_eligible=spec.backflow_eligible,
            )
            if spec.backflow_eligible:
                check_backflow_eligible(resource)
            version = SchemaVersion(
                version=1,
                definition=json.dumps(parsed.definition, ensure_ascii=False),
                canonical_form=parsed.canonical_form,
                fingerprint=parsed.fingerprint_hex,
            )
            resource.schemas.append(version)
            session.add(resource)
            self._commit(session, f"resource {spec.code!r}")
            return resource, version

    def resource(self, session: Session, code: str) -> Resource:
        """Returns a resource or raises NotFound."""
        row = session.scalar(select(Resource).where(Resource.code == code))
        if row is None:
            raise NotFound(Reason.UNKNOWN_RESOURCE, f"no resource with code {code!r}")
        return row

    def get_resource(self, code: str) -> Resource:
        """Returns a resource by code."""
        with self.sessions() as session:
            return self.resource(session, code)

    def list_resources(
        self, owner_department: str = "", page_size: int = 0, page_token: str = ""
    ) -> Page[Resource]:
        """Pages through resources by code, optionally of one owner department."""
        query = select(Resource)
        if owner_department:
            query = query.join(Resource.owner).where(Department.code == owner_department)
        return self.page(query, Resource.code, page_size, page_token)

    def add_schema(
        self,
        actor: Identity,
        resource_code: str,
        definition: str,
        fields: Sequence[FieldSpec] = (),
    ) -> SchemaVersion:
        """Adds a schema version after the resource's compatibility check.

        Fields the version adds are described by ``fields``; a new field left undescribed
        is recorded as PERSONAL, so deliveries mask it until someone describes it.
        Registering a schema identical (same fingerprint) to an existing version returns
        that version unchanged.

        Raises:
            FailedPrecondition: SCHEMA_INCOMPATIBLE, with every incompatibility listed.
            InvalidArgument: INVALID_FIELD for a description of a field the version does
                not add, or a sensitive field that would hold more than strings.
        """
        _require(actor, Role.ADMINISTRATOR, Role.DATA_OFFICER)
        parsed = schemas.parse(definition)
        with self.sessions() as session:
            resource = self.resource(session, resource_code)
            self._require_owner_officer(actor, resource.owner.code)
            for existing in resource.schemas:
                if existing.fingerprint == parsed.fingerprint_hex:
                    return existing
            kept = set(parsed.top_level_fields())
            needed = [*resource.key_fields, *filter(None, [resource.region_field])]
            dropped = [name for name in needed if name not in kept]
            if dropped:
                raise FailedPrecondition(
                    Reason.SCHEMA_INCOMPATIBLE,
                    f"the schema drops {', '.join(dropped)}, which the catalog uses as key or "
                    "region field of this resource; keep them in every version",
                    {"fields": ",".join(dropped)},
                )
            previous = [json.loads(s.definition) for s in resource.schemas]
            mode = compatibility.CompatibilityMode(resource.compatibility)
            problems = compatibility.check(parsed.definition, previous, mode)
            if problems:
                detail = "; ".join(f"{p.path}: {p.message}" for p in problems)
                raise FailedPrecondition(
                    Reason.SCHEMA_INCOMPATIBLE,
                    f"the schema is not {mode.value} compatible: {detail}",
                    {"mode": mode.value, "problems": str(len(problems))},
                )
            resource.fields = self._described(resource, parsed, fields)
            version = SchemaVersion(
                resource_id=resource.id,
                version=len(resource.schemas) + 1,
                definition=json.dumps(parsed.definition, ensure_ascii=False),
                canonical_form=parsed.canonical_form,
                fingerprint=parsed.fingerprint_hex,
            )
            session.add(version)
            self._commit(session, f"schema version of {resource_code!r}")
            return version

    def get_schema(
        self, resource_code: str, *, version: int = 0, fingerprint: bytes = b""
    ) -> SchemaVersion:
        """Returns a schema version by fingerprint, by number, or the latest."""
        with self.sessions() as session:
            resource = self.resource(session, resource_code)
            for row in reversed(resource.schemas):
                if fingerprint and row.fingerprint == fingerprint.hex():
                    return row
                if not fingerprint and (version in (0, row.version)):
                    return row
        wanted = f"fingerprint {fingerprint.hex()}" if fingerprint else f"version {version}"
        raise NotFound(Reason.UNKNOWN_SCHEMA, f"resource {resource_code!r} has no schema {wanted}")

    def list_schemas(
        self, resource_code: str, page_size: int = 0, page_token: str = ""
    ) -> Page[SchemaVersion]:
        """Pages through a resource's schema versions, oldest first."""
        with self.sessions() as session:
            resource_id = self.resource(session, resource_code).id
        query = select(SchemaVersion).where(SchemaVersion.resource_id == resource_id)
        return self.page(query, SchemaVersion.version, page_size, page_token)

    @staticmethod
    def _described(
        resource: Resource, parsed: schemas.ParsedSchema, given: Sequence[FieldSpec]
    ) -> list[dict[str, str]]:
        """The resource's field specs with this version's new fields added."""
        seen = {
            name
            for s in resource.schemas
            for name in schemas.parse(s.definition).top_level_fields()
        }
        new = [name for name in parsed.top_level_fields() if name not in seen]
        _check_field_names(new, "definition")
        by_name = {spec.name: spec for spec in given}
        for name in by_name:
            if name not in new:
                raise InvalidArgument(
                    Reason.INVALID_FIELD,
                    f"field {name!r} is not new in this version; new fields: "
                    f"{', '.join(new) or 'none'}",
                    {"field": name},
                )
        specs = list(resource.fields)
        version = len(resource.schemas) + 1
        for name in new:
            spec = by_name.get(
                name,
                FieldSpec(
                    name, f"added in version {version}; not yet described", Sensitivity.PERSONAL
                ),
            )
            specs.append(
                {
                    "name": name,
                    "description": validation.text(
                        "fields.description", spec.description, required=False, limit=1000
                    ),
                    "sensitivity": spec.sensitivity.value,
                }
            )
        types = {f["name"]: f["type"] for f in parsed.definition["fields"]}
        for spec_row in specs:
            name, tag = spec_row["name"], spec_row["sensitivity"]
            if name in types and tag != Sensitivity.NONE.value and not _maskable(types[name]):
                raise InvalidArgument(
                    Reason.INVALID_FIELD,
                    f"field {name!r} is tagged {tag} but holds more than strings in this "
                    "version, so it could not be masked; keep it a string, or describe a "
                    "new field with sensitivity none",
                    {"field": name},
                )
        return specs

    # --- grants ---------------------------------------------------------------------

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
        _require(actor, Role.ADMINISTRATOR)
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
            known = set(schemas.parse(resource.schemas[-1].definition).top_level_fields())
            for name in fields:
                if name not in known:
                    raise InvalidArgument(
                        Reason.INVALID_FIELD,
                        f"field {name!r} is not in the schema of {resource.code!r}",
                        {"field": name},
                    )
            tagged = {f["name"] for f in resource.fields if f["sensitivity"] != "NONE"}
            for name in clear_fields:
                if name not in tagged or (fields and name not in fields):
                    raise InvalidArgument(
                        Reason.INVALID_FIELD,
                        f"clear field {name!r} must be a granted field tagged sensitive",
                        {"field": "clear_fields"},
                    )
            if region:
                validation.region_code("row_filter.region_code", region)
                if not resource.region_field:
                    raise FailedPrecondition(
                        Reason.INVALID_FIELD,
                        f"resource {resource.code!r} has no region field to filter rows by; "
                        "register one with --region-field",
                        {"field": "row_filter.region_code"},
                    )
                if resource.region_field not in fields and fields:
                    fields = [*fields, resource.region_field]
            grant = Grant(
                public_id="g-" + secrets.token_hex(8),
                resource_id=resource.id,
                grantee_system_id=grantee.id,
                fields=list(dict.fromkeys(fields)),
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

    # --- helpers --------------------------------------------------------------------

    def _require_owner_officer(self, actor: Identity, department: str) -> None:
        if actor.role is Role.DATA_OFFICER and actor.department != department:
            raise PermissionDenied(
                Reason.ROLE_NOT_ALLOWED,
                f"{actor.name} is a data officer of {actor.department}, not of {department}",
            )

    def _insert(self, row: Row, what: str) -> Row:
        with self.sessions() as session:
            session.add(row)
            self._commit(session, what)
            return row

    @staticmethod
    def _commit(session: Session, what: str) -> None:
        try:
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            raise AlreadyExists(Reason.ALREADY_EXISTS, f"{what} already exists") from exc
