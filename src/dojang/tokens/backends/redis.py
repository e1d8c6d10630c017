"""Redis replay store: one ``SET key 1 NX PXAT exp`` per redeemed one-time token.

``SET ... NX`` is a single atomic command on one key, so racing redemptions of one ``jti``
cannot both succeed, on a standalone server, under Sentinel or on any Redis Cluster node
(each ``jti`` lives in exactly one slot). The key expires with the token: after ``exp`` the
verifier refuses the token anyway, so Redis may forget it.
"""

from __future__ import annotations

import math

from dojang.clock import SYSTEM_CLOCK, Clock
from dojang.redis_client import RedisClient, close_redis_client, connect_redis, redis_guard

__all__ = ["RedisReplayStore"]


class RedisReplayStore:
    """A :class:`~dojang.tokens.replay.ReplayStore` on Redis.

    ``client`` stays the caller's unless the store was built by :meth:`from_url`.
    """

    def __init__(
        self, client: RedisClient, *, prefix: str = "dojang:", clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._clock = clock
        self._owns_client = False

    @classmethod
    def from_url(
        cls, url: str, *, option: str, prefix: str = "dojang:", clock: Clock = SYSTEM_CLOCK
    ) -> RedisReplayStore:
        """Build a store with its own client; ``option`` names the setting in ``ConfigError``."""
        store = cls(connect_redis(url, option=option), prefix=prefix, clock=clock)
        store._owns_client = True
        return store

    def __repr__(self) -> str:
        return f"RedisReplayStore(prefix={self._prefix!r})"

    async def redeem(self, jti: str, exp: float) -> bool:
        """Record ``jti`` until ``exp``; True only for the call whose ``SET NX`` created it.

        The record lives at least one second past the clock's "now": a ``PXAT`` in the past
        would make Redis drop the key at once, and a token redeemed at its very last instant
        must still be refused on the second try.
        """
        until_ms = math.ceil(max(exp, self._clock.now() + 1) * 1000)
        # Fail closed: "could not record" must never read as "first use".
        async with redis_guard(self._client, "replay store"):
            created = await self._client.set(
                f"{self._prefix}jti:{jti}", b"1", nx=True, pxat=until_ms
            )
        return bool(created)

    async def close(self) -> None:
        """Close the client if this store created it."""
        if self._owns_client:
            await close_redis_client(self._client)
