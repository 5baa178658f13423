"""Migrations: Alembic builds the same schema as the models, on SQLite and PostgreSQL,
and the catalog with its ledger works the same on both.

PostgreSQL is the server of this machine, one fresh schema per test (tests/conftest.py).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner

from catalog import db, ledger
from catalog.credentials import Identity
from catalog.ledger import EntryFilter, EntryKind, NewEntry, Problem
from catalog.models import AdministrativeLevel, Base, Role
from catalog.service import Catalog
from envelope.signing import Ed25519Signer
from exchange.cli import main

ADMIN = Identity("admin", Role.ADMINISTRATOR)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    return str(request.getfixturevalue("postgres_url"))


def test_the_migrations_build_exactly_the_models_schema(url: str) -> None:
    engine = sa.create_engine(url)
    config = db._config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")  # every revision, in order, from nothing
    with engine.connect() as conn:
        differences = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    engine.dispose()
    assert differences == [], f"the models and the migrations differ: {differences}"


def test_open_catalog_migrates_or_refuses_a_database_behind(url: str) -> None:
    with pytest.raises(db.SchemaBehind, match="lijiao db upgrade"):
        db.open_catalog(url, migrate=False)
    sessions = db.open_catalog(url)
    assert db.current_revision(sessions.kw["bind"]) == db.head_revision()
    db.close_catalog(sessions)
    again = db.open_catalog(url, migrate=False)  # at head now: no refusal
    db.close_catalog(again)


def test_the_catalog_and_its_ledger_work_on_both_databases(url: str) -> None:
    sessions = db.open_catalog(url)
    catalog = Catalog(sessions)
    token = ledger.ACTOR.set("admin")
    try:
        catalog.create_department(
            ADMIN, code="PSB", name="公安局", level=AdministrativeLevel.CITY, region_code="510100"
        )
        catalog.create_system(
            ADMIN, code="PSB-HUKOU", name="户籍", department="PSB", public_key=b"\x02" * 32
        )
    finally:
        ledger.ACTOR.reset(token)
    signer = Ed25519Signer.generate()
    with sessions.kw["bind"].begin() as conn:
        ledger.append(conn, [NewEntry(EntryKind.DENIAL, "call.refused", principal="x")])
        assert ledger.checkpoint(conn, signer) == 4
    trusted = {signer.key_id: signer.public_key}
    assert ledger.verify(sessions, trusted).ok
    rows = ledger.entries(sessions, EntryFilter(department="PSB"), 10)
    assert [r.action for r in rows] == [
        "department.created",
        "system.created",
        "signing_key.created",
    ]
    assert rows[0].principal == "admin" and "公安局" in rows[0].content
    with sessions.kw["bind"].begin() as conn:
        conn.execute(sa.text("UPDATE ledger_entries SET department = 'X' WHERE sequence = 2"))
    result = ledger.verify(sessions, trusted)
    assert (result.problem, result.sequence) == (Problem.MODIFIED, 2)
    db.close_catalog(sessions)


def test_concurrent_writers_append_one_chain(url: str) -> None:
    """Threads (as gateway replicas would) append at once: the head's lock keeps one chain."""
    sessions = db.open_catalog(url)
    engine = sessions.kw["bind"]
    failures: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for i in range(15):
                with engine.begin() as conn:
                    ledger.append(
                        conn,
                        [NewEntry(EntryKind.DENIAL, "call.refused", subject=f"{worker}-{i}")],
                    )
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    result = ledger.verify(sessions, {})
    assert result.ok and result.entries == 60, result.message
    db.close_catalog(sessions)


def test_lijiao_db_upgrade_and_current(tmp_path: Path) -> None:
    runner = CliRunner()
    data = str(tmp_path / "data")
    current: Any = runner.invoke(main, ["db", "current", "--data-dir", data])
    assert current.exit_code == 0 and "none" in current.output
    upgraded = runner.invoke(main, ["db", "upgrade", "--data-dir", data])
    assert upgraded.exit_code == 0 and db.head_revision() in upgraded.output
    again = runner.invoke(main, ["db", "upgrade", "--data-dir", data])
    assert again.exit_code == 0 and "already" in again.output
