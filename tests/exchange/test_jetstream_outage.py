"""The record log's NATS server goes away and comes back: publishing is refused while it
is away (nothing acknowledged, nothing half-done) and works again once it is back."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from exchange.v1 import exchange_pb2
from tests.gateway_harness import RunningGateway, unreachable
from tests.wire import encode, publish, signed_batch
from tests.world import PERSON_SCHEMA, World, build_world, person


class NatsServer:
    """A nats-server of the test's own (JetStream on), on a free port."""

    def __init__(self, store: Path) -> None:
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        if not Path(binary).exists():
            unreachable("nats-server is not installed")
        self.binary = binary
        self.store = store
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "nats-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def batch(world: World, i: int) -> exchange_pb2.RecordBatch:
    return signed_batch(
        world.systems["PSB-HUKOU"].signer,
        "RESIDENTS",
        PERSON_SCHEMA,
        encode(PERSON_SCHEMA, [person(i)]),
        batch_id=f"b-{i}",
    )


def test_publishing_is_refused_while_nats_is_away_and_works_again_after(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    gateway = RunningGateway(tmp_path / "gw", log_url=nats_server.url, database_url="")
    try:
        world = build_world(gateway)
        token = world.systems["PSB-HUKOU"].token
        assert publish(gateway.target, token, [batch(world, 0)]).code is None
        nats_server.stop()
        refused = [publish(gateway.target, token, [batch(world, i)]) for i in range(1, 6)]
        assert {(r.code, r.reason) for r in refused} == {
            (grpc.StatusCode.UNAVAILABLE, "LOG_UNAVAILABLE")
        }
        nats_server.start()
        deadline = time.monotonic() + 30
        while (outcome := publish(gateway.target, token, [batch(world, 6)])).code is not None:
            assert outcome.reason == "LOG_UNAVAILABLE", outcome.details
            assert time.monotonic() < deadline, "publishing did not recover"
            time.sleep(0.2)
        assert not outcome.acks[0].duplicate
        # what was refused was not acknowledged; resent now, each is stored once
        again = publish(gateway.target, token, [batch(world, i) for i in range(1, 6)])
        assert again.code is None and len(again.acks) == 5
        assert gateway.stored_batches() == 7
    finally:
        gateway.stop()


def test_a_gateway_without_nats_says_so_instead_of_hanging(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there
    with pytest.raises(
        ValueError, match=r"cannot reach NATS at nats://127\.0\.0\.1:\d+: nothing accepts"
    ):
        RunningGateway(tmp_path / "gw", log_url=f"nats://127.0.0.1:{port}", database_url="")
