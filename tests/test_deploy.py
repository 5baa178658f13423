"""deploy/: the dashboards and alert rules ask only for metrics the gateway exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

from tests.gateway_harness import RunningGateway

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "info": ("_info",),
}


def exposed() -> set[str]:
    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.name.startswith("lijiao_"):
            names.update(family.name + s for s in _SUFFIXES.get(family.type, ("",)))
    return names


def referenced(path: Path) -> set[str]:
    return set(re.findall(r"\blijiao_[a-z_]+[a-z]", path.read_text()))


def test_alerts_and_dashboard_use_exposed_metrics(gateway: RunningGateway) -> None:
    names = exposed()
    for path in (
        DEPLOY / "prometheus" / "alerts.yml",
        DEPLOY / "prometheus" / "alerts_test.yml",
        DEPLOY / "grafana" / "lijiao-dashboard.json",
    ):
        unknown = referenced(path) - names
        assert not unknown, f"{path.name} uses metrics the gateway does not expose: {unknown}"


def test_the_dashboard_is_valid_json_with_unique_panel_ids() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "lijiao-dashboard.json").read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "lijiao-overview"


# -- the scaled-out shape: image, compose file, Kubernetes manifests ----------------------
# Checked on the text (no YAML parser among the test dependencies); .ci/run validates the
# same files against the Kubernetes and compose-spec schemas.

K8S = DEPLOY / "k8s"
GRPC_PORT = 7443
HEALTH_PORT = 7444
METRICS_PORT = 9464


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _block(text: str, key: str) -> str:
    """The lines under ``key:`` (first occurrence), up to the next line indented as much."""
    match = re.search(rf"^( *){key}:\n((?:\1 +.*\n)+)", text, re.MULTILINE)
    assert match, f"no {key}: block"
    return match.group(2)


def test_every_lijiao_variable_in_deploy_files_is_a_setting() -> None:
    import dataclasses

    from exchange.settings import ENV_PREFIX, Settings

    settings = {ENV_PREFIX + f.name.upper() for f in dataclasses.fields(Settings)}
    files = [
        DEPLOY / "Dockerfile",
        DEPLOY / "compose.yaml",
        DEPLOY / "gateway.env",
        *sorted(K8S.glob("*.yaml")),
        DEPLOY.parent / "docs" / "operations.md",
    ]
    for path in files:
        named = set(re.findall(r"\bLIJIAO_[A-Z0-9_]*[A-Z0-9]\b", _text(path)))
        unknown = named - settings
        assert not unknown, f"{path.name} names variables exchange/settings.py lacks: {unknown}"


def test_the_gateway_serves_grpc_and_is_probed_with_grpc_health_checks() -> None:
    deployment = _text(K8S / "deployment.yaml")
    assert re.search(rf"- name: grpc\n +containerPort: {GRPC_PORT}\n", deployment)
    assert re.search(rf"- name: metrics\n +containerPort: {METRICS_PORT}\n", deployment)
    assert re.search(rf"- name: health\n +containerPort: {HEALTH_PORT}\n", deployment)
    configmap = _text(K8S / "configmap.yaml")
    assert f"LIJIAO_HEALTH_LISTEN: 0.0.0.0:{HEALTH_PORT}\n" in configmap
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        # the kubelet's own gRPC probe, on the plaintext grpc.health.v1-only port
        assert re.search(rf"grpc:\n +port: {HEALTH_PORT}\n", _block(deployment, probe)), probe
    service = _text(K8S / "service.yaml")
    assert re.search(rf"port: {GRPC_PORT}\n +targetPort: grpc\n", service)
    assert re.search(rf"port: {METRICS_PORT}\n +targetPort: metrics\n", service)
    for path in (DEPLOY / "Dockerfile", DEPLOY / "compose.yaml", K8S / "configmap.yaml"):
        text = _text(path)
        assert re.search(rf"LIJIAO_LISTEN[=:] ?0\.0\.0\.0:{GRPC_PORT}\b", text), path.name
        assert re.search(rf"LIJIAO_METRICS_LISTEN[=:] ?0\.0\.0\.0:{METRICS_PORT}\b", text)
    assert f'insecure_channel("127.0.0.1:{HEALTH_PORT}")' in _text(
        DEPLOY / "compose.yaml"
    )  # healthcheck
    assert re.search(
        rf"^EXPOSE {GRPC_PORT} {HEALTH_PORT} {METRICS_PORT}$", _text(DEPLOY / "Dockerfile"), re.M
    )
    scrape = _text(DEPLOY / "compose" / "prometheus.yml")
    assert f"gateway-1:{METRICS_PORT}" in scrape and f"gateway-2:{METRICS_PORT}" in scrape


def test_the_image_runs_as_a_non_root_user_on_a_read_only_root() -> None:
    dockerfile = _text(DEPLOY / "Dockerfile")
    users = re.findall(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    assert users == [("10001", "10001")], "the last stage runs as uid 10001 (numeric)"
    assert dockerfile.rstrip().endswith('ENTRYPOINT ["lijiao"]\nCMD ["serve"]')
    assert "PYTHONDONTWRITEBYTECODE=1" in dockerfile
    assert "'.[postgres,nats]'" in dockerfile
    manifests = "".join(_text(p) for p in sorted(K8S.glob("*.yaml")))
    containers = len(re.findall(r"^ +image: ", manifests, re.MULTILINE))
    assert containers == manifests.count("readOnlyRootFilesystem: true")
    assert containers == manifests.count("allowPrivilegeEscalation: false")
    assert containers == manifests.count("drop: [ALL]")
    pods = manifests.count("restartPolicy: Never") + 1  # Jobs, and the Deployment
    assert manifests.count("runAsNonRoot: true") >= pods
    assert manifests.count("runAsUser: 10001") == pods
    compose = _text(DEPLOY / "compose.yaml")
    anchor = compose.split("x-lijiao-image: &lijiao-image\n", 1)[1].split("\n\n", 1)[0]
    for line in ('user: "10001:10001"', "read_only: true", "tmpfs:", "- ALL"):
        assert line in anchor, line
    for service in ("gateway-1", "gateway-2"):
        assert re.search(rf"^  {service}:\n    <<: \*gateway\n", compose, re.MULTILINE)
    assert re.search(r"^x-gateway: &gateway\n  <<: \*lijiao-image\n", compose, re.MULTILINE)


def test_replicas_migrate_once_and_one_place_applies_retention() -> None:
    configmap = _text(K8S / "configmap.yaml")
    assert 'LIJIAO_MIGRATE: "false"' in configmap
    assert 'LIJIAO_LEDGER_PRUNE: "false"' in configmap
    assert 'args: ["db", "upgrade"]' in _text(K8S / "db-upgrade-job.yaml")
    prune = _text(K8S / "ledger-prune.yaml")
    assert 'args: ["audit", "prune"]' in prune
    assert "claimName: lijiao-ledger-archive" in prune
    compose = _text(DEPLOY / "compose.yaml")
    assert 'LIJIAO_MIGRATE: "false"' in compose
    assert 'command: ["db", "upgrade"]' in compose
    assert compose.count('LIJIAO_LEDGER_PRUNE: "true"') == 1


def test_kustomization_lists_the_manifests_but_not_the_secrets_or_the_migration_job() -> None:
    resources = re.findall(r"^  - (\S+\.yaml)$", _text(K8S / "kustomization.yaml"), re.M)
    assert resources
    assert all((K8S / name).is_file() for name in resources)
    assert set(resources) == {p.name for p in K8S.glob("*.yaml")} - {
        "kustomization.yaml",
        "secrets.example.yaml",
        "db-upgrade-job.yaml",
    }


def test_deploy_holds_no_key_material() -> None:
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            assert "-----BEGIN" not in _text(path), f"{path} holds a PEM block"
    example = _text(K8S / "secrets.example.yaml")
    blocks = re.findall(r"^stringData:\n((?:  .*\n)+)", example, re.MULTILINE)
    values = re.findall(r"^  [\w.-]+: (.*)$", "".join(blocks), re.MULTILINE)
    assert len(blocks) == 3 and len(values) == 6, values
    assert all(v.startswith('"EXAMPLE: ') for v in values), values
