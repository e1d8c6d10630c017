"""Redis-specific behaviour of RedisSessionStore: TTLs, key hygiene, outages and recovery.

The contract itself runs in test_store_contract.py (params "redis" and "redis-cluster"). Redis
TTLs are real time, so the sessions here are stamped relative to ``time.time()``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from dojang.errors import ConfigError, SessionCollision, StoreUnavailable
from dojang.redis_client import RedisClient, connect_redis
from dojang.sessions.backends import open_session_store
from dojang.sessions.backends.redis import RedisSessionStore
from dojang.sessions.ids import hash_cookie, new_cookie_value, new_csrf_secret, new_sid
from dojang.sessions.model import Session
from dojang.storage import Database
from tests.redis_harness import REDIS_SERVER, RedisServer, free_port, unreachable


def live_session(
    user_id: str = "u1", *, idle: float = 1800, absolute: float = 12 * 3600
) -> Session:
    now = time.time()
    return Session(
        key_hash=hash_cookie(new_cookie_value()),
        sid=new_sid(),
        user_id=user_id,
        created_at=now,
        last_seen=now,
        auth_time=now,
        idle_timeout=idle,
        absolute_expires_at=now + absolute,
        csrf_secret=new_csrf_secret(),
        ip="192.0.2.1",
        user_agent="Mozilla/5.0",
        data={"k": "v"},
    )


@pytest.fixture(params=["redis", "redis-cluster"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[RedisClient]:
    url: str = request.getfixturevalue(
        "redis_url" if request.param == "redis" else "redis_cluster_url"
    )
    c = connect_redis(url)
    try:
        yield c
    finally:
        await c.aclose()


@pytest.fixture
def store(client: RedisClient, redis_prefix: str) -> RedisSessionStore:
    return RedisSessionStore(client, prefix=redis_prefix)


async def pttl_s(client: RedisClient, key: str) -> float:
    return int(await client.pttl(key)) / 1000


async def test_ttl_follows_idle_and_absolute_expiry(
    store: RedisSessionStore, client: RedisClient, redis_prefix: str
) -> None:
    s = live_session(idle=600, absolute=3600)
    await store.create(s)
    record = f"{redis_prefix}s:{s.key_hash.hex()}"
    assert 598 < await pttl_s(client, record) <= 601  # idle bound
    assert 3598 < await pttl_s(client, f"{redis_prefix}i:{s.sid}") <= 3601  # absolute bound
    assert 3598 < await pttl_s(client, f"{redis_prefix}u:u1") <= 3601

    await store.touch(s.key_hash, s.last_seen + 300)  # sliding: idle end moves forward
    assert 898 < await pttl_s(client, record) <= 901
    await store.touch(s.key_hash, s.last_seen + 100)  # never backward
    assert 898 < await pttl_s(client, record) <= 901
    await store.touch(s.key_hash, s.last_seen + 3500)  # the absolute end caps it
    assert 3598 < await pttl_s(client, record) <= 3601

    s.idle_timeout = 30
    await store.save(s)  # save writes every field and recomputes the TTL from them
    assert 28 < await pttl_s(client, record) <= 31
    s.absolute_expires_at += 86400  # remember-me: pointer and index live longer too
    s.idle_timeout = 7 * 86400
    await store.save(s)
    day_plus_hour = 86400 + 3600
    assert day_plus_hour - 2 < await pttl_s(client, f"{redis_prefix}i:{s.sid}") <= day_plus_hour + 1
    assert day_plus_hour - 2 < await pttl_s(client, f"{redis_prefix}u:u1") <= day_plus_hour + 1


async def test_redis_drops_the_session_when_it_expires(store: RedisSessionStore) -> None:
    s = live_session(idle=0.3)
    await store.create(s)
    assert await store.get(s.key_hash) is not None
    deadline = time.monotonic() + 5
    while await store.get(s.key_hash) is not None:
        assert time.monotonic() < deadline, "the record outlived its expiry"
        await asyncio.sleep(0.05)
    # Lists see through stale index entries and clean them up.
    assert await store.list_for_user("u1") == []
    assert await store.get_by_sid(s.sid) is None


async def test_keys_and_values_never_contain_the_cookie(
    store: RedisSessionStore, client: RedisClient, redis_prefix: str
) -> None:
    """A dump of the store (or MONITOR) must yield no live cookie value."""
    cookie = new_cookie_value()
    s = live_session()
    s.key_hash = hash_cookie(cookie)
    await store.create(s)
    await store.touch(s.key_hash, s.last_seen + 1)
    keys = [k async for k in client.scan_iter(match=redis_prefix + "*")]
    assert len(keys) == 3
    blob = b" ".join(keys)
    for key in keys:
        kind = await client.type(key)
        if kind == b"hash":
            blob += b" ".join(b"%s=%s" % kv for kv in (await client.hgetall(key)).items())
        elif kind == b"string":
            blob += await client.get(key)
        else:
            blob += b" ".join(await client.zrange(key, 0, -1))
    assert cookie.encode() not in blob
    assert s.key_hash.hex().encode() in blob  # keyed by the hash, as designed


async def test_concurrent_creates_with_one_sid_one_wins(store: RedisSessionStore) -> None:
    sid = new_sid()
    sessions = [live_session(f"user{i}") for i in range(20)]
    for s in sessions:
        s.sid = sid

    async def create(s: Session) -> bool:
        try:
            await store.create(s)
        except SessionCollision:
            return False
        return True

    results = await asyncio.gather(*(create(s) for s in sessions))
    assert results.count(True) == 1
    winner = sessions[results.index(True)]
    assert await store.get_by_sid(sid) == winner
    for loser in (s for s, ok in zip(sessions, results, strict=True) if not ok):
        assert await store.get(loser.key_hash) is None


async def test_stale_index_entries_harm_nobody(
    store: RedisSessionStore, client: RedisClient, redis_prefix: str
) -> None:
    """An index entry pointing at another user's record is neither listed nor deleted."""
    alice, bob = live_session("alice"), live_session("bob")
    await store.create(alice)
    await store.create(bob)
    await client.zadd(f"{redis_prefix}u:alice", {bob.key_hash.hex(): time.time() + 60})
    assert [s.sid for s in await store.list_for_user("alice")] == [alice.sid]
    assert await store.delete_for_user("alice") == [alice.sid]
    assert await store.get(bob.key_hash) == bob


async def test_save_moving_owner_moves_index(store: RedisSessionStore) -> None:
    s = live_session("alice")
    await store.create(s)
    s.user_id = "bob"
    await store.save(s)
    assert await store.list_for_user("alice") == []
    assert await store.list_for_user("bob") == [s]


async def test_close_leaves_a_borrowed_client_open(store: RedisSessionStore) -> None:
    await store.close()
    await store.ping()


def test_repr_and_prefix_checks(redis_prefix: str) -> None:
    c = aioredis.Redis(password="hunter2")
    assert "hunter2" not in repr(RedisSessionStore(c, prefix=redis_prefix))
    with pytest.raises(ValueError, match="prefix"):
        RedisSessionStore(c, prefix="{tag}:")


# -- outages --------------------------------------------------------------------------------


async def _every_method(store: RedisSessionStore) -> list[tuple[str, Any]]:
    s = live_session()
    return [
        ("create", store.create(s)),
        ("get", store.get(s.key_hash)),
        ("get_by_sid", store.get_by_sid(s.sid)),
        ("touch", store.touch(s.key_hash, time.time())),
        ("save", store.save(s)),
        ("delete", store.delete(s.key_hash)),
        ("delete_by_sid", store.delete_by_sid(s.sid)),
        ("list_for_user", store.list_for_user("u1")),
        ("delete_for_user", store.delete_for_user("u1")),
        ("purge_expired", store.purge_expired(time.time())),
        ("ping", store.ping()),
    ]


@pytest.mark.parametrize("scheme", ["redis", "redis+cluster"])
async def test_nothing_listening_fails_closed_quickly(scheme: str) -> None:
    """An outage must raise StoreUnavailable at once, never read as "no such session"."""
    store = RedisSessionStore.from_url(f"{scheme}://127.0.0.1:{free_port()}")
    try:
        for name, call in await _every_method(store):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await call
            assert time.monotonic() - started < 2, name
    finally:
        await store.close()


async def test_same_store_recovers_after_a_restart(tmp_path: Path) -> None:
    """Stop the server: StoreUnavailable. Start it again on the same port: the same store
    object works again, with no re-creation (the pool reconnects)."""
    if REDIS_SERVER is None:
        unreachable("redis-server is not installed: the restart test cannot run")
    server = RedisServer(tmp_path)
    server.start()
    store = RedisSessionStore.from_url(f"redis://127.0.0.1:{server.port}")
    try:
        s = live_session()
        await store.create(s)
        assert await store.get(s.key_hash) == s
        server.stop()
        for name, call in await _every_method(store):
            with pytest.raises(StoreUnavailable):
                await call
            del name
        server.start()  # same port, empty (no persistence)
        await store.ping()
        assert await store.get(s.key_hash) is None
        await store.create(s)
        assert await store.get_by_sid(s.sid) == s
    finally:
        await store.close()
        server.stop()


# -- configuration --------------------------------------------------------------------------


async def test_open_session_store_builds_a_redis_store(tmp_path: Path, redis_url: str) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    store = open_session_store(redis_url, db)
    try:
        assert isinstance(store, RedisSessionStore)
        await store.ping()
    finally:
        await store.close()
        await db.dispose()


async def test_open_session_store_bad_redis_url(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(ConfigError, match="DOJANG_SESSION_STORE") as info:
        open_session_store("redis://:hunter2@h:99999/x", db)
    assert "hunter2" not in str(info.value)
    await db.dispose()
