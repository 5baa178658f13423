"""A real gateway on a loopback port, in a thread of its own, for tests."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from pathlib import Path

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
