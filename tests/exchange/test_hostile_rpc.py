"""Regression specifications for the RPC gate under hostile requests.

Out-of-range timestamps, malformed bytes on every RPC shape, NULs in a unary-stream
request, inputs long enough to overflow gRPC's trailers, and malformed bytes from a
caller whose credential is no good. For every case: the precise status and ErrorInfo
reason, nothing changed but a DENIAL entry, and no traceback in the gateway's log.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2, status_pb2

from adapters.connection import ClientCertificate, auth_metadata, open_blocking_channel
from adapters.errors import error_info
from catalog import ledger
from catalog.ledger import EntryFilter, EntryKind
from catalog.models import Role
from catalog.v1 import audit_pb2, audit_pb2_grpc
from catalog.v1 import catalog_pb2 as pb
from envelope.errors import InvalidArgument, Reason
from exchange.cli import main
from exchange.gate import pki
from exchange.gate.rpc import status_of
from exchange.v1 import exchange_pb2, exchange_pb2_grpc
from tests.exchange.test_bad_input import only_a_denial, state
from tests.gateway_harness import RunningGateway
from tests.tls import Deployment, where
from tests.wire import encode, publish, signed_batch
from tests.world import PERSON_SCHEMA, World, build_world, person

Metadata = tuple[tuple[str, str], ...]
GARBAGE = b"\xff\xff\xff"
LONG = 10_000

GET_DEPARTMENT = "/catalog.v1.CatalogService/GetDepartment"
EXPORT_LEDGER = "/catalog.v1.AuditService/ExportLedger"
PUBLISH = "/exchange.v1.ExchangeService/Publish"
SUBSCRIBE = "/exchange.v1.ExchangeService/Subscribe"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
HEALTH_WATCH = "/grpc.health.v1.Health/Watch"
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"

# Timestamps a google.protobuf.Timestamp may not hold: years 1-9999, nanos 0-999,999,999.
OUT_OF_RANGE = {
    "year 10000": Timestamp(seconds=253_402_300_800),
    "year 0": Timestamp(seconds=-62_135_596_801),
    "negative nanos": Timestamp(seconds=0, nanos=-1),
    "a whole second of nanos": Timestamp(seconds=0, nanos=1_000_000_000),
    "the largest int64": Timestamp(seconds=2**63 - 1),
}


@pytest.fixture
def world(gateway: RunningGateway) -> World:
    return build_world(gateway)


@pytest.fixture
def auditor(world: World) -> Metadata:
    return auth_metadata(world.gateway.issue_token("shen", Role.AUDITOR))


@pytest.fixture
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fails the test if the gateway logged a traceback (a refusal is not an incident)."""
    caplog.set_level(logging.INFO)
    yield
    logged = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.exc_info]
    assert not logged, logged


def refusal(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str, dict[str, str], str]:
    """The code, ErrorInfo reason and metadata, and message of a refused call."""
    with pytest.raises(grpc.RpcError) as raised:
        call()
    error: Any = raised.value
    reason, metadata = error_info(error)
    return error.code(), reason, metadata, error.details() or ""


def denial_rows(gateway: RunningGateway) -> list[tuple[str, str, str]]:
    """(principal, reason, rpc) of every DENIAL entry, oldest first."""
    assert gateway.gateway is not None
    sessions = gateway.gateway.catalog.sessions
    rows = ledger.entries(sessions, EntryFilter(kinds=(EntryKind.DENIAL,)), 100_000)
    out = []
    for row in rows:
        details = json.loads(row.content)["details"]
        out.append((row.principal, details["reason"], details["rpc"]))
    return out


def raw_call(channel: grpc.Channel, method: str, metadata: Metadata) -> Callable[[], Any]:
    """A call of ``method`` sending GARBAGE as its (first) request, in the method's shape."""
    kwargs: dict[str, Any] = {"request_serializer": bytes, "response_deserializer": bytes}
    if method in (PUBLISH, SUBSCRIBE, REFLECTION):
        stream = channel.stream_stream(method, **kwargs)
        return lambda: list(stream(iter([GARBAGE]), metadata=metadata, timeout=10))
    if method in (EXPORT_LEDGER, HEALTH_WATCH):
        responses = channel.unary_stream(method, **kwargs)
        return lambda: list(responses(GARBAGE, metadata=metadata, timeout=10))
    unary = channel.unary_unary(method, **kwargs)
    return lambda: unary(GARBAGE, metadata=metadata, timeout=10)


# --- out-of-range timestamps --------------------------------------------------------


def test_an_out_of_range_revoke_time_is_invalid_field(world: World, no_tracebacks: None) -> None:
    key_id = world.systems["PSB-HUKOU"].signer.key_id

    def revoke(stamp: Timestamp) -> Any:
        return world.stub.RevokeSigningKey(
            pb.RevokeSigningKeyRequest(
                system="PSB-HUKOU", key_id=key_id, reason="rotation", revoke_time=stamp
            ),
            metadata=world.admin(),
        )

    # only_a_denial then publishes with this key: it was not revoked
    with only_a_denial(world):
        for case, stamp in OUT_OF_RANGE.items():
            code, reason, metadata, _ = refusal(functools.partial(revoke, stamp))
            assert (code, reason, metadata) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_FIELD",
                {"field": "revoke_time"},
            ), case


def test_an_out_of_range_grant_expire_time_is_invalid_field(
    world: World, no_tracebacks: None
) -> None:
    world.department("TAX")
    world.system("TAX-CORE", "TAX")
    with only_a_denial(world):
        for case, stamp in OUT_OF_RANGE.items():
            code, reason, metadata, _ = refusal(
                functools.partial(world.grant, "RESIDENTS", "TAX-CORE", expire_time=stamp)
            )
            assert (code, reason, metadata) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_FIELD",
                {"field": "expire_time"},
            ), case


def _ledger_call(
    world: World, rpc: str, auditor: Metadata, where: audit_pb2.LedgerFilter
) -> Callable[[], Any]:

    def call() -> Any:
        with open_blocking_channel(world.gateway.target, insecure=True, quiet=True) as channel:
            audit = audit_pb2_grpc.AuditServiceStub(channel)
            if rpc == "ListLedgerEntries":
                return audit.ListLedgerEntries(
                    audit_pb2.ListLedgerEntriesRequest(filter=where), metadata=auditor, timeout=10
                )
            if rpc == "SummarizeExchanges":
                return audit.SummarizeExchanges(
                    audit_pb2.SummarizeExchangesRequest(filter=where), metadata=auditor, timeout=10
                )
            request = audit_pb2.ExportLedgerRequest(
                filter=where, format=audit_pb2.EXPORT_FORMAT_JSONL
            )
            return list(audit.ExportLedger(request, metadata=auditor, timeout=10))

    return call


@pytest.mark.parametrize("rpc", ["ListLedgerEntries", "SummarizeExchanges", "ExportLedger"])
def test_an_out_of_range_ledger_filter_time_is_invalid_field(
    world: World, auditor: Metadata, rpc: str, no_tracebacks: None
) -> None:
    with only_a_denial(world):
        for field in ("start_time", "end_time"):
            for case, stamp in OUT_OF_RANGE.items():
                where = audit_pb2.LedgerFilter(**{field: stamp})
                code, reason, metadata, _ = refusal(_ledger_call(world, rpc, auditor, where))
                assert (code, reason, metadata) == (
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "INVALID_FIELD",
                    {"field": f"filter.{field}"},
                ), (field, case)


def test_ledger_filter_times_at_the_ends_of_the_range_are_served(
    world: World, auditor: Metadata, no_tracebacks: None
) -> None:
    everything = audit_pb2.LedgerFilter(
        start_time=Timestamp(seconds=-62_135_596_800),
        end_time=Timestamp(seconds=253_402_300_799, nanos=999_999_999),
    )
    assert _ledger_call(world, "ListLedgerEntries", auditor, everything)().entries
    assert _ledger_call(world, "ExportLedger", auditor, everything)()
    channel = open_blocking_channel(world.gateway.target, insecure=True, quiet=True)
    audit = audit_pb2_grpc.AuditServiceStub(channel)
    for zone in ("Asia/Shanghai", "Pacific/Kiritimati", "Etc/GMT+12"):
        audit.SummarizeExchanges(
            audit_pb2.SummarizeExchangesRequest(filter=everything, time_zone=zone),
            metadata=auditor,
            timeout=10,
        )


# --- malformed bytes on every RPC shape ----------------------------------------------

SHAPES = {
    "unary": (GET_DEPARTMENT, "admin"),
    "unary-stream": (EXPORT_LEDGER, "shen"),
    "stream-stream Publish": (PUBLISH, "PSB-HUKOU"),
    "stream-stream Subscribe": (SUBSCRIBE, "CIVIL-AFFAIRS"),
}


def _token(world: World, principal: str) -> str:
    if principal == "admin":
        return world.gateway.admin_token
    if principal == "shen":
        return world.gateway.issue_token("shen", Role.AUDITOR)
    return world.systems[principal].token


@pytest.mark.parametrize("shape", SHAPES)
def test_malformed_bytes_are_malformed_message_on_every_rpc_shape(
    world: World, shape: str, no_tracebacks: None
) -> None:
    method, principal = SHAPES[shape]
    token = _token(world, principal)
    with grpc.insecure_channel(world.gateway.target) as channel, only_a_denial(world):
        code, reason, _, _ = refusal(raw_call(channel, method, auth_metadata(token)))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_MESSAGE")
    # the denial names the caller: it was authenticated before its bytes were judged
    assert (principal, "MALFORMED_MESSAGE", method) in denial_rows(world.gateway)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("token", ["", "lj_nope_nope"])
def test_malformed_bytes_without_a_valid_credential_are_unauthenticated(
    world: World, shape: str, token: str, no_tracebacks: None
) -> None:
    method, _ = SHAPES[shape]
    before = state(world)
    with grpc.insecure_channel(world.gateway.target) as channel:
        code, reason, _, _ = refusal(raw_call(channel, method, auth_metadata(token)))
    assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")
    assert state(world) == before
    reasons = {row[1] for row in denial_rows(world.gateway)}
    assert "UNAUTHENTICATED" in reasons and "MALFORMED_MESSAGE" not in reasons


@pytest.mark.parametrize("method", [HEALTH_CHECK, HEALTH_WATCH, REFLECTION])
def test_malformed_requests_to_grpcs_own_services_are_malformed_message(
    world: World, method: str, no_tracebacks: None
) -> None:
    """Health checking and reflection need no credential, so none is asked for first."""
    with grpc.insecure_channel(world.gateway.target) as channel:
        code, reason, _, _ = refusal(raw_call(channel, method, ()))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_MESSAGE")


def _tls_channel(deployment: Deployment, identity: ClientCertificate) -> grpc.Channel:
    return open_blocking_channel(
        deployment.gateway.target,
        ca_cert=deployment.ca.folder / pki.CA_CERT,
        client_cert=identity,
    )


MTLS_METHODS = (GET_DEPARTMENT, EXPORT_LEDGER, PUBLISH)


def test_malformed_bytes_from_a_revoked_certificate_are_certificate_revoked(
    deployment: Deployment, no_tracebacks: None
) -> None:
    ops = deployment.issue("--role", "administrator", "--name", "ops")
    with _tls_channel(deployment, ops) as channel:
        code, reason, _, _ = refusal(raw_call(channel, GET_DEPARTMENT, ()))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_MESSAGE")
    assert ("ops", "MALFORMED_MESSAGE", GET_DEPARTMENT) in denial_rows(deployment.gateway)
    revoked = CliRunner().invoke(
        main,
        [
            "pki",
            "revoke",
            "--dir",
            str(deployment.ca.folder),
            str(ops.cert),
            *where(deployment.gateway),
        ],
    )
    assert revoked.exit_code == 0, revoked.output
    before = len(denial_rows(deployment.gateway))
    deadline = time.monotonic() + 10
    with _tls_channel(deployment, ops) as channel:
        for method in MTLS_METHODS:
            while True:
                code, reason, _, _ = refusal(raw_call(channel, method, ()))
                if reason != "MALFORMED_MESSAGE" or time.monotonic() > deadline:
                    break
                time.sleep(0.2)  # the authenticator's cache forgets within seconds
            assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "CERTIFICATE_REVOKED")
    after = denial_rows(deployment.gateway)[before:]
    assert after and {row[1] for row in after} <= {"CERTIFICATE_REVOKED", "MALFORMED_MESSAGE"}
    assert after[-1][0].startswith("certificate CN=ops")


def test_malformed_bytes_from_an_unbound_certificate_are_unknown_certificate(
    deployment: Deployment, tmp_path: Path, no_tracebacks: None
) -> None:
    cert, key, _ = deployment.ca.issue(tmp_path / "loose", "ops")
    with _tls_channel(deployment, ClientCertificate(cert, key)) as channel:
        for method in MTLS_METHODS:
            code, reason, _, _ = refusal(raw_call(channel, method, ()))
            assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "UNKNOWN_CERTIFICATE")
    assert "MALFORMED_MESSAGE" not in {row[1] for row in denial_rows(deployment.gateway)}


# --- long inputs -----------------------------------------------------------------------


def _publish_with(world: World, **changes: str) -> Any:
    publisher = world.systems["PSB-HUKOU"]
    batch = signed_batch(
        publisher.signer, "RESIDENTS", PERSON_SCHEMA, encode(PERSON_SCHEMA, [person(1)])
    )
    for name, value in changes.items():
        setattr(batch, name, value)
    outcome = publish(world.gateway.target, publisher.token, [batch])
    if outcome.code is None:
        pytest.fail("the batch was accepted")
    return outcome.code, outcome.reason, outcome.metadata, outcome.details


def _subscribe_as(world: World, subscription: str) -> Any:
    with open_blocking_channel(world.gateway.target, insecure=True, quiet=True) as channel:
        stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
        opening = exchange_pb2.SubscriptionOpen(resource="RESIDENTS", subscription=subscription)
        return refusal(
            lambda: list(
                stub.Subscribe(
                    iter([exchange_pb2.SubscribeRequest(open=opening)]),
                    metadata=auth_metadata(world.systems["CIVIL-AFFAIRS"].token),
                    timeout=10,
                )
            )
        )


def _summary_in(world: World, zone: str, auditor: Metadata) -> Any:
    with open_blocking_channel(world.gateway.target, insecure=True, quiet=True) as channel:
        audit = audit_pb2_grpc.AuditServiceStub(channel)
        return refusal(
            lambda: audit.SummarizeExchanges(
                audit_pb2.SummarizeExchangesRequest(time_zone=zone), metadata=auditor, timeout=10
            )
        )


def _department(code: str) -> pb.Department:
    return pb.Department(
        code=code, name="x", level=pb.ADMINISTRATIVE_LEVEL_CITY, region_code="510100"
    )


LONG_INPUTS: dict[str, tuple[Callable[[World, str, Metadata], Any], str, str, str]] = {
    "department code in CreateDepartment": (
        lambda w, text, _: refusal(
            lambda: w.stub.CreateDepartment(
                pb.CreateDepartmentRequest(department=_department(text)), metadata=w.admin()
            )
        ),
        "D",
        "INVALID_ARGUMENT",
        "INVALID_FIELD",
    ),
    "department code in GetDepartment": (
        lambda w, text, _: refusal(
            lambda: w.stub.GetDepartment(pb.GetDepartmentRequest(code=text), metadata=w.admin())
        ),
        "D",
        "NOT_FOUND",
        "UNKNOWN_DEPARTMENT",
    ),
    "a Chinese department code in GetDepartment": (
        lambda w, text, _: refusal(
            lambda: w.stub.GetDepartment(pb.GetDepartmentRequest(code=text), metadata=w.admin())
        ),
        "公",
        "NOT_FOUND",
        "UNKNOWN_DEPARTMENT",
    ),
    "signing key id in Publish": (
        lambda w, text, _: _publish_with(w, signing_key_id=text),
        "k",
        "FAILED_PRECONDITION",
        "UNKNOWN_SIGNING_KEY",
    ),
    "resource in Publish": (
        lambda w, text, _: _publish_with(w, resource=text),
        "R",
        "NOT_FOUND",
        "UNKNOWN_RESOURCE",
    ),
    "subscription name in Subscribe": (
        lambda w, text, _: _subscribe_as(w, text),
        "s",
        "INVALID_ARGUMENT",
        "INVALID_FIELD",
    ),
    "time zone in SummarizeExchanges": (
        lambda w, text, auditor: _summary_in(w, text, auditor),
        "Z",
        "INVALID_ARGUMENT",
        "INVALID_FIELD",
    ),
    "a Chinese time zone in SummarizeExchanges": (
        lambda w, text, auditor: _summary_in(w, text, auditor),
        "区",
        "INVALID_ARGUMENT",
        "INVALID_FIELD",
    ),
}


@pytest.mark.parametrize("case", LONG_INPUTS)
def test_a_10000_character_input_gets_its_precise_refusal(
    world: World, auditor: Metadata, case: str, no_tracebacks: None
) -> None:
    call, letter, code, reason = LONG_INPUTS[case]
    with only_a_denial(world):
        got_code, got_reason, metadata, message = call(world, letter * LONG, auditor)
    assert (got_code.name, got_reason) == (code, reason)
    assert len(message) <= 1000
    assert all(len(v) <= 200 for v in metadata.values())


def _trailer_bytes(status: grpc.Status) -> int:
    """What gRPC counts against its metadata limit for a status's trailers: each entry's
    key and value as sent (the message percent-encoded, binary values base64) plus 32."""
    message = "".join(
        chr(b) if 0x20 <= b <= 0x7E and b != ord("%") else f"%{b:02X}"
        for b in status.details.encode()
    )
    size = len("grpc-message") + len(message) + 32 + len("grpc-status") + 2 + 32
    for key, value in status.trailing_metadata:
        length = -(-len(value) // 3) * 4 if key.endswith("-bin") else len(value)
        size += len(key) + length + 32
    return size


def test_every_refusal_status_fits_within_grpcs_metadata_limit() -> None:
    huge = "码" * LONG
    error = InvalidArgument(
        Reason.INVALID_FIELD,
        f"{huge} and\x00\n{huge}",
        {f"{huge}{i}": huge for i in range(100)},
        retry_after=2.5,
    )
    status = status_of(error)
    assert _trailer_bytes(status) < 8 << 10  # gRPC's soft limit; the hard one is 16 KiB
    details = status_pb2.Status.FromString(
        dict(status.trailing_metadata)["grpc-status-details-bin"]
    )
    info = error_details_pb2.ErrorInfo()
    details.details[0].Unpack(info)
    assert (info.reason, info.domain) == ("INVALID_FIELD", "lijiao.gov")
    assert info.metadata and details.message == status.details


def test_a_short_refusal_status_is_left_whole() -> None:
    error = InvalidArgument(
        Reason.INVALID_FIELD, "code '公安' is not a code", {"field": "code", "value": "公安"}
    )
    status = status_of(error)
    details = status_pb2.Status.FromString(
        dict(status.trailing_metadata)["grpc-status-details-bin"]
    )
    info = error_details_pb2.ErrorInfo()
    details.details[0].Unpack(info)
    assert status.details == error.message
    assert dict(info.metadata) == error.metadata


def test_a_refusal_keeps_the_longest_batch_id_whole_whatever_its_script() -> None:
    """The SDK matches a refusal to its pending batch by metadata.batch_id: a batch id
    of 128 CJK characters (the most a batch id may have) must come back whole."""
    batch_id = "批" * 128
    error = InvalidArgument(
        Reason.BAD_SIGNATURE, "the signature does not verify", {"batch_id": batch_id}
    )
    details = status_pb2.Status.FromString(
        dict(status_of(error).trailing_metadata)["grpc-status-details-bin"]
    )
    info = error_details_pb2.ErrorInfo()
    details.details[0].Unpack(info)
    assert info.metadata["batch_id"] == batch_id


# --- NULs --------------------------------------------------------------------------------


def test_a_nul_in_an_export_filter_is_invalid_field(
    world: World, auditor: Metadata, no_tracebacks: None
) -> None:
    with only_a_denial(world):
        for field in ("department", "subject"):
            where = audit_pb2.LedgerFilter(**{field: "PSB\x00"})
            code, reason, metadata, _ = refusal(_ledger_call(world, "ExportLedger", auditor, where))
            assert (code, reason, metadata) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_FIELD",
                {"field": f"filter.{field}"},
            )


@pytest.mark.parametrize("field", ["resource", "subscription"])
def test_a_nul_in_a_subscription_open_is_invalid_field(
    world: World, field: str, no_tracebacks: None
) -> None:
    opening = exchange_pb2.SubscriptionOpen(resource="RESIDENTS", subscription="rerun")
    setattr(opening, field, "RESIDENTS\x00")
    with open_blocking_channel(world.gateway.target, insecure=True, quiet=True) as channel:
        stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
        with only_a_denial(world):
            code, reason, metadata, _ = refusal(
                lambda: list(
                    stub.Subscribe(
                        iter([exchange_pb2.SubscribeRequest(open=opening)]),
                        metadata=auth_metadata(world.systems["CIVIL-AFFAIRS"].token),
                        timeout=10,
                    )
                )
            )
    assert (code, reason, metadata) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_FIELD",
        {"field": field},
    )
