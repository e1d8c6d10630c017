"""Run the Alembic migrations that ship inside the package, on the app's own engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy.engine import Connection

from dojang.errors import ConfigError
from dojang.storage.db import Database

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


async def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the database schema to ``revision`` (idempotent).

    A database stamped with a revision this dojang does not ship (made by a newer dojang, or
    by a pre-release schema) is refused with a ``ConfigError`` that says so, never migrated
    by guesswork and never a traceback.
    """

    def _run(connection: Connection) -> None:
        try:
            command.upgrade(alembic_config(connection), revision)
        except CommandError as exc:
            raise ConfigError(
                f"the database schema is at a revision this dojang does not know ({exc}); "
                "it was made by another dojang version: run that version, or back the data "
                "up and start from an empty database"
            ) from None

    async with db.engine.begin() as conn:
        await conn.run_sync(_run)


async def current_revision(db: Database) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    def _read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with db.engine.connect() as conn:
        return await conn.run_sync(_read)
