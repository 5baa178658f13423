"""``lijiao db upgrade|current``: the catalog database's schema (Alembic migrations)."""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import Engine, create_engine

from catalog import db
from exchange.settings import Settings

_DIR = click.Path(file_okay=False, path_type=Path)


def _engine(data_dir: Path | None, database_url: str | None) -> Engine:
    try:
        settings = Settings.load({"data_dir": data_dir, "database_url": database_url})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    return create_engine(settings.made_catalog_url())


@click.group("db")
def db_group() -> None:
    """The catalog database's schema: migrations (Alembic).

    `lijiao serve` migrates at start unless --no-migrate; with several gateways on one
    database, migrate once with `lijiao db upgrade` and start them with --no-migrate.
    """


_OPTIONS = (
    click.option("--data-dir", type=_DIR, help="The gateway's data directory [LIJIAO_DATA_DIR]."),
    click.option("--database-url", help="Catalog SQLAlchemy URL [LIJIAO_DATABASE_URL]."),
)


@db_group.command("upgrade")
@_OPTIONS[0]
@_OPTIONS[1]
def db_upgrade(data_dir: Path | None, database_url: str | None) -> None:
    """Bring the catalog database to the newest revision of this lijiao."""
    engine = _engine(data_dir, database_url)
    try:
        before, after = db.upgrade(engine)
    finally:
        engine.dispose()
    if before == after:
        click.echo(f"the catalog is already at revision {after}")
    else:
        click.echo(f"upgraded the catalog from revision {before or 'none'} to {after}")


@db_group.command("current")
@_OPTIONS[0]
@_OPTIONS[1]
def db_current(data_dir: Path | None, database_url: str | None) -> None:
    """Print the catalog database's revision and the newest one this lijiao knows."""
    engine = _engine(data_dir, database_url)
    try:
        current = db.current_revision(engine)
    finally:
        engine.dispose()
    head = db.head_revision()
    state = "up to date" if current == head else "behind: run lijiao db upgrade"
    click.echo(f"revision {current or 'none'} (newest {head}): {state}")
