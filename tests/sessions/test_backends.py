"""Choosing a backend by setting, and failing closed when the database is gone."""

from __future__ import annotations

from pathlib import Path

import pytest

from dojang.errors import ConfigError, StoreUnavailable
from dojang.sessions.backends import MemorySessionStore, SqlSessionStore, open_session_store
from dojang.sessions.ids import hash_cookie, new_cookie_value
from dojang.storage import Database


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'x.db'}")


async def test_open_sql_and_memory(sqlite_db: Database) -> None:
    assert isinstance(open_session_store("sql", sqlite_db), SqlSessionStore)
    assert isinstance(open_session_store("memory", sqlite_db), MemorySessionStore)
    await sqlite_db.dispose()


@pytest.mark.parametrize(
    "url", ["redis://localhost:6379/0", "rediss://h/0", "redis+cluster://h", "redis+sentinel://h"]
)
async def test_redis_not_available_yet(sqlite_db: Database, url: str) -> None:
    with pytest.raises(ConfigError, match="DOJANG_SESSION_STORE: redis session store"):
        open_session_store(url, sqlite_db)
    await sqlite_db.dispose()


async def test_unknown_setting_names_option_without_leaking(sqlite_db: Database) -> None:
    with pytest.raises(ConfigError, match="DOJANG_SESSION_STORE") as info:
        open_session_store("memcached://user:hunter2@h", sqlite_db)
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigError, match="'mongo'"):
        open_session_store("mongo", sqlite_db)
    await sqlite_db.dispose()


async def test_unreachable_postgres_is_store_unavailable() -> None:
    """An outage must fail closed, never read as "no such session"."""
    db = Database("postgresql://postgres@127.0.0.1:1/test")
    store = SqlSessionStore(db)
    with pytest.raises(StoreUnavailable):
        await store.ping()
    with pytest.raises(StoreUnavailable):
        await store.get(hash_cookie(new_cookie_value()))
    await db.dispose()


async def test_missing_table_is_store_unavailable(sqlite_db: Database) -> None:
    """SQLite's OperationalError path. (An unopenable SQLite file is not tested here: a failed
    aiosqlite connect leaves a worker thread that races the closing test loop.)"""
    store = SqlSessionStore(sqlite_db)
    with pytest.raises(StoreUnavailable):
        await store.list_for_user("alice")
    await sqlite_db.dispose()


def test_reprs_name_no_secrets() -> None:
    db = Database("postgresql://u:hunter2@127.0.0.1:1/x")
    assert "hunter2" not in repr(SqlSessionStore(db))
