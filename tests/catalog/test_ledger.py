"""The audit ledger: the chain, checkpoints, tamper detection, retention, files.

Tampering is done the way an intruder with database access would: raw SQL on the
SQLite file, behind the catalog's back.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastavro import reader
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog import ledger, ledger_files
from catalog.credentials import Identity, issue_token
from catalog.db import close_catalog, open_catalog
from catalog.ledger import EntryFilter, EntryKind, NewEntry, Problem
from catalog.models import AdministrativeLevel, Role
from catalog.service import Catalog
from envelope.errors import AlreadyExists
from envelope.signing import Ed25519Signer
from exchange.audit.tasks import apply_retention, archive_to, expired_archives
from exchange.settings import Settings

ADMIN = Identity("admin", Role.ADMINISTRATOR)


class Book:
    """A catalog database with a ledger, a gateway key and raw SQL access."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sessions = open_catalog(f"sqlite:///{path}")
        self.catalog = Catalog(self.sessions)
        self.signer = Ed25519Signer.generate()
        self.trusted = {self.signer.key_id: self.signer.public_key}

    def department(self, code: str) -> None:
        token = ledger.ACTOR.set("admin")
        try:
            self.catalog.create_department(
                ADMIN,
                code=code,
                name=f"{code} bureau",
                level=AdministrativeLevel.CITY,
                region_code="510100",
            )
        finally:
            ledger.ACTOR.reset(token)

    def append(self, *entries: NewEntry) -> int:
        with self.sessions.kw["bind"].begin() as conn:
            return ledger.append(conn, entries)

    def checkpoint(self) -> int:
        with self.sessions.kw["bind"].begin() as conn:
            return ledger.checkpoint(conn, self.signer)

    def verify(self) -> ledger.Verification:
        return ledger.verify(self.sessions, self.trusted)

    def sql(self, statement: str, *params: Any) -> None:
        conn = sqlite3.connect(self.path)
        with conn:
            conn.execute(statement, params)
        conn.close()

    def rows(self) -> list[Any]:
        return ledger.entries(self.sessions, EntryFilter(), 10_000)


@pytest.fixture
def book(tmp_path: Path) -> Any:
    made = Book(tmp_path / "catalog.db")
    yield made
    close_catalog(made.sessions)


def delivery(i: int, **extra: Any) -> NewEntry:
    values: dict[str, Any] = {
        "principal": "CIVIL-AFFAIRS",
        "department": "CIVIL",
        "provider": "PSB",
        "system": "CIVIL-AFFAIRS",
        "resource": "RESIDENTS",
        "grant_id": "g-1",
        "subject": f"b-{i}",
        "position": i,
        "records": 10,
        "bytes": 400,
        "details": {"delivered_digest": bytes([i % 256]) * 32},
    }
    values.update(extra)
    return NewEntry(EntryKind.DELIVERY, "batch.delivered", **values)


def filled(book: Book, count: int = 10) -> None:
    book.department("PSB")
    book.department("CIVIL")
    book.append(*(delivery(i) for i in range(count - 2)))
    book.checkpoint()


# --- what is recorded -------------------------------------------------------------


def test_catalog_changes_are_entries_with_the_acting_principal(book: Book) -> None:
    book.department("PSB")
    book.catalog.create_system(
        ADMIN, code="PSB-HUKOU", name="hukou", department="PSB", public_key=b"\x01" * 32
    )
    rows = book.rows()
    assert [(r.kind, r.action, r.subject) for r in rows] == [
        ("CATALOG", "department.created", "PSB"),
        ("CATALOG", "system.created", "PSB-HUKOU"),
        ("CATALOG", "signing_key.created", rows[2].subject),
    ]
    assert rows[0].principal == "admin"
    assert rows[1].principal == "local"  # no caller set: a change from the host itself
    assert rows[1].department == "PSB" and rows[1].system == "PSB-HUKOU"
    assert json.loads(rows[0].content)["details"]["region_code"] == "510100"
    assert book.verify().ok


def test_a_change_that_rolls_back_leaves_no_entry(book: Book) -> None:
    book.department("PSB")
    with pytest.raises(AlreadyExists):
        book.department("PSB")
    assert [r.action for r in book.rows()] == ["department.created"]
    assert ledger.head(book.sessions) == (1, 0)
    assert book.verify().ok


def test_secrets_never_enter_the_ledger(book: Book) -> None:
    book.department("PSB")
    with book.sessions() as session:
        token = issue_token(session, name="wang", role=Role.DATA_OFFICER, department="PSB")
        session.commit()
    secret = token.split("_", 2)[2]  # lj_<lookup>_<secret>; the secret may hold "_"
    assert len(secret) > 20
    contents = "".join(r.content for r in book.rows())
    assert "credential.created" in contents
    assert secret not in contents
    assert "secret_hash" not in contents


def test_updates_record_old_and_new_values(book: Book) -> None:
    book.department("PSB")
    book.catalog.create_system(ADMIN, code="S", name="s", department="PSB", public_key=None)
    with book.sessions() as session:
        from catalog.models import System, SystemStatus

        system = session.query(System).filter_by(code="S").one()
        system.status = SystemStatus.SUSPENDED
        session.commit()
    last = book.rows()[-1]
    assert last.action == "system.updated"
    assert json.loads(last.content)["details"] == {"changed": {"status": ["ACTIVE", "SUSPENDED"]}}


# --- verification -------------------------------------------------------------------


def test_an_untouched_ledger_verifies_with_its_checkpoints(book: Book) -> None:
    filled(book)
    book.append(delivery(100))
    book.checkpoint()
    result = book.verify()
    assert result.ok, result.message
    assert (result.entries, result.checkpoints, result.last_checkpoint) == (11, 2, 11)
    assert result.verified_through == 11


def test_a_modified_entry_is_pinpointed(book: Book) -> None:
    filled(book)
    book.sql(
        "UPDATE ledger_entries SET content = replace(content, '\"records\":10', "
        "'\"records\":99') WHERE sequence = 5"
    )
    result = book.verify()
    assert not result.ok
    assert (result.problem, result.sequence, result.verified_through) == (Problem.MODIFIED, 5, 4)
    assert "entry 5 was modified" in result.message


def test_a_modified_column_is_pinpointed(book: Book) -> None:
    filled(book)
    book.sql("UPDATE ledger_entries SET department = 'OTHER' WHERE sequence = 6")
    result = book.verify()
    assert (result.problem, result.sequence) == (Problem.MODIFIED, 6)
    assert "'department'" in result.message


def test_a_rewritten_entry_with_its_hashes_recomputed_breaks_the_next_link(book: Book) -> None:
    filled(book)
    row = book.rows()[3]  # sequence 4
    content = row.content.replace('"records":10', '"records":1')
    digest = hashlib.sha256(content.encode()).digest()
    forged = ledger.chain_hash(bytes(row.previous_hash), 4, digest)
    book.sql(
        "UPDATE ledger_entries SET content = ?, records = 1, content_digest = ?, hash = ? "
        "WHERE sequence = 4",
        content,
        digest,
        forged,
    )
    result = book.verify()
    assert (result.problem, result.sequence) == (Problem.OUT_OF_ORDER, 5)


def test_a_deleted_entry_is_pinpointed(book: Book) -> None:
    filled(book)
    book.sql("DELETE FROM ledger_entries WHERE sequence = 7")
    result = book.verify()
    assert (result.problem, result.sequence) == (Problem.MISSING, 7)
    assert "entry 7 missing" in result.message


def test_reordered_entries_are_pinpointed(book: Book) -> None:
    filled(book)
    book.sql("UPDATE ledger_entries SET sequence = -1 WHERE sequence = 4")
    book.sql("UPDATE ledger_entries SET sequence = 4 WHERE sequence = 6")
    book.sql("UPDATE ledger_entries SET sequence = 6 WHERE sequence = -1")
    result = book.verify()
    assert (result.problem, result.sequence) == (Problem.OUT_OF_ORDER, 4)
    assert "does not follow entry 3" in result.message


def test_entries_deleted_at_the_end_are_detected(book: Book) -> None:
    filled(book)
    book.append(delivery(50), delivery(51))  # after the checkpoint
    book.sql("DELETE FROM ledger_entries WHERE sequence > 10")
    result = book.verify()
    assert (result.problem, result.sequence) == (Problem.MISSING, 11)


def test_the_tail_deleted_with_the_head_rewound_is_caught_by_the_checkpoint(book: Book) -> None:
    filled(book)  # checkpoint at 10
    row = book.rows()[7]
    book.sql("DELETE FROM ledger_entries WHERE sequence > 8")
    book.sql("UPDATE ledger_head SET sequence = 8, hash = ?", bytes(row.hash))
    result = book.verify()
    assert (result.problem, result.sequence) == (Problem.MISSING, 10)


def test_a_whole_chain_rewritten_fails_at_the_signed_checkpoint(book: Book) -> None:
    filled(book)
    previous = ledger.GENESIS
    for row in book.rows():
        content = row.content.replace('"bytes":400', '"bytes":1')
        digest = hashlib.sha256(content.encode()).digest()
        current = ledger.chain_hash(previous, row.sequence, digest)
        book.sql(
            "UPDATE ledger_entries SET content = ?, bytes = ?, content_digest = ?, "
            "previous_hash = ?, hash = ? WHERE sequence = ?",
            content,
            1 if row.bytes == 400 else row.bytes,
            digest,
            previous,
            current,
            row.sequence,
        )
        previous = current
    book.sql("UPDATE ledger_head SET hash = ?", previous)
    result = book.verify()
    assert (result.problem, result.sequence) == (Problem.BAD_CHECKPOINT, 10)
    assert "differs from the signed checkpoint" in result.message


def test_an_altered_or_untrusted_checkpoint_fails(book: Book) -> None:
    filled(book)
    book.sql("UPDATE ledger_checkpoints SET time = '2020-01-01 00:00:00.000000'")
    result = book.verify()
    assert (result.problem, result.sequence) == (Problem.BAD_CHECKPOINT, 10)
    assert "does not verify" in result.message
    stranger = ledger.verify(book.sessions, {"0" * 16: b"\x00" * 32})
    assert stranger.problem is Problem.BAD_CHECKPOINT
    assert "not a trusted gateway key" in stranger.message


def test_a_checkpoint_is_not_repeated_when_nothing_was_added(book: Book) -> None:
    filled(book)
    assert book.checkpoint() == 0
    book.append(delivery(60))
    assert book.checkpoint() == 11


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    details=st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.one_of(st.integers(-(2**53), 2**53), st.text(max_size=20), st.booleans(), st.none()),
        max_size=5,
    ),
    position=st.integers(0, 9),
    flip=st.integers(0, 10_000),
)
def test_any_change_to_any_content_byte_is_detected(
    tmp_path_factory: Any, details: dict[str, Any], position: int, flip: int
) -> None:
    book = Book(tmp_path_factory.mktemp("ledger") / "catalog.db")
    try:
        book.append(*(delivery(i, details=details) for i in range(10)))
        assert book.verify().ok
        row = book.rows()[position]
        content = row.content
        index = flip % len(content)
        changed = content[:index] + ("X" if content[index] != "X" else "Y") + content[index + 1 :]
        book.sql("UPDATE ledger_entries SET content = ? WHERE sequence = ?", changed, row.sequence)
        result = book.verify()
        assert (result.ok, result.sequence) == (False, row.sequence)
    finally:
        close_catalog(book.sessions)


# --- files --------------------------------------------------------------------------


def test_avro_export_round_trips_and_verifies_offline(book: Book) -> None:
    filled(book)
    out = io.BytesIO()
    assert ledger_files.write_avro(book.rows(), out) == 10
    out.seek(0)
    avro = reader(out)
    records = list(avro)
    assert avro.metadata["lijiao.previous_hash"] == "00" * 32
    assert [r["sequence"] for r in records] == list(range(1, 11))
    assert records[5]["kind"] == "DELIVERY" and records[5]["records"] == 10
    assert records[5]["time"].tzinfo is not None
    assert ledger_files.verify_records(records) == (10, "")
    records[3]["content"] = records[3]["content"].replace("CIVIL", "PSB")
    count, problem = ledger_files.verify_records(records)
    assert count == 3 and "entry 4 was modified" in problem


def test_jsonl_export_has_one_object_per_entry(book: Book) -> None:
    filled(book)
    out = io.BytesIO()
    assert ledger_files.write_jsonl(book.rows(), out) == 10
    lines = [json.loads(line) for line in out.getvalue().decode().splitlines()]
    assert [line["sequence"] for line in lines] == list(range(1, 11))
    assert len(bytes.fromhex(lines[0]["hash"])) == 32
    assert lines[0]["time"].endswith("Z")


# --- retention ----------------------------------------------------------------------


def old(days: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def test_pruning_archives_first_and_the_rest_still_verifies(book: Book, tmp_path: Path) -> None:
    book.append(*(delivery(i, time=old(400 - i)) for i in range(6)))
    book.append(*(delivery(i, time=old(10)) for i in range(6, 9)))
    book.checkpoint()
    audit = Settings.load({"data_dir": tmp_path / "gw"}, env={}).audit()
    pruned = apply_retention(book.sessions, book.signer, audit)
    assert pruned is not None and (pruned.through, pruned.entries) == (6, 6)
    archive = audit.archive_dir / pruned.archive
    with archive.open("rb") as source:
        records = list(ledger_files.read_avro(source))
    assert [r["sequence"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert ledger_files.verify_records(records) == (6, "")
    rows = book.rows()
    assert [r.sequence for r in rows] == [7, 8, 9, 10]
    assert rows[-1].action == "ledger.pruned" and rows[-1].subject == pruned.archive
    import hashlib

    details = json.loads(rows[-1].content)["details"]
    assert details["archive_sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    result = book.verify()
    assert result.ok, result.message
    assert result.first_sequence == 7
    assert apply_retention(book.sessions, book.signer, audit) is None  # nothing more is due


def test_deleting_past_the_anchor_after_pruning_is_detected(book: Book, tmp_path: Path) -> None:
    book.append(*(delivery(i, time=old(300)) for i in range(4)))
    book.append(*(delivery(i, time=old(1)) for i in range(4, 8)))
    audit = Settings.load({"data_dir": tmp_path / "gw"}, env={}).audit()
    assert apply_retention(book.sessions, book.signer, audit) is not None
    book.sql("DELETE FROM ledger_entries WHERE sequence = 5")
    assert (book.verify().problem, book.verify().sequence) == (Problem.MISSING, 5)


def test_a_forged_anchor_is_detected(book: Book, tmp_path: Path) -> None:
    book.append(*(delivery(i, time=old(300)) for i in range(4)))
    book.append(*(delivery(i, time=old(1)) for i in range(4, 8)))
    book.checkpoint()  # a regular checkpoint at 8 cannot stand in for an anchor
    row = book.rows()[5]
    book.sql("DELETE FROM ledger_entries WHERE sequence <= 6")
    book.sql("UPDATE ledger_head SET anchor_sequence = 6, anchor_hash = ?", bytes(row.hash))
    result = book.verify()
    assert (result.ok, result.problem) == (False, Problem.BAD_CHECKPOINT)
    assert "no signed anchor" in result.message


def test_retention_keeps_archives_for_the_personal_data_minimum(tmp_path: Path) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    folder = tmp_path / "archive"
    folder.mkdir()
    (folder / "ledger-000000000001-000000000010-20260101.avro").write_bytes(b"x")
    (folder / "ledger-000000000011-000000000020-20280101.avro").write_bytes(b"x")
    (folder / "notes.txt").write_text("kept")
    expired = expired_archives(folder, 1096, now)
    assert [p.name for p in expired] == ["ledger-000000000001-000000000010-20260101.avro"]


def test_retention_below_the_legal_minimums_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 183"):
        Settings.load(env={"LIJIAO_LEDGER_RETENTION_DAYS": "30"})
    with pytest.raises(ValueError, match="at least 1096"):
        Settings.load(env={"LIJIAO_PERSONAL_DATA_RETENTION_DAYS": "365"})
    assert Settings.load(env={}).ledger_retention_days == 183


def test_an_archive_is_complete_or_absent(tmp_path: Path, book: Book) -> None:
    filled(book)
    archive = archive_to(tmp_path / "a")

    def failing() -> Any:
        yield from book.rows()[:2]
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        archive(failing(), 2, ledger.GENESIS)
    assert list((tmp_path / "a").iterdir()) == []


def test_checkpoints_deleted_and_the_chain_rewritten_are_caught_by_the_gateways_witness(
    book: Book,
) -> None:
    """An intruder in the database deletes every checkpoint and recomputes every hash:
    the checkpoints cannot tell any more, the gateway's own record (kept outside the
    database) still does."""
    filled(book)
    witness = (10, bytes(book.rows()[9].hash))
    book.sql("DELETE FROM ledger_checkpoints")
    previous = ledger.GENESIS
    for row in book.rows():
        content = row.content.replace('"bytes":400', '"bytes":1')
        digest = hashlib.sha256(content.encode()).digest()
        current = ledger.chain_hash(previous, row.sequence, digest)
        book.sql(
            "UPDATE ledger_entries SET content = ?, bytes = ?, content_digest = ?, "
            "previous_hash = ?, hash = ? WHERE sequence = ?",
            content,
            1 if row.bytes == 400 else row.bytes,
            digest,
            previous,
            current,
            row.sequence,
        )
        previous = current
    book.sql("UPDATE ledger_head SET hash = ?", previous)
    assert book.verify().ok  # without the witness, a perfect forgery
    result = ledger.verify(book.sessions, book.trusted, witness=witness)
    assert (result.problem, result.sequence) == (Problem.BAD_CHECKPOINT, 10)
    assert "outside the database" in result.message


def test_the_tail_cut_below_the_gateways_witness_is_detected(book: Book) -> None:
    filled(book)
    witness = (10, bytes(book.rows()[9].hash))
    row = book.rows()[6]
    book.sql("DELETE FROM ledger_checkpoints")
    book.sql("DELETE FROM ledger_entries WHERE sequence > 7")
    book.sql("UPDATE ledger_head SET sequence = 7, hash = ?", bytes(row.hash))
    assert book.verify().ok
    result = ledger.verify(book.sessions, book.trusted, witness=witness)
    assert (result.ok, result.problem) == (False, Problem.MISSING)


def test_pruning_refuses_a_ledger_that_does_not_verify(book: Book, tmp_path: Path) -> None:
    from exchange.audit.tasks import LedgerTampered

    book.append(*(delivery(i, time=old(400)) for i in range(4)))
    book.append(delivery(9, time=old(1)))
    book.sql(
        "UPDATE ledger_entries SET content = replace(content, 'CIVIL', 'X') WHERE sequence = 2"
    )
    audit = Settings.load({"data_dir": tmp_path / "gw"}, env={}).audit()
    with pytest.raises(LedgerTampered, match="entry 2 was modified"):
        apply_retention(book.sessions, book.signer, audit)
    assert len(book.rows()) == 5 and not audit.archive_dir.exists()


def test_a_stored_batch_gets_one_entry_whoever_records_it(book: Book) -> None:
    """Two replicas may both record a batch (one stored it, the other answered the
    resend or reconciled): the ledger keeps the first and the chain still verifies."""

    def stored(position: int, resource: str = "RESIDENTS", batch_id: str = "") -> NewEntry:
        return NewEntry(
            EntryKind.BATCH,
            "batch.stored",
            system="PSB-HUKOU",
            resource=resource,
            subject=batch_id or f"b-{position}",
            position=position,
        )

    book.append(stored(1), stored(2))
    book.append(stored(2), stored(3), stored(3))
    book.append(stored(2, "OTHER"))  # the same position in another stream is another batch
    # a log restored from a backup numbers new batches again: another batch id is recorded
    book.append(stored(3, batch_id="after-restore"))
    batches = ledger.entries(book.sessions, EntryFilter(kinds=(EntryKind.BATCH,)), 100)
    assert sorted((e.resource, e.position, e.subject) for e in batches) == [
        ("OTHER", 2, "b-2"),
        ("RESIDENTS", 1, "b-1"),
        ("RESIDENTS", 2, "b-2"),
        ("RESIDENTS", 3, "after-restore"),
        ("RESIDENTS", 3, "b-3"),
    ]
    assert book.verify().ok
