"""A real dojang server on a loopback port (uvicorn in a thread, the real ``create_app``).

Used by the revocation-feed tests and by ``bench/propagation_bench.py``. The server builds its
own services in its lifespan, exactly as ``dojang serve`` does; ``call`` runs a coroutine on the
server's event loop (to create users or audiences through the live services).
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn

from dojang.config import Settings, load_settings
from dojang.server import create_app
from dojang.server.services import Services

T = TypeVar("T")
PASSWORD = "correct horse battery staple"
REDIS_URL = os.environ.get("DOJANG_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` to a deadline (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.005)


def redis_or_skip() -> str:
    """The test Redis URL; skip loudly when unreachable (fail under CI)."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except (redis.RedisError, OSError) as exc:
        message = f"Redis at {REDIS_URL} is not reachable ({type(exc).__name__})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return REDIS_URL


class LiveServer:
    """One dojang server process-in-a-thread on ``127.0.0.1:port``."""

    def __init__(self, data_dir: Path, *, port: int = 0, **flags: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.port: int = self.sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.settings: Settings = load_settings(
            {
                "data_dir": data_dir,
                "public_url": self.base_url,
                "argon2_time_cost": 1,
                "argon2_memory_cost": 8,
                "argon2_parallelism": 1,
                **flags,
            },
            env={},
        )
        self.app = create_app(self.settings)
        config = uvicorn.Config(
            self.app, lifespan="on", log_level="warning", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        async def serve() -> None:
            self.loop = asyncio.get_running_loop()
            await self.server.serve(sockets=[self.sock])

        asyncio.run(serve())

    def start(self) -> LiveServer:
        """Start and wait until the server accepts requests."""
        self.thread.start()
        wait_until(lambda: self.server.started, what="server start")
        return self

    def stop(self) -> None:
        """Graceful shutdown (streams are cut after a second)."""
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()

    @property
    def services(self) -> Services:
        """The live services built by the lifespan."""
        return self.api_state().services  # type: ignore[no-any-return]

    def api_state(self) -> Any:
        """The FastAPI ``app.state`` under the middleware layers."""
        layer: Any = self.app
        while not hasattr(layer, "state"):
            layer = layer.app
        return layer.state

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the server's loop and return its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def setup_users(self, *names: str) -> None:
        """Create users (password ``PASSWORD``) and the ``orders-api`` audience."""

        async def go() -> None:
            for name in names:
                await self.services.accounts.create_user(name, PASSWORD)
            await self.services.clients.add_audience("orders-api", "orders:read")

        self.call(go())


def login_and_token(client: httpx.Client, username: str) -> tuple[str, str]:
    """Log in with ``client`` (its own cookie jar); return (csrf token, access token)."""
    resp = client.post("/api/v1/session", json={"username": username, "password": PASSWORD})
    assert resp.status_code == 201, resp.text
    csrf = str(resp.json()["csrf_token"])
    resp = client.post(
        "/api/v1/tokens",
        json={"audience": "orders-api", "scope": "orders:read"},
        headers={"x-csrf-token": csrf},
    )
    assert resp.status_code == 200, resp.text
    return csrf, str(resp.json()["access_token"])


def logout(client: httpx.Client, csrf: str) -> None:
    """``DELETE /api/v1/session`` (ends the session, publishes ``session.revoked``)."""
    resp = client.delete("/api/v1/session", headers={"x-csrf-token": csrf})
    assert resp.status_code in (200, 204), resp.text
