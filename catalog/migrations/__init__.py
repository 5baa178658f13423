"""Alembic migrations of the catalog database (catalog, workflow and audit ledger).

Run by ``lijiao db upgrade`` and, unless disabled, by ``lijiao serve`` at start
(catalog.db.upgrade). New revisions: ``alembic -c catalog/migrations/alembic.ini
revision --autogenerate -m "..."`` with ``LIJIAO_DATABASE_URL`` pointing at a database
at head.
"""
