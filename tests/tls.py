"""A test deployment with its own CA: a gateway on mutual TLS, and `lijiao pki` to
issue and revoke client certificates as an operator would. The ``deployment`` fixture
is offered to every test of tests/exchange by its conftest."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from adapters.connection import ClientCertificate, auth_metadata, open_blocking_channel
from catalog.v1 import catalog_pb2 as pb
from catalog.v1 import catalog_pb2_grpc
from exchange.cli import main
from exchange.gate import pki
from tests.gateway_harness import RunningGateway


def where(gateway: RunningGateway) -> list[str]:
    """The options that point `lijiao pki` at a gateway's catalog."""
    args = ["--data-dir", str(gateway.data_dir)]
    if gateway.settings.database_url:
        args += ["--database-url", gateway.settings.database_url]
    return args


@dataclass
class Deployment:
    ca: pki.Authority
    gateway: RunningGateway
    folder: Path

    def issue(self, *args: str) -> ClientCertificate:
        """Runs `lijiao pki issue` against the gateway's catalog."""
        out = self.folder / "clients"
        result = CliRunner().invoke(
            main,
            [
                "pki",
                "issue",
                "--dir",
                str(self.ca.folder),
                "--out",
                str(out),
                *where(self.gateway),
                *args,
            ],
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        name = (
            args[args.index("--system") + 1]
            if "--system" in args
            else args[args.index("--name") + 1]
        )
        return ClientCertificate(out / f"{name}-cert.pem", out / f"{name}-key.pem")

    def call(
        self, identity: ClientCertificate | None, token: str = "", ca: Path | None = None
    ) -> Any:
        channel = open_blocking_channel(
            self.gateway.target, ca_cert=ca or self.ca.folder / pki.CA_CERT, client_cert=identity
        )
        with channel:
            stub = catalog_pb2_grpc.CatalogServiceStub(channel)
            return stub.ListDepartments(
                pb.ListDepartmentsRequest(), metadata=auth_metadata(token), timeout=10
            )


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    ca = pki.Authority.create(tmp_path / "ca", "test CA")
    cert, key, _ = ca.issue(tmp_path / "tls", "localhost", server_names=("localhost", "127.0.0.1"))
    gateway = RunningGateway(
        tmp_path / "gw",
        insecure=False,
        tls_cert=cert,
        tls_key=key,
        client_ca=ca.folder / pki.CA_CERT,
    )
    try:
        yield Deployment(ca, gateway, tmp_path)
    finally:
        gateway.stop()
