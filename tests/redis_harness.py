"""Throwaway redis-server processes for tests: single servers, a 3-master Redis Cluster, and a
master + replica watched by Redis Sentinel (Redis 7.0+: ``SENTINEL DEBUG``, ``shutdown-timeout``).

Servers run on free loopback ports with no persistence, in a temporary directory, and are
terminated (then killed if need be) on exit. Waiting is always "poll until a deadline": the
pause between polls is ``Popen.wait(timeout)`` on the server itself, which also notices at once
if the server died instead of starting.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
POLL = 0.02


def unreachable(message: str) -> None:
    """Skip loudly when Redis is missing locally; fail in CI, where it must be there."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_port() -> int:
    """A free port P whose cluster bus port P + 10000 is free too.

    Both are drawn below the usual ephemeral range (32768+), so neither the node nor its bus
    can collide with the kernel's choice of a client's source port; Redis also refuses any
    P above 55535.
    """
    for _ in range(200):
        port = 20000 + secrets.randbelow(2700)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """Send a raw RESP ``PING``; True if the server answers ``+PONG``."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` on ``port``; can be stopped and started again on the same port."""

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        *,
        cluster: bool = False,
        args: Sequence[str] = (),
    ) -> None:
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed")
        self.port = port or (free_cluster_port() if cluster else free_port())
        self.directory = directory
        self.cluster = cluster
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        """The server's log file (read when it fails to start)."""
        return self.directory / f"redis-{self.port}.log"

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        assert REDIS_SERVER is not None
        return [REDIS_SERVER, "--save", "", "--appendonly", "no"]

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers ``PING``."""
        args = self._command()
        args += ["--port", str(self.port), "--bind", "127.0.0.1", "--daemonize", "no"]
        args += [
            "--dir",
            str(self.directory),
            "--loglevel",
            os.environ.get("REDIS_HARNESS_LOGLEVEL", "warning"),
        ]
        args += ["--logfile", str(self.log)]
        if self.cluster:
            conf = self.directory / f"nodes-{self.port}.conf"
            args += ["--cluster-enabled", "yes", "--cluster-config-file", str(conf)]
        args += self.args
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_until(lambda: ping("127.0.0.1", self.port), timeout, "answer PING")

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``ready`` until it holds; fail if the deadline passes or the server exits."""
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on {self.port} did not {what} in {timeout} s")
            self._pause()

    def _pause(self) -> None:
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=POLL)
        except subprocess.TimeoutExpired:
            return
        log = self.log.read_text(errors="replace") if self.log.exists() else ""
        raise RuntimeError(f"redis-server on {self.port} exited with {code}: {log[-500:]}")

    def client(self, timeout: float = 2.0) -> redis.Redis:
        """A plain synchronous client on this server (close it, or use it in a ``with``)."""
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    def call(self, *command: Any) -> Any:
        """Run one command on this server and return redis-py's parsed reply."""
        with self.client() as c:
            return c.execute_command(*command)

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 5 s) and wait for it."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class RedisClusterHarness:
    """A 3-master, no-replica Redis Cluster on free loopback ports."""

    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.nodes = [RedisServer(directory, cluster=True) for _ in range(masters)]

    @property
    def url(self) -> str:
        """``redis+cluster://`` URL naming every node."""
        return "redis+cluster://" + ",".join(n.address for n in self.nodes)

    def start(self, timeout: float = 30.0) -> None:
        """Start the nodes, create the cluster, and wait for ``cluster_state:ok`` everywhere."""
        if REDIS_CLI is None:
            raise RuntimeError("redis-cli is not installed")
        try:
            for node in self.nodes:
                node.start()
            create = [REDIS_CLI, "--cluster", "create", *(n.address for n in self.nodes)]
            subprocess.run(
                [*create, "--cluster-replicas", "0", "--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=timeout,
            )
            for node in self.nodes:
                node.wait_until(lambda n=node: self._state_ok(n), timeout, "reach cluster_state:ok")
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def _state_ok(node: RedisServer) -> bool:
        assert REDIS_CLI is not None
        out = subprocess.run(
            [REDIS_CLI, "-p", str(node.port), "cluster", "info"],
            capture_output=True,
            timeout=5,
            check=False,
        ).stdout
        return b"cluster_state:ok" in out

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop()


class SentinelServer(RedisServer):
    """``redis-server --sentinel`` watching one master; it rewrites its own config file."""

    def __init__(
        self,
        directory: Path,
        service: str,
        master: RedisServer,
        *,
        down_after_ms: int,
        failover_timeout_ms: int,
        publish_period_ms: int,
    ) -> None:
        super().__init__(directory)
        self.service = service
        self.publish_period_ms = publish_period_ms
        self.conf = directory / f"sentinel-{self.port}.conf"
        self.conf.write_text(
            f"sentinel monitor {service} 127.0.0.1 {master.port} 1\n"
            f"sentinel down-after-milliseconds {service} {down_after_ms}\n"
            f"sentinel failover-timeout {service} {failover_timeout_ms}\n"
        )

    def _command(self) -> list[str]:
        assert REDIS_SERVER is not None
        return [REDIS_SERVER, str(self.conf), "--sentinel"]

    def start(self, timeout: float = 10.0) -> None:
        """Start the sentinel and shorten its internal periods (``SENTINEL DEBUG``, Redis 7+).

        INFO goes every 100 ms instead of every 10 s, so a promotion is seen at once. The hello
        period (default 2 s) is the harness's ``publish_period_ms``: sentinels find each other
        within one, and a node that calls itself master against a sentinel's view is
        converted to a replica after four. With several sentinels and a short hello period, a
        failover can flap (a sentinel that has not yet heard of the promotion demotes the new
        master again), so fail over with one sentinel or with the default period.
        """
        super().start(timeout)
        self.call("SENTINEL", "DEBUG", "info-period", 100, "tilt-period", 1000)
        self.set_publish_period(self.publish_period_ms)

    def set_publish_period(self, ms: int) -> None:
        """Change how often this sentinel sends hello messages (see :meth:`start`)."""
        self.publish_period_ms = ms
        self.call("SENTINEL", "DEBUG", "publish-period", ms)

    def master_port(self) -> int | None:
        """The port this sentinel names as the master (None if it names none or is down)."""
        try:
            with self.client() as c:
                reply = c.sentinel_get_master_addr_by_name(self.service)
        except (redis.RedisError, OSError):
            return None
        return None if reply is None else int(reply[1])

    def state(self) -> dict[str, Any]:
        """``SENTINEL MASTER <service>`` as parsed by redis-py."""
        with self.client() as c:
            state: dict[str, Any] = c.sentinel_master(self.service)
        return state

    def replicas(self) -> list[dict[str, Any]]:
        """``SENTINEL REPLICAS <service>`` as parsed by redis-py."""
        with self.client() as c:
            replicas: list[dict[str, Any]] = c.sentinel_slaves(self.service)
        return replicas


def replication(server: RedisServer) -> dict[str, Any]:
    """``INFO replication`` of ``server`` (empty if it does not answer)."""
    try:
        info: dict[str, Any] = server.call("INFO", "replication")
    except (redis.RedisError, OSError):
        return {}
    return info


class RedisSentinelHarness:
    """One master, one replica and ``sentinels`` sentinels (quorum 1) on free loopback ports.

    ``servers`` holds the two data nodes; which of them is the master changes with a failover,
    so ask :meth:`master` rather than remembering ``servers[0]``. ``down_after_ms`` is long by
    default, so a loaded machine never sees a spurious failover; :meth:`failover` forces one
    without waiting for it.
    """

    def __init__(
        self,
        directory: Path,
        *,
        service: str = "dojang-test",
        sentinels: int = 3,
        down_after_ms: int = 5000,
        failover_timeout_ms: int = 4000,
        publish_period_ms: int = 200,
    ) -> None:
        # No 5 s pause before a diskless full sync (the Redis 7 default): the replica, and the
        # old master after a failover, are in sync at once. No wait for replicas to catch up
        # on shutdown either.
        quick = ["--repl-diskless-sync-delay", "0", "--shutdown-timeout", "0"]
        primary = RedisServer(directory, args=quick)
        replica = RedisServer(
            directory, args=[*quick, "--replicaof", "127.0.0.1", str(primary.port)]
        )
        self.service = service
        self.servers = [primary, replica]
        self.sentinels = [
            SentinelServer(
                directory,
                service,
                primary,
                down_after_ms=down_after_ms,
                failover_timeout_ms=failover_timeout_ms,
                publish_period_ms=publish_period_ms,
            )
            for _ in range(sentinels)
        ]

    @property
    def url(self) -> str:
        """``redis+sentinel://`` URL naming every sentinel and the service."""
        hosts = ",".join(s.address for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}"

    def start(self, timeout: float = 30.0) -> None:
        """Start master, replica (in sync) and sentinels; return once all agree and are ready."""
        try:
            for server in self.servers:
                server.start()
            master, replica = self.servers
            # The sentinels find the replica in the master's INFO: start them after the sync.
            replica.wait_until(lambda: self._synced(replica, master), timeout, "sync")
            for sentinel in self.sentinels:
                sentinel.start()
            self.wait_settled(master, timeout)
        except BaseException:
            self.stop()
            raise

    def master(self) -> RedisServer:
        """The data node the first sentinel that answers names as master."""
        for sentinel in self.sentinels:
            port = sentinel.master_port()
            if port is not None:
                return next(s for s in self.servers if s.port == port)
        raise RuntimeError("no sentinel names a master")

    def replica_of(self, master: RedisServer) -> RedisServer:
        """The data node that is not ``master``."""
        return next(s for s in self.servers if s is not master)

    def failover(self) -> RedisServer:
        """Start a forced failover (``SENTINEL FAILOVER``); return the node being promoted.

        Does not wait: :meth:`wait_settled` on the returned node does.
        """
        promoted = self.replica_of(self.master())
        self.sentinels[0].call("SENTINEL", "FAILOVER", self.service)
        return promoted

    def wait_settled(self, master: RedisServer, timeout: float = 30.0) -> None:
        """Wait until every sentinel names ``master``, sees the other sentinels and the
        replica as healthy, and the replica (the demoted master, after a failover) has synced.
        """
        replica = self.replica_of(master)
        for sentinel in self.sentinels:
            sentinel.wait_until(
                lambda s=sentinel: self._sentinel_ready(s, master, replica),
                timeout,
                f"name {master.address} as master with {replica.address} as replica",
            )
        replica.wait_until(lambda: self._synced(replica, master), timeout, "sync")

    def _sentinel_ready(
        self, sentinel: SentinelServer, master: RedisServer, replica: RedisServer
    ) -> bool:
        if sentinel.master_port() != master.port:
            return False
        try:
            state, replicas = sentinel.state(), sentinel.replicas()
        except (redis.RedisError, OSError):
            return False
        if state["flags"] != "master" or state["num-other-sentinels"] != len(self.sentinels) - 1:
            return False
        return any(
            r["port"] == replica.port
            and r["flags"] == "slave"
            and r["master-link-status"] == "ok"
            and r["master-port"] == master.port
            for r in replicas
        )

    @staticmethod
    def _synced(replica: RedisServer, master: RedisServer) -> bool:
        info = replication(replica)
        return (
            info.get("role") == "slave"
            and info.get("master_port") == master.port
            and info.get("master_link_status") == "up"
        )

    def stop(self) -> None:
        """Stop the sentinels first (so they start no failover), then the data nodes."""
        for server in [*self.sentinels, *self.servers]:
            server.stop()
