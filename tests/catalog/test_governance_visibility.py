"""Who may read which requests and flagged records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalog.credentials import Identity
from catalog.db import open_catalog
from catalog.governance import Governance
from catalog.models import AdministrativeLevel, Classification, Role, SharingType
from catalog.service import Catalog, ResourceSpec
from envelope.errors import NotFound
from tests.world import PERSON_SCHEMA

ADMIN = Identity("admin", Role.ADMINISTRATOR)


@pytest.fixture
def governance(tmp_path: Path) -> Governance:
    catalog = Catalog(open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}"))
    for code in ("PSB", "CIVIL", "TAX"):
        catalog.create_department(
            ADMIN, code=code, name=code, level=AdministrativeLevel.CITY, region_code="510100"
        )
        catalog.create_system(
            ADMIN, code=f"{code}-SYS", name=code, department=code, public_key=None
        )
    catalog.create_resource(
        ADMIN,
        ResourceSpec(
            code="RESIDENTS",
            name="Residents",
            owner_department="PSB",
            sharing_type=SharingType.CONDITIONAL,
            classification=Classification.GENERAL,
            key_fields=["id_number"],
        ),
        json.dumps(PERSON_SCHEMA),
    )
    return Governance(catalog)


def test_requests_are_visible_to_the_two_departments_and_the_platform(
    governance: Governance,
) -> None:
    civil = Identity("CIVIL-SYS", Role.SYSTEM, department="CIVIL", system="CIVIL-SYS")
    request = governance.submit(
        civil,
        resource_code="RESIDENTS",
        system_code="CIVIL-SYS",
        fields=["name"],
        purpose="subsidy review",
        legal_basis="social assistance rules",
        duration_days=30,
    )
    owner = Identity("wang", Role.DATA_OFFICER, department="PSB")
    outsider = Identity("TAX-SYS", Role.SYSTEM, department="TAX", system="TAX-SYS")
    platform = Identity("zhao", Role.PLATFORM_OFFICER, department="BUREAU")
    for viewer in (civil, owner, platform, ADMIN):
        assert governance.get(request.public_id, viewer=viewer).public_id == request.public_id
        assert [r.public_id for r in governance.list_requests(viewer=viewer).items] == [
            request.public_id
        ]
    with pytest.raises(NotFound):
        governance.get(request.public_id, viewer=outsider)
    assert governance.list_requests(viewer=outsider).items == []
