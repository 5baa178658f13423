"""Mutual TLS: callers are known by their certificates, and only those the catalog binds.

A real gateway serves with a certificate of a test deployment CA and requires client
certificates of that CA; `lijiao pki` makes and revokes them, as an operator would.
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner

from adapters.connection import ClientCertificate, open_blocking_channel
from adapters.errors import error_info
from catalog.v1 import catalog_pb2 as pb
from catalog.v1 import catalog_pb2_grpc
from exchange.cli import main
from exchange.gate import pki
from tests.gateway_harness import RunningGateway
from tests.tls import Deployment, where
from tests.wire import RawSubscription


def refused(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


def test_a_bound_certificate_is_the_callers_identity(deployment: Deployment) -> None:
    ops = deployment.issue("--role", "administrator", "--name", "ops")
    assert deployment.call(ops).departments == []
    # the key is private to its owner; the certificate names the principal
    assert ops.key.stat().st_mode & 0o077 == 0
    assert (
        "CN=ops"
        in pki.x509.load_pem_x509_certificate(ops.cert.read_bytes()).subject.rfc4514_string()
    )


def test_plaintext_and_certificate_less_connections_are_refused(deployment: Deployment) -> None:
    target = deployment.gateway.target
    with open_blocking_channel(target, insecure=True, quiet=True) as plain:
        error = refused(
            lambda: catalog_pb2_grpc.CatalogServiceStub(plain).ListDepartments(
                pb.ListDepartmentsRequest(), timeout=5
            )
        )
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    # TLS, but no client certificate: the handshake fails, a token does not help
    error = refused(lambda: deployment.call(None, token=deployment.gateway.admin_token))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_a_certificate_of_another_ca_is_refused(deployment: Deployment, tmp_path: Path) -> None:
    other = pki.Authority.create(tmp_path / "other-ca", "someone else")
    cert, key, _ = other.issue(tmp_path / "other", "ops")
    error = refused(lambda: deployment.call(ClientCertificate(cert, key)))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_an_expired_certificate_is_refused(deployment: Deployment, tmp_path: Path) -> None:
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=10)
    cert, key, _ = deployment.ca.issue(tmp_path / "old", "ops", days=1, not_before=long_ago)
    error = refused(lambda: deployment.call(ClientCertificate(cert, key)))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_a_certificate_not_bound_to_a_principal_is_refused(
    deployment: Deployment, tmp_path: Path
) -> None:
    cert, key, _ = deployment.ca.issue(tmp_path / "loose", "ops")  # issued, never registered
    error = refused(lambda: deployment.call(ClientCertificate(cert, key)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_info(error)[0] == "UNKNOWN_CERTIFICATE"


def test_a_revoked_certificate_is_refused_within_seconds_without_a_restart(
    deployment: Deployment,
) -> None:
    ops = deployment.issue("--role", "administrator", "--name", "ops")
    deployment.call(ops)
    result = CliRunner().invoke(
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
    assert result.exit_code == 0 and "revoked certificate" in result.output
    deadline = time.monotonic() + 10
    while True:
        try:
            deployment.call(ops)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
            assert error_info(error)[0] == "CERTIFICATE_REVOKED"
            break
        assert time.monotonic() < deadline, "the revoked certificate is still accepted"
        time.sleep(0.1)


def test_a_certificate_revoked_only_in_the_catalog_is_refused_too(deployment: Deployment) -> None:
    ops = deployment.issue("--role", "administrator", "--name", "ops")
    from catalog.credentials import revoke_certificate
    from catalog.db import close_catalog, open_catalog

    sessions = open_catalog(deployment.gateway.settings.catalog_url)
    with sessions() as session:
        fingerprint = pki.fingerprint_of_pem(ops.cert.read_bytes())
        assert revoke_certificate(session, fingerprint)
    close_catalog(sessions)
    deadline = time.monotonic() + 10
    while True:
        try:
            deployment.call(ops)
        except grpc.RpcError as error:
            assert error_info(error)[0] == "CERTIFICATE_REVOKED"
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_a_forged_crl_stops_nothing_and_is_refused(deployment: Deployment, tmp_path: Path) -> None:
    """A revocation list not signed by the trusted CA does not silently apply."""
    other = pki.Authority.create(tmp_path / "other-ca", "someone else")
    (deployment.ca.folder / pki.CRL).write_bytes((other.folder / pki.CRL).read_bytes())
    ops_cert, ops_key, _ = deployment.ca.issue(tmp_path / "x", "ops")
    error = refused(lambda: deployment.call(ClientCertificate(ops_cert, ops_key)))
    assert error.code() == grpc.StatusCode.INTERNAL  # loud, and the call is not served


def test_the_gateway_will_not_start_without_a_client_ca(tmp_path: Path) -> None:
    ca = pki.Authority.create(tmp_path / "ca", "test CA")
    cert, key, _ = ca.issue(tmp_path / "tls", "localhost", server_names=("127.0.0.1",))
    with pytest.raises(ValueError, match="requires client certificates"):
        RunningGateway(tmp_path / "gw", insecure=False, tls_cert=cert, tls_key=key)


def test_pki_init_refuses_to_overwrite_a_ca(tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["pki", "init", "--dir", str(tmp_path / "ca")])
    assert first.exit_code == 0 and "--client-ca" in first.output
    assert (tmp_path / "ca" / pki.CA_KEY).stat().st_mode & 0o777 == 0o600
    again = runner.invoke(main, ["pki", "init", "--dir", str(tmp_path / "ca")])
    assert again.exit_code == 1 and "already holds a CA" in again.output


def test_an_external_certificate_is_bound_with_register(
    deployment: Deployment, tmp_path: Path
) -> None:
    cert, key, _ = deployment.ca.issue(tmp_path / "ext", "shen")
    result = CliRunner().invoke(
        main,
        [
            "pki",
            "register",
            str(cert),
            "--role",
            "auditor",
            "--name",
            "shen",
            *where(deployment.gateway),
        ],
    )
    assert result.exit_code == 0, result.output
    deployment.call(ClientCertificate(cert, key))


def test_an_external_certificate_can_be_revoked_in_the_catalog(
    deployment: Deployment, tmp_path: Path
) -> None:
    other = pki.Authority.create(tmp_path / "other-ca", "their CA")
    cert, _key, _ = other.issue(tmp_path / "ext", "shen")
    runner = CliRunner()
    bound = runner.invoke(
        main,
        [
            "pki",
            "register",
            str(cert),
            "--role",
            "auditor",
            "--name",
            "shen",
            *where(deployment.gateway),
        ],
    )
    assert bound.exit_code == 0, bound.output
    revoked = runner.invoke(
        main,
        [
            "pki",
            "revoke",
            "--dir",
            str(deployment.ca.folder),
            str(cert),
            *where(deployment.gateway),
        ],
    )
    assert revoked.exit_code == 0 and "revoked in the catalog" in revoked.output


def test_pki_issue_never_overwrites_a_key_pair(deployment: Deployment) -> None:
    deployment.issue("--role", "administrator", "--name", "ops")
    again = CliRunner().invoke(
        main,
        [
            "pki",
            "issue",
            "--dir",
            str(deployment.ca.folder),
            "--out",
            str(deployment.folder / "clients"),
            "--role",
            "administrator",
            "--name",
            "ops",
            *where(deployment.gateway),
        ],
    )
    assert again.exit_code == 2 and "exists" in again.output


def test_an_open_stream_ends_soon_after_its_certificate_is_revoked(
    deployment: Deployment,
) -> None:
    import asyncio
    import json

    from adapters.connection import open_channel
    from exchange.v1 import exchange_pb2, exchange_pb2_grpc
    from tests.world import PERSON_SCHEMA

    ops = deployment.issue("--role", "administrator", "--name", "ops")
    channel = open_blocking_channel(
        deployment.gateway.target, ca_cert=deployment.ca.folder / pki.CA_CERT, client_cert=ops
    )
    stub = catalog_pb2_grpc.CatalogServiceStub(channel)
    stub.CreateDepartment(
        pb.CreateDepartmentRequest(
            department=pb.Department(code="PSB", name="PSB", level=1, region_code="510100")
        )
    )
    stub.CreateSystem(
        pb.CreateSystemRequest(system=pb.System(code="PSB-HUKOU", name="h", department="PSB"))
    )
    stub.CreateResource(
        pb.CreateResourceRequest(
            resource=pb.Resource(
                code="RESIDENTS",
                name="r",
                owner_department="PSB",
                sharing_type=pb.SHARING_TYPE_CONDITIONAL,
                classification=pb.CLASSIFICATION_GENERAL,
                key_fields=["id_number"],
            ),
            schema=json.dumps(PERSON_SCHEMA),
        )
    )
    stub.CreateGrant(
        pb.CreateGrantRequest(grant=pb.Grant(resource="RESIDENTS", grantee_system="PSB-HUKOU"))
    )
    channel.close()
    system = deployment.issue("--role", "system", "--system", "PSB-HUKOU")

    async def run() -> str:
        aio = open_channel(
            deployment.gateway.target,
            ca_cert=deployment.ca.folder / pki.CA_CERT,
            client_cert=system,
        )
        call = RawSubscription(
            exchange_pb2_grpc.ExchangeServiceStub(aio),
            exchange_pb2.SubscriptionOpen(resource="RESIDENTS"),
        ).call
        await call.initial_metadata()  # the stream is open and idle
        revoked = await asyncio.to_thread(
            CliRunner().invoke,
            main,
            [
                "pki",
                "revoke",
                "--dir",
                str(deployment.ca.folder),
                str(system.cert),
                *where(deployment.gateway),
            ],
        )
        assert revoked.exit_code == 0, revoked.output
        try:
            await asyncio.wait_for(call.read(), 15)
            reason = "stream still open"
        except grpc.aio.AioRpcError as error:
            reason = error_info(error)[0]
        await aio.close()
        return reason

    assert asyncio.run(run()) == "CERTIFICATE_REVOKED"


def test_the_cli_takes_its_certificate_from_the_environment(deployment: Deployment) -> None:
    ops = deployment.issue("--role", "administrator", "--name", "ops")
    env = {
        "LIJIAO_GATEWAY": deployment.gateway.target,
        "LIJIAO_CA_CERT": str(deployment.ca.folder / pki.CA_CERT),
        "LIJIAO_CLIENT_CERT": str(ops.cert),
        "LIJIAO_CLIENT_KEY": str(ops.key),
    }
    listed = CliRunner().invoke(main, ["catalog", "departments", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    half = CliRunner().invoke(
        main, ["catalog", "departments", "list"], env={**env, "LIJIAO_CLIENT_KEY": ""}
    )
    assert half.exit_code == 2 and "--client-key" in half.output


def test_principals_can_be_bound_before_the_gateway_first_starts(tmp_path: Path) -> None:
    pki.Authority.create(tmp_path / "ca", "test CA")
    data = tmp_path / "not-yet"
    issued = CliRunner().invoke(
        main,
        [
            "pki",
            "issue",
            "--dir",
            str(tmp_path / "ca"),
            "--role",
            "auditor",
            "--name",
            "shen",
            "--out",
            str(tmp_path / "shen"),
            "--data-dir",
            str(data),
        ],
    )
    assert issued.exit_code == 0, issued.output
    assert data.stat().st_mode & 0o777 == 0o700
