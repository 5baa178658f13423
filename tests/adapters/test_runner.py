"""The adapter runner end to end: SQL to the gateway to SQL, surviving SIGKILL."""

from __future__ import annotations

import asyncio
import datetime
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from adapters.sql import SqlSource
from catalog.models import Role
from catalog.v1 import catalog_pb2 as pb
from exchange.cli import main
from tests.gateway_harness import RunningGateway
from tests.world import World, build_world

ROWS = 50_000
KILLS = 8  # SIGKILLs of the adapters during a transfer, publisher and subscriber in turn


def make_market(path: Path, rows: int) -> None:
    """The market regulator's own database: business licences."""
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE licences (licence_no TEXT PRIMARY KEY, seq INTEGER NOT NULL, "
            "holder TEXT NOT NULL, region_code TEXT NOT NULL, capital NUMERIC(12, 2), "
            "issued_at DATETIME)"
        )
        base = datetime.datetime(2024, 1, 1)
        db.executemany(
            "INSERT INTO licences VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    f"91510104MA{i:08d}",
                    i,
                    f"成都某某商贸有限公司{i}",
                    ("510104", "510105", "510107")[i % 3],
                    str(Decimal(i % 100_000) / 100),
                    (base + datetime.timedelta(minutes=i)).isoformat(sep=" "),
                )
                for i in range(rows)
            ],
        )


def table_rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT licence_no, holder, region_code, CAST(capital AS TEXT) FROM licences"
        ).fetchall()
    return sorted(
        (a, b, c, str(Decimal(d).normalize()) if d is not None else None) for a, b, c, d in rows
    )


def count(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path) as db:
            return int(db.execute("SELECT count(*) FROM licences").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def set_up(gateway: RunningGateway, tmp_path: Path, rows: int) -> dict[str, Path]:
    """The world, the source database, the resource registered from discovery, configs."""
    world: World = build_world(gateway)
    world.department("SAMR")
    samr = world.system("SAMR-LICENCE", "SAMR")
    market = tmp_path / "market.db"
    make_market(market, rows)
    source = SqlSource({"url": f"sqlite:///{market}", "table": "licences", "cursor": "seq"})
    (stream,) = [s for s in asyncio.run(source.discover()) if s.name == "licences"]
    world.resource(
        "LICENCES", "SAMR", stream.schema, key_fields=["licence_no"], region_field="region_code"
    )
    world.grant("LICENCES", "CIVIL-AFFAIRS")
    key = tmp_path / "samr-signing-key.pem"
    samr.signer.save(key)
    (tmp_path / "samr.token").write_text(samr.token)
    (tmp_path / "civil.token").write_text(world.systems["CIVIL-AFFAIRS"].token)
    common = f'address = "{gateway.target}"\ninsecure = true\n'
    publisher = tmp_path / "publisher.toml"
    publisher.write_text(
        f'[gateway]\n{common}token_file = "samr.token"\nsigning_key = "{key.name}"\n\n'
        '[[publish]]\nresource = "LICENCES"\nsource = "sql"\nbatch_size = 250\n'
        'poll_seconds = 0.2\n[publish.options]\nurl = "sqlite:///market.db"\n'
        'table = "licences"\ncursor = "seq"\n'
    )
    subscriber = tmp_path / "subscriber.toml"
    subscriber.write_text(
        f'[gateway]\n{common}token_file = "civil.token"\n\n'
        '[[subscribe]]\nresource = "LICENCES"\nsink = "sql"\n[subscribe.options]\n'
        'url = "sqlite:///civil.db"\ntable = "licences"\ncreate_table = true\n'
    )
    return {
        "market": market,
        "civil": tmp_path / "civil.db",
        "publisher": publisher,
        "subscriber": subscriber,
    }


def start(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exchange.cli",
            "adapter",
            "run",
            str(config),
            "--report-seconds",
            "0",
        ],
        cwd=config.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def stored_records(gateway: RunningGateway) -> int:
    return gateway.stored_records("LICENCES")


def test_adapters_survive_sigkill_with_nothing_lost_and_nothing_duplicated(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    paths = set_up(gateway, tmp_path, ROWS)
    rng = random.Random(20261123)
    # Kills come at random points of the transfer's progress, not of the clock, so a fast
    # machine cannot finish the transfer before them: the publisher when the gateway has
    # stored a share of the rows, the subscriber when civil.db holds a share, in turn.
    kill_at = [0.8 * ROWS * (k + rng.uniform(0.2, 0.8)) / KILLS for k in range(KILLS)]  # 2-78%
    progress = {
        "publisher": lambda: stored_records(gateway),
        "subscriber": lambda: count(paths["civil"]),
    }
    procs = {"publisher": start(paths["publisher"]), "subscriber": start(paths["subscriber"])}
    kills = 0
    try:
        deadline = time.monotonic() + 240  # a liveness bound, not a speed check
        while count(paths["civil"]) < ROWS and time.monotonic() < deadline:
            role = ("publisher", "subscriber")[kills % 2]
            if kills < KILLS and progress[role]() >= kill_at[kills]:
                procs[role].send_signal(signal.SIGKILL)
                procs[role].wait(10)
                kills += 1
                procs[role] = start(paths[role])
            else:
                time.sleep(0.05)
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    errors = {
        role: (p.stderr.read() if p.stderr else b"").decode()[-2000:] for role, p in procs.items()
    }
    assert kills == KILLS, f"only {kills} kills happened before the transfer ended"
    assert count(paths["civil"]) == ROWS, errors
    assert table_rows(paths["civil"]) == table_rows(paths["market"]), "target differs"
    assert stored_records(gateway) == ROWS, "the outbox resends; the gateway stores once"


def test_adapter_check_reports_each_problem_with_its_key(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    paths = set_up(gateway, tmp_path, 10)
    ok = CliRunner().invoke(main, ["adapter", "check", str(paths["publisher"])])
    assert ok.exit_code == 0, ok.output
    broken = tmp_path / "broken.toml"
    broken.write_text(
        paths["publisher"].read_text().replace('table = "licences"', 'table = "nope"')
    )
    result = CliRunner().invoke(main, ["adapter", "check", str(broken)])
    assert result.exit_code == 1
    assert "publish[0].options.table" in result.output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("batch_size = 250", 'batch_size = "many"'), "publish[0].batch_size: expected int"),
        (('source = "sql"', 'source = "oracle"'), "no source adapter named 'oracle'"),
        (("insecure = true", 'insecure = "yes"'), "gateway.insecure: expected bool"),
        (('token_file = "samr.token"\n', ""), "gateway.token: give exactly one"),
    ],
)
def test_a_bad_config_says_which_key_and_what_was_expected(
    gateway: RunningGateway, tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    paths = set_up(gateway, tmp_path, 1)
    bad = tmp_path / "bad.toml"
    bad.write_text(paths["publisher"].read_text().replace(*change))
    result = CliRunner().invoke(main, ["adapter", "check", str(bad)])
    assert result.exit_code != 0
    assert message in result.output


def test_discover_proposes_a_catalog_entry_and_registers_it(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    paths = set_up(gateway, tmp_path, 3)
    officer = gateway.issue_token("wang", Role.DATA_OFFICER, department="SAMR")
    config = tmp_path / "officer.toml"
    config.write_text(
        paths["publisher"]
        .read_text()
        .replace('token_file = "samr.token"', f'token = "{officer}"')
        .replace('resource = "LICENCES"', 'resource = "LICENCES-2"')
    )
    result = CliRunner().invoke(
        main, ["adapter", "discover", str(config), "--register", "--owner", "SAMR"]
    )
    assert result.exit_code == 0, result.output
    assert '"registers": "licences"' in result.output
    from adapters.connection import auth_metadata, open_blocking_channel
    from catalog.v1 import catalog_pb2_grpc

    with open_blocking_channel(gateway.target, insecure=True, quiet=True) as channel:
        resource = (
            catalog_pb2_grpc.CatalogServiceStub(channel)
            .GetResource(pb.GetResourceRequest(code="LICENCES-2"), metadata=auth_metadata(officer))
            .resource
        )
    assert list(resource.key_fields) == ["licence_no"]
    assert resource.classification == pb.CLASSIFICATION_IMPORTANT


def test_a_refusal_about_the_adapter_keeps_its_batches_and_cursor(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    from adapters.config import load
    from adapters.runner import Runner, state_key
    from adapters.state import AdapterState
    from envelope.signing import Ed25519Signer

    paths = set_up(gateway, tmp_path, 40)
    stranger = tmp_path / "unregistered-key.pem"
    Ed25519Signer.generate().save(stranger)
    config = tmp_path / "wrong-key.toml"
    config.write_text(paths["publisher"].read_text().replace("samr-signing-key.pem", stranger.name))
    loaded = load(config)

    async def run() -> Runner:
        runner = Runner(loaded, report_seconds=0)
        task = asyncio.create_task(runner.run())
        await asyncio.sleep(2.0)
        runner.stop()
        await task
        return runner

    runner = asyncio.run(run())
    assert runner.progress.errors >= 1
    state = AdapterState(loaded.gateway.state)
    key = state_key(loaded.publish[0])
    assert state.dead_letters() == [], "UNKNOWN_SIGNING_KEY is about us, not the batch"
    assert state.cursor(key) is None, "the cursor must not move past unacknowledged rows"
    assert state.outbox(key), "the signed batch waits in the outbox for a retry"
    state.close()
    assert stored_records(gateway) == 0


def test_a_bad_signing_key_file_is_a_config_error(gateway: RunningGateway, tmp_path: Path) -> None:
    paths = set_up(gateway, tmp_path, 1)
    (tmp_path / "samr-signing-key.pem").write_text("not a key")
    result = CliRunner().invoke(main, ["adapter", "check", str(paths["publisher"])])
    assert result.exit_code != 0
    assert "gateway.signing_key" in result.output


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("start_after_offset = 3\nstart_time = 2026-11-01T00:00:00+08:00\n", "not both"),
        ("start_time = 2026-11-01T00:00:00\n", "start_time: give a time with its UTC offset"),
        ("start_after_offset = -1\n", "start_after_offset: expected 0 or more"),
        ('start_after_offset = "3"\n', "start_after_offset: expected int"),
    ],
)
def test_a_replay_start_in_a_subscription_is_checked(
    gateway: RunningGateway, tmp_path: Path, lines: str, message: str
) -> None:
    paths = set_up(gateway, tmp_path, 1)
    bad = tmp_path / "bad.toml"
    bad.write_text(
        paths["subscriber"].read_text().replace('sink = "sql"\n', 'sink = "sql"\n' + lines)
    )
    result = CliRunner().invoke(main, ["adapter", "check", str(bad)])
    assert result.exit_code != 0
    assert message in result.output


def test_a_subscription_replays_from_an_offset(gateway: RunningGateway, tmp_path: Path) -> None:
    """`lijiao adapter run` passes the replay start to the gateway: a new subscription
    that starts after the first batch's offset receives only the batches after it."""
    from adapters.config import load
    from adapters.runner import Runner
    from catalog import ledger
    from catalog.ledger import EntryFilter, EntryKind

    paths = set_up(gateway, tmp_path, 500)  # two batches of 250

    async def run_until(config: Path, done: Any) -> None:
        runner = Runner(load(config), report_seconds=0)
        task = asyncio.create_task(runner.run())
        deadline = time.monotonic() + 60
        try:
            while not done():
                assert time.monotonic() < deadline, f"{config.name} did not finish"
                await asyncio.sleep(0.1)
        finally:
            runner.stop()
            try:  # a liveness bound, not a speed check: stop() must end run()
                await asyncio.wait_for(task, 60)
            except TimeoutError:
                pytest.fail(f"the runner of {config.name} did not stop within 60 s of stop()")

    asyncio.run(run_until(paths["publisher"], lambda: stored_records(gateway) == 500))
    sessions = gateway.gateway.catalog.sessions  # type: ignore[union-attr]
    stored = ledger.entries(sessions, EntryFilter(kinds=(EntryKind.BATCH,)), 10)
    first = min(entry.position for entry in stored if entry.resource == "LICENCES")
    replay = tmp_path / "replay.toml"
    replay.write_text(
        paths["subscriber"]
        .read_text()
        .replace(
            'sink = "sql"\n',
            f'sink = "sql"\nsubscription = "rerun"\nstart_after_offset = {first}\n',
        )
    )
    asyncio.run(run_until(replay, lambda: count(paths["civil"]) >= 250))
    assert table_rows(paths["civil"]) == table_rows(paths["market"])[250:]
