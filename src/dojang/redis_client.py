"""One way to reach Redis for every dojang component: URL parsing, client construction, errors.

Supported URLs (the setting names the option that carries them, e.g. ``DOJANG_SESSION_STORE``)::

    redis://[[user]:password@]host[:port][/db][?options]
    rediss://[[user]:password@]host[:port][/db][?options]          (TLS)
    redis+cluster://[[user]:password@]host:port[,host:port...][?options]
    redis+sentinel://[[user]:password@]host:port[,host:port...]/service_name[/db][?options]

Options (query parameters): ``socket_timeout`` (seconds per call, default 0.5),
``socket_connect_timeout`` (default 1), ``health_check_interval`` (default 15),
``max_connections`` (pool size, default 64), ``retries`` (default 1), and ``ssl_ca_certs`` (a
CA bundle path, ``rediss://`` only). Credentials in a Sentinel URL are the master's; the
sentinels themselves are reached without a password.

Timeouts are short on purpose: a session lookup sits on every request, and a store that does
not answer must turn into :class:`~dojang.errors.StoreUnavailable` (fail closed) quickly rather
than hold the request. The password never appears in a ``repr``, a log line or an error.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, Literal, TypeAlias
from urllib.parse import parse_qsl, unquote, urlsplit

from redis import exceptions as rx
from redis.asyncio import Redis, RedisCluster, Sentinel
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import AbstractConnection, BlockingConnectionPool, SSLConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.backoff import ExponentialBackoff

from dojang.errors import ConfigError, StoreUnavailable
from dojang.store_timing import STORE_TIMINGS

__all__ = [
    "REDIS_ERRORS",
    "RedisClient",
    "RedisSettings",
    "close_redis_client",
    "connect_redis",
    "create_redis_client",
    "parse_redis_url",
    "redis_errors_as_unavailable",
    "redis_guard",
]

RedisClient: TypeAlias = "Redis | RedisCluster"
"""What :func:`create_redis_client` returns: a standalone/Sentinel client or a cluster client."""

Kind = Literal["standalone", "cluster", "sentinel"]

_SCHEMES: dict[str, tuple[Kind, bool]] = {
    "redis": ("standalone", False),
    "rediss": ("standalone", True),
    "redis+cluster": ("cluster", False),
    "redis+sentinel": ("sentinel", False),
}
_FLOAT_OPTIONS = {
    "socket_timeout": 0.5,
    "socket_connect_timeout": 1.0,
    "health_check_interval": 15.0,
}
_INT_OPTIONS = {"max_connections": 64, "retries": 1}
_STR_OPTIONS = {"ssl_ca_certs"}

REDIS_ERRORS: tuple[type[BaseException], ...] = (
    # ConnectionError covers BusyLoadingError (a restarting server replaying its data),
    # AuthenticationError, MaxConnectionsError and Sentinel's MasterNotFoundError.
    rx.ConnectionError,
    rx.TimeoutError,
    # Cluster: no quorum / slots not served, resharding in progress, a failover under way.
    rx.ClusterError,
    rx.TryAgainError,
    rx.RedisClusterException,
    # A primary demoted to replica during failover refuses writes until the client moves on.
    rx.ReadOnlyError,
    # A replica that lost its master and serves no stale data.
    rx.MasterDownError,
    rx.OutOfMemoryError,
    OSError,
    TimeoutError,
)
"""Exceptions that mean "the store did not answer", as opposed to a bug in a command."""

# Error codes that mean "cannot serve right now", not "your command is wrong": NOREPLICAS
# (min-replicas-to-write not met), BUSY (a script is running too long), NOQUORUM.
_UNAVAILABLE_CODES = frozenset({"NOREPLICAS", "BUSY", "NOQUORUM", "MASTERDOWN", "LOADING"})

SENTINEL_RECHECK = 1.0
"""Seconds between asking the sentinels again who the master is (see :class:`_SentinelPool`)."""


class _SentinelPool(SentinelConnectionPool):
    """redis-py's Sentinel pool, made to notice a failover while its connections stay up.

    redis-py asks the sentinels for the master only when it opens a connection. After a
    failover the old master keeps running *as a master* until Sentinel demotes it (four hello
    periods, ~8 s by default): pooled connections to it keep working, and every write they
    make in that time is acknowledged, then lost when it is demoted and resyncs (a logout
    undone, a session gone). So at most every :data:`SENTINEL_RECHECK` seconds a checkout asks
    the sentinels again; a connection to anything but the master they name is reopened.
    If no sentinel answers, the pool keeps its current master: Sentinel being down is no
    reason to stop using a master that works.
    """

    _next_check = 0.0

    async def ensure_connection(self, connection: AbstractConnection) -> None:
        """Recheck the master if due, reopen ``connection`` if it talks to another server."""
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + SENTINEL_RECHECK
            # MasterNotFoundError is a ConnectionError.
            with suppress(rx.ConnectionError, rx.TimeoutError):
                # redis-py closes the idle connections itself when the master moved.
                await self.get_master_address()  # type: ignore[no-untyped-call]
        address = (getattr(connection, "host", None), getattr(connection, "port", None))
        if connection.is_connected and self.master_address not in (None, address):
            await connection.disconnect()  # reconnecting asks the sentinels
        await super().ensure_connection(connection)


@dataclass(frozen=True)
class RedisSettings:
    """A parsed Redis URL. ``password`` is kept out of ``repr``."""

    kind: Kind
    nodes: tuple[tuple[str, int], ...]
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    service_name: str | None = None
    socket_timeout: float = _FLOAT_OPTIONS["socket_timeout"]
    socket_connect_timeout: float = _FLOAT_OPTIONS["socket_connect_timeout"]
    health_check_interval: float = _FLOAT_OPTIONS["health_check_interval"]
    max_connections: int = _INT_OPTIONS["max_connections"]
    retries: int = _INT_OPTIONS["retries"]
    ssl_ca_certs: str | None = None

    def describe(self) -> str:
        """A log-safe summary: kind and nodes, never credentials."""
        hosts = ",".join(_format_node(h, p) for h, p in self.nodes)
        service = f"/{self.service_name}" if self.service_name else ""
        return f"{self.kind} {hosts}{service}"


def _format_node(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _parse_node(text: str, problems: list[str], option: str) -> tuple[str, int] | None:
    host, port_text = text, ""
    if text.startswith("["):  # [IPv6]:port
        end = text.find("]")
        if end < 0:
            problems.append(f"{option}: unterminated IPv6 address {text!r}")
            return None
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            problems.append(f"{option}: bad host {text!r}")
            return None
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            problems.append(f"{option}: bad IPv6 address {host!r}")
            return None
    elif ":" in text:
        host, port_text = text.rsplit(":", 1)
    if not host or any(c in host for c in "/?#@ "):
        problems.append(f"{option}: bad host {text!r}")
        return None
    if not port_text:
        return host, 6379
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        problems.append(f"{option}: bad port {port_text!r} for host {host!r}")
        return None
    return host, int(port_text)


def _parse_options(query: str, problems: list[str], option: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    allowed = sorted({*_FLOAT_OPTIONS, *_INT_OPTIONS, *_STR_OPTIONS})
    for name, raw in parse_qsl(query, keep_blank_values=True):
        if name in _FLOAT_OPTIONS:
            try:
                number = float(raw)
            except ValueError:
                number = math.nan
            if not math.isfinite(number) or number < 0 or (number == 0 and "timeout" in name):
                problems.append(f"{option}: {name} must be a positive number of seconds")
                continue
            values[name] = number
        elif name in _INT_OPTIONS:
            low = 0 if name == "retries" else 1
            if not raw.isdigit() or int(raw) < low or int(raw) > 100_000:
                problems.append(f"{option}: {name} must be an integer >= {low}")
                continue
            values[name] = int(raw)
        elif name in _STR_OPTIONS:
            values[name] = raw
        else:
            problems.append(f"{option}: unknown option {name!r} (allowed: {', '.join(allowed)})")
    return values


def parse_redis_url(url: str, *, option: str = "DOJANG_SESSION_STORE") -> RedisSettings:
    """Parse a Redis URL into :class:`RedisSettings`.

    Raises ``ConfigError`` listing every problem at once, each message starting with
    ``option``; no message ever contains the password.
    """
    scheme, sep, rest = url.strip().partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise ConfigError(
            f"{option}: expected a redis://, rediss://, redis+cluster:// or redis+sentinel:// "
            f"URL, got scheme {scheme.lower() if sep else '(none)'!r}"
        )
    kind, tls = _SCHEMES[scheme.lower()]
    # urlsplit cannot parse a comma-separated host list, so split by hand; it is still used
    # for the path/query part so percent-encoding follows the usual rules.
    netloc = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    parts = urlsplit("redis://x" + rest[len(netloc) :])
    if parts.fragment:
        raise ConfigError(f"{option}: a Redis URL has no #fragment")
    problems: list[str] = []
    username: str | None = None
    password: str | None = None
    userinfo, at, hostlist = netloc.rpartition("@")
    if at:
        user_text, colon, pass_text = userinfo.partition(":")
        username = unquote(user_text) or None
        password = unquote(pass_text) if colon else None
    nodes: list[tuple[str, int]] = []
    for text in hostlist.split(","):
        node = _parse_node(text.strip(), problems, option)
        if node is not None:
            nodes.append(node)
    if not hostlist:
        problems.append(f"{option}: the URL names no host")
    elif kind == "standalone" and len(nodes) > 1:
        problems.append(f"{option}: {scheme}:// takes one host; use redis+cluster:// for several")

    segments = [unquote(s) for s in parts.path.split("/") if s]
    db = 0
    service_name: str | None = None
    if kind == "sentinel":
        if not segments:
            problems.append(f"{option}: redis+sentinel:// needs /service_name after the hosts")
        else:
            service_name = segments.pop(0)
    if kind == "cluster" and segments:
        problems.append(f"{option}: Redis Cluster has only database 0; drop the /db path")
    elif len(segments) > 1:
        problems.append(f"{option}: unexpected path {parts.path!r}")
    elif segments:
        if segments[0].isdigit():
            db = int(segments[0])
        else:
            problems.append(f"{option}: the database must be a number, got {segments[0]!r}")

    options = _parse_options(parts.query, problems, option)
    if "ssl_ca_certs" in options and not tls:
        problems.append(f"{option}: ssl_ca_certs needs a rediss:// URL")
    if problems:
        raise ConfigError(problems)
    return RedisSettings(
        kind=kind,
        nodes=tuple(nodes),
        db=db,
        username=username,
        password=password,
        tls=tls,
        service_name=service_name,
        **options,
    )


def create_redis_client(settings: RedisSettings) -> RedisClient:
    """Build a pooled asyncio client for ``settings`` (no I/O happens until first use)."""
    # Few, fast retries: connection refused is immediate, and a long backoff ladder would
    # only delay the StoreUnavailable that the caller needs to fail closed.
    retry = Retry(ExponentialBackoff(cap=0.05, base=0.01), settings.retries)
    common: dict[str, Any] = {
        "username": settings.username,
        "password": settings.password,
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.socket_connect_timeout,
        "health_check_interval": settings.health_check_interval,
        "retry": retry,
    }
    if settings.kind == "cluster":
        return RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in settings.nodes],
            max_connections=settings.max_connections,
            **common,
        )
    if settings.kind == "sentinel":
        assert settings.service_name is not None  # guaranteed by the parser
        # Sentinel's __init__ carries no annotations in redis-py.
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(settings.nodes),
            sentinel_kwargs={
                "socket_timeout": settings.socket_timeout,
                "socket_connect_timeout": settings.socket_connect_timeout,
                "retry": retry,
            },
        )
        master: Redis = sentinel.master_for(
            settings.service_name,
            connection_pool_class=_SentinelPool,
            db=settings.db,
            max_connections=settings.max_connections,
            **common,
        )
        return master
    host, port = settings.nodes[0]
    tls: dict[str, Any] = {}
    if settings.tls:
        tls = {"connection_class": SSLConnection, "ssl_ca_certs": settings.ssl_ca_certs}
    # A blocking pool: a burst of more concurrent calls than max_connections waits (up to the
    # connect + socket timeouts) for a free connection instead of failing at once with
    # MaxConnectionsError, which would turn a busy moment into StoreUnavailable. (Sentinel and
    # cluster pools in redis-py have no blocking variant; size max_connections for the peak.)
    pool = BlockingConnectionPool(
        host=host,
        port=port,
        db=settings.db,
        max_connections=settings.max_connections,
        timeout=settings.socket_connect_timeout + settings.socket_timeout,
        **common,
        **tls,
    )
    return Redis.from_pool(pool)


def connect_redis(url: str, *, option: str = "DOJANG_SESSION_STORE") -> RedisClient:
    """Parse ``url`` and build its client (``ConfigError`` on a bad URL)."""
    return create_redis_client(parse_redis_url(url, option=option))


async def close_redis_client(client: RedisClient) -> None:
    """Close ``client`` and its pool (and, for Sentinel, the connections to the sentinels)."""
    pool = getattr(client, "connection_pool", None)
    await client.aclose()
    if isinstance(pool, SentinelConnectionPool):
        await pool.sentinel_manager.aclose()


@asynccontextmanager
async def redis_guard(client: RedisClient, what: str = "redis") -> AsyncIterator[None]:
    """Make ``client`` ready, then map Redis outages inside the block to ``StoreUnavailable``.

    A cluster client is initialized (slot map fetched) before the block runs. redis-py 8.1's
    asyncio ``RedisCluster`` otherwise breaks connections when many coroutines make its very
    first (or first after an outage) calls at once; the awaited ``initialize()`` is a flag
    check once the client is ready, and takes redis-py's own lock when it is not.

    The block's duration, failures included, is recorded in ``dojang.store_timing`` as a
    ``redis`` call of ``what`` (one ``perf_counter`` pair and a few integer additions: this
    wraps the session lookup of every request).
    """
    started = perf_counter()
    try:
        with redis_errors_as_unavailable(what):
            if isinstance(client, RedisCluster):
                await client.initialize()
            yield
    finally:
        STORE_TIMINGS.record(what, "redis", perf_counter() - started)


@contextmanager
def redis_errors_as_unavailable(what: str = "redis") -> Iterator[None]:
    """Turn every "Redis did not answer" error inside the block into ``StoreUnavailable``.

    ``what`` names the store in the message (``"session store"``); the message carries only the
    exception's class name, never the URL or the server's text, so no credentials can leak.
    """
    try:
        yield
    except REDIS_ERRORS as e:
        raise StoreUnavailable(f"{what} did not answer: {type(e).__name__}") from e
    except rx.ResponseError as e:
        # Error replies redis-py has no class for; the first word of a Redis error reply is
        # its code (RESP), so this is the protocol's own contract, not message parsing.
        code = str(e).split(" ", 1)[0]
        if code in _UNAVAILABLE_CODES:
            raise StoreUnavailable(f"{what} did not answer: {code}") from e
        raise
