"""Replay stores: one contract, run on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from dojang.clock import FrozenClock
from dojang.errors import TokenAlreadyUsed
from dojang.jose import KeySet
from dojang.storage import Database
from dojang.tokens import Issuer, MemoryReplayStore, OneTimeTokens, ReplayStore
from dojang.tokens.backends.sql import SqlReplayStore

ISS = "https://auth.example"
MakeDb = Callable[[str], Awaitable[Database]]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, make_db: MakeDb, clock: FrozenClock) -> ReplayStore:
    kind: str = request.param
    if kind == "memory":
        return MemoryReplayStore(clock=clock)
    return SqlReplayStore(await make_db(kind), clock=clock)


async def test_first_redemption_only(store: ReplayStore, clock: FrozenClock) -> None:
    exp = clock.now() + 60
    assert await store.redeem("a", exp) is True
    assert await store.redeem("a", exp) is False
    assert await store.redeem("b", exp) is True


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
