"""An in-process dojang app on a real SQLite file, driven through ``httpx.ASGITransport``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from dojang.accounts.passwords import PasswordHasher
from dojang.clock import FrozenClock
from dojang.config import Settings, load_settings
from dojang.server import create_app
from dojang.server.services import Services, build_services

PASSWORD = "correct horse battery staple"
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@dataclass
class Env:
    """What a server test needs: the settings, the live services and a client."""

    settings: Settings
    services: Services
    client: httpx.AsyncClient
    clock: FrozenClock
    base_url: str

    def new_client(self) -> httpx.AsyncClient:
        """A second, independent browser (own cookie jar) against the same app."""
        return httpx.AsyncClient(transport=self.client._transport, base_url=self.base_url)

    async def login(
        self,
        client: httpx.AsyncClient | None = None,
        username: str = "alice",
        password: str = PASSWORD,
        **extra: Any,
    ) -> httpx.Response:
        """Log in through the JSON API; returns the response (cookie lands in the jar)."""
        c = client or self.client
        return await c.post(
            "/api/v1/session", json={"username": username, "password": password, **extra}
        )


async def make_env(tmp_path: Path, clock: FrozenClock, **flags: Any) -> AsyncIterator[Env]:
    """Build settings, services and an ASGI client; tear all down afterwards."""
    settings = load_settings({"data_dir": tmp_path / "data", **flags}, env={})
    services = await build_services(settings, clock=clock, hasher=FAST_HASHER)
    await services.accounts.create_user("alice", PASSWORD)
    await services.accounts.create_user("bob", PASSWORD)
    app = create_app(settings, services=services)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    base = settings.public_url
    async with httpx.AsyncClient(transport=transport, base_url=base) as client:
        yield Env(settings, services, client, clock, base)
    await services.close()


@pytest.fixture
async def env(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Env]:
    """The embedded default (SQLite file, http on loopback)."""
    async for e in make_env(tmp_path, clock):
        yield e


@pytest.fixture
async def https_env(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Env]:
    """A deployment behind https: ``Secure`` + ``__Host-`` cookies, HSTS."""
    async for e in make_env(tmp_path, clock, public_url="https://auth.example"):
        yield e
