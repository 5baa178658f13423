"""The gRPC client every `lijiao` command group shares: connection options and
credentials, calls with their errors in words, and the console that prints messages
as tables or JSON.

Enum flags take the proto value names without the enum's prefix, in lowercase
(``not-shared`` is ``SHARING_TYPE_NOT_SHARED``), read from the descriptors so the CLI
never drifts from the wire contract.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
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


FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_CONNECTION_OPTIONS = (
    click.option("--gateway", metavar="HOST:PORT", help="Gateway address [env LIJIAO_GATEWAY]."),
    click.option(
        "--client-cert", type=FILE, help="Your PEM client certificate [env LIJIAO_CLIENT_CERT]."
    ),
    click.option("--client-key", type=FILE, help="Its PEM private key [env LIJIAO_CLIENT_KEY]."),
    click.option("--token", help="Bearer token, development mode only [env LIJIAO_TOKEN]."),
    click.option("--ca-cert", type=FILE, help="PEM CA certificate [env LIJIAO_CA_CERT]."),
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


def text_of(message: Message, path: str) -> str:
    """Renders the field at a dotted path; repeated values are comma-separated."""
    head, _, rest = path.partition(".")
    field = message.DESCRIPTOR.fields_by_name[head]
    if _is_map(field):
        return ", ".join(f"{k}={v}" for k, v in sorted(getattr(message, head).items())) or "-"
    values = list(getattr(message, head)) if field.is_repeated else [getattr(message, head)]
    texts = [text_of(item, rest) if rest else _scalar_text(field, item) for item in values]
    return ", ".join(texts) or "-"


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def print_table(items: Sequence[Message], columns: Sequence[str], indent: str = "") -> None:
    rows = [[column.rsplit(".", 1)[-1].upper() for column in columns]]
    rows += [[text_of(item, column) for column in columns] for item in items]
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


def print_block(message: Message, skip: Sequence[str] = ()) -> None:
    """Prints ``key: value`` lines; repeated messages follow as indented tables."""
    fields = message.DESCRIPTOR.fields_by_name
    paths = _leaf_paths(message.DESCRIPTOR, skip)
    tables = [p for p in paths if p in fields and _is_table(fields[p])]
    width = max(len(path) for path in paths) + 1
    for path in (p for p in paths if p not in tables):
        click.echo(f"{path + ':':<{width}} {text_of(message, path)}")
    for path in tables:
        click.echo(f"{path}:")
        print_table(getattr(message, path), _leaf_paths(fields[path].message_type), "  ")


@dataclass(frozen=True)
class Console:
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
        self._print(response, lambda: print_block(getattr(response, item), skip))
        return response

    def list(self, method: str, request: Message, items: str, columns: Sequence[str]) -> None:
        response = self.client.page_through(method, request, items)
        self._print(response, lambda: print_table(getattr(response, items), columns))


def catalog_command(
    command: Callable[..., None], stub_class: Callable[[grpc.Channel], Any] = _CATALOG_STUB
) -> Callable[..., None]:
    """Adds the connection options and ``--json``; passes a ``console`` of a ``stub_class``
    client to the command."""

    @connection_options
    @click.option("--json", "as_json", is_flag=True, help="Print the response as JSON.")
    @functools.wraps(command)
    def run(*args: Any, settings: Settings, as_json: bool, **kwargs: Any) -> None:
        with open_catalog(settings, stub_class) as client:
            command(*args, console=Console(client, as_json), **kwargs)

    return run


class ProtoEnumChoice(click.Choice):  # type: ignore[type-arg]
    """A choice among an enum's CLI words; converts to the enum value name."""

    def __init__(self, enum: EnumDescriptor) -> None:
        self.words = enum_words(enum)
        super().__init__(list(self.words))

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return self.words[str(super().convert(value, param, ctx))]


class Parsed(click.ParamType):
    """Text parsed by a function; its ValueError is a usage error naming the option."""

    def __init__(self, name: str, parse: Callable[[str], Any]) -> None:
        self.name, self.parse = name, parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return self.parse(value) if isinstance(value, str) else value
        except ValueError as exc:
            self.fail(f"{value!r}: {exc}", param, ctx)


REGION = Parsed("REGION_CODE", lambda code: catalog_pb2.RowFilter(region_code=code))
TIME = Parsed("ISO-8601", lambda text: datetime.datetime.fromisoformat(text).astimezone())
HEX = Parsed("HEX", bytes.fromhex)
