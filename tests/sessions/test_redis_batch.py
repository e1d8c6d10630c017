"""Batched session reads on Redis: many concurrent lookups, each gets its own answer."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from dojang.errors import StoreUnavailable
from dojang.redis_client import redis_guard
from dojang.sessions.backends.redis_batch import GetBatcher
from tests.redis_harness import free_port


async def test_concurrent_gets_are_batched_and_never_mixed(
    redis_url: str, redis_prefix: str
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        for i in range(300):
            await client.set(f"{redis_prefix}k{i}", f"v{i}")
        batcher = GetBatcher(client, max_batch=64)
        keys = [f"{redis_prefix}k{i}" for i in range(300)] + [f"{redis_prefix}missing"]
        values = await asyncio.gather(*(batcher.get(k) for k in keys))
        assert values[:-1] == [f"v{i}".encode() for i in range(300)]
        assert values[-1] is None
    finally:
        await client.aclose()


async def test_a_failed_batch_fails_every_waiter_closed() -> None:
    """Store down: every lookup in the batch raises (mapped to StoreUnavailable), none answers."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    client = aioredis.Redis.from_url(url, socket_connect_timeout=0.2, socket_timeout=0.2)
    batcher = GetBatcher(client)

    async def lookup(key: str) -> object:
        async with redis_guard(client, "session store"):
            return await batcher.get(key)

    try:
        results = await asyncio.gather(
            *(lookup(f"k{i}") for i in range(20)), return_exceptions=True
        )
        assert all(isinstance(r, StoreUnavailable) for r in results), results
        with pytest.raises(StoreUnavailable):
            await lookup("again")
    finally:
        await client.aclose()
