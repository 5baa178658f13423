"""The gateway process: health checking, reflection, TLS, metrics."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from adapters.connection import auth_metadata, open_blocking_channel
from catalog.v1 import catalog_pb2, catalog_pb2_grpc
from exchange.gate import pki
from exchange.v1 import exchange_pb2, exchange_pb2_grpc
from tests.gateway_harness import RunningGateway


def test_health_checking_reports_every_service_serving(gateway: RunningGateway) -> None:
    with open_blocking_channel(gateway.target, insecure=True, quiet=True) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "exchange.v1.ExchangeService", "catalog.v1.CatalogService"):
            response = stub.Check(health_pb2.HealthCheckRequest(service=service))
            assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_services(gateway: RunningGateway) -> None:
    with open_blocking_channel(gateway.target, insecure=True, quiet=True) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"exchange.v1.ExchangeService", "catalog.v1.CatalogService"} <= names


def test_a_tls_gateway_in_development_mode_takes_tokens(tmp_path: Path) -> None:
    ca = pki.Authority.create(tmp_path / "ca", "test CA")
    cert, key, _ = ca.issue(tmp_path / "tls", "localhost", server_names=("127.0.0.1",))
    gateway = RunningGateway(tmp_path / "gw", insecure=True, tls_cert=cert, tls_key=key)
    try:
        with open_blocking_channel(gateway.target, ca_cert=ca.folder / pki.CA_CERT) as channel:
            stub = catalog_pb2_grpc.CatalogServiceStub(channel)
            stub.ListDepartments(
                catalog_pb2.ListDepartmentsRequest(),
                metadata=auth_metadata(gateway.admin_token),
                timeout=10,
            )
        with open_blocking_channel(gateway.target, insecure=True, quiet=True) as plain:
            stub = catalog_pb2_grpc.CatalogServiceStub(plain)
            with pytest.raises(grpc.RpcError):
                stub.ListDepartments(
                    catalog_pb2.ListDepartmentsRequest(),
                    metadata=auth_metadata(gateway.admin_token),
                    timeout=5,
                )
    finally:
        gateway.stop()


def test_metrics_are_served_for_prometheus(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = RunningGateway(tmp_path / "gw", metrics_listen=f"127.0.0.1:{port}")
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        assert b"lijiao_rejections_total" in body
    finally:
        gateway.stop()


def test_a_gateway_refuses_to_start_without_tls_and_leaves_no_files(tmp_path: Path) -> None:
    import asyncio

    from exchange.server import Gateway
    from exchange.settings import Settings

    settings = Settings.load({"data_dir": tmp_path / "gw", "metrics_listen": ""}, env={})
    with pytest.raises(ValueError, match="--insecure"):
        asyncio.run(Gateway.start(settings))
    assert not (tmp_path / "gw").exists()


def test_two_gateways_cannot_share_a_data_directory(gateway: RunningGateway) -> None:
    with pytest.raises(ValueError, match="another gateway"):
        RunningGateway(gateway.data_dir)


def test_a_port_in_use_is_a_clear_error(gateway: RunningGateway, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="in use"):
        RunningGateway(tmp_path / "second", listen=gateway.target)


def test_the_data_directory_is_private_to_the_gateway(gateway: RunningGateway) -> None:
    assert gateway.data_dir.stat().st_mode & 0o777 == 0o700
    names = ["gateway-signing-key.pem"]
    if not gateway.settings.log_url:
        names.append("log.db")
    if not gateway.settings.database_url:
        names.append("catalog.db")
    for name in names:
        assert (gateway.data_dir / name).stat().st_mode & 0o077 == 0, name


def test_an_empty_metrics_variable_turns_metrics_off() -> None:
    from exchange.settings import Settings

    assert Settings.load(env={"LIJIAO_METRICS_LISTEN": ""}).metrics_listen == ""
    assert Settings.load(env={}).metrics_listen == "127.0.0.1:9464"


def test_an_unreadable_tls_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read the TLS files"):
        RunningGateway(
            tmp_path / "gw",
            insecure=False,
            tls_cert=tmp_path / "missing.pem",
            tls_key=tmp_path / "missing-key.pem",
        )


def test_an_existing_data_directory_is_made_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "gw"
    data_dir.mkdir(mode=0o755)
    gateway = RunningGateway(data_dir)
    try:
        assert data_dir.stat().st_mode & 0o777 == 0o700
        for path in data_dir.glob("*.db*"):
            assert path.stat().st_mode & 0o077 == 0, path
    finally:
        gateway.stop()


def test_workflow_settings_reach_the_gateway(tmp_path: Path) -> None:
    from catalog.deadlines import WorkingCalendar
    from exchange.settings import Settings

    holidays = tmp_path / "holidays.txt"
    holidays.write_text("2026-10-01..2026-10-07\n+2026-09-27\n")
    settings = Settings.load(
        env={
            "LIJIAO_HOLIDAY_FILE": str(holidays),
            "LIJIAO_REVIEW_ENABLED": "0",
            "LIJIAO_PROVIDER_DAYS": "5",
            "LIJIAO_MASKS": "PHONE=full, NAME=keep_first_last:1:0",
        }
    )
    rules = settings.governance_rules()
    assert (rules.review_enabled, rules.provider_days) == (False, 5)
    assert rules.calendar == WorkingCalendar.from_file(holidays)
    policy = settings.mask_policy()
    from catalog.models import Sensitivity

    assert policy.mask(Sensitivity.PHONE, "13812345678") == "****"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LIJIAO_MASKS": "PHONE"}, "not TAG=SPEC"),
        ({"LIJIAO_MASKS": "PHONE=sideways"}, "sideways"),
        ({"LIJIAO_REVIEW_DAYS": "0"}, "at least 1"),
    ],
)
def test_bad_workflow_settings_stop_the_gateway_with_a_message(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    from exchange.settings import Settings

    settings = Settings.load(env=env)

    def workflow() -> None:
        settings.mask_policy()
        settings.governance_rules()

    with pytest.raises(ValueError, match=message):
        workflow()


def test_a_bad_holiday_file_names_its_line(tmp_path: Path) -> None:
    holidays = tmp_path / "holidays.txt"
    holidays.write_text("2026-10-01\n2026/10/02\n")
    with pytest.raises(ValueError, match=r"holidays\.txt:2"):
        RunningGateway(tmp_path / "gw", holiday_file=holidays)


def test_the_health_port_answers_probes_and_serves_nothing_else(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    running = RunningGateway(tmp_path / "gw", health_listen=f"127.0.0.1:{port}")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="exchange.v1.ExchangeService"),
                timeout=5,
            )
            assert status.status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.RpcError) as refused:
                exchange_pb2_grpc.ExchangeServiceStub(channel).GetGatewayKey(
                    exchange_pb2.GetGatewayKeyRequest(), timeout=5
                )
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]
    finally:
        running.stop()
