"""Prometheus metrics of the gateway. Names are prefixed ``lijiao_``, in base units.

Label sets are bounded: ``reason`` takes the ErrorInfo reasons of catalog.errors,
``resource`` the catalog's resource codes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from catalog.governance import Governance

BATCHES_PUBLISHED = Counter(
    "lijiao_batches_published_total", "Batches accepted and stored durably.", ["resource"]
)
RECORDS_PUBLISHED = Counter(
    "lijiao_records_published_total", "Records accepted and stored durably.", ["resource"]
)
BYTES_PUBLISHED = Counter(
    "lijiao_published_bytes_total", "Encoded record bytes accepted.", ["resource"]
)
DUPLICATE_BATCHES = Counter(
    "lijiao_duplicate_batches_total", "Batches published again and acknowledged again."
)
RECORDS_DELIVERED = Counter(
    "lijiao_records_delivered_total", "Records delivered and acknowledged.", ["resource"]
)
REDELIVERIES = Counter(
    "lijiao_redelivered_batches_total", "Batches delivered again after no acknowledgement."
)
REJECTIONS = Counter("lijiao_rejections_total", "Requests refused, by reason.", ["reason"])
PUBLISH_DURABLE_SECONDS = Histogram(
    "lijiao_publish_to_durable_seconds",
    "From receiving a batch to its durable commit.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class _GovernanceCollector:
    """Reads request and correction counts from the catalog at each scrape."""

    def __init__(self, governance: Governance) -> None:
        self.governance = governance

    def collect(self) -> Iterator[Metric]:
        by_state, overdue, corrections = self.governance.counts()
        requests = GaugeMetricFamily(
            "lijiao_access_requests", "Access and backflow requests, by state.", labels=["state"]
        )
        for state, count in sorted(by_state.items()):
            requests.add_metric([state], count)
        yield requests
        yield GaugeMetricFamily(
            "lijiao_overdue_requests",
            "Requests past the due time of their current step (working days).",
            value=overdue,
        )
        yield GaugeMetricFamily(
            "lijiao_open_corrections",
            "Flagged records (疑义数据) waiting for the provider's answer.",
            value=corrections,
        )


_collectors: dict[int, _GovernanceCollector] = {}


def register_governance(governance: Governance) -> None:
    """Exposes the workflow's counts; a later gateway in this process replaces the earlier."""
    for collector in list(_collectors.values()):
        REGISTRY.unregister(collector)  # type: ignore[arg-type]
    _collectors.clear()
    collector = _GovernanceCollector(governance)
    REGISTRY.register(collector)  # type: ignore[arg-type]
    _collectors[id(governance)] = collector
