"""A cursor read while its move is being committed still sees the move."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from exchange.log.sqlite import SqliteLog


def test_a_cursor_read_during_the_commit_of_its_move_sees_the_move(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer takes the pending moves off their list before it commits them; a
    read in between must not fall back to the old position (a reconnecting subscriber
    would be sent acknowledged batches again, or a replay start applied twice)."""
    commit = SqliteLog._commit_group

    def slow_commit(self: SqliteLog, appends: Any, cursors: Any) -> None:
        time.sleep(0.2)  # an fsync under load
        commit(self, appends, cursors)

    monkeypatch.setattr(SqliteLog, "_commit_group", slow_commit)

    async def run() -> list[int]:
        log = SqliteLog(tmp_path / "log.db")
        try:
            log.move_cursor("CIVIL-AFFAIRS", "RESIDENTS", "main", 2)
            seen = []
            for _ in range(8):
                seen.append(await log.cursor("CIVIL-AFFAIRS", "RESIDENTS", "main"))
                await asyncio.sleep(0.05)
            return seen
        finally:
            await log.close()

    assert asyncio.run(run()) == [2] * 8
