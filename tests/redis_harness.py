"""Throwaway redis-server processes for tests: single servers and a 3-master Redis Cluster.

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
from collections.abc import Callable
from pathlib import Path

import pytest

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

    def __init__(self, directory: Path, port: int | None = None, *, cluster: bool = False) -> None:
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed")
        self.port = port or (free_cluster_port() if cluster else free_port())
        self.directory = directory
        self.cluster = cluster
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        """The server's log file (read when it fails to start)."""
        return self.directory / f"redis-{self.port}.log"

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers ``PING``."""
        assert REDIS_SERVER is not None
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
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
