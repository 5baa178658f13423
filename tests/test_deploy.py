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
