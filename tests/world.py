"""A small city for tests: departments, systems with keys and tokens, a resource, grants."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from adapters.connection import auth_metadata, open_blocking_channel
from catalog.models import Role
from catalog.v1 import catalog_pb2 as pb
from catalog.v1 import catalog_pb2_grpc
from envelope.signing import Ed25519Signer
from tests.gateway_harness import RunningGateway

PERSON_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Resident",
    "namespace": "gov.psb",
    "fields": [
        {"name": "id_number", "type": "string"},
        {"name": "name", "type": "string"},
        {"name": "phone", "type": ["null", "string"], "default": None},
        {"name": "region_code", "type": "string"},
        {"name": "registered_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}


def person(i: int, region: str = "510104") -> dict[str, Any]:
    """A resident record number ``i``."""
    import datetime

    return {
        "id_number": f"510104199001{i:06d}",
        "name": f"张{i}",
        "phone": None if i % 3 == 0 else f"138{i:08d}",
        "region_code": region,
        "registered_at": datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
        + datetime.timedelta(seconds=i),
    }


@dataclass
class SystemHandle:
    """A registered system with its key and token."""

    code: str
    department: str
    signer: Ed25519Signer
    token: str


@dataclass
class World:
    """What the tests exchange across."""

    gateway: RunningGateway
    stub: catalog_pb2_grpc.CatalogServiceStub
    systems: dict[str, SystemHandle] = field(default_factory=dict)

    def admin(self) -> tuple[tuple[str, str], ...]:
        return auth_metadata(self.gateway.admin_token)

    def department(self, code: str, level: int = 1, region: str = "510100") -> None:
        self.stub.CreateDepartment(
            pb.CreateDepartmentRequest(
                department=pb.Department(
                    code=code, name=f"{code} bureau", level=level, region_code=region
                )
            ),
            metadata=self.admin(),
        )

    def system(self, code: str, department: str) -> SystemHandle:
        signer = Ed25519Signer.generate()
        self.stub.CreateSystem(
            pb.CreateSystemRequest(
                system=pb.System(
                    code=code,
                    name=f"{code} system",
                    department=department,
                    signing_keys=[pb.SigningKey(public_key=signer.public_key)],
                )
            ),
            metadata=self.admin(),
        )
        token = self.gateway.issue_token(code, Role.SYSTEM, system=code)
        handle = SystemHandle(code, department, signer, token)
        self.systems[code] = handle
        return handle

    def resource(
        self, code: str, owner: str, schema: dict[str, Any] | None = None, **extra: Any
    ) -> pb.CreateResourceResponse:
        response: pb.CreateResourceResponse = self.stub.CreateResource(
            pb.CreateResourceRequest(
                resource=pb.Resource(
                    code=code,
                    name=f"{code} records",
                    owner_department=owner,
                    sharing_type=extra.pop("sharing_type", pb.SHARING_TYPE_CONDITIONAL),
                    classification=extra.pop("classification", pb.CLASSIFICATION_GENERAL),
                    key_fields=extra.pop("key_fields", ["id_number"]),
                    region_field=extra.pop("region_field", "region_code"),
                    **extra,
                ),
                schema=json.dumps(schema or PERSON_SCHEMA),
            ),
            metadata=self.admin(),
        )
        return response

    def grant(self, resource: str, system: str, **extra: Any) -> pb.Grant:
        response = self.stub.CreateGrant(
            pb.CreateGrantRequest(
                grant=pb.Grant(resource=resource, grantee_system=system, **extra)
            ),
            metadata=self.admin(),
        )
        return response.grant


def build_world(gateway: RunningGateway) -> World:
    """Two departments (PSB owns RESIDENTS; CIVIL receives), one system each, a grant."""
    channel = open_blocking_channel(gateway.target, insecure=True, quiet=True)
    world = World(gateway, catalog_pb2_grpc.CatalogServiceStub(channel))
    world.department("PSB")
    world.department("CIVIL")
    world.system("PSB-HUKOU", "PSB")
    world.system("CIVIL-AFFAIRS", "CIVIL")
    world.resource("RESIDENTS", "PSB")
    world.grant("RESIDENTS", "CIVIL-AFFAIRS")
    return world
