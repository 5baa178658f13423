"""Schema versions of a resource: each new one checked against the resource's
compatibility mode, its new fields described and tagged."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import select

from catalog import compatibility, validation
from catalog.credentials import Identity
from catalog.models import Resource, Role, SchemaVersion, Sensitivity
from catalog.service.fields import FieldSpec, check_field_names, maskable
from catalog.service.paging import Page
from catalog.service.resources import Resources
from catalog.service.roles import require_owner_officer, require_role
from envelope import schemas
from envelope.errors import FailedPrecondition, InvalidArgument, NotFound, Reason


class SchemaVersions(Resources):
    """Adds, looks up and lists the schema versions of resources."""

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
        require_role(actor, Role.ADMINISTRATOR, Role.DATA_OFFICER)
        parsed = schemas.parse(definition)
        with self.sessions() as session:
            resource = self.resource(session, resource_code)
            require_owner_officer(actor, resource.owner.code)
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
        check_field_names(new, "definition")
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
            if name in types and tag != Sensitivity.NONE.value and not maskable(types[name]):
                raise InvalidArgument(
                    Reason.INVALID_FIELD,
                    f"field {name!r} is tagged {tag} but holds more than strings in this "
                    "version, so it could not be masked; keep it a string, or describe a "
                    "new field with sensitivity none",
                    {"field": name},
                )
        return specs
