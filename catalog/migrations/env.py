"""Alembic environment: the catalog's metadata, on the connection the caller passes."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

from catalog import changes, ledger, models  # noqa: F401 (registers every table)

target_metadata = models.Base.metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.config.get_main_option("sqlalchemy.url") or os.environ.get(
        "LIJIAO_DATABASE_URL", ""
    )
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)
