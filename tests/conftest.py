"""Shared fixtures: a real gateway on a loopback port, real SQLite files, and the
PostgreSQL server of this machine.

A test that needs PostgreSQL is skipped when the server is unreachable, unless the
environment variable ``LIJIAO_REQUIRE_SERVICES`` is set: then it fails.
``LIJIAO_POSTGRES_URL`` overrides the server's URL.
"""

from __future__ import annotations

import faulthandler
import os
import secrets
import sys
import threading
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import settings

from tests.gateway_harness import RunningGateway, drop_prefixes, drop_schemas, unreachable

# No example has a time limit: speed is for benchmarks, and a loaded CI machine must not
# fail a property. `pytest --hypothesis-profile=fuzz` (as .ci/run runs the publish
# path's fuzz tests) takes more examples.
settings.register_profile("lijiao", deadline=None)
settings.register_profile("fuzz", parent=settings.get_profile("lijiao"), max_examples=3000)
settings.load_profile("lijiao")

HANG_SECONDS = float(os.environ.get("LIJIAO_TEST_HANG_SECONDS", "600"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """A test still running after ``LIJIAO_TEST_HANG_SECONDS`` (600) is a hang: the run
    ends with every thread's stack instead of waiting for CI's own time limit. This is a
    guard against deadlocks, not a speed check (the slowest test takes under 20 s on 2 cores)."""
    timer = threading.Timer(HANG_SECONDS, _hung, args=(item,))
    timer.daemon = True
    timer.start()
    try:
        return (yield)
    finally:
        timer.cancel()


def _hung(item: pytest.Item) -> None:
    capture = item.config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.suspend_global_capture(in_=False)  # the stacks go to the real stderr
    print(
        f"\n{item.nodeid} is still running after {HANG_SECONDS:.0f} s: it hangs. "
        "The stacks of every thread:",
        file=sys.stderr,
        flush=True,
    )
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    os._exit(3)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    """A gateway serving in plaintext on 127.0.0.1 over a fresh data directory."""
    running = RunningGateway(tmp_path / "gateway")
    try:
        yield running
    finally:
        running.stop()


POSTGRES_URL = os.environ.get(
    "LIJIAO_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_engine() -> sa.Engine:
    """An engine on the server, or a skip (a failure when services are required)."""
    engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        engine.dispose()
        unreachable(f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc.orig}")
    return engine


@pytest.fixture
def postgres_schema() -> Iterator[str]:
    """A fresh schema ``lijiao_test_<hex>`` on the server, dropped with CASCADE after."""
    engine = _postgres_engine()
    name = f"lijiao_test_{secrets.token_hex(6)}"
    with engine.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        engine.dispose()


@pytest.fixture
def postgres_url(postgres_schema: str) -> str:
    """URL of the server with its search path set to the fresh test schema."""
    url = sa.make_url(POSTGRES_URL)
    return url.update_query_dict({"options": f"-csearch_path={postgres_schema}"}).render_as_string(
        hide_password=False
    )


def require_nats() -> str:
    """The NATS server's URL, or a skip (a failure when services are required)."""
    import asyncio

    import nats

    from tests.gateway_harness import NATS_URL

    async def reach() -> None:
        connection = await asyncio.wait_for(
            nats.connect(NATS_URL, connect_timeout=3, max_reconnect_attempts=1), 10
        )
        try:
            await connection.jetstream().account_info()
        finally:
            await connection.close()

    try:
        asyncio.run(reach())
    except Exception as exc:
        unreachable(f"NATS JetStream at {NATS_URL} is unreachable: {exc!r}")
    return NATS_URL


@pytest.fixture
def nats_log_url() -> str:
    """A record-log URL on the NATS server with a fresh prefix, removed at the end."""
    from tests.gateway_harness import nats_log_url as fresh

    require_nats()
    return fresh()


@pytest.fixture(autouse=True, scope="session")
def _drop_gateway_schemas() -> Iterator[None]:
    """PostgreSQL schemas made for test gateways go at the end of the session."""
    yield
    drop_schemas()
    drop_prefixes()
