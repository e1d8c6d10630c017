"""Shared database fixtures: ``db`` (SQLite file and PostgreSQL) and a ``clock``.

PostgreSQL tests run in a fresh schema per test (dropped in teardown), so runs are independent
even when several suites share the one test database at the same time.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import event, exc, text

from dojang.clock import FrozenClock
from dojang.storage import Database
from dojang.storage import accounts_tables as _accounts_tables  # noqa: F401 - registers tables
from dojang.storage import sessions_tables as _sessions_tables  # noqa: F401 - registers tables

if TYPE_CHECKING:
    from tests.redis_harness import RedisSentinelHarness

POSTGRES_URL = os.environ.get(
    "DOJANG_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)

MakeDb = Callable[[str], Awaitable[Database]]
"""``await make_db("sqlite" | "postgresql")`` → a fresh database with every table created."""


def _unreachable(reason: str) -> None:
    # Locally a missing server skips loudly; in CI it must fail, never silently pass.
    message = (
        f"PostgreSQL at {POSTGRES_URL} is not reachable ({reason}); set DOJANG_TEST_POSTGRES_URL"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@asynccontextmanager
async def _sqlite(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite:///{tmp_path / f'dojang-{secrets.token_hex(4)}.db'}")
    try:
        await db.create_all()
        yield db
    finally:
        await db.dispose()


@asynccontextmanager
async def _postgres() -> AsyncIterator[Database]:
    schema = f"test_{secrets.token_hex(8)}"
    admin = Database(POSTGRES_URL)
    try:
        async with admin.engine.begin() as conn:
            await conn.execute(text(f"CREATE SCHEMA {schema}"))
    except (exc.DBAPIError, OSError, TimeoutError) as e:
        await admin.dispose()
        _unreachable(type(e).__name__)
    db = Database(POSTGRES_URL)

    # The SQLAlchemy-documented way to pin a schema for every pooled connection.
    @event.listens_for(db.engine.sync_engine, "connect", insert=True)
    def _search_path(dbapi_conn: Any, _record: Any) -> None:
        autocommit = dbapi_conn.autocommit
        dbapi_conn.autocommit = True
        cursor = dbapi_conn.cursor()
        cursor.execute(f"SET SESSION search_path = {schema}")
        cursor.close()
        dbapi_conn.autocommit = autocommit

    try:
        await db.create_all()
        yield db
    finally:
        await db.dispose()
        async with admin.engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await admin.dispose()


@pytest.fixture
async def make_db(tmp_path: Path) -> AsyncIterator[MakeDb]:
    """A factory for fresh databases of a given kind, all closed and dropped in teardown."""
    async with AsyncExitStack() as stack:

        async def make(kind: str) -> Database:
            if kind == "sqlite":
                return await stack.enter_async_context(_sqlite(tmp_path))
            if kind == "postgresql":
                return await stack.enter_async_context(_postgres())
            raise ValueError(f"unknown database kind {kind!r}")

        yield make


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, make_db: MakeDb) -> Database:
    """A fresh database with every registered table, on SQLite and on PostgreSQL."""
    kind: str = request.param
    return await make_db(kind)


@pytest.fixture
def clock() -> FrozenClock:
    """A clock that moves only when the test says so."""
    return FrozenClock()


# --- Redis ----------------------------------------------------------------------------------

REDIS_URL = os.environ.get("DOJANG_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway 3-master Redis Cluster for the whole run (``redis+cluster://`` URL)."""
    from tests.redis_harness import REDIS_CLI, REDIS_SERVER, RedisClusterHarness, unreachable

    if REDIS_SERVER is None or REDIS_CLI is None:
        unreachable("redis-server/redis-cli not installed: Redis Cluster tests cannot run")
    cluster = RedisClusterHarness(tmp_path_factory.mktemp("redis-cluster"))
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinelHarness]:
    """A throwaway master + replica under three sentinels for the whole run (never failed over:
    a failover test starts its own)."""
    from tests.redis_harness import REDIS_SERVER, RedisSentinelHarness, unreachable

    if REDIS_SERVER is None:
        unreachable("redis-server not installed: Redis Sentinel tests cannot run")
    sentinel = RedisSentinelHarness(tmp_path_factory.mktemp("redis-sentinel"))
    sentinel.start()
    try:
        yield sentinel
    finally:
        sentinel.stop()


@pytest.fixture(scope="session")
def redis_sentinel_url(redis_sentinel: RedisSentinelHarness) -> str:
    """``redis+sentinel://<the three sentinels>/<service>`` for :func:`redis_sentinel`."""
    return redis_sentinel.url


@pytest.fixture
def redis_prefix() -> str:
    """A random key prefix for one test, so tests sharing a server never see each other."""
    return f"dojang-test:{secrets.token_hex(6)}:"


@pytest.fixture
def redis_url(redis_prefix: str) -> Iterator[str]:
    """The shared standalone server (``DOJANG_TEST_REDIS_URL``); keys under ``redis_prefix``
    are deleted in teardown (never FLUSHALL: other suites use the same server)."""
    import redis

    from dojang.redis_client import parse_redis_url
    from tests.redis_harness import unreachable

    settings = parse_redis_url(REDIS_URL, option="DOJANG_TEST_REDIS_URL")
    host, port = settings.nodes[0]
    client = redis.Redis(
        host=host,
        port=port,
        db=settings.db,
        username=settings.username,
        password=settings.password,
        ssl=settings.tls,
        socket_timeout=2,
        socket_connect_timeout=2,
    )
    try:
        client.ping()
    except (redis.RedisError, OSError) as e:
        client.close()
        unreachable(
            f"Redis at {settings.describe()} is not reachable ({type(e).__name__}); "
            "start it or set DOJANG_TEST_REDIS_URL"
        )
    try:
        yield REDIS_URL
    finally:
        keys = list(client.scan_iter(match=redis_prefix + "*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        client.close()
