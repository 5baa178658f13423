"""The JetStream log finds its streams however many the NATS account holds."""

from __future__ import annotations

import asyncio
import secrets

import nats
from nats.js.api import StorageType

from exchange.log.jetstream import JetStreamLog
from tests.gateway_harness import NATS_URL

PAGE = 256  # streams JetStream lists in one page


def test_a_prefix_streams_are_found_past_the_first_page_of_the_stream_list(
    nats_log_url: str,
) -> None:
    """With more streams in the account than one page of JetStream's stream list, and
    the log's own sorting after them, the log still finds and removes its streams."""
    filler = f"la{secrets.token_hex(5)}"  # sorts before the log's prefix ("lt...")

    async def run() -> tuple[str, list[str], list[str]]:
        connection = await nats.connect(NATS_URL, connect_timeout=3)
        js = connection.jetstream(timeout=30)
        try:
            for i in range(PAGE + 4):
                await js.add_stream(
                    name=f"{filler}_{i}", subjects=[f"{filler}.{i}"], storage=StorageType.MEMORY
                )
            log = await JetStreamLog.connect(nats_log_url)
            try:
                own = f"{log.options.prefix}_PSB"
                await js.add_stream(
                    name=own,
                    subjects=[f"{log.options.prefix}.rec.PSB.>"],
                    storage=StorageType.MEMORY,
                )
                found = [info.config.name or "" for info in await log._streams_of_prefix()]
                await log.delete_streams()
                left = [info.config.name or "" for info in await log._streams_of_prefix()]
            finally:
                await log.close()
            return own, found, left
        finally:
            for i in range(PAGE + 4):
                await js.delete_stream(f"{filler}_{i}")
            await connection.close()

    own, found, left = asyncio.run(run())
    assert found == [own]
    assert left == []
