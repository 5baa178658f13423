"""A real gateway on a loopback port, in a thread of its own, for tests.

With ``LIJIAO_TEST_CATALOG=postgresql`` every gateway keeps its catalog (and ledger) in
a fresh schema of the PostgreSQL server instead of a SQLite file, and with
``LIJIAO_TEST_LOG=nats`` its record log in NATS JetStream under a prefix of its own;
`.ci/run` runs the suites that way too. The schemas, streams and buckets are removed at
the end of the test session.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest
import sqlalchemy as sa

from catalog.credentials import issue_token_at
from catalog.models import Role
from exchange.server import Gateway
from exchange.settings import Settings


class RunningGateway:
    """Starts :class:`exchange.server.Gateway` in a background event loop.

    Attributes:
        settings: The gateway's settings (plaintext, metrics off).
        target: host:port to connect to.
        admin_token: A token of an administrator principal.
        data_dir: The gateway's data directory.
    """

    def __init__(self, data_dir: Path, **overrides: object) -> None:
        self.data_dir = data_dir
        if catalog_on_postgres() and "database_url" not in overrides:
            overrides["database_url"] = postgres_schema_url()
        if log_on_nats() and "log_url" not in overrides:
            overrides["log_url"] = nats_log_url()
        self.settings = Settings.load(
            {
                "data_dir": data_dir,
                "listen": "127.0.0.1:0",
                "metrics_listen": "",
                "insecure": True,
                **overrides,
            },
            env={},
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.gateway: Gateway | None = None
        self.start()
        self.admin_token = self.issue_token("admin", Role.ADMINISTRATOR)

    @property
    def target(self) -> str:
        assert self.gateway is not None
        return self.gateway.target

    def start(self) -> None:
        """Starts the gateway (again, on the same port after a stop)."""
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self.gateway = loop.run_until_complete(Gateway.start(self.settings))
            except BaseException as exc:
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="test-gateway", daemon=True)
        self._thread.start()
        started.wait(30)
        if failure:
            raise failure[0]
        assert self.gateway is not None
        self.settings = replace(self.settings, listen=self.gateway.target)

    def stop(self) -> None:
        """Stops the gateway and its loop."""
        if self._loop is None or self.gateway is None:
            return
        asyncio.run_coroutine_threadsafe(self.gateway.stop(0.2), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(30)
        self._loop = None

    def restart(self) -> None:
        """Stops and starts again over the same data directory and port."""
        self.stop()
        self.start()

    def on_loop(self, make: Callable[[], Awaitable[T]]) -> T:
        """Runs a coroutine on the gateway's event loop and returns its result."""
        assert self._loop is not None

        async def call() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(30)

    def stored_batches(self, resource: str | None = None) -> int:
        """Batches in the record log (of one resource), whichever store it is."""
        return len(self._stored(resource))

    def stored_records(self, resource: str) -> int:
        """Records in the record log's batches of a resource."""
        return sum(records for records in self._stored(resource))

    def _stored(self, resource: str | None) -> list[int]:
        """The record count of every stored batch (of one resource)."""
        if not self.settings.log_url:
            with sqlite3.connect(self.settings.log_path) as db:
                rows = db.execute(
                    "SELECT record_count FROM batches WHERE ? IS NULL OR resource = ?",
                    (resource, resource),
                ).fetchall()
            return [int(row[0]) for row in rows]
        assert self.gateway is not None
        log: Any = self.gateway.log
        return self.on_loop(lambda: record_counts(log, resource))

    def cursor_count(self) -> int:
        """Subscription cursors the record log keeps."""
        if not self.settings.log_url:
            with sqlite3.connect(self.settings.log_path) as db:
                return int(db.execute("SELECT count(*) FROM cursors").fetchone()[0])
        assert self.gateway is not None
        log: Any = self.gateway.log

        async def count() -> int:
            from nats.js.errors import NoKeysError

            try:
                return len(await log._kv.keys())
            except NoKeysError:
                return 0

        return self.on_loop(count)

    def issue_token(
        self, name: str, role: Role, department: str | None = None, system: str | None = None
    ) -> str:
        """Issues a token straight in the catalog, as ``lijiao tokens issue`` does."""
        return issue_token_at(
            self.settings.catalog_url, name=name, role=role, department=department, system=system
        )


def unreachable(reason: str) -> NoReturn:
    """Skips a test whose server is unreachable, or fails it when services are required."""
    if os.environ.get("LIJIAO_REQUIRE_SERVICES"):
        pytest.fail(f"{reason} (LIJIAO_REQUIRE_SERVICES is set)")
    pytest.skip(reason)


T = TypeVar("T")
NATS_URL = os.environ.get("LIJIAO_NATS_URL", "nats://127.0.0.1:4222")
PREFIXES: list[str] = []  # JetStream prefixes made for gateways, removed at the end


def log_on_nats() -> bool:
    """Whether test gateways keep their record logs in NATS JetStream."""
    return os.environ.get("LIJIAO_TEST_LOG", "") == "nats"


def nats_log_url(prefix: str | None = None) -> str:
    """A record-log URL with a fresh prefix (streams and bucket of its own)."""
    prefix = prefix or f"lt{secrets.token_hex(5)}"
    PREFIXES.append(prefix)
    return f"{NATS_URL}?prefix={prefix}"


async def record_counts(log: Any, resource: str | None) -> list[int]:
    """The record count of every batch a JetStream log holds (of one resource)."""
    out: list[int] = []
    for info in await log._streams_of_prefix():
        if resource is not None and info.config.name != log.stream_of(resource):
            continue
        subject = None if resource is None else log._subject(resource)
        for msg in await log._scan(info.config.name, subject, 10**9, headers_only=True):
            out.append(int(msg.headers["Lijiao-Records"]))
    return out


def jetstream_records(url: str, resource: str) -> int:
    """Records a JetStream log at ``url`` holds for a resource (no gateway needed)."""
    from exchange.log.jetstream import JetStreamLog

    async def count() -> int:
        log = await JetStreamLog.connect(url)
        try:
            return sum(await record_counts(log, resource))
        finally:
            await log.close()

    return asyncio.run(count())


def drop_prefixes() -> None:
    """Removes the streams and cursor buckets made for gateways."""
    if not PREFIXES:
        return
    from exchange.log.jetstream import JetStreamLog

    async def drop() -> None:
        for prefix in PREFIXES:
            log = await JetStreamLog.connect(f"{NATS_URL}?prefix={prefix}")
            try:
                await log.delete_streams()
            finally:
                await log.close()

    asyncio.run(drop())
    PREFIXES.clear()


POSTGRES_URL = os.environ.get(
    "LIJIAO_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SCHEMAS: list[str] = []  # made for gateways, dropped by tests/conftest.py at the end


def catalog_on_postgres() -> bool:
    """Whether test gateways keep their catalogs on PostgreSQL."""
    return os.environ.get("LIJIAO_TEST_CATALOG", "") == "postgresql"


def postgres_schema_url() -> str:
    """A fresh schema on the server, as a URL whose search path is that schema."""
    name = f"lijiao_gw_{secrets.token_hex(6)}"
    engine = sa.create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(sa.schema.CreateSchema(name))
    engine.dispose()
    SCHEMAS.append(name)
    url = sa.make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={name}"})
    return url.render_as_string(hide_password=False)


def drop_schemas() -> None:
    """Drops the schemas made for gateways."""
    if not SCHEMAS:
        return
    engine = sa.create_engine(POSTGRES_URL)
    for name in SCHEMAS:  # one transaction each: a schema holds many tables' locks
        with engine.begin() as conn:
            conn.execute(sa.schema.DropSchema(name, cascade=True, if_exists=True))
    engine.dispose()
    SCHEMAS.clear()
