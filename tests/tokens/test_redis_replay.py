"""RedisReplayStore on a standalone server and on a 3-master cluster (real Redis, no fakes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from dojang.clock import FrozenClock
from dojang.errors import StoreUnavailable, TokenAlreadyUsed
from dojang.jose import KeySet
from dojang.tokens import Issuer, OneTimeTokens
from dojang.tokens.backends.redis import RedisReplayStore
from tests.redis_harness import free_port

ISS = "https://auth.example"


@pytest.fixture(params=["redis", "redis-cluster"])
async def store(
    request: pytest.FixtureRequest, redis_prefix: str, clock: FrozenClock
) -> AsyncIterator[RedisReplayStore]:
    url: str = request.getfixturevalue(
        "redis_url" if request.param == "redis" else "redis_cluster_url"
    )
    s = RedisReplayStore.from_url(url, option="TEST", prefix=redis_prefix, clock=clock)
    try:
        yield s
    finally:
        await s.close()


async def test_first_redemption_only(store: RedisReplayStore, clock: FrozenClock) -> None:
    exp = clock.now() + 60
    assert await store.redeem("a", exp) is True
    assert await store.redeem("a", exp) is False
    assert await store.redeem("b", exp) is True


async def test_50_concurrent_redemptions_one_success(store: RedisReplayStore) -> None:
    """Replay race: 50 simultaneous redemptions of one jti, exactly one may win (SET NX)."""
    results = await asyncio.gather(*(store.redeem("raced", time.time() + 60) for _ in range(50)))
    assert results.count(True) == 1


async def test_concurrent_one_time_token_redemptions(
    store: RedisReplayStore, clock: FrozenClock
) -> None:
    """The full path: 50 racing OneTimeTokens.redeem calls on one token, one succeeds."""
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


async def test_record_expires_with_the_token(redis_url: str, redis_prefix: str) -> None:
    """The key's TTL is the token's exp (real time): the store does not grow without bound."""
    import redis.asyncio as aioredis

    store = RedisReplayStore.from_url(redis_url, option="TEST", prefix=redis_prefix)
    client = aioredis.Redis.from_url(redis_url)
    try:
        exp = time.time() + 120
        assert await store.redeem("ttl", exp)
        pttl = await client.pttl(f"{redis_prefix}jti:ttl")
        assert 118_000 < pttl <= 121_000
    finally:
        await client.aclose()
        await store.close()


async def test_unreachable_store_fails_closed() -> None:
    """An outage must never read as "first use" (replay would pass)."""
    store = RedisReplayStore.from_url(f"redis://127.0.0.1:{free_port()}", option="TEST")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await store.redeem("x", time.time() + 60)
    assert time.monotonic() - started < 2
    await store.close()
