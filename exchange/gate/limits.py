"""Per-principal limits: a token bucket for calls, one for published records, and a
ceiling on concurrent streams.

Over a limit the caller gets ``RESOURCE_EXHAUSTED`` with reason ``RATE_LIMITED`` (and a
``google.rpc.RetryInfo`` saying when to try again) or ``TOO_MANY_STREAMS``. The SDK
waits the hint and resends, so a busy publisher slows down instead of failing.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from envelope.errors import Reason, ResourceExhausted


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class TokenBuckets:
    """One token bucket per key: ``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: float, what: str, *, least_burst: float = 1.0) -> None:
        self.rate = rate
        self.burst = max(burst, least_burst)
        self.what = what
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str, cost: float = 1.0) -> None:
        """Takes ``cost`` tokens, or raises RATE_LIMITED with the wait that would do.

        A cost above the burst is allowed when the bucket is full (one big batch), so
        nothing is refused forever.
        """
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) > 100_000:
                    self._buckets.clear()
                bucket = self._buckets[key] = _Bucket(self.burst, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
            needed = min(cost, self.burst)
            if bucket.tokens >= needed and bucket.tokens >= 0:
                bucket.tokens -= cost
                return
            wait = (needed - bucket.tokens) / self.rate
        raise ResourceExhausted(
            Reason.RATE_LIMITED,
            f"{key} is over its limit of {self.rate:,.0f} {self.what} per second; "
            f"retry in {wait:.2f} s",
            {"retry_after_ms": str(max(1, round(wait * 1000)))},
            retry_after=wait,
        )

    def charge(self, key: str, cost: float) -> None:
        """Takes ``cost`` tokens for work already done; the bucket may go below zero,
        and ``take`` then refuses the key until it has refilled."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(self.burst, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
            bucket.tokens -= cost


class StreamCounter:
    """How many streams each principal holds open."""

    def __init__(self, most: int) -> None:
        self.most = most
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def open(self, key: str) -> Iterator[None]:
        """Holds one stream for ``key`` or raises TOO_MANY_STREAMS."""
        with self._lock:
            held = self._open.get(key, 0)
            if self.most > 0 and held >= self.most:
                raise ResourceExhausted(
                    Reason.TOO_MANY_STREAMS,
                    f"{key} already holds {held} streams, the most one principal may; "
                    "close one, or share a stream between resources' batches",
                    {"limit": str(self.most)},
                )
            self._open[key] = held + 1
        try:
            yield
        finally:
            with self._lock:
                self._open[key] -= 1
                if not self._open[key]:
                    del self._open[key]


@dataclass
class Limits:
    """The limits of one gateway (see exchange.settings.Settings)."""

    calls: TokenBuckets
    records: TokenBuckets
    streams: StreamCounter

    @classmethod
    def of(
        cls,
        calls_per_second: float,
        call_burst: float,
        records_per_second: float,
        record_burst: float,
        streams: int,
    ) -> Limits:
        return cls(
            TokenBuckets(calls_per_second, call_burst, "calls"),
            TokenBuckets(records_per_second, record_burst, "records"),
            StreamCounter(streams),
        )

    @classmethod
    def none(cls) -> Limits:
        """No limits (a gateway in a test that measures something else)."""
        return cls.of(0, 0, 0, 0, 0)
