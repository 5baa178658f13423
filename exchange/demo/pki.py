"""The demo's PKI: a throwaway deployment CA, the gateway's certificate, and a client
certificate for every principal, bound in the catalog as ``lijiao pki issue`` binds them.

Everything in the demo talks mutual TLS: each principal has its own channel, and the
gateway knows who calls from the certificate alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from adapters.connection import ClientCertificate, open_channel
from catalog.credentials import bind_certificate_at
from catalog.models import Role
from catalog.v1 import approval_pb2_grpc, audit_pb2_grpc, catalog_pb2_grpc
from exchange.gate import pki


@dataclass
class Caller:
    """One principal's mutual-TLS channel to the gateway, with the service stubs."""

    name: str
    certificate: ClientCertificate
    channel: grpc.aio.Channel

    @property
    def catalog(self) -> catalog_pb2_grpc.CatalogServiceStub:
        return catalog_pb2_grpc.CatalogServiceStub(self.channel)

    @property
    def approvals(self) -> approval_pb2_grpc.ApprovalServiceStub:
        return approval_pb2_grpc.ApprovalServiceStub(self.channel)

    @property
    def audit(self) -> audit_pb2_grpc.AuditServiceStub:
        return audit_pb2_grpc.AuditServiceStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()


class DemoPKI:
    """A CA in ``folder``, the gateway's certificate, and certificates for principals."""

    def __init__(self, folder: Path, catalog_url: str) -> None:
        self.folder = folder
        self.catalog_url = catalog_url
        self.authority = pki.Authority.create(folder / "ca", "lijiao demo CA", days=2)
        self.gateway_cert, self.gateway_key, _ = self.authority.issue(
            folder / "gateway", "localhost", server_names=("localhost", "127.0.0.1"), days=2
        )
        self.target = ""
        self._callers: list[Caller] = []

    @property
    def ca_cert(self) -> Path:
        """The CA certificate: clients trust it for the gateway, the gateway for clients."""
        return self.authority.folder / pki.CA_CERT

    def certificate(
        self, name: str, role: Role, department: str | None = None, system: str | None = None
    ) -> ClientCertificate:
        """Issues a client certificate to a principal (created when new) and binds it."""
        cert, key, issued = self.authority.issue(self.folder / "clients", name, days=2)
        bind_certificate_at(
            self.catalog_url,
            pki.fingerprint(issued),
            name=name,
            role=role,
            department=department,
            system=system,
        )
        return ClientCertificate(cert, key)

    def caller(
        self, name: str, role: Role, department: str | None = None, system: str | None = None
    ) -> Caller:
        """A principal's own mutual-TLS channel (closed by :meth:`close`)."""
        return self.caller_with(name, self.certificate(name, role, department, system))

    def caller_with(self, name: str, certificate: ClientCertificate) -> Caller:
        """A channel presenting a certificate issued before (closed by :meth:`close`)."""
        channel = open_channel(self.target, ca_cert=self.ca_cert, client_cert=certificate)
        made = Caller(name, certificate, channel)
        self._callers.append(made)
        return made

    async def close(self) -> None:
        """Closes every caller's channel."""
        for made in self._callers:
            await made.close()
        self._callers.clear()
