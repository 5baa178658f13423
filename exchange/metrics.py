"""Prometheus metrics of the gateway. Names are prefixed ``lijiao_``, in base units.

Label sets are bounded: ``reason`` takes the ErrorInfo reasons of envelope.errors,
``department``/``provider`` the catalog's department codes, ``resource`` its resource
codes (or "" when ``LIJIAO_METRICS_RESOURCE_LABELS=false``), ``family`` the resource
codes' prefixes, and the lag gauges one series per subscription with an active grant.
docs/auditors.md lists every metric.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from catalog.governance import Governance

disable_created_metrics()  # no *_created series: half the series, nothing a dashboard uses

_PUBLISHED = ["department", "family", "resource"]
_DELIVERED = ["department", "provider", "family", "resource"]

BATCHES_PUBLISHED = Counter(
    "lijiao_batches_published_total", "Batches accepted and stored durably.", _PUBLISHED
)
RECORDS_PUBLISHED = Counter(
    "lijiao_records_published_total", "Records accepted and stored durably.", _PUBLISHED
)
BYTES_PUBLISHED = Counter(
    "lijiao_published_bytes_total", "Encoded record bytes accepted.", _PUBLISHED
)
DUPLICATE_BATCHES = Counter(
    "lijiao_duplicate_batches_total", "Batches published again and acknowledged again."
)
BATCHES_DELIVERED = Counter(
    "lijiao_batches_delivered_total", "Batches delivered and acknowledged.", _DELIVERED
)
RECORDS_DELIVERED = Counter(
    "lijiao_records_delivered_total", "Records delivered and acknowledged.", _DELIVERED
)
BYTES_DELIVERED = Counter(
    "lijiao_delivered_bytes_total",
    "Encoded record bytes delivered and acknowledged (after the grant's projection).",
    _DELIVERED,
)
REDELIVERIES = Counter(
    "lijiao_redelivered_batches_total", "Batches delivered again after no acknowledgement."
)
DEAD_LETTERS = Counter(
    "lijiao_dead_letter_records_total",
    "Delivered records a subscriber could not write and put on its dead-letter list.",
    ["department", "resource"],
)
REJECTIONS = Counter("lijiao_rejections_total", "Requests refused, by reason.", ["reason"])
SIGNATURE_FAILURES = Counter(
    "lijiao_signature_failures_total",
    "Batches whose publisher signature did not verify, by the publisher's department.",
    ["department"],
)
SEQUENCE_ANOMALIES = Counter(
    "lijiao_sequence_anomalies_total",
    "Stored batches whose sequence number skipped ahead (gap) or went back (regression) "
    "after the publisher's previous batch of the resource.",
    ["department", "kind"],
)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
PUBLISH_DURABLE_SECONDS = Histogram(
    "lijiao_publish_to_durable_seconds",
    "From receiving a batch to its durable commit.",
    buckets=_LATENCY_BUCKETS,
)
PUBLISH_DELIVERY_SECONDS = Histogram(
    "lijiao_publish_to_delivery_seconds",
    "From receiving a batch to a subscriber's acknowledgement of it.",
    buckets=(*_LATENCY_BUCKETS, 10, 30, 60, 300, 900, 3600),
)
DECISIONS = Counter(
    "lijiao_request_decisions_total",
    "Requests decided, by kind (ACCESS, BACKFLOW) and outcome (APPROVED, REJECTED).",
    ["kind", "outcome"],
)
DECISION_SECONDS = Histogram(
    "lijiao_request_decision_seconds",
    "From a request's submission to its decision (calendar time).",
    ["kind"],
    buckets=(3600, 4 * 3600, 86_400, 2 * 86_400, 5 * 86_400, 10 * 86_400, 20 * 86_400, 40 * 86_400),
)
LEDGER_ENTRIES = Counter(
    "lijiao_ledger_entries_total", "Ledger entries committed by this gateway, by kind.", ["kind"]
)
LEDGER_VERIFICATION_OK = Gauge(
    "lijiao_ledger_verification_ok",
    "1 when the last verification of the ledger passed, 0 when it found a broken link.",
)
LEDGER_VERIFICATION_OK.set(float("nan"))  # not verified yet: neither passed nor failed
LEDGER_LAST_VERIFICATION = Gauge(
    "lijiao_ledger_last_verification_timestamp_seconds", "When the ledger was last verified."
)
LEDGER_LAST_CHECKPOINT = Gauge(
    "lijiao_ledger_last_checkpoint_timestamp_seconds",
    "When this gateway last signed a checkpoint of the ledger head.",
)
BUILD_INFO = Info("lijiao_build", "The gateway's version and Python.")

_resource_labels = True


def configure(*, resource_labels: bool) -> None:
    """Drops the per-resource label (set to "") when a catalog is too large for it."""
    global _resource_labels
    _resource_labels = resource_labels


def family_of(resource: str) -> str:
    """A resource's family: its code up to the first '-' or '.' (PSB-RESIDENT: PSB)."""
    return re.split(r"[-.]", resource, maxsplit=1)[0]


def published(department: str, resource: str, records: int, size: int) -> None:
    """Counts one accepted batch."""
    labels = (department, family_of(resource), resource if _resource_labels else "")
    BATCHES_PUBLISHED.labels(*labels).inc()
    RECORDS_PUBLISHED.labels(*labels).inc(records)
    BYTES_PUBLISHED.labels(*labels).inc(size)


def delivered(department: str, provider: str, resource: str, records: int, size: int) -> None:
    """Counts one acknowledged delivery."""
    labels = (department, provider, family_of(resource), resource if _resource_labels else "")
    BATCHES_DELIVERED.labels(*labels).inc()
    RECORDS_DELIVERED.labels(*labels).inc(records)
    BYTES_DELIVERED.labels(*labels).inc(size)


def dead_lettered(department: str, resource: str, records: int) -> None:
    """Counts records a subscriber dead-lettered."""
    DEAD_LETTERS.labels(department, resource if _resource_labels else "").inc(records)


def _version() -> str:
    try:
        return metadata.version("lijiao")
    except metadata.PackageNotFoundError:
        return "unknown"


BUILD_INFO.info({"version": _version(), "python": platform.python_version()})


@dataclass(frozen=True)
class Lag:
    """How far one subscription is behind the log."""

    system: str
    resource: str
    subscription: str
    records: int
    seconds: float


class _GatewayCollector:
    """Reads what lives in the databases at each scrape: workflow counts, subscription
    lag, the ledger head."""

    def __init__(
        self,
        governance: Governance,
        lag: Callable[[], list[Lag]],
        ledger_head: Callable[[], int],
    ) -> None:
        self.governance = governance
        self.lag = lag
        self.ledger_head = ledger_head

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
        labels = ["system", "resource", "subscription"]
        records = GaugeMetricFamily(
            "lijiao_subscription_lag_records",
            "Records stored but not yet acknowledged by a subscription with an active grant.",
            labels=labels,
        )
        seconds = GaugeMetricFamily(
            "lijiao_subscription_lag_seconds",
            "Age of the oldest batch a subscription has not acknowledged (0 when caught up).",
            labels=labels,
        )
        for lag in self.lag():
            key = [lag.system, lag.resource, lag.subscription]
            records.add_metric(key, lag.records)
            seconds.add_metric(key, lag.seconds)
        yield records
        yield seconds
        yield GaugeMetricFamily(
            "lijiao_ledger_head_sequence",
            "Sequence of the newest entry of the audit ledger.",
            value=self.ledger_head(),
        )


_collectors: list[_GatewayCollector] = []


def register_gateway(
    governance: Governance, lag: Callable[[], list[Lag]], ledger_head: Callable[[], int]
) -> None:
    """Exposes what is read at scrape time; a later gateway in this process replaces the
    earlier (tests run several)."""
    for collector in _collectors:
        REGISTRY.unregister(collector)  # type: ignore[arg-type]
    _collectors.clear()
    collector = _GatewayCollector(governance, lag, ledger_head)
    REGISTRY.register(collector)  # type: ignore[arg-type]
    _collectors.append(collector)
