"""``lijiao catalog ...``: a command-line client of ``catalog.v1.CatalogService``.

Options are named after the proto fields they fill (``--owner`` fills
``owner_department``), so commands build messages as ``Message(**options)``. The
client, console and option types are in ``exchange.cli.client``.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import click

from catalog.v1 import catalog_pb2
from envelope.signing import public_key_from_text
from exchange.cli.client import (
    FILE,
    HEX,
    REGION,
    TIME,
    Console,
    Parsed,
    ProtoEnumChoice,
    catalog_command,
    enum_words,
)

_SENSITIVITY = enum_words(catalog_pb2.Sensitivity.DESCRIPTOR)
_LEVEL = ProtoEnumChoice(catalog_pb2.AdministrativeLevel.DESCRIPTOR)
_SHARING = ProtoEnumChoice(catalog_pb2.SharingType.DESCRIPTOR)
_CLASSIFICATION = ProtoEnumChoice(catalog_pb2.Classification.DESCRIPTOR)
_COMPATIBILITY = ProtoEnumChoice(catalog_pb2.CompatibilityMode.DESCRIPTOR)


def _field_spec(text: str) -> catalog_pb2.FieldSpec:
    name, _, rest = text.partition(":")
    sensitivity, _, description = rest.partition(":")
    if not name or sensitivity not in _SENSITIVITY:
        raise ValueError(f"SENSITIVITY is one of {', '.join(_SENSITIVITY)}")
    tag = _SENSITIVITY[sensitivity]
    return catalog_pb2.FieldSpec(name=name, sensitivity=tag, description=description)


def _signing_keys(text: str) -> list[catalog_pb2.SigningKey]:
    with contextlib.suppress(OSError):  # text too long to be a path
        text = Path(text).read_text() if Path(text).is_file() else text
    return [catalog_pb2.SigningKey(public_key=public_key_from_text(text))]


_PUBLIC_KEY = Parsed("FILE_OR_TEXT", _signing_keys)
_FIELD_SPEC = Parsed("NAME:SENSITIVITY:DESCRIPTION", _field_spec)
_NOT_SHOWN = ("definition", "canonical_form")
_KEY_HELP = "Ed25519 public key: a PEM, base64 or hex file, or the text itself."
_FIELD_HELP = f"Field description and tag; SENSITIVITY: {', '.join(_SENSITIVITY)}."


@click.group()
def catalog() -> None:
    """Departments, systems, resources, schemas and grants of the resource catalog."""


def _entries(
    plural: str, help_text: str, columns: str = "", filters: str = "", key: str = "code"
) -> click.Group:
    """Adds a group to ``catalog``; with ``columns`` (dotted field paths) it gets ``list``,
    filtered by ``filters`` (``--option=request_field`` pairs), and ``show KEY``."""
    group = catalog.group(plural, help=help_text)(lambda: None)
    if not columns:
        return group
    singular = plural.removesuffix("s")
    list_rpc, get_rpc = f"List{plural.title()}", f"Get{singular.title()}"

    def list_command(console: Console, **given: str | None) -> None:
        request = getattr(catalog_pb2, f"{list_rpc}Request")(**given)
        console.list(list_rpc, request, plural, columns.split())

    def show_command(console: Console, **given: str) -> None:
        console.show(get_rpc, getattr(catalog_pb2, f"{get_rpc}Request")(**given), singular)

    command = catalog_command(list_command)
    for option, field in (pair.split("=") for pair in reversed(filters.split())):
        command = click.option(option, field, help=f"Only {plural} of this {option[2:]}.")(command)
    group.command("list", help=f"Lists every {singular}, ordered by {key}.")(command)
    command = click.argument(key, metavar=key.upper())(catalog_command(show_command))
    group.command("show", help=f"Shows one {singular}.")(command)
    return group


departments = _entries(
    "departments", "Government departments (部门).", "code name level region_code"
)


@departments.command("add")
@click.option("--code", required=True, help="Unique code, e.g. PSB.")
@click.option("--name", required=True, help="Display name.")
@click.option("--level", required=True, type=_LEVEL, help="Administrative level.")
@click.option("--region-code", required=True, help="Administrative region code, e.g. 510100.")
@catalog_command
def departments_add(console: Console, **department: Any) -> None:
    """Registers a department (administrators)."""
    request = catalog_pb2.CreateDepartmentRequest(department=catalog_pb2.Department(**department))
    console.show("CreateDepartment", request, "department")


systems = _entries(
    "systems",
    "Information systems of departments (业务系统) and their signing keys.",
    "code name department status signing_keys.key_id",
    "--department=department",
)


@systems.command("add")
@click.option("--code", required=True, help="Unique code, e.g. PSB-HUKOU.")
@click.option("--name", required=True, help="Display name.")
@click.option("--department", required=True, help="Code of the owning department.")
@click.option("--public-key", "signing_keys", required=True, type=_PUBLIC_KEY, help=_KEY_HELP)
@catalog_command
def systems_add(console: Console, **system: Any) -> None:
    """Registers a system with its first signing key (administrators)."""
    request = catalog_pb2.CreateSystemRequest(system=catalog_pb2.System(**system))
    console.show("CreateSystem", request, "system")


@systems.command("add-key")
@click.argument("system")
@click.option("--public-key", required=True, type=_PUBLIC_KEY, help=_KEY_HELP)
@catalog_command
def systems_add_key(console: Console, system: str, public_key: Any) -> None:
    """Registers another signing key of SYSTEM (administrators): the first step of a
    rotation. Batches signed with any of its valid keys are accepted."""
    request = catalog_pb2.AddSigningKeyRequest(system=system, public_key=public_key[0].public_key)
    console.show("AddSigningKey", request, "system")


@systems.command("revoke-key")
@click.argument("system")
@click.argument("key_id")
@click.option("--reason", required=True, help="Why (kept with the key and in the ledger).")
@click.option(
    "--at",
    "revoke_time",
    type=TIME,
    help="Revoke from this time (ISO 8601; default now). A later time leaves an overlap "
    "for batches still in an adapter's outbox.",
)
@click.option(
    "--compromised",
    is_flag=True,
    help="The key leaked: refuse every batch received from the revocation on, whatever "
    "creation time it claims (a thief could backdate).",
)
@catalog_command
def systems_revoke_key(
    console: Console,
    system: str,
    key_id: str,
    reason: str,
    revoke_time: Any,
    compromised: bool,
) -> None:
    """Revokes signing key KEY_ID of SYSTEM (administrators).

    Batches created at or after the revocation time with this key are refused
    (KEY_REVOKED); batches created before it still pass.
    """
    request = catalog_pb2.RevokeSigningKeyRequest(
        system=system, key_id=key_id, reason=reason, compromised=compromised
    )
    if revoke_time is not None:
        request.revoke_time.FromDatetime(revoke_time)
    console.show("RevokeSigningKey", request, "system")


resources = _entries(
    "resources",
    "Resources of the catalog (政务数据资源目录).",
    "code name owner_department sharing_type classification latest_schema_version",
    "--owner=owner_department",
)


@resources.command("add")
@click.option("--code", required=True, help="Unique resource code, e.g. PSB-RESIDENT.")
@click.option("--name", required=True, help="Name.")
@click.option("--owner", "owner_department", required=True, help="Provider department code.")
@click.option("--summary", help="Summary (摘要).")
@click.option("--format", help="Format, e.g. database, file, service.")
@click.option("--sharing", "sharing_type", required=True, type=_SHARING, help="Sharing type.")
@click.option("--conditions", "sharing_conditions", help="Sharing conditions or legal basis.")
@click.option("--classification", required=True, type=_CLASSIFICATION, help="Security grade.")
@click.option("--update-cycle", help="Update cycle, e.g. real-time, daily.")
@click.option("--key-field", "key_fields", multiple=True, help="Field of the record key.")
@click.option("--region-field", help="Field holding a record's region code.")
@click.option("--field", "fields", multiple=True, type=_FIELD_SPEC, help=_FIELD_HELP)
@click.option("--compatibility", type=_COMPATIBILITY, help="Check of new schema versions.")
@click.option("--schema", required=True, type=FILE, help="First Avro schema (.avsc).")
@catalog_command
def resources_add(console: Console, schema: Path, **resource: Any) -> None:
    """Registers a resource with its first schema version."""
    request = catalog_pb2.CreateResourceRequest(
        resource=catalog_pb2.Resource(**resource), schema=schema.read_text(encoding="utf-8")
    )
    response = console.show("CreateResource", request, "resource")
    if not console.as_json:
        click.echo(f"schema fingerprint: {response.schema.fingerprint.hex()}")


schemas = _entries("schemas", "Avro schema versions of resources.")


@schemas.command("add")
@click.argument("resource")
@click.argument("file", type=FILE)
@click.option("--field", "fields", multiple=True, type=_FIELD_SPEC, help=_FIELD_HELP)
@catalog_command
def schemas_add(
    console: Console, resource: str, file: Path, fields: tuple[catalog_pb2.FieldSpec, ...]
) -> None:
    """Adds a schema version to RESOURCE after its compatibility check.

    Describe each field the version adds with --field; an undescribed new field is
    recorded as personal data and masked in deliveries until described.
    """
    definition = file.read_text(encoding="utf-8")
    request = catalog_pb2.CreateSchemaRequest(
        resource=resource, definition=definition, fields=list(fields)
    )
    console.show("CreateSchema", request, "schema", skip=_NOT_SHOWN)


@schemas.command("list")
@click.argument("resource")
@catalog_command
def schemas_list(console: Console, resource: str) -> None:
    """Lists the schema versions of RESOURCE, oldest first."""
    request = catalog_pb2.ListSchemasRequest(resource=resource)
    console.list("ListSchemas", request, "schemas", ("version", "fingerprint", "create_time"))


@schemas.command("show")
@click.argument("resource")
@click.option("--version", type=click.IntRange(min=1), help="Version number [default: latest].")
@click.option("--fingerprint", type=HEX, help="Fingerprint in hex.")
@catalog_command
def schemas_show(console: Console, **given: Any) -> None:
    """Shows a schema version of RESOURCE with its definition."""
    if given["version"] is not None and given["fingerprint"] is not None:
        raise click.UsageError("give --version or --fingerprint, not both")
    request = catalog_pb2.GetSchemaRequest(**given)
    response = console.show("GetSchema", request, "schema", skip=_NOT_SHOWN)
    if not console.as_json:
        definition = response.schema.definition
        with contextlib.suppress(ValueError):  # shown as registered if it is not JSON
            definition = json.dumps(json.loads(definition), indent=2, ensure_ascii=False)
        click.echo("definition:\n" + definition)


grants = _entries(
    "grants",
    "Grants: which system may receive which resource.",
    "id resource grantee_system status fields row_filter.region_code expire_time",
    "--resource=resource --system=grantee_system",
    key="id",
)


@grants.command("add")
@click.option("--resource", required=True, help="Resource code.")
@click.option("--system", "grantee_system", required=True, help="Code of the receiving system.")
@click.option("--field", "fields", multiple=True, help="Field to deliver [default: all].")
@click.option(
    "--clear",
    "clear_fields",
    multiple=True,
    help="Sensitive field to deliver in clear text [default: every sensitive field masked].",
)
@click.option("--region", "row_filter", type=REGION, help="Only rows of this region code.")
@click.option("--expires", "expire_time", type=TIME, help="End; no offset means local time.")
@catalog_command
def grants_add(console: Console, **grant: Any) -> None:
    """Lets a system receive a resource (administrators).

    Fields the catalog tags sensitive are masked unless named with --clear.
    """
    request = catalog_pb2.CreateGrantRequest(grant=catalog_pb2.Grant(**grant))
    console.show("CreateGrant", request, "grant")
