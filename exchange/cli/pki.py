"""``lijiao pki init|issue|revoke|register``: the deployment's certificates.

Run on the host that keeps the CA folder (and, for ``issue``, ``revoke`` and
``register``, with access to the gateway's catalog: ``--data-dir`` or
``--database-url``), as an administrator would run ``lijiao tokens issue``.
"""

from __future__ import annotations

from pathlib import Path

import click
from cryptography import x509

from catalog.credentials import bind_certificate_at, revoke_certificate
from catalog.db import close_catalog, open_catalog
from catalog.ledger import ACTOR
from catalog.models import Role
from envelope.errors import LijiaoError
from exchange.gate import pki
from exchange.settings import Settings

_DIR = click.Path(file_okay=False, path_type=Path)
_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
ROLES = {
    "system": Role.SYSTEM,
    "data-officer": Role.DATA_OFFICER,
    "platform-officer": Role.PLATFORM_OFFICER,
    "auditor": Role.AUDITOR,
    "administrator": Role.ADMINISTRATOR,
}


def _catalog_url(data_dir: Path | None, database_url: str | None) -> str:
    """The gateway's catalog; its data directory is made (0700) when it does not exist
    yet, so principals can be bound before the first start."""
    try:
        settings = Settings.load({"data_dir": data_dir, "database_url": database_url})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    return settings.made_catalog_url()


def _authority(folder: Path) -> pki.Authority:
    try:
        return pki.Authority.load(folder)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def _bind(
    catalog_url: str,
    fingerprint: str,
    *,
    role: Role,
    name: str,
    department: str | None,
    system: str | None,
) -> str:
    """Binds a certificate to its principal (created when new); returns the name."""
    try:
        return bind_certificate_at(
            catalog_url, fingerprint, name=name, role=role, department=department, system=system
        )
    except LijiaoError as exc:
        raise click.ClickException(exc.message) from exc


def _principal_options(command: click.decorators.FC) -> click.decorators.FC:
    options = (
        click.option("--name", help="Principal name (systems are named after the system)."),
        click.option("--department", help="Department code (data and platform officers)."),
        click.option("--system", help="System code (role system)."),
        click.option(
            "--data-dir", type=_DIR, help="The gateway's data directory [LIJIAO_DATA_DIR]."
        ),
        click.option("--database-url", help="Catalog SQLAlchemy URL [LIJIAO_DATABASE_URL]."),
    )
    for option in reversed(options):
        command = option(command)
    return command


@click.group("pki")
def pki_group() -> None:
    """The deployment's certificates: a CA, certificates bound to principals, revocation.

    \b
    Every caller of a production gateway presents a client certificate (mutual TLS):
      lijiao pki init --dir ca/
      lijiao pki issue --dir ca/ --role gateway --host gateway.city.gov.cn --out tls/
      lijiao pki issue --dir ca/ --role system --system SAMR-LICENCE --out samr/ --data-dir D
      lijiao serve --tls-cert tls/gateway.city.gov.cn-cert.pem \\
        --tls-key tls/gateway.city.gov.cn-key.pem --client-ca ca/ca-cert.pem --data-dir D
      lijiao pki revoke --dir ca/ samr/SAMR-LICENCE-cert.pem --data-dir D
    Keep ca/ca-key.pem offline or on the administrator's host only.
    """


@pki_group.command("init")
@click.option("--dir", "folder", type=_DIR, required=True, help="Folder for the CA (new).")
@click.option("--name", default="lijiao deployment CA", show_default=True, help="CA name.")
@click.option("--days", type=click.IntRange(1, 36500), default=3650, show_default=True)
def pki_init(folder: Path, name: str, days: int) -> None:
    """Make the deployment CA: ca-cert.pem, ca-key.pem (0600) and an empty crl.pem."""
    try:
        authority = pki.Authority.create(folder, name, days)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"CA {name!r} in {folder} (fingerprint {pki.fingerprint(authority.certificate)})")
    click.echo(f"  gateway: --client-ca {folder / pki.CA_CERT} (revocations: {folder / pki.CRL})")
    click.echo(f"  clients: --ca-cert {folder / pki.CA_CERT}")


@pki_group.command("issue")
@click.option("--dir", "folder", type=_DIR, required=True, help="The CA folder.")
@click.option(
    "--role",
    type=click.Choice(["gateway", *ROLES]),
    required=True,
    help="gateway (a server certificate) or the principal's role.",
)
@click.option("--host", "hosts", multiple=True, help="Gateway DNS name or IP; repeat.")
@click.option("--out", type=_DIR, required=True, help="Folder for NAME-cert.pem, NAME-key.pem.")
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True)
@_principal_options
def pki_issue(
    folder: Path,
    role: str,
    hosts: tuple[str, ...],
    out: Path,
    days: int,
    name: str | None,
    department: str | None,
    system: str | None,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Issue a certificate: for the gateway, or for a principal, bound to it in the catalog.

    A principal's certificate has its name as common name; its fingerprint becomes a
    credential of the principal (created when new), so the gateway knows the caller
    from the certificate alone.
    """
    authority = _authority(folder)
    if role == "gateway":
        if not hosts:
            raise click.UsageError("a gateway certificate needs --host (repeat for each name)")
        cert, key, _ = authority.issue(out, hosts[0], server_names=hosts, days=days)
        click.echo(f"gateway certificate {cert} and key {key} for {', '.join(hosts)}")
        return
    kind = ROLES[role]
    if kind is Role.SYSTEM and not system:
        raise click.UsageError("--system is required for role system")
    if kind is not Role.SYSTEM and not name:
        raise click.UsageError("--name is required for this role")
    principal = system if kind is Role.SYSTEM else name
    assert principal is not None
    for existing in (out / f"{principal}-cert.pem", out / f"{principal}-key.pem"):
        if existing.exists():
            raise click.UsageError(
                f"{existing} exists: issue into another --out folder (a renewal must not "
                "overwrite the key pair in use before the new one is bound)"
            )
    cert, key, certificate = authority.issue(out, principal, days=days)
    try:
        bound = _bind(
            _catalog_url(data_dir, database_url),
            pki.fingerprint(certificate),
            role=kind,
            name=principal,
            department=department,
            system=system,
        )
    except BaseException:
        cert.unlink(missing_ok=True)
        key.unlink(missing_ok=True)
        raise
    click.echo(f"certificate {cert} and key {key} for {bound} ({role})")


@pki_group.command("register")
@click.argument("certificate", type=_FILE)
@click.option("--role", type=click.Choice(list(ROLES)), required=True, help="Principal's role.")
@_principal_options
def pki_register(
    certificate: Path,
    role: str,
    name: str | None,
    department: str | None,
    system: str | None,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Bind a certificate from an external CA to a principal.

    Configure that CA for the gateway too (LIJIAO_CLIENT_CA may hold several).
    """
    kind = ROLES[role]
    loaded = x509.load_pem_x509_certificate(certificate.read_bytes())
    bound = _bind(
        _catalog_url(data_dir, database_url),
        pki.fingerprint(loaded),
        role=kind,
        name=name or "",
        department=department,
        system=system,
    )
    click.echo(f"{certificate} now identifies {bound} ({role})")


@pki_group.command("revoke")
@click.option("--dir", "folder", type=_DIR, required=True, help="The CA folder.")
@click.argument("certificate", type=_FILE)
@click.option("--data-dir", type=_DIR, help="The gateway's data directory [LIJIAO_DATA_DIR].")
@click.option("--database-url", help="Catalog SQLAlchemy URL [LIJIAO_DATABASE_URL].")
def pki_revoke(
    folder: Path, certificate: Path, data_dir: Path | None, database_url: str | None
) -> None:
    """Revoke a certificate: on the CA's revocation list, and its credential in the catalog.

    A running gateway refuses it within seconds: it re-reads crl.pem when it changes.
    """
    authority = _authority(folder)
    loaded = x509.load_pem_x509_certificate(certificate.read_bytes())
    external = loaded.issuer != authority.certificate.subject
    # An external CA's certificate cannot go on this CA's list; its catalog credential
    # is revoked all the same, which every gateway honours within seconds.
    added = False if external else authority.revoke(loaded)
    sessions = open_catalog(_catalog_url(data_dir, database_url))
    token = ACTOR.set("pki")
    try:
        with sessions() as session:
            bound = revoke_certificate(session, pki.fingerprint(loaded))
    finally:
        ACTOR.reset(token)
        close_catalog(sessions)
    if external and not bound:
        raise click.ClickException(
            "another CA issued this certificate and this catalog does not bind it: nothing "
            "to revoke here (ask that CA to revoke it)"
        )
    listed = (
        "another CA's certificate, not on this CA's list"
        if external
        else ("on the revocation list" if added else "on the revocation list already")
    )
    click.echo(
        f"revoked certificate {loaded.serial_number:x} ({listed})"
        + ("; its credential is revoked in the catalog" if bound else "; not bound in this catalog")
    )
