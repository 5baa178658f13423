"""Fixtures shared by the gateway's suites."""

from tests.tls import deployment  # noqa: F401 (a fixture, offered to every test here)
