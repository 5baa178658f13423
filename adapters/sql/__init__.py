"""The ``sql`` adapter: any database SQLAlchemy reaches, as a source and as a sink.

The source reads one table (or view) incrementally: rows ordered by a cursor column (an
updated-at timestamp or an increasing id) with the key columns as tie-breaker, starting
with a full snapshot. Its cursor is the JSON list ``[cursor value, *key values]`` of the
last row read; rows whose cursor column is NULL cannot be ordered and are not read.

The sink upserts delivered records by key (``INSERT ... ON CONFLICT DO UPDATE``, SQLite
and PostgreSQL) in one transaction per batch, and can create its table from the schema.

Example config::

    [adapter.options]
    url = "postgresql+psycopg://market@db.internal/market"
    table = "licences"
    cursor = "updated_at"

The package is split by role: ``connector`` (the URL, the engine, errors without the
password), ``types`` (column types and Avro types, and their values both ways),
``cursor`` (the incremental position), ``source`` and ``sink``.
"""

from adapters.sql.sink import SqlSink
from adapters.sql.source import SqlSource
from adapters.sql.types import avro_name, avro_type, record_schema

__all__ = ["SqlSink", "SqlSource", "avro_name", "avro_type", "record_schema"]
