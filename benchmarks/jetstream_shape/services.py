"""The PostgreSQL and NATS servers of the scaled-out shape: whether they answer, the
scratch schemas and prefixes a run makes in them, and what their streams hold."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from benchmarks.common.summary import progress
from benchmarks.common.world import RESOURCE, lane_names

NATS_URL = os.environ.get("LIJIAO_NATS_URL", "nats://127.0.0.1:4222")
POSTGRES_URL = os.environ.get(
    "LIJIAO_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
FAMILY = "PSB"  # family of every lane's resource: one stream, as the gateway lays it out
HEADER_ROOM = 4096  # what the gateway keeps free of NATS's max_payload for headers


def _redacted(url: str) -> str:
    """A URL without its password."""
    import sqlalchemy as sa

    if "://" in url and url.split("://", 1)[0].startswith("postgres"):
        return sa.make_url(url).render_as_string(hide_password=True)
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rsplit('@', 1)[-1]}"


def check_services(nats_url: str, postgres_url: str) -> tuple[dict[str, Any] | None, str]:
    """What the servers say about themselves, or (None, why one is unreachable)."""
    import nats
    import sqlalchemy as sa

    info: dict[str, Any] = {
        "nats_url": _redacted(nats_url),
        "postgres_url": _redacted(postgres_url),
    }
    engine = sa.create_engine(postgres_url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            info["postgresql"] = connection.exec_driver_sql("SHOW server_version").scalar()
            info["postgresql_synchronous_commit"] = connection.exec_driver_sql(
                "SHOW synchronous_commit"
            ).scalar()
    except Exception as exc:
        reason = getattr(exc, "orig", None) or exc
        return None, f"PostgreSQL at {_redacted(postgres_url)} is unreachable: {reason}"
    finally:
        engine.dispose()

    errors: list[Exception] = []

    async def quiet(exc: Exception) -> None:
        errors.append(exc)  # reported once, below

    async def reach() -> None:
        # nats-py retries a first connection forever with max_reconnect_attempts 0 or
        # -1; with 1 it gives up after the second attempt (NoServersError)
        connection = await asyncio.wait_for(
            nats.connect(
                nats_url,
                connect_timeout=3,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.2,
                error_cb=quiet,
            ),
            15,
        )
        try:
            await connection.jetstream(timeout=5).account_info()
            version = connection.connected_server_version
            info["nats_server"] = f"{version.major}.{version.minor}.{version.patch}"
            info["nats_max_payload"] = connection.max_payload
        finally:
            await connection.close()

    try:
        asyncio.run(reach())
    except Exception as exc:
        reason = errors[-1] if errors else exc
        return None, f"NATS JetStream at {_redacted(nats_url)} is unreachable: {reason!r}"
    return info, ""


@dataclass
class Scratch:
    """What a run made in the servers, removed by :meth:`clean` (idempotent)."""

    nats_url: str
    postgres_url: str
    schemas: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)

    def schema(self) -> tuple[str, str]:
        """A fresh schema: (name, database URL whose search path is that schema)."""
        import sqlalchemy as sa

        name = f"lijiao_bench_{secrets.token_hex(6)}"
        engine = sa.create_engine(self.postgres_url)
        try:
            with engine.begin() as connection:
                connection.execute(sa.schema.CreateSchema(name))
        finally:
            engine.dispose()
        self.schemas.append(name)
        url = sa.make_url(self.postgres_url).update_query_dict({"options": f"-csearch_path={name}"})
        return name, url.render_as_string(hide_password=False)

    def prefix(self) -> tuple[str, str]:
        """A fresh JetStream prefix: (prefix, record-log URL)."""
        prefix = f"lb{secrets.token_hex(5)}"
        self.prefixes.append(prefix)
        return prefix, self.log_url(prefix)

    def log_url(self, prefix: str) -> str:
        """The record-log URL of a prefix."""
        return f"{self.nats_url}{'&' if '?' in self.nats_url else '?'}prefix={prefix}"

    def clean(self, schemas: list[str] | None = None, prefixes: list[str] | None = None) -> None:
        """Drops the schemas and deletes the prefixes' streams and buckets (all when
        None); reports but survives failures, so the rest is still tried."""
        import sqlalchemy as sa

        from exchange.log.jetstream import JetStreamLog

        for prefix in list(self.prefixes if prefixes is None else prefixes):

            async def drop(prefix: str = prefix) -> None:
                log = await JetStreamLog.connect(self.log_url(prefix))
                try:
                    await log.delete_streams()
                finally:
                    await log.close()

            try:
                asyncio.run(drop())
                self.prefixes.remove(prefix)
            except Exception as exc:
                progress(f"warning: JetStream prefix {prefix} not deleted: {exc!r}")
        names = list(self.schemas if schemas is None else schemas)
        if not names:
            return
        engine = sa.create_engine(self.postgres_url, connect_args={"connect_timeout": 5})
        try:
            for name in names:
                try:
                    with engine.begin() as connection:
                        connection.execute(sa.schema.DropSchema(name, cascade=True, if_exists=True))
                    self.schemas.remove(name)
                except Exception as exc:
                    progress(f"warning: PostgreSQL schema {name} not dropped: {exc!r}")
        finally:
            engine.dispose()


def make_stream(nats_url: str, prefix: str) -> tuple[str, str]:
    """The floor's stream, configured as the gateway configures its own; returns
    (stream, subject the client publishes to)."""
    import nats
    from nats.js import api

    from exchange.log.jetstream_streams import token

    stream = f"{prefix}_{FAMILY}"
    subject = f"{prefix}.rec.{FAMILY}.{token(RESOURCE)}.{token(lane_names(0)[1])}"

    async def make() -> None:
        connection = await nats.connect(nats_url, connect_timeout=5)
        try:
            await connection.jetstream(timeout=10).add_stream(
                api.StreamConfig(
                    name=stream,
                    subjects=[f"{prefix}.rec.{FAMILY}.>"],
                    storage=api.StorageType.FILE,
                    retention=api.RetentionPolicy.LIMITS,
                    discard=api.DiscardPolicy.OLD,
                    num_replicas=1,
                    duplicate_window=86_400.0,
                    allow_direct=True,
                )
            )
        finally:
            await connection.close()

    asyncio.run(make())
    return stream, subject


def stored_in(nats_url: str, prefix: str) -> dict[str, tuple[int, int]]:
    """(batches, records) per resource in a prefix's streams; records are counted from
    the gateway's ``Lijiao-Records`` header, or from the batch itself when there is none."""
    import nats
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js import api

    from exchange.log.jetstream_streams import all_streams, untoken
    from exchange.v1 import exchange_pb2

    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])

    async def scan() -> None:
        connection = await nats.connect(nats_url, connect_timeout=5)
        try:
            js = connection.jetstream(timeout=30)
            for info in await all_streams(js):
                name = info.config.name or ""
                if not name.startswith(f"{prefix}_") or not info.state.messages:
                    continue
                sub = await js.pull_subscribe(
                    f"{prefix}.rec.>",
                    stream=name,
                    config=api.ConsumerConfig(
                        ack_policy=api.AckPolicy.NONE,
                        inactive_threshold=30.0,
                        mem_storage=True,
                    ),
                )
                try:
                    while True:
                        try:
                            got = await sub.fetch(500, timeout=2.0)
                        except (NatsTimeout, TimeoutError):  # nats-py raises either
                            break
                        for msg in got:
                            resource = untoken(msg.subject.split(".")[3])
                            header = (msg.headers or {}).get("Lijiao-Records")
                            if header is None:
                                batch = exchange_pb2.RecordBatch.FromString(msg.data)
                                counted = len(batch.records)
                            else:
                                counted = int(header)
                            out[resource][0] += 1
                            out[resource][1] += counted
                        if got[-1].metadata.num_pending == 0:
                            break
                finally:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
        finally:
            await connection.close()

    asyncio.run(scan())
    return {resource: (b, r) for resource, (b, r) in out.items()}
