"""Real databases for adapter tests: SQLite files here; PostgreSQL comes from
tests/conftest.py (``postgres_url``)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite file in the test's temporary folder (created on first connect)."""
    return f"sqlite:///{tmp_path / 'store.db'}"
