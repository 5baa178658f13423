"""``lijiao adapter ...``: run, check and discover the adapters of one config file."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import click
import grpc

from adapters.config import AdapterConfig, ConfigError, load
from adapters.connection import auth_metadata, open_channel
from adapters.contract import AdapterError, Stream
from adapters.runner import Runner
from catalog.v1 import catalog_pb2, catalog_pb2_grpc
from exchange.cli.client import enum_words, rpc_error_message

_CONFIG = click.Path(exists=True, dir_okay=False, path_type=Path)


def _load(path: Path) -> AdapterConfig:
    try:
        return load(path)
    except ConfigError as exc:
        raise click.ClickException(f"{path}: {exc}") from exc


@click.group()
def adapter() -> None:
    """Adapters beside a department's system: sources publish, sinks receive.

    One TOML file says how to reach the gateway, which resources to publish from which
    source, and which subscriptions to write to which sink (docs/adapters.md).
    """


@adapter.command("run")
@click.argument("config", type=_CONFIG)
@click.option(
    "--report-seconds", default=5.0, show_default=True, help="Progress line interval; 0: none."
)
def run(config: Path, report_seconds: float) -> None:
    """Run every entry of CONFIG until interrupted (Ctrl-C or SIGTERM).

    Nothing acknowledged is lost and nothing is written twice, whenever it stops.
    """
    loaded = _load(config)

    async def main() -> None:
        runner = Runner(loaded, report_seconds=report_seconds)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runner.stop)
        click.echo(
            f"adapter running: {len(loaded.publish)} publishing, {len(loaded.subscribe)} "
            f"receiving, state {loaded.gateway.state}",
            err=True,
        )
        await runner.run()
        click.echo(runner.progress.line(), err=True)

    asyncio.run(main())


@adapter.command("check")
@click.argument("config", type=_CONFIG)
def check(config: Path) -> None:
    """Check CONFIG: every source and sink reachable, every resource known to the gateway."""
    loaded = _load(config)

    async def main() -> list[tuple[str, str]]:
        return await Runner(loaded, report_seconds=0).check()

    problems = asyncio.run(main())
    for key, problem in problems:
        click.echo(f"{key}: {problem}", err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) in {config}")
    click.echo(
        f"{config}: OK ({len(loaded.publish)} publishing, {len(loaded.subscribe)} receiving)"
    )


_SHARING = enum_words(catalog_pb2.SharingType.DESCRIPTOR)
_CLASSIFICATION = enum_words(catalog_pb2.Classification.DESCRIPTOR)


@adapter.command("discover")
@click.argument("config", type=_CONFIG)
@click.option("--register", is_flag=True, help="Register each publish entry's resource.")
@click.option("--owner", help="Owner department of the registered resources (with --register).")
@click.option(
    "--sharing", type=click.Choice(list(_SHARING)), default="conditional", show_default=True
)
@click.option(
    "--classification",
    type=click.Choice(list(_CLASSIFICATION)),
    default="important",
    show_default=True,
    help="When unsure, grade higher (就高从严).",
)
def discover(
    config: Path, register: bool, owner: str | None, sharing: str, classification: str
) -> None:
    """Print what each source of CONFIG can read, as proposed catalog entries.

    With --register, the stream of each [[publish]] entry becomes a resource of the
    catalog (code = the entry's resource) with the proposed schema.
    """
    loaded = _load(config)
    if register and not owner:
        raise click.UsageError("--register needs --owner (the department that owns the data)")

    async def main() -> list[dict[str, Any]]:
        runner = Runner(loaded, report_seconds=0)
        proposals = []
        for entry in loaded.publish:
            source = runner.source(entry)
            streams = await source.discover()
            await source.close()
            chosen = _chosen(streams, entry.stream)
            proposals.append(
                {
                    "entry": entry.key,
                    "resource": entry.resource,
                    "streams": [_stream_json(s) for s in streams],
                    "registers": chosen.name if chosen else None,
                }
            )
            if register and chosen is not None:
                await _register(
                    loaded, entry.resource, owner or "", chosen, sharing, classification
                )
        return proposals

    try:
        proposals = asyncio.run(main())
    except AdapterError as exc:
        raise click.ClickException(str(exc)) from exc
    except grpc.aio.AioRpcError as exc:
        raise click.ClickException(rpc_error_message(exc)) from exc
    click.echo(json.dumps(proposals, indent=2, ensure_ascii=False))


def _chosen(streams: list[Stream], name: str) -> Stream | None:
    """The entry's stream: by name, else the one the source is configured to read."""
    if name:
        return next((s for s in streams if s.name == name), None)
    configured = [s for s in streams if s.cursor_field] or streams
    return configured[0] if configured else None


def _stream_json(stream: Stream) -> dict[str, Any]:
    return {
        "name": stream.name,
        "key_fields": list(stream.key_fields),
        "cursor_field": stream.cursor_field,
        "schema": stream.schema,
    }


async def _register(
    config: AdapterConfig,
    resource: str,
    owner: str,
    stream: Stream,
    sharing: str,
    classification: str,
) -> None:
    gateway = config.gateway
    channel = open_channel(
        gateway.address,
        ca_cert=gateway.ca_cert,
        insecure=gateway.insecure,
        quiet=True,
        client_cert=gateway.client_cert,
    )
    try:
        stub = catalog_pb2_grpc.CatalogServiceStub(channel)
        await stub.CreateResource(
            catalog_pb2.CreateResourceRequest(
                resource=catalog_pb2.Resource(
                    code=resource,
                    name=f"{resource} ({stream.name})",
                    owner_department=owner,
                    sharing_type=catalog_pb2.SharingType.Value(_SHARING[sharing]),
                    classification=catalog_pb2.Classification.Value(
                        _CLASSIFICATION[classification]
                    ),
                    key_fields=list(stream.key_fields),
                ),
                schema=json.dumps(stream.schema, ensure_ascii=False),
            ),
            metadata=auth_metadata(gateway.token),
        )
    finally:
        await channel.close()
