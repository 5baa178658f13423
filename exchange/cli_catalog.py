"""``lijiao catalog ...``: a command-line client of ``catalog.v1.CatalogService``.

Its client, console and option types serve every gateway service (``exchange.cli_governance``
drives ``ApprovalService`` with them).

Enum flags take the proto value names without the enum's prefix, in lowercase
(``not-shared`` is ``SHARING_TYPE_NOT_SHARED``), read from the descriptors so the CLI
never drifts from the wire contract. Options are named after the proto fields they fill
(``--owner`` fills ``owner_department``), so commands build messages as ``Message(**options)``.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import grpc
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from adapters.connection import ClientCertificate, auth_metadata, open_blocking_channel
from adapters.errors import error_info
from catalog.v1 import catalog_pb2, catalog_pb2_grpc
from envelope.signing import public_key_from_text
from exchange.settings import Settings

CALL_TIMEOUT_SECONDS = 30.0
_CATALOG_STUB = catalog_pb2_grpc.CatalogServiceStub
NO_CREDENTIAL = (
    "no credential: pass --client-cert and --client-key (or LIJIAO_CLIENT_CERT and "
    "LIJIAO_CLIENT_KEY; `lijiao pki issue` makes them), or --token / LIJIAO_TOKEN for a "
    "gateway in development mode (`lijiao tokens issue`)"
)


def rpc_error_message(err: grpc.RpcError) -> str:
    """Formats a gRPC error: status code, ErrorInfo reason, message and metadata.

    Args:
        err: The error raised by a stub call.

    Returns:
        One line, e.g. ``NOT_FOUND UNKNOWN_DEPARTMENT: no department X [department=X]``.
    """
    if not isinstance(err, grpc.Call | grpc.aio.AioRpcError):
        return str(err)
    message = err.details()
    reason, metadata = error_info(err)
    text = " ".join(filter(None, dict.fromkeys((err.code().name, reason)))) + f": {message}"
    if metadata:
        text += " [" + ", ".join(f"{k}={v}" for k, v in sorted(metadata.items())) + "]"
    return text


class RpcFailed(click.ClickException):
    """A gateway call failed; click prints the formatted status and exits with 1."""

    def __init__(self, err: grpc.RpcError) -> None:
        super().__init__(rpc_error_message(err))
        self.err = err


_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_CONNECTION_OPTIONS = (
    click.option("--gateway", metavar="HOST:PORT", help="Gateway address [env LIJIAO_GATEWAY]."),
    click.option(
        "--client-cert", type=_FILE, help="Your PEM client certificate [env LIJIAO_CLIENT_CERT]."
    ),
    click.option("--client-key", type=_FILE, help="Its PEM private key [env LIJIAO_CLIENT_KEY]."),
    click.option("--token", help="Bearer token, development mode only [env LIJIAO_TOKEN]."),
    click.option("--ca-cert", type=_FILE, help="PEM CA certificate [env LIJIAO_CA_CERT]."),
    click.option("--insecure", is_flag=True, default=None, help="No TLS [env LIJIAO_INSECURE]."),
)


def connection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Adds ``--gateway``, ``--client-cert``/``--client-key``, ``--token``, ``--ca-cert``
    and ``--insecure`` to a command.

    The decorated callback receives one ``settings`` keyword argument instead of the
    six: the flags given override the ``LIJIAO_*`` environment via :meth:`Settings.load`.

    Args:
        command: The command callback.

    Returns:
        The callback with the six options attached.
    """

    @functools.wraps(command)
    def resolved(*args: Any, **kwargs: Any) -> Any:
        names = ("gateway", "token", "ca_cert", "insecure", "client_cert", "client_key")
        overrides = {name: kwargs.pop(name) for name in names}
        try:
            kwargs["settings"] = Settings.load(overrides)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        return command(*args, **kwargs)

    for option in reversed(_CONNECTION_OPTIONS):
        resolved = option(resolved)
    return resolved


@dataclass(frozen=True)
class CatalogClient:
    """A gateway service stub (CatalogService by default) that presents the caller's token.

    Attributes:
        stub: The blocking stub.
        metadata: Call metadata presenting the token.
    """

    stub: Any
    metadata: tuple[tuple[str, str], ...]

    def call(self, method: str, request: Message) -> Any:
        """Calls one unary RPC by name, e.g. ``call("GetDepartment", request)``.

        Raises:
            RpcFailed: The gateway answered with an error status.
        """
        rpc = getattr(self.stub, method)
        try:
            return rpc(request, metadata=self.metadata, timeout=CALL_TIMEOUT_SECONDS)
        except grpc.RpcError as err:
            raise RpcFailed(err) from err

    def page_through(self, method: str, request: Any, items: str) -> Any:
        """Calls a List RPC page after page and returns one response holding every item.

        Args:
            method: RPC name, e.g. ``"ListDepartments"``.
            request: The first page's request; its page_token is advanced in place.
            items: Name of the repeated field holding the results.
        """
        merged = page = self.call(method, request)
        if "next_page_token" not in page.DESCRIPTOR.fields_by_name:
            return merged  # a list the gateway returns whole
        while page.next_page_token:
            if page.next_page_token == request.page_token:
                raise click.ClickException(f"{method} returned the same page token twice")
            request.page_token = page.next_page_token
            page = self.call(method, request)
            getattr(merged, items).extend(getattr(page, items))
        merged.next_page_token = ""
        return merged


def client_certificate(settings: Settings) -> ClientCertificate | None:
    """The client certificate the CLI presents, when both files are set.

    Raises:
        click.UsageError: Only one of the two is set.
    """
    if bool(settings.client_cert) != bool(settings.client_key):
        raise click.UsageError("give both --client-cert and --client-key (LIJIAO_CLIENT_CERT/KEY)")
    if settings.client_cert and settings.client_key:
        return ClientCertificate(settings.client_cert, settings.client_key)
    return None


@contextlib.contextmanager
def open_catalog(
    settings: Settings, stub_class: Callable[[grpc.Channel], Any] = _CATALOG_STUB
) -> Iterator[CatalogClient]:
    """Opens a channel to the gateway and yields a :class:`CatalogClient` of ``stub_class``.

    Raises:
        click.UsageError: No token is configured.
    """
    client = client_certificate(settings)
    if not settings.token and client is None:
        raise click.UsageError(NO_CREDENTIAL)
    target, ca_cert, insecure = settings.gateway, settings.ca_cert, settings.insecure
    with open_blocking_channel(
        target, ca_cert=ca_cert, insecure=insecure, client_cert=client
    ) as channel:
        yield CatalogClient(stub_class(channel), auth_metadata(settings.token))


def _word(enum: EnumDescriptor, value_name: str) -> str:
    prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"
    return value_name.removeprefix(prefix).lower().replace("_", "-")


def enum_words(enum: EnumDescriptor) -> dict[str, str]:
    """Maps CLI words to enum value names: ``not-shared`` -> ``SHARING_TYPE_NOT_SHARED``."""
    return {_word(enum, value.name): value.name for value in enum.values if value.number != 0}


def _is_timestamp(field: FieldDescriptor) -> bool:
    return bool(getattr(field.message_type, "full_name", "") == Timestamp.DESCRIPTOR.full_name)


def _is_map(field: FieldDescriptor) -> bool:
    return bool(field.message_type is not None and field.message_type.GetOptions().map_entry)


def _is_table(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated and field.message_type is not None and not _is_map(field))


def _scalar_text(field: FieldDescriptor, value: Any) -> str:
    if field.type == FieldDescriptor.TYPE_BOOL:
        return "yes" if value else "no"
    if field.enum_type is not None and value in field.enum_type.values_by_number:
        return _word(field.enum_type, field.enum_type.values_by_number[value].name) if value else ""
    if _is_timestamp(field):
        return value.ToDatetime(datetime.UTC).isoformat(timespec="seconds") if value.seconds else ""
    return value.hex() if isinstance(value, bytes) else str(value)


def _text(message: Message, path: str) -> str:
    """Renders the field at a dotted path; repeated values are comma-separated."""
    head, _, rest = path.partition(".")
    field = message.DESCRIPTOR.fields_by_name[head]
    if _is_map(field):
        return ", ".join(f"{k}={v}" for k, v in sorted(getattr(message, head).items())) or "-"
    values = list(getattr(message, head)) if field.is_repeated else [getattr(message, head)]
    texts = [_text(item, rest) if rest else _scalar_text(field, item) for item in values]
    return ", ".join(texts) or "-"


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _print_table(items: Sequence[Message], columns: Sequence[str], indent: str = "") -> None:
    rows = [[column.rsplit(".", 1)[-1].upper() for column in columns]]
    rows += [[_text(item, column) for column in columns] for item in items]
    widths = [max(_width(row[i]) for row in rows) for i in range(len(columns))]
    for row in rows:
        cells = [cell + " " * (w - _width(cell)) for cell, w in zip(row, widths, strict=True)]
        click.echo((indent + "  ".join(cells)).rstrip())


def _leaf_paths(descriptor: Descriptor, skip: Sequence[str] = ()) -> list[str]:
    """Dotted paths of a message's fields, flattening singular nested messages."""
    paths = []
    for field in descriptor.fields:
        if field.name in skip:
            continue
        if field.message_type is None or _is_timestamp(field) or field.is_repeated:
            paths.append(field.name)
        else:
            paths += [f"{field.name}.{path}" for path in _leaf_paths(field.message_type)]
    return paths


def _print_block(message: Message, skip: Sequence[str] = ()) -> None:
    """Prints ``key: value`` lines; repeated messages follow as indented tables."""
    fields = message.DESCRIPTOR.fields_by_name
    paths = _leaf_paths(message.DESCRIPTOR, skip)
    tables = [p for p in paths if p in fields and _is_table(fields[p])]
    width = max(len(path) for path in paths) + 1
    for path in (p for p in paths if p not in tables):
        click.echo(f"{path + ':':<{width}} {_text(message, path)}")
    for path in tables:
        click.echo(f"{path}:")
        _print_table(getattr(message, path), _leaf_paths(fields[path].message_type), "  ")


@dataclass(frozen=True)
class _Console:
    """A :class:`CatalogClient` that prints what it gets, as text or as JSON."""

    client: CatalogClient
    as_json: bool

    def _print(self, response: Message, text: Callable[[], None]) -> None:
        if self.as_json:
            click.echo(json_format.MessageToJson(response, ensure_ascii=False))
        else:
            text()

    def show(self, method: str, request: Message, item: str, skip: Sequence[str] = ()) -> Any:
        response = self.client.call(method, request)
        self._print(response, lambda: _print_block(getattr(response, item), skip))
        return response

    def list(self, method: str, request: Message, items: str, columns: Sequence[str]) -> None:
        response = self.client.page_through(method, request, items)
        self._print(response, lambda: _print_table(getattr(response, items), columns))


def _catalog_command(
    command: Callable[..., None], stub_class: Callable[[grpc.Channel], Any] = _CATALOG_STUB
) -> Callable[..., None]:
    """Adds the connection options and ``--json``; passes a ``console`` of a ``stub_class``
    client to the command."""

    @connection_options
    @click.option("--json", "as_json", is_flag=True, help="Print the response as JSON.")
    @functools.wraps(command)
    def run(*args: Any, settings: Settings, as_json: bool, **kwargs: Any) -> None:
        with open_catalog(settings, stub_class) as client:
            command(*args, console=_Console(client, as_json), **kwargs)

    return run


class ProtoEnumChoice(click.Choice):  # type: ignore[type-arg]
    """A choice among an enum's CLI words; converts to the enum value name."""

    def __init__(self, enum: EnumDescriptor) -> None:
        self.words = enum_words(enum)
        super().__init__(list(self.words))

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return self.words[str(super().convert(value, param, ctx))]


_SENSITIVITY = enum_words(catalog_pb2.Sensitivity.DESCRIPTOR)
_LEVEL = ProtoEnumChoice(catalog_pb2.AdministrativeLevel.DESCRIPTOR)
_SHARING = ProtoEnumChoice(catalog_pb2.SharingType.DESCRIPTOR)
_CLASSIFICATION = ProtoEnumChoice(catalog_pb2.Classification.DESCRIPTOR)
_COMPATIBILITY = ProtoEnumChoice(catalog_pb2.CompatibilityMode.DESCRIPTOR)


class _Parsed(click.ParamType):
    """Text parsed by a function; its ValueError is a usage error naming the option."""

    def __init__(self, name: str, parse: Callable[[str], Any]) -> None:
        self.name, self.parse = name, parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return self.parse(value) if isinstance(value, str) else value
        except ValueError as exc:
            self.fail(f"{value!r}: {exc}", param, ctx)


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


_PUBLIC_KEY = _Parsed("FILE_OR_TEXT", _signing_keys)
_FIELD_SPEC = _Parsed("NAME:SENSITIVITY:DESCRIPTION", _field_spec)
_REGION = _Parsed("REGION_CODE", lambda code: catalog_pb2.RowFilter(region_code=code))
_TIME = _Parsed("ISO-8601", lambda text: datetime.datetime.fromisoformat(text).astimezone())
_HEX = _Parsed("HEX", bytes.fromhex)
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

    def list_command(console: _Console, **given: str | None) -> None:
        request = getattr(catalog_pb2, f"{list_rpc}Request")(**given)
        console.list(list_rpc, request, plural, columns.split())

    def show_command(console: _Console, **given: str) -> None:
        console.show(get_rpc, getattr(catalog_pb2, f"{get_rpc}Request")(**given), singular)

    command = _catalog_command(list_command)
    for option, field in (pair.split("=") for pair in reversed(filters.split())):
        command = click.option(option, field, help=f"Only {plural} of this {option[2:]}.")(command)
    group.command("list", help=f"Lists every {singular}, ordered by {key}.")(command)
    command = click.argument(key, metavar=key.upper())(_catalog_command(show_command))
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
@_catalog_command
def departments_add(console: _Console, **department: Any) -> None:
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
@_catalog_command
def systems_add(console: _Console, **system: Any) -> None:
    """Registers a system with its first signing key (administrators)."""
    request = catalog_pb2.CreateSystemRequest(system=catalog_pb2.System(**system))
    console.show("CreateSystem", request, "system")


@systems.command("add-key")
@click.argument("system")
@click.option("--public-key", required=True, type=_PUBLIC_KEY, help=_KEY_HELP)
@_catalog_command
def systems_add_key(console: _Console, system: str, public_key: Any) -> None:
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
    type=_TIME,
    help="Revoke from this time (ISO 8601; default now). A later time leaves an overlap "
    "for batches still in an adapter's outbox.",
)
@click.option(
    "--compromised",
    is_flag=True,
    help="The key leaked: refuse every batch received from the revocation on, whatever "
    "creation time it claims (a thief could backdate).",
)
@_catalog_command
def systems_revoke_key(
    console: _Console,
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
@click.option("--schema", required=True, type=_FILE, help="First Avro schema (.avsc).")
@_catalog_command
def resources_add(console: _Console, schema: Path, **resource: Any) -> None:
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
@click.argument("file", type=_FILE)
@click.option("--field", "fields", multiple=True, type=_FIELD_SPEC, help=_FIELD_HELP)
@_catalog_command
def schemas_add(
    console: _Console, resource: str, file: Path, fields: tuple[catalog_pb2.FieldSpec, ...]
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
@_catalog_command
def schemas_list(console: _Console, resource: str) -> None:
    """Lists the schema versions of RESOURCE, oldest first."""
    request = catalog_pb2.ListSchemasRequest(resource=resource)
    console.list("ListSchemas", request, "schemas", ("version", "fingerprint", "create_time"))


@schemas.command("show")
@click.argument("resource")
@click.option("--version", type=click.IntRange(min=1), help="Version number [default: latest].")
@click.option("--fingerprint", type=_HEX, help="Fingerprint in hex.")
@_catalog_command
def schemas_show(console: _Console, **given: Any) -> None:
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
@click.option("--region", "row_filter", type=_REGION, help="Only rows of this region code.")
@click.option("--expires", "expire_time", type=_TIME, help="End; no offset means local time.")
@_catalog_command
def grants_add(console: _Console, **grant: Any) -> None:
    """Lets a system receive a resource (administrators).

    Fields the catalog tags sensitive are masked unless named with --clear.
    """
    request = catalog_pb2.CreateGrantRequest(grant=catalog_pb2.Grant(**grant))
    console.show("CreateGrant", request, "grant")
