"""A scale-out deployment on loopback: a private Redis, a fresh PostgreSQL database, real dojangs.

* :class:`PersistentRedis` is a throwaway ``redis-server`` (``tests/redis_harness.py``) with
  append-only persistence (``appendfsync always``), so stopping and starting it on the same
  port keeps every session and every revocation event, as a production Redis would.
* :func:`fresh_database` creates ``dojang_<random>`` on the test PostgreSQL server and drops it
  afterwards (``WITH (FORCE)``: a killed dojang may leave connections behind).
* :class:`Deployment` runs the CLI (``dojang init``, ``users add``, ``audiences add``) once
  against the shared stores, and starts any number of ``dojang serve`` processes from the same
  data directory (one ``keys.json``), each on its own port but all with the same public URL:
  behind a load balancer every instance is the same issuer and sets the same cookie.

Every wait polls to a deadline; every process is stopped by the id it was started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from dojang.errors import InvalidToken, RevokedToken
from dojang.verify import Verifier
from tests.edge.harness import (
    START_DEADLINE,
    Proc,
    StartError,
    clean_env,
    dojang_executable,
    free_port,
    wait_http_ok,
)
from tests.redis_harness import REDIS_SERVER, RedisServer, ping

POSTGRES_URL = os.environ.get(
    "DOJANG_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
PASSWORD = "correct horse battery staple"
AUDIENCE = "orders-api"
SCOPE = "orders:read"


def unreachable(message: str) -> None:
    """Skip loudly when a required service is missing locally; fail in CI."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def poll(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.005) -> float:
    """Poll ``predicate`` until it holds; return the seconds it took, fail at the deadline.

    The pause between polls is a timed wait on an event nobody sets, short enough that the
    measured time is the propagation time rather than the polling step.
    """
    started = time.monotonic()
    deadline = started + timeout
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        pause.wait(step)
    return time.monotonic() - started


# --- Redis with persistence ------------------------------------------------------------------


class PersistentRedis(RedisServer):
    """A throwaway ``redis-server`` with AOF persistence; restartable on the same port."""

    def start(self, timeout: float = 10.0) -> None:
        """Start (or restart) the server on its port and wait until it has loaded its data."""
        assert REDIS_SERVER is not None
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
        args += ["--daemonize", "no", "--dir", str(self.directory)]
        args += ["--loglevel", "warning", "--logfile", str(self.log)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # PING answers -LOADING while the AOF replays; ping() wants +PONG, i.e. loaded.
        self.wait_until(lambda: ping("127.0.0.1", self.port), timeout, "answer PING")

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the process we started is alive."""
        return self.proc is not None and self.proc.poll() is None


@contextlib.contextmanager
def persistent_redis(directory: Path) -> Iterator[PersistentRedis]:
    """A started :class:`PersistentRedis` in ``directory``; stopped on exit."""
    if REDIS_SERVER is None:
        unreachable("redis-server is not installed: the scale-out tests need a real Redis")
    directory.mkdir(parents=True, exist_ok=True)
    server = PersistentRedis(directory)
    try:
        server.start()
    except RuntimeError as exc:
        unreachable(f"could not start a private redis-server: {exc}")
    try:
        yield server
    finally:
        server.stop()


# --- PostgreSQL ------------------------------------------------------------------------------


async def _admin(sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    parts = urlsplit(POSTGRES_URL)
    conn = await asyncpg.connect(
        host=parts.hostname,
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password,
        database=parts.path.lstrip("/") or "postgres",
        timeout=5,
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """``CREATE DATABASE dojang_<random>``; yield its URL; drop it on exit."""
    name = f"dojang_{secrets.token_hex(6)}"
    try:
        asyncio.run(_admin(f"CREATE DATABASE {name}"))
    except (OSError, TimeoutError, ImportError) as exc:
        unreachable(f"PostgreSQL at {POSTGRES_URL} is not reachable ({type(exc).__name__})")
    except Exception as exc:  # asyncpg's own errors (auth, permissions): still "unusable here"
        unreachable(f"PostgreSQL at {POSTGRES_URL} refused CREATE DATABASE: {exc}")
    parts = urlsplit(POSTGRES_URL)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


# --- dojang processes ------------------------------------------------------------------------


@dataclass
class Instance:
    """One ``dojang serve`` process; ``restart`` keeps its port."""

    name: str
    port: int
    deployment: Deployment
    proc: Proc | None = None

    @property
    def url(self) -> str:
        """Where this instance listens (the load balancer would forward here)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.proc is not None
        return self.proc.process.pid

    def start(self) -> Instance:
        """Start and wait until ``/healthz`` answers."""
        command = [
            dojang_executable(),
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.deployment.data_dir),
            "--public-url",
            self.deployment.public_url,
            "--workers",
            "1",
        ]
        self.proc = Proc.start(f"dojang-{self.name}", command, self.deployment.env(), Path.cwd())
        try:
            wait_http_ok(self.proc, f"{self.url}/healthz", time.monotonic() + START_DEADLINE)
        except StartError:
            self.proc.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM (then SIGKILL) this process only."""
        if self.proc is not None:
            self.proc.stop()

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()

    def client(self) -> httpx.Client:
        """An HTTP client for this instance with its own cookie jar."""
        return httpx.Client(base_url=self.url, trust_env=False, timeout=10.0)

    def rss_bytes(self) -> int:
        """Resident set size of the server process, from ``/proc/<pid>/status``."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")


@dataclass
class Deployment:
    """Shared stores plus a data directory holding the one ``keys.json`` of every instance."""

    tmp: Path
    redis: PersistentRedis
    database_url: str
    public_url: str = ""
    instances: list[Instance] = field(default_factory=list)

    def __post_init__(self) -> None:
        # The "load balancer" address every instance claims as its public URL (issuer, cookie
        # name): one per deployment, so events in the shared stream all carry one issuer.
        self.public_url = self.public_url or f"http://127.0.0.1:{free_port()}"

    @property
    def data_dir(self) -> Path:
        """The shared data directory (only ``keys.json`` is used: the stores are remote)."""
        return self.tmp / "dojang-data"

    def env(self) -> dict[str, str]:
        """The environment of every dojang process and CLI call of this deployment."""
        return clean_env(
            DOJANG_DATABASE_URL=self.database_url,
            DOJANG_SESSION_STORE=self.redis.url,
            DOJANG_EVENT_BUS=self.redis.url,
            DOJANG_LOG_LEVEL="warning",
        )

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """Run ``dojang <args> --data-dir D`` against the shared stores; return stdout."""
        done = subprocess.run(
            [dojang_executable(), *args, "--data-dir", str(self.data_dir)],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise StartError(f"dojang {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def setup(self, *users: str) -> None:
        """Initialise once: schema and keys, the audience (CLI), users (password ``PASSWORD``).

        The first user is added through the CLI like an operator would; the rest in one
        in-process call (each CLI start costs about a second of imports).
        """
        self.cli("init")
        self.cli("audiences", "add", AUDIENCE, "--scopes", SCOPE)
        first, *rest = users
        self.cli("users", "add", first, "--password-stdin", stdin=PASSWORD + "\n")
        if rest:
            asyncio.run(self._add_users(rest))

    async def _add_users(self, names: list[str]) -> None:
        from dojang.accounts.passwords import PasswordHasher
        from dojang.config import load_settings
        from dojang.server.services import build_services

        env = {k: v for k, v in self.env().items() if k.startswith("DOJANG_")}
        settings = load_settings({"data_dir": self.data_dir}, env=env)
        hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        services = await build_services(settings, hasher=hasher)
        try:
            for name in names:
                await services.accounts.create_user(name, PASSWORD)
        finally:
            await services.close()

    def instance(self, name: str) -> Instance:
        """A new (not yet started) instance on a free port."""
        inst = Instance(name, free_port(), self)
        self.instances.append(inst)
        return inst

    def stop(self) -> None:
        """Stop every instance."""
        for inst in self.instances:
            inst.stop()


# --- client helpers --------------------------------------------------------------------------


@dataclass
class Login:
    """A logged-in client: its cookie header, CSRF token and sid."""

    cookie: str
    csrf: str
    sid: str

    @property
    def headers(self) -> dict[str, str]:
        """``Cookie`` (and ``X-CSRF-Token``) for any instance."""
        return {"cookie": self.cookie, "x-csrf-token": self.csrf}


def login(client: httpx.Client, username: str) -> Login:
    """``POST /api/v1/session``; the cookie works on every instance."""
    resp = client.post("/api/v1/session", json={"username": username, "password": PASSWORD})
    assert resp.status_code == 201, resp.text
    value = resp.cookies["dojang_session"]
    client.cookies.clear()  # callers pass the cookie explicitly, to whichever instance
    body = resp.json()
    return Login(f"dojang_session={value}", str(body["csrf_token"]), str(body["sid"]))


def mint(client: httpx.Client, who: Login) -> str:
    """``POST /api/v1/tokens`` for the test audience; return the access token."""
    resp = client.post(
        "/api/v1/tokens", json={"audience": AUDIENCE, "scope": SCOPE}, headers=who.headers
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


def check(client: httpx.Client, who: Login) -> int:
    """``GET /auth/check`` with ``who``'s cookie; return the status."""
    return client.get("/auth/check", headers={"cookie": who.cookie}).status_code


def logout(client: httpx.Client, who: Login) -> None:
    """``DELETE /api/v1/session`` (ends the session and publishes ``session.revoked``)."""
    resp = client.delete("/api/v1/session", headers=who.headers)
    assert resp.status_code in (200, 204), resp.text


# --- verifiers -------------------------------------------------------------------------------


def verifier(deployment: Deployment, revocations: str, jwks_from: Instance) -> Verifier:
    """A business server's ``Verifier`` subscribed to ``revocations`` (SSE URL or redis://)."""
    return Verifier(
        issuer=deployment.public_url,
        audience=AUDIENCE,
        jwks=f"{jwks_from.url}/.well-known/jwks.json",
        revocations=revocations,
    )


def revoked(v: Verifier, token: str) -> bool:
    """Whether ``v`` refuses ``token`` *as revoked* (any other verdict is False)."""
    try:
        v.verify(token)
    except RevokedToken:
        return True
    except InvalidToken:
        return False
    return False


def refused(v: Verifier, token: str) -> bool:
    """Whether ``v`` refuses ``token`` for any reason (revoked, or revocations unknown)."""
    try:
        v.verify(token)
    except InvalidToken:
        return True
    return False
