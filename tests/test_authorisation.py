"""docs/security.md's authorisation table is the specification: walk every RPC of the
gateway with every role and check the gateway does what the table says.

A role the table does not list must be refused by the role gate (PERMISSION_DENIED
ROLE_NOT_ALLOWED with ``allowed_roles`` in the ErrorInfo). A listed role must get past
the gate (its empty request may still be refused for what it lacks, never for the role).
Every RPC the gateway serves must be in the table, and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import symbol_database

from adapters.connection import auth_metadata, open_blocking_channel
from adapters.errors import error_info
from catalog.models import Role
from exchange.server import SERVICE_NAMES
from tests.gateway_harness import RunningGateway
from tests.world import World, build_world

SECURITY = Path(__file__).resolve().parent.parent / "docs" / "security.md"
ROW = re.compile(r"^\| (\w+Service) \| (\w+) \| ([A-Z_, ]+|any) \|")


def table() -> dict[tuple[str, str], set[Role] | None]:
    """(service, RPC) -> allowed roles; None for any authenticated principal."""
    rows: dict[tuple[str, str], set[Role] | None] = {}
    for line in SECURITY.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            service, method, roles = match.groups()
            rows[(service, method)] = (
                None if roles == "any" else {Role(r.strip()) for r in roles.split(",")}
            )
    return rows


def served() -> Iterator[tuple[str, Any]]:
    pool = symbol_database.Default().pool
    for full_name in SERVICE_NAMES:
        service = pool.FindServiceByName(full_name)
        for method in service.methods:
            yield full_name, method


@pytest.fixture(scope="module")
def callers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningGateway, dict[Role, str]]]:
    gateway = RunningGateway(tmp_path_factory.mktemp("authz") / "gw")
    world: World = build_world(gateway)
    tokens = {
        Role.SYSTEM: world.systems["CIVIL-AFFAIRS"].token,
        Role.DATA_OFFICER: gateway.issue_token("wang", Role.DATA_OFFICER, department="PSB"),
        Role.PLATFORM_OFFICER: gateway.issue_token(
            "zhao", Role.PLATFORM_OFFICER, department="CIVIL"
        ),
        Role.AUDITOR: gateway.issue_token("shen", Role.AUDITOR),
        Role.ADMINISTRATOR: gateway.admin_token,
    }
    try:
        yield gateway, tokens
    finally:
        gateway.stop()


def test_the_table_lists_every_rpc_the_gateway_serves_and_no_other() -> None:
    listed = set(table())
    serving = {(full.rsplit(".", 1)[-1], method.name) for full, method in served()}
    assert listed == serving, (
        f"missing from docs/security.md: {sorted(serving - listed)}; "
        f"listed but not served: {sorted(listed - serving)}"
    )


def call(channel: grpc.Channel, full: str, method: Any, token: str) -> grpc.RpcError | None:
    """Calls a method with an empty request of its type; returns the error, if any."""
    path = f"/{full}/{method.name}"
    request_class = symbol_database.Default().GetSymbol(method.input_type.full_name)
    response_class = symbol_database.Default().GetSymbol(method.output_type.full_name)
    serialize, parse = request_class.SerializeToString, response_class.FromString
    metadata = auth_metadata(token)
    try:
        if method.client_streaming:
            stub = channel.stream_stream(path, serialize, parse)
            for _ in stub(iter([request_class()]), metadata=metadata, timeout=10):
                pass
        elif method.server_streaming:
            stub = channel.unary_stream(path, serialize, parse)
            for _ in stub(request_class(), metadata=metadata, timeout=10):
                pass
        else:
            channel.unary_unary(path, serialize, parse)(
                request_class(), metadata=metadata, timeout=10
            )
    except grpc.RpcError as error:
        return error
    return None


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_every_rpc_admits_exactly_the_roles_of_the_table(
    callers: tuple[RunningGateway, dict[Role, str]], role: Role
) -> None:
    gateway, tokens = callers
    rules = table()
    wrong: list[str] = []
    with open_blocking_channel(gateway.target, insecure=True, quiet=True) as channel:
        for full, method in served():
            allowed = rules[(full.rsplit(".", 1)[-1], method.name)]
            error = call(channel, full, method, tokens[role])
            gated = (
                error is not None
                and error.code() == grpc.StatusCode.PERMISSION_DENIED
                and error_info(error)[0] == "ROLE_NOT_ALLOWED"
                and "allowed_roles" in error_info(error)[1]
            )
            if allowed is None or role in allowed:
                if gated:
                    wrong.append(f"{method.name}: {role.value} refused by the role gate")
            elif not gated:
                got = "success" if error is None else f"{error.code().name} {error_info(error)[0]}"
                wrong.append(f"{method.name}: {role.value} not refused by the role gate ({got})")
    assert not wrong, "\n".join(wrong)


def test_an_unauthenticated_caller_gets_nothing(
    callers: tuple[RunningGateway, dict[Role, str]],
) -> None:
    gateway, _tokens = callers
    with open_blocking_channel(gateway.target, insecure=True, quiet=True) as channel:
        for full, method in served():
            error = call(channel, full, method, "")
            assert error is not None and error.code() == grpc.StatusCode.UNAUTHENTICATED, (
                method.name
            )
