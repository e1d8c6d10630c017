"""Two dojang instances sharing Redis (sessions) and one database: no sticky sessions needed."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from dojang.clock import FrozenClock
from dojang.config import load_settings
from dojang.server import create_app
from dojang.server.services import Services, build_services
from tests.redis_harness import free_port

from .conftest import FAST_HASHER, PASSWORD

# A database index of its own, flushed by this module only (other suites use prefixes on 0).
STANDALONE = "redis://127.0.0.1:6379/13"


@pytest.fixture(params=["standalone", "cluster"])
def store_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The session store URL: the shared Redis server, or the throwaway cluster."""
    import redis

    if request.param == "cluster":
        yield request.getfixturevalue("redis_cluster_url")
        return
    request.getfixturevalue("redis_url")  # skips (or fails in CI) when Redis is unreachable
    client = redis.Redis.from_url(STANDALONE)
    client.flushdb()
    try:
        yield STANDALONE
    finally:
        client.flushdb()
        client.close()


async def _instance(tmp_path: Path, url: str, clock: FrozenClock) -> Services:
    settings = load_settings({"data_dir": tmp_path / "data"}, env={"DOJANG_SESSION_STORE": url})
    return await build_services(settings, clock=clock, hasher=FAST_HASHER)


def _client(svc: Services) -> httpx.AsyncClient:
    app = create_app(svc.settings, services=svc)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=svc.settings.public_url
    )


@pytest.fixture
async def pair(tmp_path: Path, store_url: str) -> AsyncIterator[tuple[Services, Services]]:
    clock = FrozenClock(start=__import__("time").time())  # Redis TTLs are real time
    a = await _instance(tmp_path, store_url, clock)
    b = await _instance(tmp_path, store_url, clock)
    await a.accounts.create_user(f"u{secrets.token_hex(4)}", PASSWORD)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_log_in_on_a_check_on_b_end_on_b_refused_on_a(
    pair: tuple[Services, Services],
) -> None:
    a, b = pair
    (user,) = await a.accounts.list_users()
    async with _client(a) as ca, _client(b) as cb:
        login = await ca.post(
            "/api/v1/session", json={"username": user.username, "password": PASSWORD}
        )
        assert login.status_code == 201
        cookie = {"cookie": f"dojang_session={ca.cookies['dojang_session']}"}
        on_b = await cb.get("/auth/check", headers=cookie)
        assert on_b.status_code == 200
        assert on_b.headers["x-dojang-session"] == login.json()["sid"]
        listed = await cb.get("/api/v1/sessions", headers=cookie)
        assert [s["sid"] for s in listed.json()] == [login.json()["sid"]]
        out = await cb.delete(
            "/api/v1/session", headers={**cookie, "x-csrf-token": login.json()["csrf_token"]}
        )
        assert out.status_code == 204
        assert (await ca.get("/auth/check", headers=cookie)).status_code == 401
        assert (await ca.get("/api/v1/session", headers=cookie)).status_code == 401


async def test_store_down_fails_closed_with_503(tmp_path: Path) -> None:
    """Redis unreachable: /auth/check and the API answer 503, never 200, never a traceback."""
    url = f"redis://127.0.0.1:{free_port()}/0?socket_timeout=0.2&socket_connect_timeout=0.2"
    svc = await _instance(tmp_path, url, FrozenClock())
    try:
        async with _client(svc) as c:
            cookie = {"cookie": "dojang_session=" + "A" * 43}
            check = await c.get("/auth/check", headers=cookie)
            assert check.status_code == 503
            assert check.json()["error"] == "store_unavailable"
            api = await c.get("/api/v1/session", headers=cookie)
            assert api.status_code == 503 and api.json()["error"] == "store_unavailable"
            ready = await c.get("/readyz")
            assert ready.status_code == 503
    finally:
        await svc.close()
