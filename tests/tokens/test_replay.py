"""Replay stores: one contract, run on memory, SQLite, PostgreSQL, Redis and Redis Cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from dojang.clock import FrozenClock
from dojang.errors import TokenAlreadyUsed
from dojang.jose import KeySet
from dojang.storage import Database
from dojang.tokens import Issuer, MemoryReplayStore, OneTimeTokens, ReplayStore
from dojang.tokens.backends.redis import RedisReplayStore
from dojang.tokens.backends.sql import SqlReplayStore

ISS = "https://auth.example"
MakeDb = Callable[[str], Awaitable[Database]]


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        "redis",
        "redis-cluster",
    ]
)
async def store(
    request: pytest.FixtureRequest, make_db: MakeDb, clock: FrozenClock
) -> AsyncIterator[ReplayStore]:
    """A fresh replay store of each kind (a new backend plugs in with one param)."""
    kind: str = request.param
    if kind == "memory":
        yield MemoryReplayStore(clock=clock)
    elif kind in ("sqlite", "postgresql"):
        yield SqlReplayStore(await make_db(kind), clock=clock)
    else:
        url: str = request.getfixturevalue("redis_url" if kind == "redis" else "redis_cluster_url")
        prefix: str = request.getfixturevalue("redis_prefix")
        redis_store = RedisReplayStore.from_url(url, option="TEST", prefix=prefix, clock=clock)
        try:
            yield redis_store
        finally:
            await redis_store.close()


async def test_first_redemption_only(store: ReplayStore, clock: FrozenClock) -> None:
    exp = clock.now() + 60
    assert await store.redeem("a", exp) is True
    assert await store.redeem("a", exp) is False
    assert await store.redeem("b", exp) is True


async def test_50_concurrent_redemptions_of_one_jti(store: ReplayStore, clock: FrozenClock) -> None:
    """Replay race at the store: 50 simultaneous redemptions of one jti, exactly one wins."""
    results = await asyncio.gather(*(store.redeem("raced", clock.now() + 60) for _ in range(50)))
    assert results.count(True) == 1


async def test_concurrent_redemptions_of_one_token(store: ReplayStore, clock: FrozenClock) -> None:
    """50 racing redemptions of one one-time token: exactly one wins."""
    keyset = KeySet.generate("ES256")
    token = Issuer(keyset, issuer=ISS, clock=clock).one_time_token(
        sub="u1", purpose="reset", ttl=600
    )
    ott = OneTimeTokens(keyset, store, issuer=ISS, clock=clock)

    async def attempt() -> bool:
        try:
            await ott.redeem(token, purpose="reset")
        except TokenAlreadyUsed:
            return False
        return True

    results = await asyncio.gather(*(attempt() for _ in range(50)))
    assert results.count(True) == 1
    assert results.count(False) == 49


async def test_memory_store_purges_expired(clock: FrozenClock) -> None:
    store = MemoryReplayStore(clock=clock)
    assert await store.redeem("old", clock.now() + 10)
    clock.advance(11)
    assert await store.redeem("new", clock.now() + 10)
    assert len(store) == 1


async def test_sql_store_purge(make_db: MakeDb, clock: FrozenClock) -> None:
    store = SqlReplayStore(await make_db("sqlite"), clock=clock)
    assert await store.redeem("old", clock.now() + 10)
    assert await store.redeem("live", clock.now() + 100)
    clock.advance(11)
    assert await store.purge() == 1
    assert await store.redeem("live", clock.now() + 100) is False
