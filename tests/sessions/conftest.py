"""The ``store`` fixture: every session store backend behind one contract suite.

A new backend plugs in by adding one param here and one branch in ``store``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from dojang.sessions.backends import MemorySessionStore, SqlSessionStore
from dojang.sessions.backends.redis import RedisSessionStore
from dojang.sessions.store import SessionStore
from dojang.storage import Database

STORE_PARAMS = [
    "memory",
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgres),
    "redis",
    "redis-cluster",
    "redis-sentinel",
]

_REDIS_URL_FIXTURES = {
    "redis": "redis_url",
    "redis-cluster": "redis_cluster_url",
    "redis-sentinel": "redis_sentinel_url",
}


@pytest.fixture(params=STORE_PARAMS)
async def store(
    request: pytest.FixtureRequest, make_db: Callable[[str], Awaitable[Database]]
) -> AsyncIterator[SessionStore]:
    """A fresh, empty session store of each kind (Redis ones under a per-test key prefix)."""
    kind: str = request.param
    if kind == "memory":
        yield MemorySessionStore()
    elif kind in _REDIS_URL_FIXTURES:
        url: str = request.getfixturevalue(_REDIS_URL_FIXTURES[kind])
        prefix: str = request.getfixturevalue("redis_prefix")
        redis_store = RedisSessionStore.from_url(url, prefix=prefix)
        try:
            yield redis_store
        finally:
            await redis_store.close()
    else:
        yield SqlSessionStore(await make_db(kind))
