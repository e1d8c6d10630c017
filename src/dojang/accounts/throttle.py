"""Login throttling per account and per client network, kept in the database.

Counters live in the ``login_throttle`` table so every worker and every instance sees the
same numbers (in-memory counters would let an attacker multiply their budget by the worker
count). After ``limit`` failures the key is blocked for a delay that doubles with each further
failure, capped at ``max_delay``; a quiet ``window`` (no failure, no block) forgets the
streak. Blocks always end: there is no permanent lock-out for an attacker to inflict on a
real user. Nothing here is exposed over HTTP; callers only ever see ``Throttled(retry_after)``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import ColumnElement, and_, case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from dojang.accounts._storage import begin
from dojang.clock import SYSTEM_CLOCK, Clock
from dojang.errors import Throttled
from dojang.storage.accounts_tables import login_throttle_table as t
from dojang.storage.db import Database


@dataclass(frozen=True)
class ThrottlePolicy:
    """Limits for failed logins; durations in seconds."""

    account_limit: int = 5
    ip_limit: int = 20
    # A streak is forgotten once this long has passed since its last failure.
    window: float = 900
    base_delay: float = 30
    max_delay: float = 900


def account_key(normalized_username: str) -> str:
    """Counter key for an account; hashed, so the table does not list tried usernames."""
    return "u:" + hashlib.sha256(normalized_username.encode("utf-8")).hexdigest()


def ip_key(ip: str) -> str:
    """Counter key for a client: the IPv4 address, or the IPv6 /64 it belongs to.

    One IPv6 host usually controls a whole /64, so counting single addresses would give it
    2**64 fresh budgets.
    """
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return "ip:?" + hashlib.sha256(ip.encode("utf-8", "replace")).hexdigest()
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return f"ip:{addr.ipv4_mapped}"
        return f"ip:{ipaddress.IPv6Network((addr, 64), strict=False)}"
    return f"ip:{addr}"


def _quiet_since(cutoff: float) -> ColumnElement[bool]:
    """True for counters with neither a failure nor a running block after ``cutoff``.

    Measured from the end of the last block too, so sitting out a block does not by itself
    wipe the streak: the next failure after a block keeps the delay growing.
    """
    return and_(t.c.last_failure <= cutoff, t.c.blocked_until <= cutoff)


class Throttle(Protocol):
    """What ``Accounts`` needs from a login throttle (database or Redis backed)."""

    async def check(self, normalized_username: str, ip: str | None) -> None:
        """Raise ``Throttled`` while the account or the client network is blocked."""
        ...

    async def record_failure(self, normalized_username: str, ip: str | None) -> None:
        """Count a failed attempt for the account and the client network."""
        ...

    async def record_success(self, normalized_username: str) -> None:
        """Forget the account's failures after a successful login."""
        ...

    async def purge(self) -> int:
        """Drop counters that no longer matter; return how many."""
        ...

    async def close(self) -> None:
        """Release a connection the throttle owns."""
        ...


class LoginThrottle:
    """Database-backed failure counters with progressive, always-expiring blocks."""

    def __init__(
        self,
        db: Database,
        policy: ThrottlePolicy = ThrottlePolicy(),
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._db = db
        self.policy = policy
        self._clock = clock

    def __repr__(self) -> str:
        return f"LoginThrottle({self.policy!r})"

    def _keys(self, normalized_username: str, ip: str | None) -> list[tuple[str, int]]:
        keys = [(account_key(normalized_username), self.policy.account_limit)]
        if ip:
            keys.append((ip_key(ip), self.policy.ip_limit))
        return keys

    async def check(self, normalized_username: str, ip: str | None) -> None:
        """Raise ``Throttled`` if the account or the client is blocked right now."""
        now = self._clock.now()
        keys: Sequence[str] = [k for k, _ in self._keys(normalized_username, ip)]
        stmt = select(t.c.blocked_until).where(t.c.key.in_(keys), t.c.blocked_until > now)
        async with begin(self._db) as conn:
            blocked = list((await conn.execute(stmt)).scalars())
        if blocked:
            # Whole seconds, rounded up, so a client honouring Retry-After is never early.
            raise Throttled(retry_after=float(math.ceil(max(blocked) - now)))

    async def record_failure(self, normalized_username: str, ip: str | None) -> None:
        """Count one failed login against the account and the client."""
        now = self._clock.now()
        async with begin(self._db) as conn:
            for key, limit in self._keys(normalized_username, ip):
                stale = _quiet_since(now - self.policy.window)
                insert = (sqlite.insert if self._db.is_sqlite else postgresql.insert)(t)
                # One upsert per key: the increment happens in the database, so two workers
                # counting at once both count (no read-modify-write race).
                stmt = (
                    insert.values(
                        key=key, failures=1, window_start=now, last_failure=now, blocked_until=0.0
                    )
                    .on_conflict_do_update(
                        index_elements=[t.c.key],
                        set_={
                            "failures": case((stale, 1), else_=t.c.failures + 1),
                            "window_start": case((stale, now), else_=t.c.window_start),
                            "last_failure": now,
                        },
                    )
                    .returning(t.c.failures)
                )
                failures: int = (await conn.execute(stmt)).scalar_one()
                if failures >= limit:
                    over = min(failures - limit, 32)  # 2**32 * base_delay is past any cap
                    until = now + min(self.policy.max_delay, self.policy.base_delay * 2**over)
                    # Only ever lengthen a block: a concurrent, longer one wins.
                    await conn.execute(
                        update(t)
                        .where(t.c.key == key, t.c.blocked_until < until)
                        .values(blocked_until=until)
                    )

    async def record_success(self, normalized_username: str) -> None:
        """Forget the account's failures after a successful login.

        The client's counter stays: one valid account must not reset a password-spraying
        client's budget for every other account.
        """
        async with begin(self._db) as conn:
            await conn.execute(delete(t).where(t.c.key == account_key(normalized_username)))

    async def close(self) -> None:
        """Nothing to release: the database belongs to its owner."""

    async def purge(self) -> int:
        """Delete counters that are neither blocking nor within a window; return how many."""
        now = self._clock.now()
        stmt = delete(t).where(_quiet_since(now - self.policy.window))
        async with begin(self._db) as conn:
            return (await conn.execute(stmt)).rowcount
