"""Choosing a backend by setting, and failing closed when the database is gone."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from dojang.errors import ConfigError, StoreUnavailable
from dojang.sessions.backends import MemorySessionStore, SqlSessionStore, open_session_store
from dojang.sessions.ids import hash_cookie, new_cookie_value, new_csrf_secret, new_sid
from dojang.sessions.model import Session
from dojang.storage import Database
from dojang.storage.sqlite_read import SqliteReader, sqlite_path


def _session(key_hash: bytes) -> Session:
    return Session(
        key_hash=key_hash,
        sid=new_sid(),
        user_id="u1",
        created_at=1.0,
        last_seen=1.0,
        auth_time=1.0,
        idle_timeout=1e9,
        absolute_expires_at=1e12,
        csrf_secret=new_csrf_secret(),
    )


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'x.db'}")


async def test_open_sql_and_memory(sqlite_db: Database) -> None:
    assert isinstance(open_session_store("sql", sqlite_db), SqlSessionStore)
    assert isinstance(open_session_store("memory", sqlite_db), MemorySessionStore)
    await sqlite_db.dispose()


@pytest.mark.parametrize(
    "url", ["redis://localhost:6379/0", "rediss://h/0", "redis+cluster://h:7000"]
)
async def test_open_redis(sqlite_db: Database, url: str) -> None:
    from dojang.sessions.backends.redis import RedisSessionStore

    store = open_session_store(url, sqlite_db)
    assert isinstance(store, RedisSessionStore)
    await store.close()
    await sqlite_db.dispose()


async def test_bad_redis_url_names_option(sqlite_db: Database) -> None:
    with pytest.raises(
        ConfigError, match=r"DOJANG_SESSION_STORE: redis\+sentinel:// needs /service_name"
    ):
        open_session_store("redis+sentinel://h", sqlite_db)
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


async def test_sqlite_fast_read_sees_other_processes_writes(
    make_db: Callable[[str], Awaitable[Database]],
) -> None:
    """The synchronous read path has no cache: a delete by another connection is seen at once."""
    db = await make_db("sqlite")
    store = SqlSessionStore(db)
    cookie = new_cookie_value()
    created = _session(hash_cookie(cookie))
    await store.create(created)
    assert await store.get(hash_cookie(cookie)) is not None
    assert await store.get_by_sid(created.sid) == created
    path = sqlite_path(db.url)
    assert path is not None
    other = sqlite3.connect(path)  # another process's connection, e.g. `dojang sessions revoke`
    with other:
        other.execute("DELETE FROM sessions")
    other.close()
    assert await store.get(hash_cookie(cookie)) is None
    assert await store.get_by_sid(created.sid) is None
    await store.close()


async def test_sqlite_fast_read_falls_back_to_the_async_path(
    make_db: Callable[[str], Awaitable[Database]], tmp_path: Path
) -> None:
    """A fast-path read error is never an answer: the regular async path answers instead."""
    db = await make_db("sqlite")
    store = SqlSessionStore(db)
    cookie = new_cookie_value()
    session = _session(hash_cookie(cookie))
    await store.create(session)
    # A reader on a file that cannot be opened (as if it had been replaced underneath us).
    db.reader = SqliteReader(tmp_path / "missing" / "dojang.db")
    found = await store.get(hash_cookie(cookie))
    assert found is not None and found.sid == session.sid
    assert await store.get_by_sid(session.sid) == session
    assert await store.get(hash_cookie(new_cookie_value())) is None
    await store.close()
