"""The ledger writer thread: group commits that outlive any one waiter."""

from __future__ import annotations

import asyncio
from pathlib import Path

from catalog import ledger
from catalog.db import close_catalog, open_catalog
from catalog.ledger import EntryFilter, EntryKind, NewEntry
from exchange.audit.tasks import LedgerWriter


def test_a_waiter_that_gives_up_neither_loses_its_entry_nor_stops_the_writer(
    tmp_path: Path,
) -> None:
    sessions = open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    writer = LedgerWriter(sessions)
    entry = NewEntry(EntryKind.DENIAL, "call.refused", principal="x")

    async def impatient() -> None:
        task = asyncio.ensure_future(writer.record([entry]))
        await asyncio.sleep(0)
        task.cancel()  # e.g. the refused client went away before the entry committed

    asyncio.run(impatient())
    assert writer.call(lambda _conn: "still here").result(timeout=10) == "still here"
    asyncio.run(writer.flush())
    writer.close()
    assert [r.action for r in ledger.entries(sessions, EntryFilter(), 10)] == ["call.refused"]
    future = writer.submit([entry])  # closed: fails at once instead of hanging
    assert isinstance(future.exception(timeout=1), RuntimeError)
    close_catalog(sessions)
