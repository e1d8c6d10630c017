"""RedisLoginThrottle: the SQL throttle's behaviour, on a standalone server and on a cluster.

Times come from a FrozenClock and are stored as values; Redis TTLs are only garbage collection.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from dojang.accounts import Accounts, PasswordHasher, ThrottlePolicy
from dojang.accounts.throttle import account_key
from dojang.accounts.throttle_redis import RedisLoginThrottle
from dojang.clock import FrozenClock
from dojang.errors import InvalidCredentials, StoreUnavailable, Throttled
from dojang.redis_client import connect_redis
from dojang.storage import Database
from tests.redis_harness import free_port

POLICY = ThrottlePolicy(account_limit=5, ip_limit=20, window=900, base_delay=30, max_delay=900)
PW = "correct horse battery"


@pytest.fixture(params=["redis", "redis-cluster"])
def url(request: pytest.FixtureRequest) -> str:
    return str(
        request.getfixturevalue("redis_url" if request.param == "redis" else "redis_cluster_url")
    )


@pytest.fixture
async def throttle(
    url: str, redis_prefix: str, clock: FrozenClock
) -> AsyncIterator[RedisLoginThrottle]:
    t = RedisLoginThrottle.from_url(url, POLICY, option="TEST", prefix=redis_prefix, clock=clock)
    try:
        yield t
    finally:
        await t.close()


async def retry_after(throttle: RedisLoginThrottle, user: str, ip: str | None) -> float:
    with pytest.raises(Throttled) as info:
        await throttle.check(user, ip)
    return info.value.retry_after


async def test_blocks_after_limit_then_expires(
    throttle: RedisLoginThrottle, clock: FrozenClock
) -> None:
    for _ in range(4):
        await throttle.record_failure("alice", "192.0.2.1")
    await throttle.check("alice", "192.0.2.1")
    await throttle.record_failure("alice", "192.0.2.1")
    assert await retry_after(throttle, "alice", "192.0.2.1") == 30
    clock.advance(29)
    assert await retry_after(throttle, "alice", "198.51.100.7") == 1  # any client
    clock.advance(1)
    await throttle.check("alice", "192.0.2.1")


async def test_delay_grows_and_is_capped(throttle: RedisLoginThrottle, clock: FrozenClock) -> None:
    for _ in range(5):
        await throttle.record_failure("alice", None)
    delays = []
    for _ in range(8):
        delay = await retry_after(throttle, "alice", None)
        delays.append(delay)
        clock.advance(delay)
        await throttle.record_failure("alice", None)
    assert delays == [30, 60, 120, 240, 480, 900, 900, 900]


async def test_success_resets_account_not_client(
    throttle: RedisLoginThrottle, clock: FrozenClock
) -> None:
    for _ in range(4):
        await throttle.record_failure("alice", "203.0.113.9")
    await throttle.record_success("alice")
    for _ in range(4):
        await throttle.record_failure("alice", None)
    await throttle.check("alice", None)
    for i in range(16):  # the client's 5th to 20th failure
        await throttle.record_failure(f"user{i}", "203.0.113.9")
    assert await retry_after(throttle, "bob", "203.0.113.9") == 30
    await throttle.record_success("bob")
    assert await retry_after(throttle, "bob", "203.0.113.9") == 30


async def test_quiet_window_forgets_failures(
    throttle: RedisLoginThrottle, clock: FrozenClock
) -> None:
    for _ in range(4):
        await throttle.record_failure("alice", None)
    clock.advance(901)
    for _ in range(4):
        await throttle.record_failure("alice", None)
    await throttle.check("alice", None)


async def test_ipv6_counts_per_64(throttle: RedisLoginThrottle) -> None:
    for i in range(20):
        await throttle.record_failure(f"user{i}", f"2001:db8:1:2::{i + 1:x}")
    await retry_after(throttle, "alice", "2001:db8:1:2:ffff::1")
    await throttle.check("alice", "2001:db8:1:3::1")


async def test_state_is_shared_between_instances(
    url: str, redis_prefix: str, clock: FrozenClock
) -> None:
    """Two workers (two throttles, two clients, one Redis) see the same counters."""
    policy = ThrottlePolicy(account_limit=2)
    a = RedisLoginThrottle.from_url(url, policy, option="T", prefix=redis_prefix, clock=clock)
    b = RedisLoginThrottle.from_url(url, policy, option="T", prefix=redis_prefix, clock=clock)
    try:
        await a.record_failure("alice", None)
        await b.record_failure("alice", None)
        await retry_after(a, "alice", None)
        await retry_after(b, "alice", None)
    finally:
        await a.close()
        await b.close()


async def test_purge_forgets_only_finished_state(
    url: str, redis_prefix: str, clock: FrozenClock
) -> None:
    throttle = RedisLoginThrottle.from_url(
        url, ThrottlePolicy(account_limit=1, base_delay=30), option="T", prefix=redis_prefix,
        clock=clock,
    )  # fmt: skip
    try:
        await throttle.record_failure("blocked", None)  # blocked for 30 s
        clock.advance(60)
        await throttle.record_failure("recent", "192.0.2.1")  # account blocked, ip counted
        assert await throttle.purge() == 0
        clock.advance(899)
        assert await throttle.purge() == 1
        clock.advance(31)
        assert await throttle.purge() == 2
        await throttle.check("recent", "192.0.2.1")
    finally:
        await throttle.close()


async def test_ttl_is_garbage_collection_only(
    redis_url: str, redis_prefix: str, clock: FrozenClock
) -> None:
    """The key lives (real time) as long as its state can matter: block end + window."""
    throttle = RedisLoginThrottle.from_url(
        redis_url, ThrottlePolicy(account_limit=1, base_delay=30), option="T", prefix=redis_prefix,
        clock=clock,
    )  # fmt: skip
    client = connect_redis(redis_url)
    try:
        await throttle.record_failure("alice", None)
        pttl = int(await client.pttl(f"{redis_prefix}throttle:{account_key('alice')}"))
        assert (30 + 900) * 1000 < pttl <= (30 + 900 + 1) * 1000
    finally:
        await client.aclose()
        await throttle.close()


async def test_plugs_into_accounts(
    throttle: RedisLoginThrottle,
    make_db: Callable[[str], Awaitable[Database]],
    clock: FrozenClock,
) -> None:
    """The Accounts service throttles through the Redis throttle like the SQL one."""
    hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    accounts = Accounts(await make_db("sqlite"), hasher=hasher, throttle=throttle, clock=clock)
    await accounts.create_user("alice", PW)
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            await accounts.authenticate("alice", "wrong password", ip=None)
    with pytest.raises(Throttled):
        await accounts.authenticate("alice", PW, ip=None)
    clock.advance(30)
    assert (await accounts.authenticate("alice", PW, ip=None)).username == "alice"


async def test_unreachable_fails_closed_quickly() -> None:
    throttle = RedisLoginThrottle.from_url(f"redis://127.0.0.1:{free_port()}", option="T")
    try:
        for call in (
            throttle.check("alice", "192.0.2.1"),
            throttle.record_failure("alice", "192.0.2.1"),
            throttle.record_success("alice"),
            throttle.purge(),
        ):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await call
            assert time.monotonic() - started < 2
    finally:
        await throttle.close()
