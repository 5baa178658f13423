"""The ``lijiao`` command: gateway, demo, catalog, keys and tokens."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import click

from catalog.credentials import issue_token_at
from catalog.models import Role
from envelope.errors import LijiaoError
from envelope.signing import Ed25519Signer
from exchange.cli.adapter import adapter
from exchange.cli.audit import audit
from exchange.cli.catalog import catalog
from exchange.cli.db import db_group
from exchange.cli.governance import GROUPS
from exchange.cli.pki import ROLES, pki_group
from exchange.settings import Settings

_PATH = click.Path(path_type=Path)


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings.load(overrides)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lijiao")
def main() -> None:
    """立交 lijiao, the overpass: a data-sharing exchange bus between city departments.

    Departments keep their own systems; adapters beside them publish signed Avro
    records to this gateway, which keeps the resource catalog, decides who may receive
    what, and delivers. Settings come from flags or LIJIAO_* environment variables.
    """


main.add_command(catalog)
main.add_command(adapter)
main.add_command(audit)
main.add_command(pki_group)
main.add_command(db_group)
for _group in GROUPS:
    main.add_command(_group)


@main.command()
@click.option("--listen", metavar="HOST:PORT", help="gRPC address [LIJIAO_LISTEN, 127.0.0.1:7443].")
@click.option("--data-dir", type=_PATH, help="Data directory [LIJIAO_DATA_DIR, ./lijiao-data].")
@click.option("--database-url", help="Catalog SQLAlchemy URL [LIJIAO_DATABASE_URL].")
@click.option(
    "--log-url",
    help="Record log: nats://HOST:4222 for NATS JetStream (replicas) [LIJIAO_LOG_URL; "
    "default: the embedded SQLite log in the data directory].",
)
@click.option(
    "--metrics-listen", metavar="HOST:PORT", help="Prometheus /metrics address; '' disables it."
)
@click.option(
    "--health-listen",
    metavar="HOST:PORT",
    help="Plaintext port serving only grpc.health.v1, for probes without a client "
    "certificate (Kubernetes gRPC probes) [LIJIAO_HEALTH_LISTEN; default: off].",
)
@click.option("--tls-cert", type=_PATH, help="PEM certificate to serve with [LIJIAO_TLS_CERT].")
@click.option("--tls-key", type=_PATH, help="PEM key of --tls-cert [LIJIAO_TLS_KEY].")
@click.option(
    "--client-ca",
    type=_PATH,
    help="PEM CA certificate(s) client certificates must chain to [LIJIAO_CLIENT_CA].",
)
@click.option(
    "--crl-file",
    type=_PATH,
    help="PEM revocation list, re-read when it changes [LIJIAO_CRL_FILE; default: crl.pem "
    "beside --client-ca].",
)
@click.option(
    "--insecure",
    is_flag=True,
    default=None,
    help="Development mode: no client certificates, bearer tokens (plaintext without "
    "--tls-cert). Prints a warning.",
)
@click.option(
    "--no-migrate",
    "migrate",
    flag_value=False,
    default=None,
    help="Do not migrate the catalog database at start; refuse to start if it is behind "
    "[LIJIAO_MIGRATE=false].",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every refusal.")
def serve(verbose: bool, **flags: Any) -> None:
    """Run the gateway until interrupted (Ctrl-C or SIGTERM).

    By default it requires mutual TLS: --tls-cert, --tls-key and --client-ca (see
    lijiao pki). Callers are known by their client certificates.
    """
    from exchange.server import Gateway

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    settings = _settings(**flags)

    async def run() -> None:
        try:
            gateway = await Gateway.start(settings)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(
            f"lijiao gateway serving on {gateway.target} (data: {settings.data_dir}"
            + (", log: NATS JetStream" if settings.log_url else "")
            + (
                f", metrics: http://{settings.metrics_listen}/metrics)"
                if settings.metrics_listen
                else ")"
            ),
            err=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        click.echo("stopping: letting open calls finish", err=True)
        await gateway.stop(grace=5)

    asyncio.run(run())


@main.command()
@click.option("--records", default=100_000, show_default=True, help="Records to exchange.")
@click.option("--batch-size", default=1_000, show_default=True, help="Records per batch.")
@click.option("--keep", type=_PATH, help="Keep the data directory here instead of a temporary one.")
@click.option(
    "--metrics-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the gateway's /metrics page, scraped at the end, to this file "
    "(e.g. for promtool check metrics).",
)
def demo(records: int, batch_size: int, keep: Path | None, metrics_out: Path | None) -> None:
    """Run a whole exchange on this machine and check every record arrived intact.

    Starts a gateway on a free loopback port with a temporary data directory,
    registers departments, systems, keys and a resident-registry resource, grants
    civil affairs access, publishes the records in signed batches and receives and
    verifies all of them, tours the approval workflow and the adapters, and ends with
    an auditor's summary and verification of the ledger. Exits 0 only if every record
    arrived intact and the ledger verifies.
    """
    from exchange.demo.main import run_demo

    if records < 1 or batch_size < 1:
        raise click.UsageError("--records and --batch-size must be at least 1")
    ok = asyncio.run(
        run_demo(records=records, batch_size=batch_size, keep=keep, metrics_out=metrics_out)
    )
    sys.exit(0 if ok else 1)


@main.group()
def keys() -> None:
    """Signing keys of systems (Ed25519)."""


@keys.command("generate")
@click.argument("path", type=_PATH)
def keys_generate(path: Path) -> None:
    """Write a new Ed25519 private key to PATH (mode 0600) and print its public key.

    Register the printed public key with `lijiao catalog systems add --public-key`.
    """
    import base64

    if path.exists():
        raise click.ClickException(f"{path} exists; refusing to overwrite a private key")
    signer = Ed25519Signer.generate()
    signer.save(path)
    click.echo(f"private key: {path} (key id {signer.key_id})", err=True)
    click.echo(base64.b64encode(signer.public_key).decode())


@main.group()
def tokens() -> None:
    """Bearer tokens of principals, for a gateway in development mode (--insecure).

    Run on the gateway host, against its data directory. In production callers present
    client certificates instead (lijiao pki issue).
    """


@tokens.command("issue")
@click.option("--role", type=click.Choice(list(ROLES)), required=True, help="Principal's role.")
@click.option("--name", help="Principal name (systems are named after the system).")
@click.option("--department", help="Department code (data and platform officers).")
@click.option("--system", help="System code (role system).")
@click.option("--data-dir", type=_PATH, help="Data directory [LIJIAO_DATA_DIR].")
@click.option("--database-url", help="Catalog SQLAlchemy URL [LIJIAO_DATABASE_URL].")
def tokens_issue(
    role: str,
    name: str | None,
    department: str | None,
    system: str | None,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Issue a bearer token and print it once (only its hash is stored).

    \b
    Examples:
      lijiao tokens issue --role administrator --name ops
      lijiao tokens issue --role system --system SAMR-LICENCE
      lijiao tokens issue --role data-officer --name wang --department SAMR
    """
    settings = _settings(data_dir=data_dir, database_url=database_url)
    kind = ROLES[role]
    if kind is not Role.SYSTEM and not name:
        raise click.UsageError("--name is required for this role")
    try:
        token = issue_token_at(
            settings.catalog_url, name=name or "", role=kind, department=department, system=system
        )
    except LijiaoError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(token)
