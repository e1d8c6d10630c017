"""Account fixtures: a cheap hasher and an ``Accounts`` service on every database."""

from __future__ import annotations

import pytest

from dojang.accounts import Accounts, LoginThrottle, PasswordHasher, ThrottlePolicy
from dojang.clock import FrozenClock
from dojang.storage import Database

# Production costs tens of milliseconds per hash; these parameters keep the suite fast while
# exercising the same argon2id code path.
CHEAP = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}

THROTTLE = ThrottlePolicy(account_limit=5, ip_limit=20, window=900, base_delay=30, max_delay=900)


@pytest.fixture
def hasher() -> PasswordHasher:
    """An argon2id hasher with minimal cost."""
    return PasswordHasher(**CHEAP)


@pytest.fixture
def throttle(db: Database, clock: FrozenClock) -> LoginThrottle:
    """A login throttle on the test database."""
    return LoginThrottle(db, THROTTLE, clock=clock)


@pytest.fixture
def accounts(
    db: Database, hasher: PasswordHasher, throttle: LoginThrottle, clock: FrozenClock
) -> Accounts:
    """The account service on the test database (SQLite and PostgreSQL)."""
    return Accounts(db, hasher=hasher, throttle=throttle, clock=clock)
