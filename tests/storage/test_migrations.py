"""The single initial Alembic migration builds exactly the schema the table modules declare."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

import dojang.storage.tables  # noqa: F401 - registers every table on Base.metadata
from dojang.storage import Database
from dojang.storage.base import Base
from dojang.storage.migrate import MIGRATIONS_DIR, current_revision, upgrade
from tests.conftest import MakeDb


async def _migrated(make_db: MakeDb, kind: str) -> Database:
    """A fresh database of ``kind`` whose tables are dropped, then built by the migration."""
    db = await make_db(kind)  # comes with create_all(); start from nothing instead
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
    await upgrade(db)
    return db


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_migration_matches_the_table_metadata(make_db: MakeDb, kind: str) -> None:
    db = await _migrated(make_db, kind)

    def diff(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
    assert await current_revision(db) is not None


async def test_there_is_one_initial_migration() -> None:
    versions = sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("*.py"))
    assert len(versions) == 1 and versions[0].endswith("_initial_schema.py"), versions


async def test_oidc_clients_table_has_the_auth_method_columns(make_db: MakeDb) -> None:
    db = await _migrated(make_db, "sqlite")

    def columns(conn: Connection) -> dict[str, bool]:
        return {c["name"]: c["nullable"] for c in inspect(conn).get_columns("oidc_clients")}

    async with db.engine.connect() as conn:
        found = await conn.run_sync(columns)
    assert found["token_endpoint_auth_method"] is False
    assert found["jwks"] is True


async def test_a_database_from_another_dojang_version_is_refused_clearly(tmp_path: Any) -> None:
    """An unknown revision stamp: a ConfigError that says what happened, nothing migrated."""
    from sqlalchemy import text

    from dojang.errors import ConfigError

    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        await upgrade(db)
        async with db.transaction() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = 'c0ffee000000'"))
        with pytest.raises(ConfigError, match="another dojang version"):
            await upgrade(db)
        assert await current_revision(db) == "c0ffee000000"  # left exactly as it was
    finally:
        await db.dispose()
