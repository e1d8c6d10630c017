"""RedisReplayStore specifics (the shared contract runs in test_replay.py): TTLs, outages."""

from __future__ import annotations

import time

import pytest

from dojang.errors import StoreUnavailable
from dojang.tokens.backends.redis import RedisReplayStore
from tests.redis_harness import free_port

ISS = "https://auth.example"


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
