"""The gateway process: wires catalog, record log, services, health and reflection.

Everything is assembled here, in one place: interceptors-free services whose refusals
are mapped by ``exchange.gate.rpc``, gRPC health checking and server reflection (so
``grpcurl`` works), and the Prometheus endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import grpc
from cryptography import x509
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from catalog import ledger
from catalog.db import SchemaBehind, close_catalog, open_catalog
from catalog.governance import Governance
from catalog.service import Catalog
from catalog.v1 import (
    approval_pb2,
    approval_pb2_grpc,
    audit_pb2,
    audit_pb2_grpc,
    catalog_pb2,
    catalog_pb2_grpc,
)
from envelope.errors import LijiaoError
from envelope.signing import Ed25519Signer
from exchange import metrics
from exchange.audit.tasks import (
    RECONCILE_INTERVAL_SECONDS,
    RECONCILE_LOOKBACK_SECONDS,
    AuditTasks,
    LedgerWriter,
    count_committed,
    reconcile,
)
from exchange.delivery import DeliveryPath
from exchange.gate.catalog_view import CatalogView
from exchange.gate.limits import Limits, TokenBuckets
from exchange.gate.pki import RevocationList
from exchange.gate.rpc import Authenticator, MalformedRequests
from exchange.log import RecordLog, open_log
from exchange.publish.path import BatchLimits, PublishPath
from exchange.publish.record_checker import RecordChecker
from exchange.services.approval import ApprovalServicer
from exchange.services.audit import AuditServicer
from exchange.services.catalog import CatalogServicer
from exchange.services.exchange import ExchangeServicer
from exchange.settings import Settings
from exchange.v1 import exchange_pb2, exchange_pb2_grpc

log = logging.getLogger("lijiao.gateway")

SERVICE_NAMES = (
    exchange_pb2.DESCRIPTOR.services_by_name["ExchangeService"].full_name,
    catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name,
    approval_pb2.DESCRIPTOR.services_by_name["ApprovalService"].full_name,
    audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name,
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
    lock: TextIO
    ledger: LedgerWriter
    audit: AuditTasks
    metrics_server: Any = None
    health_server: grpc.aio.Server | None = None
    background: list[asyncio.Task[Any]] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    checker: RecordChecker | None = None

    @property
    def target(self) -> str:
        """host:port clients connect to."""
        host = self.settings.listen.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    @classmethod
    async def start(cls, settings: Settings) -> Gateway:
        """Opens the stores, binds the port and starts serving.

        Raises:
            ValueError: Neither TLS files nor ``insecure`` were given, the port cannot be
                bound, or another gateway uses the data directory.
        """
        credentials = _server_credentials(settings)
        async with contextlib.AsyncExitStack() as cleanup:
            lock = _lock_data_dir(settings.data_dir)
            cleanup.callback(lock.close)
            try:
                sessions = open_catalog(settings.catalog_url, migrate=settings.migrate)
            except SchemaBehind as exc:
                raise ValueError(str(exc)) from exc
            cleanup.callback(close_catalog, sessions)
            catalog = Catalog(sessions)
            record_log = await open_log(
                settings.log_url, settings.log_path, synchronous=settings.synchronous
            )
            cleanup.push_async_callback(record_log.close)
            for path in settings.data_dir.glob("*.db*"):
                path.chmod(0o600)
            signer = load_or_create_gateway_key(settings)
            trusted = {signer.key_id: signer.public_key, **settings.trusted_keys()}
            writer = LedgerWriter(sessions)
            cleanup.callback(writer.close)
            audit = AuditTasks(sessions, writer, signer, trusted, settings.audit())
            checker = RecordChecker(
                settings.record_check_workers or os.cpu_count() or 1,
                TokenBuckets(
                    settings.rate_limit_check_cpu_per_second,
                    settings.rate_limit_check_cpu_burst,
                    "CPU seconds of record checking",
                    least_burst=0.0,
                ),
            )
            cleanup.callback(checker.close)
            server, health_servicer, publish = _build_server(
                settings, catalog, record_log, signer, writer, audit, checker
            )
            # Replicas share the log: leave the newest batches to the replica storing
            # them, and look at them once more when they have settled.
            shared = bool(settings.log_url)
            settle = RECONCILE_SETTLE_SECONDS if shared else 0.0
            await asyncio.to_thread(reconcile, sessions, record_log, publish.entry_of, settle)
            port = _bind(server, settings.listen, credentials)
            metrics_server = _start_metrics(settings.metrics_listen)
            if metrics_server is not None:
                cleanup.callback(metrics_server.shutdown)
            health_server = await _start_health(settings.health_listen, health_servicer)
            if health_server is not None:
                cleanup.push_async_callback(health_server.stop, None)
            await server.start()
            for name in ("", *SERVICE_NAMES):
                await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
            audit.start()
            warming = asyncio.create_task(asyncio.to_thread(checker.warm))
            cleanup.pop_all()
        log.info("gateway serving on port %d", port)
        gateway = cls(
            settings,
            server,
            port,
            record_log,
            catalog,
            signer,
            lock,
            writer,
            audit,
            metrics_server,
            health_server,
            checker=checker,
        )
        gateway.background.append(warming)
        gateway.background.append(
            asyncio.create_task(
                gateway._reconcile_periodically(
                    publish, settle, first=settle + 1 if shared else RECONCILE_INTERVAL_SECONDS
                )
            )
        )
        return gateway

    async def _reconcile_periodically(
        self, publish: PublishPath, settle: float, first: float
    ) -> None:
        """Looks again for stored batches without a ledger entry: first at the batches
        the start-up pass left to settle, then every RECONCILE_INTERVAL_SECONDS (a
        replica that died between its two commits may never start again)."""
        wait = first
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), wait)
                return
            try:
                await asyncio.to_thread(
                    reconcile,
                    self.catalog.sessions,
                    self.log,
                    publish.entry_of,
                    settle,
                    RECONCILE_LOOKBACK_SECONDS,
                )
            except Exception:
                log.exception("reconciling the ledger with the record log failed")
            wait = RECONCILE_INTERVAL_SECONDS

    async def stop(self, grace: float = 1.0) -> None:
        """Stops serving, lets calls finish for ``grace`` seconds, signs a last checkpoint
        of the ledger and closes the stores."""
        self.stopping.set()
        if self.health_server is not None:
            await self.health_server.stop(None)  # probes see the replica go first
        await self.server.stop(grace)
        if self.background:  # a reconciliation pass under way may end (bounded)
            await asyncio.wait(self.background, timeout=STOP_WAIT_SECONDS)
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
        await self.audit.stop()
        if self.checker is not None:
            self.checker.close()
        self.ledger.close()
        await self.log.close()
        close_catalog(self.catalog.sessions)
        self.lock.close()


STOP_WAIT_SECONDS = 10.0  # for a reconciliation pass under way at stop
HEALTH_PORT_CALLS = 8  # concurrent calls the plaintext health port takes
RECONCILE_SETTLE_SECONDS = 5.0  # replicas: batches younger than this are another's to record


def _lag(record_log: RecordLog, view: CatalogView) -> Callable[[], list[metrics.Lag]]:
    """Subscription lag for the metrics, for subscriptions with an active grant."""

    def read() -> list[metrics.Lag]:
        now = time.time()
        out: list[metrics.Lag] = []
        try:
            lags = record_log.lag()
        except Exception:  # the scrape goes on without the lag figures
            log.exception("could not read the subscription lag from the record log")
            return out
        for lag in lags:
            try:
                grant = view.grant(lag.system, lag.resource)
            except LijiaoError:
                continue
            if grant is None or not grant.active():
                continue
            seconds = max(0.0, now - lag.oldest_stored_ns / 1e9) if lag.oldest_stored_ns else 0.0
            out.append(
                metrics.Lag(lag.system, lag.resource, lag.subscription, lag.records, seconds)
            )
        return out

    return read


def _build_server(
    settings: Settings,
    catalog: Catalog,
    record_log: RecordLog,
    signer: Ed25519Signer,
    writer: LedgerWriter,
    audit: AuditTasks,
    checker: RecordChecker,
) -> tuple[grpc.aio.Server, health.aio.HealthServicer, PublishPath]:
    governance = Governance(catalog, settings.governance_rules())
    view = CatalogView(catalog, governance)
    governance.on_grant_change(view.forget_grants)
    metrics.configure(resource_labels=settings.metrics_resource_labels)
    metrics.register_gateway(
        governance, _lag(record_log, view), lambda: ledger.head(catalog.sessions)[0]
    )
    if count_committed not in ledger.COMMIT_HOOKS:
        ledger.COMMIT_HOOKS.append(count_committed)
    limits = Limits.of(
        settings.rate_limit_calls_per_second,
        settings.rate_limit_call_burst,
        settings.rate_limit_records_per_second,
        settings.rate_limit_record_burst,
        settings.max_streams_per_principal,
    )
    auth = Authenticator(
        catalog.sessions,
        writer,
        tokens=settings.insecure,
        revocations=_revocations(settings),
        limits=limits,
    )
    sizes = BatchLimits(
        max_batch_records=settings.max_batch_records,
        max_record_bytes=settings.max_record_bytes,
        max_batch_bytes=settings.max_message_bytes // 2,
        max_clock_skew_seconds=settings.max_clock_skew_seconds,
        max_batch_age_seconds=settings.max_batch_age_seconds,
    )
    server = grpc.aio.server(
        interceptors=[MalformedRequests(auth)],
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 0),
            # clients send keepalive pings every 20 s (adapters.connection); allow them
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.http2.max_pings_without_data", 0),
        ],
    )
    publish = PublishPath(view, record_log, sizes, writer, limits.records, checker)
    delivery = DeliveryPath(
        view,
        record_log,
        signer,
        settings.ack_timeout_seconds,
        writer,
        settings.mask_policy(),
        settings.max_deliveries,
        catalog.sessions,
        checker,
    )
    exchange_pb2_grpc.add_ExchangeServiceServicer_to_server(
        ExchangeServicer(auth, publish, delivery, signer), server
    )
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(
        CatalogServicer(auth, catalog, view.forget_systems), server
    )
    approval_pb2_grpc.add_ApprovalServiceServicer_to_server(
        ApprovalServicer(auth, governance), server
    )
    audit_pb2_grpc.add_AuditServiceServicer_to_server(
        AuditServicer(auth, catalog.sessions, audit), server
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    return server, health_servicer, publish


async def _start_health(listen: str, servicer: health.aio.HealthServicer) -> grpc.aio.Server | None:
    """A plaintext port serving grpc.health.v1 alone, for probes that cannot present a
    client certificate (the kubelet's gRPC probe). It tells only whether the gateway
    serves; every other service stays behind mutual TLS."""
    if not listen:
        return None
    # unauthenticated: a few calls at a time (probes), no pile of Watch streams
    server = grpc.aio.server(maximum_concurrent_rpcs=HEALTH_PORT_CALLS)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    _bind(server, listen, None)
    await server.start()
    return server


def _start_metrics(listen: str) -> Any:
    if not listen:
        return None
    host, _, port = listen.rpartition(":")
    try:
        server, _thread = start_http_server(int(port), addr=host or "127.0.0.1")
    except (OSError, ValueError) as exc:
        raise ValueError(f"could not serve metrics on {listen}: {exc}") from exc
    return server


def _server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """Mutual TLS by default; TLS without client certificates or plaintext only in
    development mode (``--insecure``, which prints a warning); otherwise refuses."""
    if settings.tls_cert and settings.tls_key:
        try:
            pair = (settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())
            client_ca = settings.client_ca.read_bytes() if settings.client_ca else None
        except OSError as exc:
            raise ValueError(f"cannot read the TLS files: {exc}") from exc
        if client_ca is not None and not settings.insecure:
            return grpc.ssl_server_credentials(
                [pair], root_certificates=client_ca, require_client_auth=True
            )
        if not settings.insecure:
            raise ValueError(
                "the gateway requires client certificates: give --client-ca (the deployment "
                "CA, made by lijiao pki init) or LIJIAO_CLIENT_CA; pass --insecure to accept "
                "bearer tokens instead, for local development"
            )
        print(
            "WARNING: development mode (--insecure): TLS without client certificates; "
            "callers are known by bearer tokens",
            file=sys.stderr,
        )
        return grpc.ssl_server_credentials(
            [pair], root_certificates=client_ca, require_client_auth=False
        )
    if settings.insecure:
        print(
            "WARNING: serving without TLS (--insecure): tokens and records travel in plaintext; "
            "for local development only",
            file=sys.stderr,
        )
        return None
    raise ValueError(
        "the gateway needs --tls-cert, --tls-key and --client-ca (or LIJIAO_TLS_CERT, "
        "LIJIAO_TLS_KEY, LIJIAO_CLIENT_CA); pass --insecure to serve in plaintext for local "
        "development"
    )


def _revocations(settings: Settings) -> RevocationList | None:
    """The CRL the gateway honours, checked now so a bad file stops the start."""
    path = settings.revocation_list
    if path is None or settings.client_ca is None:
        return None
    authorities = x509.load_pem_x509_certificates(settings.client_ca.read_bytes())
    revocations = RevocationList(path, authorities)
    try:
        revocations.is_revoked(authorities[0])
    except ValueError as exc:
        raise ValueError(f"cannot use the revocation list: {exc}") from exc
    return revocations


def _lock_data_dir(data_dir: Path) -> TextIO:
    """Creates the data directory (owner-only) and holds its lock for this process."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    handle = (data_dir / "gateway.lock").open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        raise ValueError(
            f"another gateway is using {data_dir}; stop it or choose another --data-dir"
        ) from exc
    return handle


def _bind(server: grpc.aio.Server, listen: str, credentials: grpc.ServerCredentials | None) -> int:
    try:
        if credentials is None:
            port = server.add_insecure_port(listen)
        else:
            port = server.add_secure_port(listen, credentials)
    except RuntimeError as exc:
        raise ValueError(f"could not listen on {listen}: is the port in use?") from exc
    if port == 0:
        raise ValueError(f"could not listen on {listen}: is the port in use?")
    return int(port)
