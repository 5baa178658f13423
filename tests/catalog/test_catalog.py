"""The catalog's rules, on a real SQLite file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from catalog import validation
from catalog.compatibility import CompatibilityMode
from catalog.credentials import Identity, authenticate_token, issue_token
from catalog.db import open_catalog
from catalog.models import (
    AdministrativeLevel,
    Classification,
    Credential,
    Role,
    SharingType,
)
from catalog.service import Catalog, FieldSpec, ResourceSpec
from envelope.errors import LijiaoError
from tests.world import PERSON_SCHEMA

ADMIN = Identity("admin", Role.ADMINISTRATOR)
PSB_OFFICER = Identity("wang", Role.DATA_OFFICER, department="PSB")
CIVIL_OFFICER = Identity("li", Role.DATA_OFFICER, department="CIVIL")


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    cat = Catalog(open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}"))
    for code in ("PSB", "CIVIL"):
        cat.create_department(
            ADMIN,
            code=code,
            name=f"{code} bureau",
            level=AdministrativeLevel.CITY,
            region_code="510100",
        )
    cat.create_system(
        ADMIN, code="CIVIL-AID", name="aid", department="CIVIL", public_key=b"\x01" * 32
    )
    cat.create_system(ADMIN, code="PSB-HUKOU", name="hukou", department="PSB", public_key=None)
    return cat


def spec(**overrides: Any) -> ResourceSpec:
    values: dict[str, Any] = {
        "code": "RESIDENTS",
        "name": "Residents",
        "owner_department": "PSB",
        "sharing_type": SharingType.CONDITIONAL,
        "classification": Classification.GENERAL,
        "key_fields": ["id_number"],
        "region_field": "region_code",
        "fields": [
            FieldSpec(
                "id_number", "citizen ID", __import__("catalog.models").models.Sensitivity.ID_NUMBER
            )
        ],
    }
    values.update(overrides)
    return ResourceSpec(**values)


def refusal(reason: str, fn: Any, *args: Any, **kwargs: Any) -> LijiaoError:
    with pytest.raises(LijiaoError) as error:
        fn(*args, **kwargs)
    assert error.value.reason == reason, error.value.message
    return error.value


def test_only_administrators_register_departments(catalog: Catalog) -> None:
    refusal(
        "ROLE_NOT_ALLOWED",
        catalog.create_department,
        PSB_OFFICER,
        code="X",
        name="x",
        level=AdministrativeLevel.CITY,
        region_code="510100",
    )


def test_a_department_code_is_unique(catalog: Catalog) -> None:
    refusal(
        "ALREADY_EXISTS",
        catalog.create_department,
        ADMIN,
        code="PSB",
        name="again",
        level=AdministrativeLevel.CITY,
        region_code="510100",
    )


@pytest.mark.parametrize("code", ["", "-x", "a b", "x" * 65, "'; DROP TABLE departments;--"])
def test_codes_are_restricted_to_safe_characters(catalog: Catalog, code: str) -> None:
    refusal(
        "INVALID_FIELD",
        catalog.create_department,
        ADMIN,
        code=code,
        name="x",
        level=AdministrativeLevel.CITY,
        region_code="510100",
    )


@pytest.mark.parametrize("region", ["5101", "51010A", "5101000000"])
def test_region_codes_must_be_administrative_codes(catalog: Catalog, region: str) -> None:
    refusal(
        "INVALID_FIELD",
        catalog.create_department,
        ADMIN,
        code="X",
        name="x",
        level=AdministrativeLevel.CITY,
        region_code=region,
    )


def test_names_may_not_hold_control_characters(catalog: Catalog) -> None:
    refusal(
        "INVALID_FIELD",
        catalog.create_department,
        ADMIN,
        code="X",
        name="bad\x00name",
        level=AdministrativeLevel.CITY,
        region_code="510100",
    )


def test_a_data_officer_registers_resources_of_their_own_department_only(catalog: Catalog) -> None:
    resource, version = catalog.create_resource(PSB_OFFICER, spec(), json.dumps(PERSON_SCHEMA))
    assert resource.code == "RESIDENTS" and version.version == 1
    refusal(
        "ROLE_NOT_ALLOWED",
        catalog.create_resource,
        CIVIL_OFFICER,
        spec(code="OTHER"),
        json.dumps(PERSON_SCHEMA),
    )


def test_a_not_shared_resource_must_cite_its_legal_basis(catalog: Catalog) -> None:
    refusal(
        "INVALID_FIELD",
        catalog.create_resource,
        ADMIN,
        spec(sharing_type=SharingType.NOT_SHARED),
        json.dumps(PERSON_SCHEMA),
    )


def test_named_fields_must_exist_in_the_schema(catalog: Catalog) -> None:
    error = refusal(
        "INVALID_FIELD",
        catalog.create_resource,
        ADMIN,
        spec(key_fields=["licence_no"]),
        json.dumps(PERSON_SCHEMA),
    )
    assert error.metadata["field"] == "licence_no"


def test_a_resource_schema_must_be_a_valid_avro_record(catalog: Catalog) -> None:
    refusal("INVALID_SCHEMA", catalog.create_resource, ADMIN, spec(), "{not json")
    refusal("INVALID_SCHEMA", catalog.create_resource, ADMIN, spec(), '{"type": "nonsense"}')
    refusal("INVALID_SCHEMA", catalog.create_resource, ADMIN, spec(), '"string"')


def _with_field(field: dict[str, Any]) -> str:
    schema = json.loads(json.dumps(PERSON_SCHEMA))
    schema["fields"].append(field)
    return json.dumps(schema)


def test_a_backward_compatible_schema_becomes_the_next_version(catalog: Catalog) -> None:
    catalog.create_resource(ADMIN, spec(), json.dumps(PERSON_SCHEMA))
    version = catalog.add_schema(
        ADMIN,
        "RESIDENTS",
        _with_field({"name": "email", "type": ["null", "string"], "default": None}),
    )
    assert version.version == 2
    assert catalog.get_schema("RESIDENTS").version == 2
    assert (
        catalog.get_schema("RESIDENTS", fingerprint=bytes.fromhex(version.fingerprint)).version == 2
    )


def test_an_incompatible_schema_is_refused_with_what_breaks(catalog: Catalog) -> None:
    catalog.create_resource(ADMIN, spec(), json.dumps(PERSON_SCHEMA))
    error = refusal(
        "SCHEMA_INCOMPATIBLE",
        catalog.add_schema,
        ADMIN,
        "RESIDENTS",
        _with_field({"name": "email", "type": "string"}),
    )
    assert "email" in error.message
    assert [s.version for s in catalog.list_schemas("RESIDENTS").items] == [1]


def test_registering_the_same_schema_again_returns_the_existing_version(catalog: Catalog) -> None:
    catalog.create_resource(ADMIN, spec(), json.dumps(PERSON_SCHEMA))
    assert catalog.add_schema(ADMIN, "RESIDENTS", json.dumps(PERSON_SCHEMA)).version == 1


def test_the_compatibility_mode_is_per_resource(catalog: Catalog) -> None:
    catalog.create_resource(
        ADMIN, spec(compatibility=CompatibilityMode.NONE), json.dumps(PERSON_SCHEMA)
    )
    assert (
        catalog.add_schema(
            ADMIN, "RESIDENTS", _with_field({"name": "email", "type": "string"})
        ).version
        == 2
    )


def test_listing_pages_through_everything_in_order(catalog: Catalog) -> None:
    for i in range(250):
        catalog.create_department(
            ADMIN,
            code=f"D{i:03d}",
            name=f"d{i}",
            level=AdministrativeLevel.TOWN,
            region_code="510104001",
        )
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = catalog.list_departments(page_size=100, page_token=token)
        seen += [d.code for d in page.items]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 252


def test_a_forged_page_token_is_refused(catalog: Catalog) -> None:
    import base64

    refusal("INVALID_PAGE_TOKEN", catalog.list_departments, page_token="garbage!")
    for after in (b'{"x": 1}', b"10000000000000000000000000000000", b"true", b"null"):
        crafted = base64.urlsafe_b64encode(b'{"after": ' + after + b"}").decode()
        refusal("INVALID_PAGE_TOKEN", catalog.list_departments, page_token=crafted)


def test_a_new_schema_version_keeps_the_key_and_region_fields(catalog: Catalog) -> None:
    catalog.create_resource(
        ADMIN, spec(compatibility=CompatibilityMode.NONE), json.dumps(PERSON_SCHEMA)
    )
    schema = json.loads(json.dumps(PERSON_SCHEMA))
    schema["fields"] = [
        f for f in schema["fields"] if f["name"] not in ("id_number", "region_code")
    ]
    error = refusal(
        "SCHEMA_INCOMPATIBLE", catalog.add_schema, ADMIN, "RESIDENTS", json.dumps(schema)
    )
    assert error.metadata["fields"] == "id_number,region_code"


def test_grants_to_another_department_refuse_not_shared_and_core_data(catalog: Catalog) -> None:
    catalog.create_resource(
        ADMIN,
        spec(
            code="SECRET",
            sharing_type=SharingType.NOT_SHARED,
            sharing_conditions="国家秘密 (Law on Guarding State Secrets)",
        ),
        json.dumps(PERSON_SCHEMA),
    )
    catalog.create_resource(
        ADMIN, spec(code="CORE", classification=Classification.CORE), json.dumps(PERSON_SCHEMA)
    )
    error = refusal(
        "NOT_SHARED", catalog.create_grant, ADMIN, resource_code="SECRET", system_code="CIVIL-AID"
    )
    assert "State Secrets" in error.message
    refusal("CORE_DATA", catalog.create_grant, ADMIN, resource_code="CORE", system_code="CIVIL-AID")
    assert catalog.create_grant(ADMIN, resource_code="CORE", system_code="PSB-HUKOU").id


def test_a_grant_names_only_fields_of_the_schema(catalog: Catalog) -> None:
    catalog.create_resource(ADMIN, spec(), json.dumps(PERSON_SCHEMA))
    refusal(
        "INVALID_FIELD",
        catalog.create_grant,
        ADMIN,
        resource_code="RESIDENTS",
        system_code="CIVIL-AID",
        fields=["salary"],
    )
    grant = catalog.create_grant(
        ADMIN, resource_code="RESIDENTS", system_code="CIVIL-AID", fields=["name"], region="510104"
    )
    assert grant.fields == ["name", "region_code"], "a region filter needs the region field"


def test_a_grant_cannot_expire_in_the_past(catalog: Catalog) -> None:
    catalog.create_resource(ADMIN, spec(), json.dumps(PERSON_SCHEMA))
    refusal(
        "INVALID_FIELD",
        catalog.create_grant,
        ADMIN,
        resource_code="RESIDENTS",
        system_code="CIVIL-AID",
        expires_at=datetime.now(UTC) - timedelta(seconds=1),
    )


def test_only_administrators_grant_directly(catalog: Catalog) -> None:
    catalog.create_resource(ADMIN, spec(), json.dumps(PERSON_SCHEMA))
    refusal(
        "ROLE_NOT_ALLOWED",
        catalog.create_grant,
        PSB_OFFICER,
        resource_code="RESIDENTS",
        system_code="CIVIL-AID",
    )


def test_the_newest_active_grant_is_the_one_applied(catalog: Catalog) -> None:
    catalog.create_resource(ADMIN, spec(), json.dumps(PERSON_SCHEMA))
    assert catalog.active_grant("CIVIL-AID", "RESIDENTS") is None
    grant = catalog.create_grant(ADMIN, resource_code="RESIDENTS", system_code="CIVIL-AID")
    active = catalog.active_grant("CIVIL-AID", "RESIDENTS")
    assert active is not None and active.public_id == grant.public_id


@pytest.mark.parametrize(
    ("region", "candidate", "inside"),
    [
        ("510104", "510104", True),
        ("510104", "510104001", True),
        ("510104", "510105", False),
        ("510100", "510104", True),
        ("510100", "510204", False),
        ("510000", "511302", True),
        ("510104001", "510104002", False),
        ("510104001", "510104001003", True),
        ("510110000", "510110002", True),
        ("510110000", "510111", False),
        ("510104001000", "510104001002", True),
        ("510104001000", "510104002001", False),
    ],
)
def test_region_codes_nest(region: str, candidate: str, inside: bool) -> None:
    assert validation.region_contains(region, candidate) is inside


def test_tokens_are_stored_hashed_and_authenticate_their_principal(catalog: Catalog) -> None:
    with catalog.sessions() as session:
        token = issue_token(session, name="wang", role=Role.DATA_OFFICER, department="PSB")
        stored = session.scalars(select(Credential)).all()
        assert all(token not in (c.secret_hash, c.lookup) for c in stored)
        identity = authenticate_token(session, token)
        assert identity == Identity("wang", Role.DATA_OFFICER, department="PSB")
        with pytest.raises(LijiaoError):
            authenticate_token(session, token[:-1] + ("A" if token[-1] != "A" else "B"))


def test_a_system_token_identifies_the_system_and_its_department(catalog: Catalog) -> None:
    with catalog.sessions() as session:
        token = issue_token(session, name="ignored", role=Role.SYSTEM, system="CIVIL-AID")
        assert authenticate_token(session, token) == Identity(
            "CIVIL-AID", Role.SYSTEM, department="CIVIL", system="CIVIL-AID"
        )


def test_a_new_field_left_undescribed_is_recorded_as_personal(catalog: Catalog) -> None:
    catalog.create_resource(ADMIN, spec(), json.dumps(PERSON_SCHEMA))
    catalog.add_schema(
        ADMIN,
        "RESIDENTS",
        _with_field({"name": "mobile", "type": ["null", "string"], "default": None}),
    )
    tags = {f["name"]: f["sensitivity"] for f in catalog.get_resource("RESIDENTS").fields}
    assert tags["mobile"] == "PERSONAL"


def test_a_new_field_can_be_described_as_not_sensitive(catalog: Catalog) -> None:
    from catalog.models import Sensitivity

    catalog.create_resource(ADMIN, spec(), json.dumps(PERSON_SCHEMA))
    catalog.add_schema(
        ADMIN,
        "RESIDENTS",
        _with_field({"name": "floors", "type": ["null", "long"], "default": None}),
        [FieldSpec("floors", "storeys of the building", Sensitivity.NONE)],
    )
    tags = {f["name"]: f["sensitivity"] for f in catalog.get_resource("RESIDENTS").fields}
    assert tags["floors"] == "NONE"


def test_an_undescribed_new_field_that_cannot_be_masked_is_refused(catalog: Catalog) -> None:
    catalog.create_resource(ADMIN, spec(), json.dumps(PERSON_SCHEMA))
    error = refusal(
        "INVALID_FIELD",
        catalog.add_schema,
        ADMIN,
        "RESIDENTS",
        _with_field({"name": "age", "type": ["null", "long"], "default": None}),
    )
    assert error.metadata["field"] == "age"


def test_a_sensitive_field_may_not_become_a_non_string(catalog: Catalog) -> None:
    catalog.create_resource(
        ADMIN, spec(compatibility=CompatibilityMode.NONE), json.dumps(PERSON_SCHEMA)
    )
    schema = json.loads(json.dumps(PERSON_SCHEMA))
    for field in schema["fields"]:
        if field["name"] == "id_number":
            field["type"] = ["string", "long"]
    error = refusal("INVALID_FIELD", catalog.add_schema, ADMIN, "RESIDENTS", json.dumps(schema))
    assert error.metadata["field"] == "id_number"


def test_a_map_cannot_be_tagged_sensitive(catalog: Catalog) -> None:
    from catalog.models import Sensitivity

    schema = json.loads(json.dumps(PERSON_SCHEMA))
    schema["fields"].append({"name": "contacts", "type": {"type": "map", "values": "string"}})
    refusal(
        "INVALID_FIELD",
        catalog.create_resource,
        ADMIN,
        spec(fields=[FieldSpec("contacts", "phone book", Sensitivity.PHONE)]),
        json.dumps(schema),
    )
