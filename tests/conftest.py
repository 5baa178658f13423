"""Shared fixtures: a real gateway on a loopback port, real SQLite files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway_harness import RunningGateway


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    """A gateway serving in plaintext on 127.0.0.1 over a fresh data directory."""
    running = RunningGateway(tmp_path / "gateway")
    try:
        yield running
    finally:
        running.stop()
