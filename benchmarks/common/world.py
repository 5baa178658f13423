"""The catalog the gateway cases publish in: departments, systems, resources and grants,
created over gRPC as an administrator would."""

from __future__ import annotations

import json
from typing import Any

from benchmarks.common.records import RESIDENT_SCHEMA

RESOURCE = "PSB-RESIDENT-BENCH"
PUBLISHER_SYSTEM = "PSB-HUKOU"
SUBSCRIBER_SYSTEM = "CIVIL-AFFAIRS"


def lane_names(lane: int) -> tuple[str, str, str]:
    """(resource, publishing system, receiving system) of lane ``lane``.

    Lane 0 is the default shape's world; the JetStream shape adds lanes 1.. so that
    every replica has a publisher and a subscriber of its own.
    """
    if lane == 0:
        return RESOURCE, PUBLISHER_SYSTEM, SUBSCRIBER_SYSTEM
    suffix = f"-{lane + 1}"
    return RESOURCE + suffix, PUBLISHER_SYSTEM + suffix, SUBSCRIBER_SYSTEM + suffix


def setup_lanes(target: str, catalog_url: str, lanes: int) -> list[tuple[str, str, Any]]:
    """Creates the world over gRPC: two departments and, per lane (see
    :func:`lane_names`), a publishing system with an Ed25519 key, a receiving system, a
    resource and a grant. Returns (publisher token, subscriber token, signer) per lane."""
    from adapters.connection import auth_metadata, open_blocking_channel
    from catalog.credentials import issue_token
    from catalog.db import open_catalog
    from catalog.models import Role
    from catalog.v1 import catalog_pb2 as pb
    from catalog.v1 import catalog_pb2_grpc
    from envelope.signing import Ed25519Signer

    sessions = open_catalog(catalog_url)

    def token(name: str, role: Role, system: str | None = None) -> str:
        with sessions() as session:
            return str(issue_token(session, name=name, role=role, system=system))

    try:
        admin = auth_metadata(token("bench-admin", Role.ADMINISTRATOR))
        channel = open_blocking_channel(target, insecure=True, quiet=True)
        stub = catalog_pb2_grpc.CatalogServiceStub(channel)
        for code, name, region in (
            ("PSB", "成都市公安局 Public Security Bureau", "510100"),
            ("CIVIL", "成都市民政局 Civil Affairs Bureau", "510100"),
        ):
            stub.CreateDepartment(
                pb.CreateDepartmentRequest(
                    department=pb.Department(
                        code=code,
                        name=name,
                        level=pb.ADMINISTRATIVE_LEVEL_CITY,
                        region_code=region,
                    )
                ),
                metadata=admin,
                timeout=30,
            )
        out = []
        for lane in range(lanes):
            resource, publisher_system, subscriber_system = lane_names(lane)
            signer = Ed25519Signer.generate()
            for code, department, keys in (
                (publisher_system, "PSB", [pb.SigningKey(public_key=signer.public_key)]),
                (subscriber_system, "CIVIL", []),
            ):
                stub.CreateSystem(
                    pb.CreateSystemRequest(
                        system=pb.System(
                            code=code,
                            name=f"{code} system",
                            department=department,
                            signing_keys=keys,
                        )
                    ),
                    metadata=admin,
                    timeout=30,
                )
            created = stub.CreateResource(
                pb.CreateResourceRequest(
                    resource=pb.Resource(
                        code=resource,
                        name="户籍人口 Registered residents",
                        owner_department="PSB",
                        summary="Residents registered in the city, for benefit eligibility checks",
                        format="database",
                        sharing_type=pb.SHARING_TYPE_CONDITIONAL,
                        sharing_conditions="for social assistance eligibility",
                        classification=pb.CLASSIFICATION_GENERAL,
                        update_cycle="real-time",
                        key_fields=["id_number"],
                        region_field="region_code",
                        fields=[
                            pb.FieldSpec(name="id_number", sensitivity=pb.SENSITIVITY_ID_NUMBER),
                            pb.FieldSpec(name="name", sensitivity=pb.SENSITIVITY_NAME),
                            pb.FieldSpec(name="phone", sensitivity=pb.SENSITIVITY_PHONE),
                            pb.FieldSpec(name="address", sensitivity=pb.SENSITIVITY_ADDRESS),
                        ],
                    ),
                    schema=json.dumps(RESIDENT_SCHEMA, ensure_ascii=False),
                ),
                metadata=admin,
                timeout=30,
            )
            stub.CreateGrant(
                pb.CreateGrantRequest(
                    grant=pb.Grant(
                        resource=resource,
                        grantee_system=subscriber_system,
                        clear_fields=[
                            f.name
                            for f in created.resource.fields
                            if f.sensitivity != pb.SENSITIVITY_NONE
                        ],
                    )
                ),
                metadata=admin,
                timeout=30,
            )
            out.append(
                (
                    token(publisher_system, Role.SYSTEM, publisher_system),
                    token(subscriber_system, Role.SYSTEM, subscriber_system),
                    signer,
                )
            )
        channel.close()
        return out
    finally:
        sessions.kw["bind"].dispose()
