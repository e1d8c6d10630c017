"""Login throttling: per account and per client, progressive, always expiring, shared."""

from __future__ import annotations

import pytest

from dojang.accounts import Accounts, LoginThrottle, ThrottlePolicy
from dojang.accounts.throttle import account_key, ip_key
from dojang.clock import FrozenClock
from dojang.errors import InvalidCredentials, Throttled
from dojang.storage import Database

PW = "correct horse battery"


async def fail(accounts: Accounts, username: str, ip: str | None, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(InvalidCredentials):
            await accounts.authenticate(username, "wrong password", ip=ip)


async def test_blocks_after_limit_then_expires(accounts: Accounts, clock: FrozenClock) -> None:
    """Online guessing: five wrong passwords block the account, but not for ever."""
    await accounts.create_user("alice", PW)
    await fail(accounts, "alice", "192.0.2.1", times=5)
    with pytest.raises(Throttled) as info:
        await accounts.authenticate("alice", PW, ip="192.0.2.1")
    assert info.value.retry_after == 30
    clock.advance(29)
    with pytest.raises(Throttled) as info:
        await accounts.authenticate("alice", PW, ip="198.51.100.7")  # another client too
    assert info.value.retry_after == 1
    clock.advance(1)
    assert (await accounts.authenticate("alice", PW, ip="192.0.2.1")).username == "alice"


async def test_delay_grows_and_is_capped(accounts: Accounts, clock: FrozenClock) -> None:
    await accounts.create_user("alice", PW)
    await fail(accounts, "alice", None, times=5)
    delays = []
    for _ in range(8):
        with pytest.raises(Throttled) as info:
            await accounts.authenticate("alice", PW, ip=None)
        delays.append(info.value.retry_after)
        clock.advance(info.value.retry_after)
        await fail(accounts, "alice", None)
    assert delays == [30, 60, 120, 240, 480, 900, 900, 900]


async def test_blocked_attempts_are_not_counted_or_checked(
    accounts: Accounts, clock: FrozenClock
) -> None:
    """While blocked, not even the right password is tried (no oracle during the block)."""
    await accounts.create_user("alice", PW)
    await fail(accounts, "alice", None, times=5)
    for _ in range(10):
        with pytest.raises(Throttled):
            await accounts.authenticate("alice", "wrong password", ip=None)
    clock.advance(30)
    await fail(accounts, "alice", None)  # the 6th counted failure: 60 s
    with pytest.raises(Throttled) as info:
        await accounts.authenticate("alice", PW, ip=None)
    assert info.value.retry_after == 60


async def test_success_resets_account_counter(accounts: Accounts) -> None:
    await accounts.create_user("alice", PW)
    await fail(accounts, "alice", None, times=4)
    await accounts.authenticate("alice", PW, ip=None)
    await fail(accounts, "alice", None, times=4)
    assert (await accounts.authenticate("alice", PW, ip=None)).username == "alice"


async def test_quiet_window_forgets_failures(accounts: Accounts, clock: FrozenClock) -> None:
    await accounts.create_user("alice", PW)
    await fail(accounts, "alice", None, times=4)
    clock.advance(901)
    await fail(accounts, "alice", None, times=4)
    assert (await accounts.authenticate("alice", PW, ip=None)).username == "alice"


async def test_unknown_users_are_throttled_too(accounts: Accounts) -> None:
    """The answer for a non-existent account must match a real one, blocks included."""
    await fail(accounts, "nobody", None, times=5)
    with pytest.raises(Throttled):
        await accounts.authenticate("nobody", PW, ip=None)
    await fail(accounts, "not a valid name!", None, times=5)
    with pytest.raises(Throttled):
        await accounts.authenticate("not a valid name!", PW, ip=None)


async def test_spelling_variants_share_one_counter(accounts: Accounts) -> None:
    await accounts.create_user("alice", PW)
    # The fullwidth spelling is deliberate: NFKC folds it onto "alice".
    for name in ("alice", "ALICE", "Alice", "ａｌｉｃｅ", "aLiCe"):  # noqa: RUF001
        await fail(accounts, name, None)
    with pytest.raises(Throttled):
        await accounts.authenticate("alice", PW, ip=None)


async def test_ip_throttle_is_independent(accounts: Accounts, clock: FrozenClock) -> None:
    """Password spraying: one client trying many accounts is blocked, others are not."""
    await accounts.create_user("alice", PW)
    for i in range(20):
        await fail(accounts, f"user{i}", "203.0.113.9")
    with pytest.raises(Throttled):
        await accounts.authenticate("alice", PW, ip="203.0.113.9")
    # The account itself is fine from elsewhere, and its success does not unblock the client.
    assert (await accounts.authenticate("alice", PW, ip="192.0.2.1")).username == "alice"
    with pytest.raises(Throttled):
        await accounts.authenticate("alice", PW, ip="203.0.113.9")
    clock.advance(30)
    assert (await accounts.authenticate("alice", PW, ip="203.0.113.9")).username == "alice"


async def test_ipv6_counts_per_64(accounts: Accounts) -> None:
    await accounts.create_user("alice", PW)
    for i in range(20):
        await fail(accounts, f"user{i}", f"2001:db8:1:2::{i + 1:x}")
    with pytest.raises(Throttled):
        await accounts.authenticate("alice", PW, ip="2001:db8:1:2:ffff::1")
    assert (await accounts.authenticate("alice", PW, ip="2001:db8:1:3::1")).username == "alice"


def test_keys() -> None:
    assert ip_key("192.0.2.1") == "ip:192.0.2.1"
    assert ip_key("::ffff:192.0.2.1") == "ip:192.0.2.1"
    assert ip_key("2001:db8:1:2:3:4:5:6") == "ip:2001:db8:1:2::/64"
    assert ip_key("garbage").startswith("ip:?")
    assert len(ip_key("x" * 10_000)) < 96
    assert "alice" not in account_key("alice")
    assert account_key("alice") != account_key("bob")


async def test_state_is_shared_between_instances(db: Database, clock: FrozenClock) -> None:
    """Two workers (two throttle objects, one database) see the same counters."""
    policy = ThrottlePolicy(account_limit=2)
    worker_a = LoginThrottle(db, policy, clock=clock)
    worker_b = LoginThrottle(db, policy, clock=clock)
    await worker_a.record_failure("alice", None)
    await worker_b.record_failure("alice", None)
    with pytest.raises(Throttled):
        await worker_a.check("alice", None)
    with pytest.raises(Throttled):
        await worker_b.check("alice", None)


async def test_purge_forgets_only_finished_state(db: Database, clock: FrozenClock) -> None:
    throttle = LoginThrottle(db, ThrottlePolicy(account_limit=1, base_delay=30), clock=clock)
    await throttle.record_failure("blocked", None)  # blocked for 30 s
    clock.advance(60)
    await throttle.record_failure("recent", "192.0.2.1")  # account blocked, ip counted
    assert await throttle.purge() == 0
    clock.advance(899)
    assert await throttle.purge() == 1  # "blocked": 900 s quiet since its block ended
    clock.advance(31)
    assert await throttle.purge() == 2  # the client counter, then the account's block end
    await throttle.check("recent", "192.0.2.1")  # nothing left that blocks
