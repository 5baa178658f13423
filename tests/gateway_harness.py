"""A real gateway on a loopback port, in a thread of its own, for tests.

With ``LIJIAO_TEST_CATALOG=postgresql`` every gateway keeps its catalog (and ledger) in
a fresh schema of the PostgreSQL server instead of a SQLite file; `.ci/run` runs the
exchange suites that way too. The schemas are dropped at the end of the test session.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from dataclasses import replace
from pathlib import Path

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

    def issue_token(
        self, name: str, role: Role, department: str | None = None, system: str | None = None
    ) -> str:
        """Issues a token straight in the catalog, as ``lijiao tokens issue`` does."""
        return issue_token_at(
            self.settings.catalog_url, name=name, role=role, department=department, system=system
        )


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
