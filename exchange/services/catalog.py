"""gRPC ``CatalogService``: the catalog's messages on the wire, and back."""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from catalog import models, service
from catalog.compatibility import CompatibilityMode
from catalog.credentials import Identity
from catalog.models import Role
from catalog.v1 import catalog_pb2 as pb
from catalog.v1 import catalog_pb2_grpc
from envelope.errors import InvalidArgument, Reason
from exchange.gate.rpc import Authenticator, datetime_of, unary

E = TypeVar("E", bound=enum.Enum)


def timestamp(value: datetime | None) -> Timestamp | None:
    """Converts an aware datetime (or None) to a Timestamp (or None)."""
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def to_wire(wire_enum: Any, prefix: str, value: enum.Enum) -> Any:
    """Returns the proto enum number of a domain enum value."""
    return wire_enum.Value(prefix + str(value.value))


def from_wire(
    wire_enum: Any, prefix: str, number: int, kind: type[E], field: str, default: E | None = None
) -> E:
    name = wire_enum.Name(number).removeprefix(prefix) if number in wire_enum.values() else ""
    if name in ("", "UNSPECIFIED"):
        if default is not None:
            return default
        raise InvalidArgument(Reason.INVALID_FIELD, f"{field} is required", {"field": field})
    return kind(name)


def department_message(row: models.Department) -> pb.Department:
    """Converts a department row."""
    return pb.Department(
        code=row.code,
        name=row.name,
        level=to_wire(pb.AdministrativeLevel, "ADMINISTRATIVE_LEVEL_", row.level),
        region_code=row.region_code,
        create_time=timestamp(row.created_at),
    )


def system_message(row: models.System) -> pb.System:
    """Converts a system row with its keys."""
    return pb.System(
        code=row.code,
        name=row.name,
        department=row.department.code,
        status=to_wire(pb.SystemStatus, "SYSTEM_STATUS_", row.status),
        signing_keys=[
            pb.SigningKey(
                key_id=k.key_id,
                public_key=k.public_key,
                create_time=timestamp(k.created_at),
                revoke_time=timestamp(k.revoked_at),
                revoke_reason=k.revoke_reason,
                compromised=k.compromised,
            )
            for k in row.signing_keys
        ],
        create_time=timestamp(row.created_at),
    )


def resource_message(row: models.Resource) -> pb.Resource:
    """Converts a resource row."""
    return pb.Resource(
        code=row.code,
        name=row.name,
        owner_department=row.owner.code,
        summary=row.summary,
        format=row.format,
        sharing_type=to_wire(pb.SharingType, "SHARING_TYPE_", row.sharing_type),
        sharing_conditions=row.sharing_conditions,
        classification=to_wire(pb.Classification, "CLASSIFICATION_", row.classification),
        update_cycle=row.update_cycle,
        key_fields=row.key_fields,
        region_field=row.region_field,
        fields=[
            pb.FieldSpec(
                name=f["name"],
                description=f["description"],
                sensitivity=pb.Sensitivity.Value("SENSITIVITY_" + f["sensitivity"]),
            )
            for f in row.fields
        ],
        compatibility=pb.CompatibilityMode.Value("COMPATIBILITY_MODE_" + row.compatibility),
        latest_schema_version=len(row.schemas),
        create_time=timestamp(row.created_at),
        backflow_eligible=row.backflow_eligible,
    )


def field_specs(fields: Any) -> list[service.FieldSpec]:
    """Converts wire field descriptions; an unspecified sensitivity is NONE."""
    return [
        service.FieldSpec(
            name=f.name,
            description=f.description,
            sensitivity=from_wire(
                pb.Sensitivity,
                "SENSITIVITY_",
                f.sensitivity,
                models.Sensitivity,
                "fields.sensitivity",
                models.Sensitivity.NONE,
            ),
        )
        for f in fields
    ]


def schema_message(row: models.SchemaVersion, resource: str) -> pb.Schema:
    """Converts a schema version row."""
    return pb.Schema(
        resource=resource,
        version=row.version,
        definition=row.definition,
        canonical_form=row.canonical_form,
        fingerprint=bytes.fromhex(row.fingerprint),
        create_time=timestamp(row.created_at),
    )


def grant_message(row: models.Grant) -> pb.Grant:
    """Converts a grant row; an expired ACTIVE grant shows as EXPIRED."""
    status = row.status
    if status is models.GrantStatus.ACTIVE and not row.is_active(models.utcnow()):
        status = models.GrantStatus.EXPIRED
    return pb.Grant(
        id=row.public_id,
        resource=row.resource.code,
        grantee_system=row.grantee.code,
        fields=row.fields,
        row_filter=pb.RowFilter(region_code=row.region_filter),
        expire_time=timestamp(row.expires_at),
        origin=to_wire(pb.GrantOrigin, "GRANT_ORIGIN_", row.origin),
        status=to_wire(pb.GrantStatus, "GRANT_STATUS_", status),
        creator=row.created_by,
        create_time=timestamp(row.created_at),
        clear_fields=row.clear_fields,
        request_id=row.request_id,
        revoke_reason=row.revoke_reason,
    )


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    """Binds :class:`catalog.service.Catalog` to the wire."""

    def __init__(
        self,
        auth: Authenticator,
        catalog: service.Catalog,
        keys_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self.auth = auth
        self.catalog = catalog
        self.keys_changed = keys_changed  # a revocation applies on this gateway at once

    @unary(Role.ADMINISTRATOR)
    async def CreateDepartment(
        self, request: pb.CreateDepartmentRequest, identity: Identity, context: Any
    ) -> pb.CreateDepartmentResponse:
        d = request.department
        row = self.catalog.create_department(
            identity,
            code=d.code,
            name=d.name,
            level=from_wire(
                pb.AdministrativeLevel,
                "ADMINISTRATIVE_LEVEL_",
                d.level,
                models.AdministrativeLevel,
                "department.level",
            ),
            region_code=d.region_code,
        )
        return pb.CreateDepartmentResponse(department=department_message(row))

    @unary()
    async def GetDepartment(
        self, request: pb.GetDepartmentRequest, identity: Identity, context: Any
    ) -> pb.GetDepartmentResponse:
        row = self.catalog.get_department(request.code)
        return pb.GetDepartmentResponse(department=department_message(row))

    @unary()
    async def ListDepartments(
        self, request: pb.ListDepartmentsRequest, identity: Identity, context: Any
    ) -> pb.ListDepartmentsResponse:
        page = self.catalog.list_departments(request.page_size, request.page_token)
        return pb.ListDepartmentsResponse(
            departments=[department_message(r) for r in page.items],
            next_page_token=page.next_page_token,
        )

    @unary(Role.ADMINISTRATOR)
    async def CreateSystem(
        self, request: pb.CreateSystemRequest, identity: Identity, context: Any
    ) -> pb.CreateSystemResponse:
        s = request.system
        if len(s.signing_keys) > 1:
            raise InvalidArgument(
                Reason.INVALID_FIELD,
                "register one signing key with the system",
                {"field": "signing_keys"},
            )
        key = s.signing_keys[0].public_key if s.signing_keys else None
        row = self.catalog.create_system(
            identity, code=s.code, name=s.name, department=s.department, public_key=key
        )
        return pb.CreateSystemResponse(system=system_message(row))

    @unary(Role.ADMINISTRATOR)
    async def AddSigningKey(
        self, request: pb.AddSigningKeyRequest, identity: Identity, context: Any
    ) -> pb.AddSigningKeyResponse:
        row = self.catalog.add_signing_key(identity, request.system, request.public_key)
        self.keys_changed()
        return pb.AddSigningKeyResponse(system=system_message(row))

    @unary(Role.ADMINISTRATOR)
    async def RevokeSigningKey(
        self, request: pb.RevokeSigningKeyRequest, identity: Identity, context: Any
    ) -> pb.RevokeSigningKeyResponse:
        at = (
            datetime_of(request.revoke_time, "revoke_time")
            if request.HasField("revoke_time")
            else None
        )
        row = self.catalog.revoke_signing_key(
            identity, request.system, request.key_id, request.reason, at, request.compromised
        )
        self.keys_changed()
        return pb.RevokeSigningKeyResponse(system=system_message(row))

    @unary()
    async def GetSystem(
        self, request: pb.GetSystemRequest, identity: Identity, context: Any
    ) -> pb.GetSystemResponse:
        return pb.GetSystemResponse(system=system_message(self.catalog.get_system(request.code)))

    @unary()
    async def ListSystems(
        self, request: pb.ListSystemsRequest, identity: Identity, context: Any
    ) -> pb.ListSystemsResponse:
        page = self.catalog.list_systems(request.department, request.page_size, request.page_token)
        return pb.ListSystemsResponse(
            systems=[system_message(r) for r in page.items], next_page_token=page.next_page_token
        )

    @unary(Role.ADMINISTRATOR, Role.DATA_OFFICER)
    async def CreateResource(
        self, request: pb.CreateResourceRequest, identity: Identity, context: Any
    ) -> pb.CreateResourceResponse:
        r = request.resource
        spec = service.ResourceSpec(
            code=r.code,
            name=r.name,
            owner_department=r.owner_department,
            summary=r.summary,
            format=r.format,
            sharing_type=from_wire(
                pb.SharingType,
                "SHARING_TYPE_",
                r.sharing_type,
                models.SharingType,
                "resource.sharing_type",
            ),
            sharing_conditions=r.sharing_conditions,
            classification=from_wire(
                pb.Classification,
                "CLASSIFICATION_",
                r.classification,
                models.Classification,
                "resource.classification",
            ),
            update_cycle=r.update_cycle,
            key_fields=list(r.key_fields),
            region_field=r.region_field,
            fields=field_specs(r.fields),
            compatibility=from_wire(
                pb.CompatibilityMode,
                "COMPATIBILITY_MODE_",
                r.compatibility,
                CompatibilityMode,
                "resource.compatibility",
                CompatibilityMode.BACKWARD,
            ),
            backflow_eligible=r.backflow_eligible,
        )
        resource, version = self.catalog.create_resource(identity, spec, request.schema)
        resource = self.catalog.get_resource(resource.code)
        return pb.CreateResourceResponse(
            resource=resource_message(resource), schema=schema_message(version, resource.code)
        )

    @unary()
    async def GetResource(
        self, request: pb.GetResourceRequest, identity: Identity, context: Any
    ) -> pb.GetResourceResponse:
        return pb.GetResourceResponse(
            resource=resource_message(self.catalog.get_resource(request.code))
        )

    @unary()
    async def ListResources(
        self, request: pb.ListResourcesRequest, identity: Identity, context: Any
    ) -> pb.ListResourcesResponse:
        page = self.catalog.list_resources(
            request.owner_department, request.page_size, request.page_token
        )
        return pb.ListResourcesResponse(
            resources=[resource_message(r) for r in page.items],
            next_page_token=page.next_page_token,
        )

    @unary(Role.ADMINISTRATOR, Role.DATA_OFFICER)
    async def CreateSchema(
        self, request: pb.CreateSchemaRequest, identity: Identity, context: Any
    ) -> pb.CreateSchemaResponse:
        row = self.catalog.add_schema(
            identity, request.resource, request.definition, field_specs(request.fields)
        )
        return pb.CreateSchemaResponse(schema=schema_message(row, request.resource))

    @unary()
    async def GetSchema(
        self, request: pb.GetSchemaRequest, identity: Identity, context: Any
    ) -> pb.GetSchemaResponse:
        row = self.catalog.get_schema(
            request.resource, version=request.version, fingerprint=request.fingerprint
        )
        return pb.GetSchemaResponse(schema=schema_message(row, request.resource))

    @unary()
    async def ListSchemas(
        self, request: pb.ListSchemasRequest, identity: Identity, context: Any
    ) -> pb.ListSchemasResponse:
        page = self.catalog.list_schemas(request.resource, request.page_size, request.page_token)
        return pb.ListSchemasResponse(
            schemas=[schema_message(r, request.resource) for r in page.items],
            next_page_token=page.next_page_token,
        )

    @unary(Role.ADMINISTRATOR)
    async def CreateGrant(
        self, request: pb.CreateGrantRequest, identity: Identity, context: Any
    ) -> pb.CreateGrantResponse:
        g = request.grant
        expires = datetime_of(g.expire_time, "expire_time") if g.HasField("expire_time") else None
        row = self.catalog.create_grant(
            identity,
            resource_code=g.resource,
            system_code=g.grantee_system,
            fields=list(g.fields),
            clear_fields=list(g.clear_fields),
            region=g.row_filter.region_code,
            expires_at=expires,
        )
        return pb.CreateGrantResponse(grant=grant_message(row))

    @unary()
    async def GetGrant(
        self, request: pb.GetGrantRequest, identity: Identity, context: Any
    ) -> pb.GetGrantResponse:
        return pb.GetGrantResponse(grant=grant_message(self.catalog.get_grant(request.id)))

    @unary()
    async def ListGrants(
        self, request: pb.ListGrantsRequest, identity: Identity, context: Any
    ) -> pb.ListGrantsResponse:
        page = self.catalog.list_grants(
            request.resource, request.grantee_system, request.page_size, request.page_token
        )
        return pb.ListGrantsResponse(
            grants=[grant_message(r) for r in page.items], next_page_token=page.next_page_token
        )
