"""dojang.redis_client: URL parsing, client construction, error mapping. No secrets leak."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis import exceptions as rx
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool

from dojang.errors import ConfigError, StoreUnavailable
from dojang.redis_client import (
    close_redis_client,
    create_redis_client,
    parse_redis_url,
    redis_errors_as_unavailable,
)


def test_standalone_defaults() -> None:
    s = parse_redis_url("redis://cache.internal")
    assert (s.kind, s.nodes, s.db, s.tls) == ("standalone", (("cache.internal", 6379),), 0, False)
    assert (s.socket_timeout, s.socket_connect_timeout) == (0.5, 1.0)


def test_credentials_db_tls_and_options() -> None:
    s = parse_redis_url(
        "rediss://app:p%40ss%3Aw0rd@[2001:db8::1]:6380/3?socket_timeout=0.25"
        "&socket_connect_timeout=2&health_check_interval=5&max_connections=8&retries=0"
    )
    assert s.kind == "standalone" and s.tls
    assert s.nodes == (("2001:db8::1", 6380),)
    assert (s.username, s.password, s.db) == ("app", "p@ss:w0rd", 3)
    assert (s.socket_timeout, s.socket_connect_timeout, s.health_check_interval) == (0.25, 2, 5)
    assert (s.max_connections, s.retries) == (8, 0)


def test_cluster_and_sentinel() -> None:
    c = parse_redis_url("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001,10.0.0.3")
    assert c.kind == "cluster"
    assert c.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 7001), ("10.0.0.3", 6379))
    s = parse_redis_url("redis+sentinel://s1:26379,s2:26379/mymaster/2")
    assert (s.kind, s.service_name, s.db) == ("sentinel", "mymaster", 2)
    assert s.describe() == "sentinel s1:26379,s2:26379/mymaster"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("memcached://h", "scheme"),
        ("redis://", "no host"),
        ("redis://h:0", "bad port"),
        ("redis://h:http", "bad port"),
        ("redis://a:1,b:2", "use redis+cluster"),
        ("redis://h/zero", "database must be a number"),
        ("redis://h/1/2", "unexpected path"),
        ("redis+cluster://h:7000/1", "only database 0"),
        ("redis+sentinel://h:26379", "service_name"),
        ("redis://h?socket_timeout=-1", "socket_timeout"),
        ("redis://h?socket_timeout=nan", "socket_timeout"),
        ("redis://h?max_connections=0", "max_connections"),
        ("redis://h?colour=blue", "unknown option 'colour'"),
        ("redis://h?ssl_ca_certs=/x", "needs a rediss"),
        ("redis://[::1:6379", "unterminated"),
    ],
)
def test_bad_urls_name_the_option(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match="DOJANG_SESSION_STORE") as info:
        parse_redis_url(url)
    assert problem in str(info.value)


def test_every_problem_reported_at_once_without_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        parse_redis_url("redis://u:hunter2@h:99999/x?bogus=1", option="DOJANG_EVENT_BUS")
    assert len(info.value.problems) == 3
    assert all(p.startswith("DOJANG_EVENT_BUS: ") for p in info.value.problems)
    assert "hunter2" not in str(info.value)


async def test_clients_built_per_kind_and_never_show_the_password() -> None:
    s = parse_redis_url("redis://u:hunter2@127.0.0.1:6379/0")
    assert "hunter2" not in repr(s) and "hunter2" not in s.describe()
    standalone = create_redis_client(s)
    assert isinstance(standalone, Redis)
    kwargs = standalone.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (0.5, 1.0)
    assert "hunter2" not in repr(standalone)
    await close_redis_client(standalone)

    cluster = create_redis_client(parse_redis_url("redis+cluster://:hunter2@127.0.0.1:7000"))
    assert isinstance(cluster, RedisCluster)
    await close_redis_client(cluster)

    sentinel = create_redis_client(parse_redis_url("redis+sentinel://127.0.0.1:26379/mymaster"))
    assert isinstance(sentinel, Redis)
    assert isinstance(sentinel.connection_pool, SentinelConnectionPool)
    await close_redis_client(sentinel)


@pytest.mark.parametrize(
    "error",
    [
        rx.ConnectionError("Error 111 connecting to u:hunter2@h"),
        rx.TimeoutError(),
        rx.BusyLoadingError(),
        rx.ClusterDownError("CLUSTERDOWN"),
        rx.TryAgainError(),
        rx.ReadOnlyError(),
        rx.RedisClusterException("Redis Cluster cannot be connected"),
        ConnectionResetError(),
        TimeoutError(),
    ],
)
def test_outages_become_store_unavailable(error: BaseException) -> None:
    with pytest.raises(StoreUnavailable) as info, redis_errors_as_unavailable("session store"):
        raise error
    assert str(info.value) == f"session store did not answer: {type(error).__name__}"


@pytest.mark.parametrize(
    "reply",
    ["NOREPLICAS Not enough good replicas to write.", "BUSY Redis is busy running a script"],
)
def test_unavailable_error_codes_become_store_unavailable(reply: str) -> None:
    with pytest.raises(StoreUnavailable) as info, redis_errors_as_unavailable("session store"):
        raise rx.ResponseError(reply)
    assert str(info.value) == f"session store did not answer: {reply.split()[0]}"


async def test_a_master_without_enough_replicas_fails_closed(tmp_path: Path) -> None:
    """Live: min-replicas-to-write unmet → StoreUnavailable (503), never a raw ResponseError."""
    from dojang.sessions.backends.redis import RedisSessionStore
    from tests.redis_harness import REDIS_SERVER, RedisServer
    from tests.sessions.test_backends import _session

    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path, args=["--min-replicas-to-write", "1"])
    server.start()
    store = RedisSessionStore.from_url(f"redis://127.0.0.1:{server.port}/0")
    try:
        with pytest.raises(StoreUnavailable, match="NOREPLICAS"):
            await store.create(_session(b"\x01" * 32))
    finally:
        await store.close()
        server.stop()


def test_command_bugs_are_not_outages() -> None:
    """A wrong command is a bug to surface, not an outage to retry."""
    with pytest.raises(rx.ResponseError), redis_errors_as_unavailable():
        raise rx.ResponseError("WRONGTYPE")
