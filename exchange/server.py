"""The gateway process: wires catalog, record log, services, health and reflection.

Everything is assembled here, in one place: interceptors-free services whose refusals
are mapped by ``exchange.rpc``, gRPC health checking and server reflection (so
``grpcurl`` works), and the Prometheus endpoint.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from catalog.db import open_catalog
from catalog.service import Catalog
from catalog.v1 import catalog_pb2, catalog_pb2_grpc
from exchange.catalog_api import CatalogServicer
from exchange.catalog_view import CatalogView
from exchange.delivery import DeliveryPath
from exchange.exchange_api import ExchangeServicer
from exchange.log import RecordLog
from exchange.publishing import Limits, PublishPath
from exchange.rpc import Authenticator
from exchange.settings import Settings
from exchange.signing import Ed25519Signer
from exchange.v1 import exchange_pb2, exchange_pb2_grpc

log = logging.getLogger("lijiao.gateway")

SERVICE_NAMES = (
    exchange_pb2.DESCRIPTOR.services_by_name["ExchangeService"].full_name,
    catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name,
)


def load_or_create_gateway_key(settings: Settings) -> Ed25519Signer:
    """Loads the gateway's countersigning key, creating it on first start."""
    path = settings.gateway_key_path
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        Ed25519Signer.generate().save(path)
        log.info("created gateway signing key %s", path)
    return Ed25519Signer.from_file(path)


@dataclass
class Gateway:
    """A running gateway. Create with :meth:`start`, end with :meth:`stop`."""

    settings: Settings
    server: grpc.aio.Server
    port: int
    log: RecordLog
    catalog: Catalog
    signer: Ed25519Signer
    metrics_server: Any = None

    @property
    def target(self) -> str:
        """host:port clients connect to."""
        host = self.settings.listen.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    @classmethod
    async def start(cls, settings: Settings) -> Gateway:
        """Opens the stores, binds the port and starts serving.

        Raises:
            ValueError: Neither TLS files nor ``insecure`` were given.
        """
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        sessions = open_catalog(settings.catalog_url)
        catalog = Catalog(sessions)
        record_log = RecordLog(settings.log_path, synchronous=settings.synchronous)
        signer = load_or_create_gateway_key(settings)
        view = CatalogView(catalog)
        auth = Authenticator(sessions)
        limits = Limits(
            max_batch_records=settings.max_batch_records,
            max_record_bytes=settings.max_record_bytes,
            max_batch_bytes=settings.max_message_bytes // 2,
        )
        options = [
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
        server = grpc.aio.server(options=options)
        exchange_pb2_grpc.add_ExchangeServiceServicer_to_server(
            ExchangeServicer(
                auth,
                PublishPath(view, record_log, limits),
                DeliveryPath(view, record_log, signer, settings.ack_timeout_seconds),
                signer,
            ),
            server,
        )
        catalog_pb2_grpc.add_CatalogServiceServicer_to_server(
            CatalogServicer(auth, catalog), server
        )
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        port = _bind(server, settings)
        await server.start()
        for name in ("", *SERVICE_NAMES):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        metrics_server = None
        if settings.metrics_listen:
            host, _, metrics_port = settings.metrics_listen.rpartition(":")
            metrics_server, _thread = start_http_server(int(metrics_port), addr=host or "127.0.0.1")
        log.info("gateway serving on port %d", port)
        return cls(settings, server, port, record_log, catalog, signer, metrics_server)

    async def stop(self, grace: float = 1.0) -> None:
        """Stops serving, lets calls finish for ``grace`` seconds, closes the stores."""
        await self.server.stop(grace)
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
        self.log.close()
        self.catalog.sessions.kw["bind"].dispose()


def _bind(server: grpc.aio.Server, settings: Settings) -> int:
    if settings.tls_cert and settings.tls_key:
        credentials = grpc.ssl_server_credentials(
            [(settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())]
        )
        port = server.add_secure_port(settings.listen, credentials)
    elif settings.insecure:
        print(
            "WARNING: serving without TLS (--insecure): tokens and records travel in plaintext; "
            "for local development only",
            file=sys.stderr,
        )
        port = server.add_insecure_port(settings.listen)
    else:
        raise ValueError(
            "the gateway needs --tls-cert and --tls-key (or LIJIAO_TLS_CERT/LIJIAO_TLS_KEY); "
            "pass --insecure to serve in plaintext for local development"
        )
    if port == 0:
        raise ValueError(f"could not listen on {settings.listen}")
    return int(port)
