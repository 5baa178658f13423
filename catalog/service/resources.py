"""Resources: what a department shares, described in the catalog, with their first schema."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog import compatibility, validation
from catalog.credentials import Identity
from catalog.governance.backflow import check_backflow_eligible
from catalog.models import (
    Classification,
    Department,
    Resource,
    Role,
    SchemaVersion,
    Sensitivity,
    SharingType,
)
from catalog.service.departments import Departments
from catalog.service.fields import FieldSpec, check_field_names, maskable
from catalog.service.paging import Page
from catalog.service.roles import require_owner_officer, require_role
from catalog.validation import MAX_KEY_FIELDS
from envelope import schemas
from envelope.errors import InvalidArgument, NotFound, Reason


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


class Resources(Departments):
    """Registers resources and looks them up."""

    def create_resource(
        self, actor: Identity, spec: ResourceSpec, schema_text: str
    ) -> tuple[Resource, SchemaVersion]:
        """Registers a resource and its first schema version.

        Administrators may register for any department; data officers for their own.
        """
        require_role(actor, Role.ADMINISTRATOR, Role.DATA_OFFICER)
        require_owner_officer(actor, spec.owner_department)
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
        check_field_names(parsed.top_level_fields(), "schema")
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
            if tagged.sensitivity is not Sensitivity.NONE and not maskable(types[tagged.name]):
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
