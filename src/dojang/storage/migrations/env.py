"""Alembic environment: always runs on a connection handed in by ``dojang.storage.migrate``."""

from __future__ import annotations

from alembic import context

import dojang.storage.tables  # noqa: F401  (registers every table on Base.metadata)
from dojang.storage.base import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - dojang never runs alembic's CLI directly
    raise RuntimeError("run migrations through dojang.storage.migrate.upgrade()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite needs batch ALTERs
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
