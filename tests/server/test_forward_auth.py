"""``/auth/check``: 200 with identity headers for a live session, 401 otherwise, never 500."""

from __future__ import annotations

from pathlib import Path

import pytest

from dojang.clock import FrozenClock

from .conftest import Env, make_env


async def test_live_session_gets_identity_headers(env: Env) -> None:
    login = (await env.login()).json()
    resp = await env.client.get("/auth/check")
    assert resp.status_code == 200
    assert resp.headers["x-dojang-subject"] == login["user"]["id"]
    assert resp.headers["x-dojang-session"] == login["sid"]
    assert resp.headers["cache-control"] == "no-store"
    assert resp.content == b"" and "content-type" not in resp.headers  # read by proxies only


async def test_no_cookie_is_401(env: Env) -> None:
    resp = await env.client.get("/auth/check")
    assert resp.status_code == 401
    assert resp.json()["error"] == "unauthenticated"
    assert "x-dojang-subject" not in resp.headers


async def test_identity_headers_from_the_client_are_not_echoed(env: Env) -> None:
    """Header spoofing: a caller's own X-Dojang-Subject never becomes the answer."""
    resp = await env.client.get("/auth/check", headers={"x-dojang-subject": "admin"})
    assert resp.status_code == 401
    assert "x-dojang-subject" not in resp.headers


async def test_logout_kills_the_check_at_once(env: Env) -> None:
    token = (await env.login()).json()["csrf_token"]
    cookie = env.client.cookies["dojang_session"]
    assert (await env.client.get("/auth/check")).status_code == 200
    await env.client.delete("/api/v1/session", headers={"x-csrf-token": token})
    resp = await env.client.get("/auth/check", headers={"cookie": f"dojang_session={cookie}"})
    assert resp.status_code == 401


async def test_idle_expiry_applies(env: Env) -> None:
    await env.login()
    env.clock.advance(env.settings.session_idle_timeout + 1)
    assert (await env.client.get("/auth/check")).status_code == 401


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_every_method_is_checked_alike(env: Env, method: str) -> None:
    """Envoy forwards the client's method: each one is checked like GET, with no identity
    leaking to an anonymous caller and no body read."""
    anonymous = await env.client.request(method, "/auth/check", content=b'{"x": 1}')
    assert anonymous.status_code == 401
    assert "x-dojang-subject" not in anonymous.headers
    user = (await env.login()).json()["user"]
    live = await env.client.request(method, "/auth/check", content=b"ignored")
    assert live.status_code == 200
    assert live.headers["x-dojang-subject"] == user["id"]


async def test_browser_redirect_mode_uses_safe_next(tmp_path: Path, clock: FrozenClock) -> None:
    async for env in make_env(tmp_path, clock, auth_check_redirect=True):
        ok = await env.client.get(
            "/auth/check", headers={"accept": "text/html", "x-original-uri": "/orders?id=1"}
        )
        assert ok.status_code == 302
        assert ok.headers["location"] == "http://127.0.0.1:8000/login?next=%2Forders%3Fid%3D1"
        evil = await env.client.get(
            "/auth/check", headers={"accept": "text/html", "x-original-uri": "//evil.com/"}
        )
        assert evil.headers["location"] == "http://127.0.0.1:8000/login?next=%2F"
        api = await env.client.get("/auth/check", headers={"accept": "application/json"})
        assert api.status_code == 401


async def test_checks_keep_the_session_alive(env: Env) -> None:
    """Sliding expiry through forward auth alone: each check past the touch interval writes
    last_seen, so a session used only through the proxy outlives its idle timeout."""
    await env.login()
    idle = env.settings.session_idle_timeout
    step = idle * 0.6  # past the touch interval, inside the idle timeout
    for _ in range(3):
        env.clock.advance(step)
        assert (await env.client.get("/auth/check")).status_code == 200
    env.clock.advance(idle)
    assert (await env.client.get("/auth/check")).status_code == 401
