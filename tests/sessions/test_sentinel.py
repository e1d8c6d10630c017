"""``redis+sentinel://`` against real sentinels: the URL reaches the real master, and one store
object rides out a failover, failing closed (``StoreUnavailable``) but never answering wrongly.

The contract suite also runs through Sentinel (param "redis-sentinel" in conftest.py, on the
session-wide :func:`redis_sentinel` harness, which is never failed over); the failover test
starts a harness of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dojang.errors import StoreUnavailable
from dojang.sessions.backends.redis import RedisSessionStore
from dojang.sessions.ids import hash_cookie, new_cookie_value, new_csrf_secret, new_sid
from dojang.sessions.model import Session
from tests.redis_harness import (
    REDIS_SERVER,
    RedisSentinelHarness,
    RedisServer,
    free_port,
    replication,
    unreachable,
)


def live_session(user_id: str) -> Session:
    """A session stamped with the real time (Redis TTLs run on the wall clock)."""
    now = time.time()
    return Session(
        key_hash=hash_cookie(new_cookie_value()),
        sid=new_sid(),
        user_id=user_id,
        created_at=now,
        last_seen=now,
        auth_time=now,
        idle_timeout=1800.0,
        absolute_expires_at=now + 3600,
        csrf_secret=new_csrf_secret(),
    )


def direct_store(server: RedisServer, prefix: str) -> RedisSessionStore:
    """A store on one data node by plain ``redis://`` (no Sentinel in the way)."""
    return RedisSessionStore.from_url(f"redis://{server.address}/0", prefix=prefix)


async def test_sentinel_url_reaches_the_master(
    redis_sentinel: RedisSentinelHarness, redis_prefix: str
) -> None:
    master, replica = redis_sentinel.servers
    assert redis_sentinel.master() is master  # the shared harness is never failed over
    store = RedisSessionStore.from_url(redis_sentinel.url, prefix=redis_prefix)
    on_master = direct_store(master, redis_prefix)
    on_replica = direct_store(replica, redis_prefix)
    try:
        s = live_session("alice")
        await store.create(s)
        # The keys are physically on the master's port...
        with master.client() as plain:
            assert list(plain.scan_iter(match=redis_prefix + "*"))
        assert await on_master.get(s.key_hash) == s
        # ...and replicated, so a failover would keep them.
        assert master.call("WAIT", 1, 1000) == 1
        assert await on_replica.get(s.key_hash) == s
        # A write through plain redis:// on the master is seen through Sentinel, too.
        t = live_session("bob")
        await on_master.create(t)
        assert await store.get_by_sid(t.sid) == t
    finally:
        for st in (store, on_master, on_replica):
            await st.close()


async def test_dead_sentinel_first_in_the_url_is_skipped(
    redis_sentinel: RedisSentinelHarness, redis_prefix: str
) -> None:
    hosts = [f"127.0.0.1:{free_port()}", *(s.address for s in redis_sentinel.sentinels)]
    url = f"redis+sentinel://{','.join(hosts)}/{redis_sentinel.service}"
    store = RedisSessionStore.from_url(url, prefix=redis_prefix)
    try:
        s = live_session("carol")
        await store.create(s)
        assert await store.get(s.key_hash) == s
    finally:
        await store.close()


async def test_unknown_service_fails_closed(
    redis_sentinel: RedisSentinelHarness, redis_prefix: str
) -> None:
    hosts = ",".join(s.address for s in redis_sentinel.sentinels)
    store = RedisSessionStore.from_url(f"redis+sentinel://{hosts}/no-such", prefix=redis_prefix)
    try:
        with pytest.raises(StoreUnavailable):
            await store.get(live_session("dave").key_hash)
        with pytest.raises(StoreUnavailable):
            await store.create(live_session("dave"))
    finally:
        await store.close()


# --- failover -------------------------------------------------------------------------------

# After a forced failover Sentinel leaves the old master running as a master, and converts it
# to a replica (killing its clients) only 4 hello periods after the switch. With hello every
# 2 s (the default) that is ~8 s: long enough to see whether the store moves to the new master
# by itself, or keeps writing to the old one, where every write is lost at the conversion.
FOLLOW_WITHIN = 3.0
"""Seconds after the sentinels name the new master by which writes must land on it."""


@pytest.fixture
async def failover_harness(tmp_path: Path) -> AsyncIterator[RedisSentinelHarness]:
    if REDIS_SERVER is None:
        unreachable("redis-server not installed: Redis Sentinel tests cannot run")
    harness = RedisSentinelHarness(tmp_path, sentinels=1, publish_period_ms=2000)
    await asyncio.to_thread(harness.start)
    try:
        yield harness
    finally:
        await asyncio.to_thread(harness.stop)


async def test_failover_same_store_keeps_working(
    failover_harness: RedisSentinelHarness, redis_prefix: str
) -> None:
    harness = failover_harness
    old = harness.master()
    store = RedisSessionStore.from_url(harness.url, prefix=redis_prefix)
    new_store: RedisSessionStore | None = None
    try:
        before = [live_session(f"user-{i % 3}") for i in range(12)]
        for s in before:
            await store.create(s)
        gone = live_session("user-0")
        await store.create(gone)
        assert await store.delete(gone.key_hash)
        assert old.call("WAIT", 1, 1000) == 1  # every write above is on the replica too

        outcomes: Counter[str] = Counter()
        created: list[Session] = []

        async def exercise() -> None:
            """One round of reads and a write: each call answers right or fails closed."""
            for s in before[::3]:
                try:
                    assert await store.get(s.key_hash) == s
                    assert await store.get_by_sid(s.sid) == s
                    mine = {x.key_hash for x in before if x.user_id == s.user_id}
                    assert {x.key_hash for x in await store.list_for_user(s.user_id)} == mine
                    assert await store.get(gone.key_hash) is None
                    outcomes["read ok"] += 1
                except StoreUnavailable:
                    outcomes["read unavailable"] += 1
            s = live_session(f"during-{len(created)}")
            try:
                await store.create(s)
                created.append(s)
                outcomes["create ok"] += 1
            except StoreUnavailable:
                outcomes["create unavailable"] += 1

        new = await asyncio.to_thread(harness.failover)
        sentinel = harness.sentinels[0]
        deadline = time.monotonic() + 15
        while await asyncio.to_thread(sentinel.master_port) != new.port:
            assert time.monotonic() < deadline, f"no switch to {new.address}: {outcomes}"
            await exercise()
            await asyncio.sleep(0.02)
        switched = time.monotonic()

        # The same store must move to the new master by itself, while the old one is still
        # a master that would accept (and later lose) its writes.
        new_store = direct_store(new, redis_prefix)
        while True:
            await exercise()
            if created and await new_store.get(created[-1].key_hash) == created[-1]:
                break
            assert time.monotonic() - switched < FOLLOW_WITHIN, (
                f"store still not writing to the new master {FOLLOW_WITHIN} s after the "
                f"switch: {outcomes}"
            )
            await asyncio.sleep(0.02)
        assert replication(old).get("role") == "master", "Sentinel demoted the old master early"
        followed = len(created)

        # Let Sentinel demote the old master now (it kills the old master's clients), and the
        # same store still answers everything, from the new master.
        sentinel.set_publish_period(200)
        await asyncio.to_thread(harness.wait_settled, new, 15.0)
        settled = time.monotonic() + FOLLOW_WITHIN
        while True:
            outcomes.clear()
            await exercise()
            if outcomes["read unavailable"] + outcomes["create unavailable"] == 0:
                break
            assert time.monotonic() < settled, f"store not recovered after demotion: {outcomes}"
            await asyncio.sleep(0.02)
        assert replication(old).get("role") == "slave"
        # Nothing acknowledged once the store had followed was written to the old master.
        for s in [*before, *created[followed - 1 :]]:
            assert await new_store.get(s.key_hash) == s
        assert await new_store.get(gone.key_hash) is None
    finally:
        await store.close()
        if new_store is not None:
            await new_store.close()
