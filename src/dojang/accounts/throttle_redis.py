"""Login throttling on Redis: the same counters and policy as :mod:`dojang.accounts.throttle`.

One hash per counter key (``P throttle:<key>`` with fields ``f`` failures, ``l`` last failure,
``b`` blocked until). Every update is one Lua script on one key, so it is atomic across workers
and instances and works on any Redis Cluster node. Times stored in the hash come from the
injected clock, exactly like the SQL columns; the key's Redis TTL is real time and only
garbage-collects counters once they can no longer matter (their quiet window has passed).
"""

from __future__ import annotations

import asyncio
import math

from dojang.accounts.throttle import ThrottlePolicy, account_key, ip_key
from dojang.clock import SYSTEM_CLOCK, Clock
from dojang.errors import Throttled
from dojang.redis_client import RedisClient, close_redis_client, connect_redis, redis_guard

__all__ = ["RedisLoginThrottle"]

_DEFAULT_POLICY = ThrottlePolicy()

# ARGV: now, window, limit, base_delay, max_delay. Mirrors LoginThrottle.record_failure: a
# streak that has been quiet for a whole window (no failure, no running block) starts again at
# 1; a block is only ever lengthened. Returns the failure count.
_FAILURE = """
local cur = redis.call('HMGET', KEYS[1], 'f', 'l', 'b')
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local limit, base, cap = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local failures = tonumber(cur[1]) or 0
local last = tonumber(cur[2]) or 0
local blocked = tonumber(cur[3]) or 0
local cutoff = now - window
if failures == 0 or (last <= cutoff and blocked <= cutoff) then
  failures = 1
else
  failures = failures + 1
end
if failures >= limit then
  local over = math.min(failures - limit, 32)
  local block_end = now + math.min(cap, base * 2 ^ over)
  if blocked < block_end then blocked = block_end end
end
redis.call('HSET', KEYS[1], 'f', failures, 'l', ARGV[1], 'b', string.format('%.17g', blocked))
-- Garbage collection only: keep the key while it can still matter, plus a second.
local keep = math.max(now, blocked) + window - now + 1
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil(keep * 1000)))
return failures
"""

# ARGV: cutoff. Delete the counter if it is quiet since the cutoff (mirrors purge()).
_PURGE = """
local cur = redis.call('HMGET', KEYS[1], 'l', 'b')
if not cur[1] then return 0 end
local cutoff = tonumber(ARGV[1])
if tonumber(cur[1]) <= cutoff and tonumber(cur[2] or '0') <= cutoff then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLoginThrottle:
    """Redis-backed failure counters with progressive, always-expiring blocks.

    Same public methods and semantics as :class:`~dojang.accounts.throttle.LoginThrottle`;
    ``client`` stays the caller's unless the throttle was built by :meth:`from_url`.
    """

    def __init__(
        self,
        client: RedisClient,
        policy: ThrottlePolicy = _DEFAULT_POLICY,
        *,
        prefix: str = "dojang:",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._client = client
        self.policy = policy
        self._prefix = prefix
        self._clock = clock
        self._owns_client = False
        self._failure = client.register_script(_FAILURE)
        self._purge = client.register_script(_PURGE)

    @classmethod
    def from_url(
        cls,
        url: str,
        policy: ThrottlePolicy = _DEFAULT_POLICY,
        *,
        option: str,
        prefix: str = "dojang:",
        clock: Clock = SYSTEM_CLOCK,
    ) -> RedisLoginThrottle:
        """Build a throttle with its own client; ``option`` names the setting in errors."""
        throttle = cls(connect_redis(url, option=option), policy, prefix=prefix, clock=clock)
        throttle._owns_client = True
        return throttle

    def __repr__(self) -> str:
        return f"RedisLoginThrottle({self.policy!r})"

    def _name(self, key: str) -> str:
        return f"{self._prefix}throttle:{key}"

    def _keys(self, normalized_username: str, ip: str | None) -> list[tuple[str, int]]:
        keys = [(account_key(normalized_username), self.policy.account_limit)]
        if ip:
            keys.append((ip_key(ip), self.policy.ip_limit))
        return keys

    async def check(self, normalized_username: str, ip: str | None) -> None:
        """Raise ``Throttled`` if the account or the client is blocked right now."""
        now = self._clock.now()
        async with redis_guard(self._client, "login throttle"):
            # One key per call: the account and the client live in different cluster slots.
            values = await asyncio.gather(
                *(
                    self._client.hget(self._name(key), "b")
                    for key, _ in self._keys(normalized_username, ip)
                )
            )
        blocked = [float(v) for v in values if v is not None and float(v) > now]
        if blocked:
            # Whole seconds, rounded up, so a client honouring Retry-After is never early.
            raise Throttled(retry_after=float(math.ceil(max(blocked) - now)))

    async def record_failure(self, normalized_username: str, ip: str | None) -> None:
        """Count one failed login against the account and the client (atomically each)."""
        p = self.policy
        now = repr(self._clock.now())
        async with redis_guard(self._client, "login throttle"):
            for key, limit in self._keys(normalized_username, ip):
                await self._failure(
                    keys=[self._name(key)],
                    args=[now, repr(float(p.window)), limit, p.base_delay, p.max_delay],
                )

    async def record_success(self, normalized_username: str) -> None:
        """Forget the account's failures; the client's counter stays (see LoginThrottle)."""
        async with redis_guard(self._client, "login throttle"):
            await self._client.delete(self._name(account_key(normalized_username)))

    async def purge(self) -> int:
        """Delete counters that are neither blocking nor within a window; return how many.

        Redis TTLs already collect them in real time; this scan serves clocks that differ.
        """
        cutoff = repr(self._clock.now() - self.policy.window)
        deleted = 0
        async with redis_guard(self._client, "login throttle"):
            async for name in self._client.scan_iter(match=self._name("*"), count=500):
                deleted += int(await self._purge(keys=[name], args=[cutoff]))
        return deleted

    async def close(self) -> None:
        """Close the client if this throttle created it."""
        if self._owns_client:
            await close_redis_client(self._client)
