"""Prometheus metrics of the gateway. Names are prefixed ``lijiao_``, in base units.

Label sets are bounded: ``reason`` takes the ErrorInfo reasons of catalog.errors,
``resource`` the catalog's resource codes.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
