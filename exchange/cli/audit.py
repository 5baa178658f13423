"""``lijiao audit list|trace|summary|export|verify``: the auditor's commands.

A command-line client of ``catalog.v1.AuditService`` (auditors only), plus two that
work on files and databases directly: ``verify --archive`` checks an exported or
archived file offline, and ``prune`` applies retention (operators, on the gateway's
host). docs/auditors.md shows how to answer the common questions with them.
"""

from __future__ import annotations

import datetime
import functools
import sys
import zoneinfo
from pathlib import Path
from typing import Any

import click
import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from catalog import ledger_files
from catalog.db import close_catalog
from catalog.db import open_catalog as open_catalog_database
from catalog.v1 import audit_pb2 as pb
from catalog.v1 import audit_pb2_grpc
from envelope.signing import Ed25519Signer
from exchange.audit.tasks import apply_retention
from exchange.cli.client import (
    CALL_TIMEOUT_SECONDS,
    Console,
    Parsed,
    ProtoEnumChoice,
    RpcFailed,
    catalog_command,
    connection_options,
    open_catalog,
    print_block,
    print_table,
)
from exchange.settings import Settings

_audit_command = functools.partial(catalog_command, stub_class=audit_pb2_grpc.AuditServiceStub)
_KIND = ProtoEnumChoice(pb.LedgerEntryKind.DESCRIPTOR)
_ZONE = "Asia/Shanghai"
_ENTRY_COLUMNS = (
    "sequence", "time", "kind", "action", "principal", "department", "provider", "system",
    "resource", "subject", "operation.records",
)  # fmt: skip
_DELIVERY_COLUMNS = (
    "sequence", "department", "system", "grant_id", "operation.records", "operation.deliver_time",
    "operation.ack_time",
)  # fmt: skip
_REFUSAL_COLUMNS = ("sequence", "time", "principal", "system", "operation.fault_reason")
_TOTAL_COLUMNS = (
    "day", "provider_department", "receiving_department", "batches", "records", "bytes",
)  # fmt: skip


def _instant(text: str) -> Timestamp:
    """An ISO 8601 date or time; without a zone it is Beijing time (UTC+08:00)."""
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError("write a date or time, e.g. 2026-11-01 or 2026-11-01T08:30+08:00") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=zoneinfo.ZoneInfo(_ZONE))
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(datetime.UTC))
    return stamp


TIME = Parsed("TIME", _instant)


def _filter_options(command: Any) -> Any:
    """Options that build a LedgerFilter."""
    options = (
        click.option("--since", "start_time", type=TIME, help="Entries at or after this time."),
        click.option("--until", "end_time", type=TIME, help="Entries before this time."),
        click.option(
            "--department", help="Entries about this department (acting, receiving or providing)."
        ),
        click.option("--system", help="Entries about this system."),
        click.option("--resource", help="Entries about this resource."),
        click.option(
            "--kind",
            "kinds",
            type=_KIND,
            multiple=True,
            help="Entries of this kind; repeat for several.",
        ),
        click.option("--grant", "grant_id", help="Entries about this grant."),
        click.option("--subject", help="Entries about this batch id, request id or code."),
    )
    for option in reversed(options):
        command = option(command)
    return command


def _filter(given: dict[str, Any]) -> pb.LedgerFilter:
    names = (
        "start_time",
        "end_time",
        "department",
        "system",
        "resource",
        "kinds",
        "grant_id",
        "subject",
    )
    return pb.LedgerFilter(**{k: given.pop(k) for k in names if given.get(k) not in (None, ())})


@click.group("audit")
def audit() -> None:
    """The audit ledger (审计账本): who received which records, under which grant, and
    proof that nothing was altered or deleted since.

    \b
    Every catalog change, request and decision, grant change, accepted batch,
    delivery and refused call is an entry in a SHA-256 hash chain; the gateway signs
    checkpoints of it. The commands that ask the gateway need an auditor's token.
    Times without a zone are Beijing time (UTC+08:00).
    """


@audit.command("list")
@_filter_options
@click.option(
    "--limit",
    type=click.IntRange(0),
    default=100,
    show_default=True,
    help="Most entries to print; 0 prints all.",
)
@_audit_command
def audit_list(console: Console, limit: int, **given: Any) -> None:
    """List ledger entries in sequence order.

    RECORDS is filled for accepted batches and deliveries. `--json` prints each
    entry whole, with its content, digest and hashes.
    """
    request = pb.ListLedgerEntriesRequest(filter=_filter(given), page_size=min(limit or 1000, 1000))
    merged = pb.ListLedgerEntriesResponse()
    while True:
        page = console.client.call("ListLedgerEntries", request)
        merged.entries.extend(page.entries)
        if not page.next_page_token or (limit and len(merged.entries) >= limit):
            break
        request.page_token = page.next_page_token
    if limit:
        del merged.entries[limit:]
    console._print(merged, lambda: print_table(merged.entries, _ENTRY_COLUMNS))


@audit.command("trace")
@click.argument("batch_id")
@click.option(
    "--publisher",
    "publisher_system",
    default="",
    help="The publishing system, when several publishers used this batch id.",
)
@_audit_command
def audit_trace(console: Console, **given: Any) -> None:
    """Follow batch BATCH_ID from its publisher to every subscriber that received it.

    Prints the accepted batch (publisher, resource, schema, records, the provider's
    digest and signature), then each acknowledged delivery (receiving system, grant,
    records after the grant's projection, delivery and acknowledgement times), then
    any refused attempt that named the batch.
    """
    response = console.client.call("TraceBatch", pb.TraceBatchRequest(**given))

    def text() -> None:
        if not response.stored:
            click.echo(f"no accepted batch {given['batch_id']!r} in the ledger")
        for entry in response.stored:
            click.echo("stored:")
            print_block(entry, skip=("content_digest", "previous_hash", "hash"))
        click.echo(f"deliveries: {len(response.deliveries)}")
        print_table(response.deliveries, _DELIVERY_COLUMNS, "  ")
        if response.refusals:
            click.echo(f"refusals: {len(response.refusals)}")
            print_table(response.refusals, _REFUSAL_COLUMNS, "  ")

    console._print(response, text)


@audit.command("summary")
@_filter_options
@click.option("--time-zone", default=_ZONE, show_default=True, help="IANA zone of the days.")
@_audit_command
def audit_summary(console: Console, time_zone: str, **given: Any) -> None:
    """Records each department received from each other department, per day."""
    request = pb.SummarizeExchangesRequest(filter=_filter(given), time_zone=time_zone)
    console.list("SummarizeExchanges", request, "totals", _TOTAL_COLUMNS)


@audit.command("export")
@_filter_options
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="File to write (.avro or .jsonl).",
)
@click.option(
    "--format",
    "export_format",
    type=click.Choice(["avro", "jsonl"]),
    help="File format [default: from the file name, else avro].",
)
@_audit_command
def audit_export(console: Console, output: Path, export_format: str | None, **given: Any) -> None:
    """Export ledger entries to an Avro object container file or JSON Lines.

    The file holds every entry whole (content, digest, hashes), so it can be checked
    later without the gateway: `lijiao audit verify --archive FILE`. Read it with any
    Avro library (schema lijiao.audit.LedgerEntry) or line by line as JSON.
    """
    chosen = export_format or ("jsonl" if output.suffix == ".jsonl" else "avro")
    request = pb.ExportLedgerRequest(
        filter=_filter(given),
        format=pb.EXPORT_FORMAT_JSONL if chosen == "jsonl" else pb.EXPORT_FORMAT_AVRO,
    )
    partial = output.with_name(output.name + ".partial")
    written = entries = 0
    client = console.client
    try:
        stream = client.stub.ExportLedger(
            request, metadata=client.metadata, timeout=CALL_TIMEOUT_SECONDS * 60
        )
        with partial.open("wb") as out:
            for chunk in stream:
                out.write(chunk.chunk)
                written += len(chunk.chunk)
                entries = chunk.entries
                click.echo(f"\r{written:,} bytes", nl=False, err=True)
    except grpc.RpcError as exc:
        partial.unlink(missing_ok=True)
        raise RpcFailed(exc) from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(output)
    click.echo("", err=True)
    click.echo(f"exported {entries:,} entries to {output} ({chosen}, {written:,} bytes)")


@audit.command("verify")
@click.option(
    "--archive",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Check an exported or archived Avro file offline instead of asking the gateway.",
)
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print the response as JSON.")
def audit_verify(archive: Path | None, settings: Settings, as_json: bool) -> None:
    """Verify the ledger: every entry's digest and hash link, and every signed checkpoint.

    Reports the first broken link precisely (an entry modified, missing or out of
    order, or a checkpoint that does not match) and exits with status 1 when the
    ledger is not intact. With --archive, checks a file's own chain, offline.
    """
    if archive is not None:
        with archive.open("rb") as source:
            count, problem, filtered = ledger_files.verify_file(source)
        if problem:
            click.echo(f"BROKEN after {count:,} entries: {problem}")
            sys.exit(1)
        what = (
            "each entry's digest and hash (a filtered export: the links between entries "
            "are not all in it)"
            if filtered
            else "digests, hashes and every link"
        )
        click.echo(f"OK: {count:,} entries of {archive} verify: {what}")
        return
    with open_catalog(settings, audit_pb2_grpc.AuditServiceStub) as client:
        response = client.call("VerifyLedger", pb.VerifyLedgerRequest())

    def text() -> None:
        if response.ok:
            click.echo(
                f"OK: {response.entries:,} entries (sequence {response.first_sequence} to "
                f"{response.last_sequence}) and {response.checkpoints:,} signed checkpoints "
                "verify; "
                + (
                    f"newest checkpoint at {response.last_checkpoint}"
                    if response.last_checkpoint
                    else "no checkpoint signed yet (the gateway signs one every "
                    "LIJIAO_LEDGER_CHECKPOINT_SECONDS)"
                )
            )
        else:
            click.echo(
                f"BROKEN ({response.problem}) at entry {response.broken_sequence}: "
                f"{response.message}"
            )
            click.echo(f"everything up to entry {response.verified_through} verified")

    Console(client, as_json)._print(response, text)
    if not response.ok:
        sys.exit(1)


@audit.command("prune")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The gateway's data directory [env LIJIAO_DATA_DIR].",
)
@click.option("--database-url", help="The catalog database [env LIJIAO_DATABASE_URL].")
def audit_prune(data_dir: Path | None, database_url: str | None) -> None:
    """Apply retention now (operators, on the gateway's host; the gateway also does it
    daily).

    Entries older than LIJIAO_LEDGER_RETENTION_DAYS (at least 183) are first written
    to an Avro archive in the archive directory, then deleted under a signed anchor
    checkpoint so the rest still verifies; archives older than
    LIJIAO_PERSONAL_DATA_RETENTION_DAYS (at least 1096) are deleted.
    """
    try:
        settings = Settings.load({"data_dir": data_dir, "database_url": database_url})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if not settings.gateway_key_path.exists():
        raise click.UsageError(
            f"no gateway key at {settings.gateway_key_path}: give the gateway's --data-dir"
        )
    signer = Ed25519Signer.from_file(settings.gateway_key_path)
    sessions = open_catalog_database(settings.catalog_url)
    try:
        pruned = apply_retention(sessions, signer, settings.audit())
    finally:
        close_catalog(sessions)
    if pruned is None:
        click.echo(f"nothing is older than {settings.ledger_retention_days} days")
    else:
        click.echo(
            f"archived and pruned {pruned.entries:,} entries through {pruned.through} "
            f"into {settings.archive_dir / pruned.archive}"
        )
