"""``lijiao catalog ...`` against a real gateway (exchange.cli.catalog)."""

from __future__ import annotations

import base64
import json
import unicodedata
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner, Result

from adapters.connection import auth_metadata
from catalog.v1 import catalog_pb2, catalog_pb2_grpc
from envelope.signing import Ed25519Signer, key_id_of
from exchange.cli.catalog import catalog, enum_words

RESIDENT: dict[str, Any] = {
    "type": "record",
    "name": "Resident",
    "namespace": "gov.chengdu.psb",
    "fields": [
        {"name": "id_number", "type": "string"},
        {"name": "name", "type": "string"},
        {"name": "phone", "type": ["null", "string"], "default": None},
        {"name": "region_code", "type": "string"},
        {"name": "registered_on", "type": {"type": "int", "logicalType": "date"}},
    ],
}


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GATEWAY", "TOKEN", "CA_CERT", "INSECURE"):
        monkeypatch.delenv(f"LIJIAO_{name}", raising=False)


def cli(gateway: Any, *args: str, token: str | None = None) -> Result:
    """Runs ``lijiao catalog ARGS`` as the administrator (or ``token``) over plaintext."""
    connection = ["--gateway", gateway.target, "--insecure"]
    connection += ["--token", token if token is not None else gateway.admin_token]
    return CliRunner().invoke(catalog, [*args, *connection])


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def write_schema(path: Path, schema: dict[str, Any]) -> Path:
    path.write_text(json.dumps(schema), encoding="utf-8")
    return path


def add_department(gateway: Any, code: str = "PSB", name: str = "市公安局") -> None:
    ok(cli(gateway, "departments", "add", "--code", code, "--name", name, "--level", "city",
           "--region-code", "510100"))  # fmt: skip


def add_system(gateway: Any, tmp_path: Path, code: str = "PSB-HUKOU", dept: str = "PSB") -> str:
    signer = Ed25519Signer.generate()
    key_file = tmp_path / f"{code}.pub"
    key_file.write_text(base64.b64encode(signer.public_key).decode() + "\n")
    ok(cli(gateway, "systems", "add", "--code", code, "--name", f"{code} system",
           "--department", dept, "--public-key", str(key_file)))  # fmt: skip
    return signer.key_id


def add_resident_resource(gateway: Any, tmp_path: Path, *extra: str) -> Result:
    schema = write_schema(tmp_path / "resident.avsc", RESIDENT)
    return cli(
        gateway, "resources", "add", "--code", "PSB-RESIDENT", "--name", "常住人口 Residents",
        "--owner", "PSB", "--summary", "Registered residents of the city", "--format", "database",
        "--sharing", "conditional", "--conditions", "For public services only",
        "--classification", "important", "--update-cycle", "daily",
        "--key-field", "id_number", "--region-field", "region_code",
        "--field", "id_number:id-number:Citizen ID number (身份证号)",
        "--field", "name:name:Full name", "--field", "phone:phone:Mobile: +86",
        "--compatibility", "backward", "--schema", str(schema), *extra,
    )  # fmt: skip


def test_department_added_is_listed_and_shown(gateway: Any) -> None:
    add_department(gateway)
    add_department(gateway, "CIVIL", "民政局 Civil Affairs")

    listing = ok(cli(gateway, "departments", "list")).splitlines()
    assert listing[0].split() == ["CODE", "NAME", "LEVEL", "REGION_CODE"]
    assert [line.split()[0] for line in listing[1:]] == ["CIVIL", "PSB"]
    assert "市公安局" in listing[2]
    shown = ok(cli(gateway, "departments", "show", "PSB"))
    assert "name:" in shown
    assert "市公安局" in shown
    assert "level:" in shown
    assert "city" in shown
    assert "510100" in shown


def test_list_columns_stay_aligned_with_wide_characters(gateway: Any) -> None:
    add_department(gateway, "A", "市公安局")
    add_department(gateway, "B", "Ab")

    lines = ok(cli(gateway, "departments", "list")).splitlines()

    def display_column(line: str, word: str) -> int:
        prefix = line[: line.index(word)]
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in prefix)

    assert display_column(lines[1], "city") == display_column(lines[2], "city")
    assert display_column(lines[0], "LEVEL") == display_column(lines[1], "city")


def test_list_follows_page_tokens_past_the_first_page(gateway: Any) -> None:
    channel = grpc.insecure_channel(gateway.target)
    stub = catalog_pb2_grpc.CatalogServiceStub(channel)
    for number in range(120):
        department = catalog_pb2.Department(
            code=f"D{number:03d}", name=f"Department {number}", level="ADMINISTRATIVE_LEVEL_TOWN",
            region_code="510104001",
        )  # fmt: skip
        stub.CreateDepartment(
            catalog_pb2.CreateDepartmentRequest(department=department),
            metadata=auth_metadata(gateway.admin_token),
        )
    channel.close()

    rows = ok(cli(gateway, "departments", "list")).splitlines()[1:]
    assert [row.split()[0] for row in rows] == [f"D{number:03d}" for number in range(120)]
    as_json = json.loads(ok(cli(gateway, "departments", "list", "--json")))
    assert len(as_json["departments"]) == 120
    assert "nextPageToken" not in as_json


def test_system_registers_its_key_and_shows_the_key_id(gateway: Any, tmp_path: Path) -> None:
    add_department(gateway)
    key_id = add_system(gateway, tmp_path)

    shown = ok(cli(gateway, "systems", "show", "PSB-HUKOU"))
    assert key_id in shown
    assert "active" in shown
    listing = ok(cli(gateway, "systems", "list", "--department", "PSB"))
    assert "PSB-HUKOU" in listing
    assert key_id in listing
    assert ok(cli(gateway, "systems", "list", "--department", "NOBODY")).strip() == (
        "CODE  NAME  DEPARTMENT  STATUS  KEY_ID"
    )


def test_public_key_may_be_given_as_hex_text(gateway: Any) -> None:
    add_department(gateway)
    signer = Ed25519Signer.generate()

    ok(cli(gateway, "systems", "add", "--code", "S1", "--name", "one", "--department", "PSB",
           "--public-key", signer.public_key.hex()))  # fmt: skip

    shown = json.loads(ok(cli(gateway, "systems", "show", "S1", "--json")))
    assert shown["system"]["signingKeys"][0]["keyId"] == key_id_of(signer.public_key)


def test_bad_public_key_is_a_usage_error_naming_the_flag(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        catalog,
        ["systems", "add", "--code", "S", "--name", "n", "--department", "D",
         "--public-key", "not-a-key", "--token", "t"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--public-key" in result.output


def test_unknown_department_is_reported_with_its_reason(gateway: Any, tmp_path: Path) -> None:
    signer = Ed25519Signer.generate()

    result = cli(gateway, "systems", "add", "--code", "S", "--name", "n", "--department", "NOPE",
                 "--public-key", signer.public_key.hex())  # fmt: skip

    assert result.exit_code == 1
    assert "NOT_FOUND" in result.stderr
    assert "UNKNOWN_DEPARTMENT" in result.stderr
    assert result.stdout == ""
    shown = cli(gateway, "departments", "show", "NOPE")
    assert shown.exit_code != 0
    assert "UNKNOWN_DEPARTMENT" in shown.stderr


def test_resource_shows_its_fields_with_sensitivity(gateway: Any, tmp_path: Path) -> None:
    add_department(gateway)
    added = ok(add_resident_resource(gateway, tmp_path))
    assert "schema fingerprint:" in added

    shown = ok(cli(gateway, "resources", "show", "PSB-RESIDENT"))
    assert "conditional" in shown
    assert "important" in shown
    assert "backward" in shown
    field_rows = {line.split()[0]: line for line in shown.splitlines() if line.startswith("  ")}
    assert "id-number" in field_rows["id_number"]
    assert "身份证号" in field_rows["id_number"]
    assert "phone" in field_rows["phone"]
    assert "Mobile: +86" in field_rows["phone"]
    listing = ok(cli(gateway, "resources", "list", "--owner", "PSB")).splitlines()
    assert listing[1].split()[0] == "PSB-RESIDENT"
    assert ok(cli(gateway, "resources", "list", "--owner", "CIVIL")).count("\n") == 1


def test_bad_sensitivity_in_a_field_spec_names_the_flag(gateway: Any, tmp_path: Path) -> None:
    result = add_resident_resource(gateway, tmp_path, "--field", "name:secret:x")
    assert result.exit_code == 2
    assert "--field" in result.output
    assert "id-number" in result.output


def test_compatible_schema_version_is_added(gateway: Any, tmp_path: Path) -> None:
    add_department(gateway)
    first = json.loads(ok(add_resident_resource(gateway, tmp_path, "--json")))
    evolved = json.loads(json.dumps(RESIDENT))
    evolved["fields"].append({"name": "email", "type": ["null", "string"], "default": None})

    added = ok(cli(gateway, "schemas", "add", "PSB-RESIDENT",
                   str(write_schema(tmp_path / "v2.avsc", evolved))))  # fmt: skip

    assert "version:" in added
    assert " 2" in added
    v2 = json.loads(ok(cli(gateway, "schemas", "show", "PSB-RESIDENT", "--json")))["schema"]
    assert v2["version"] == 2
    fingerprint = base64.b64decode(v2["fingerprint"]).hex()
    assert fingerprint in added
    listing = ok(cli(gateway, "schemas", "list", "PSB-RESIDENT")).splitlines()
    assert [row.split()[0] for row in listing[1:]] == ["1", "2"]
    assert fingerprint in listing[2]
    v1_hex = base64.b64decode(first["schema"]["fingerprint"]).hex()
    by_fingerprint = ok(cli(gateway, "schemas", "show", "PSB-RESIDENT", "--fingerprint", v1_hex))
    assert "definition:" in by_fingerprint
    assert "email" not in by_fingerprint
    by_version = ok(cli(gateway, "schemas", "show", "PSB-RESIDENT", "--version", "2"))
    assert '"email"' in by_version


def test_incompatible_schema_version_is_refused(gateway: Any, tmp_path: Path) -> None:
    add_department(gateway)
    ok(add_resident_resource(gateway, tmp_path))
    breaking = json.loads(json.dumps(RESIDENT))
    breaking["fields"].append({"name": "household_id", "type": "string"})

    result = cli(gateway, "schemas", "add", "PSB-RESIDENT",
                 str(write_schema(tmp_path / "bad.avsc", breaking)))  # fmt: skip

    assert result.exit_code != 0
    assert "SCHEMA_INCOMPATIBLE" in result.output
    listing = ok(cli(gateway, "schemas", "list", "PSB-RESIDENT")).splitlines()
    assert len(listing) == 2


def test_grant_is_added_listed_and_shown(gateway: Any, tmp_path: Path) -> None:
    add_department(gateway)
    add_department(gateway, "CIVIL", "民政局")
    add_system(gateway, tmp_path)
    add_system(gateway, tmp_path, "CIVIL-AID", "CIVIL")
    ok(add_resident_resource(gateway, tmp_path))

    added = json.loads(ok(cli(
        gateway, "grants", "add", "--resource", "PSB-RESIDENT", "--system", "CIVIL-AID",
        "--field", "id_number", "--field", "name", "--region", "510104",
        "--expires", "2099-12-31T23:59:59+08:00", "--json",
    )))["grant"]  # fmt: skip

    grant_id = added["id"]
    assert added["expireTime"] == "2099-12-31T15:59:59Z"
    assert added["rowFilter"]["regionCode"] == "510104"
    shown = ok(cli(gateway, "grants", "show", grant_id))
    assert "CIVIL-AID" in shown
    assert "510104" in shown
    assert "2099-12-31T15:59:59" in shown
    assert "id_number" in shown
    assert "active" in shown
    for filters in ([], ["--resource", "PSB-RESIDENT"], ["--system", "CIVIL-AID"]):
        listing = ok(cli(gateway, "grants", "list", *filters)).splitlines()
        assert [row.split()[0] for row in listing[1:]] == [grant_id]
    assert ok(cli(gateway, "grants", "list", "--system", "PSB-HUKOU")).count("\n") == 1


def test_bad_expiry_is_a_usage_error_naming_the_flag(gateway: Any) -> None:
    result = cli(gateway, "grants", "add", "--resource", "R", "--system", "S",
                 "--expires", "next tuesday")  # fmt: skip
    assert result.exit_code == 2
    assert "--expires" in result.output


@pytest.mark.parametrize(
    "args",
    [["departments", "list"], ["departments", "show", "PSB"], ["grants", "list"]],
)
def test_json_output_parses(gateway: Any, args: list[str]) -> None:
    add_department(gateway)
    document = json.loads(ok(cli(gateway, *args, "--json")))
    assert isinstance(document, dict)


def test_missing_token_says_how_to_get_one(gateway: Any) -> None:
    result = CliRunner().invoke(
        catalog, ["departments", "list", "--gateway", gateway.target, "--insecure"]
    )
    assert result.exit_code != 0
    assert "--token" in result.output
    assert "LIJIAO_TOKEN" in result.output
    assert "lijiao tokens issue" in result.output


def test_connection_settings_come_from_the_environment(gateway: Any) -> None:
    add_department(gateway)
    env = {
        "LIJIAO_GATEWAY": gateway.target,
        "LIJIAO_TOKEN": gateway.admin_token,
        "LIJIAO_INSECURE": "true",
    }
    result = CliRunner().invoke(catalog, ["departments", "show", "PSB"], env=env)
    assert "市公安局" in ok(result)


def test_a_bad_token_is_refused(gateway: Any) -> None:
    result = cli(gateway, "departments", "list", token="not-a-token")
    assert result.exit_code == 1
    assert "UNAUTHENTICATED" in result.stderr


def test_enum_words_follow_the_proto() -> None:
    assert enum_words(catalog_pb2.SharingType.DESCRIPTOR) == {
        "unconditional": "SHARING_TYPE_UNCONDITIONAL",
        "conditional": "SHARING_TYPE_CONDITIONAL",
        "not-shared": "SHARING_TYPE_NOT_SHARED",
    }
    assert list(enum_words(catalog_pb2.Sensitivity.DESCRIPTOR)) == [
        "none", "id-number", "name", "phone", "address", "personal",
    ]  # fmt: skip
    assert "backward-transitive" in enum_words(catalog_pb2.CompatibilityMode.DESCRIPTOR)


def test_grants_add_names_clear_fields(gateway: Any) -> None:
    from tests.world import build_world

    world = build_world(gateway)
    world.resource(
        "TAGGED",
        "PSB",
        fields=[catalog_pb2.FieldSpec(name="name", sensitivity=catalog_pb2.SENSITIVITY_NAME)],
    )
    grant = ("grants", "add", "--resource", "TAGGED", "--system", "CIVIL-AFFAIRS", "--clear")
    added = json.loads(ok(cli(gateway, *grant, "name", "--json")))
    assert added["grant"]["clearFields"] == ["name"]
    refused = cli(gateway, *grant, "phone")
    assert refused.exit_code == 1
    assert "INVALID_FIELD" in refused.stderr
