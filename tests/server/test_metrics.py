"""``/metrics``: the counters move with what happens, and the endpoint is not public."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from dojang.clock import FrozenClock

from .conftest import Env, make_env


def _value(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$"
    m = re.search(pattern, text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


async def test_counters_follow_traffic(env: Env) -> None:
    await env.login(password="wrong password!")
    await env.login()
    for _ in range(3):
        await env.client.get("/auth/check")
    async with env.new_client() as anon:
        await anon.get("/auth/check")
    text = (await env.client.get("/metrics")).text
    assert _value(text, "dojang_logins_total", '{outcome="success"}') == 1
    assert _value(text, "dojang_logins_total", '{outcome="failure"}') == 1
    assert _value(text, "dojang_auth_checks_total", '{status="200"}') == 3
    assert _value(text, "dojang_auth_checks_total", '{status="401"}') == 1
    assert _value(text, "dojang_auth_check_seconds_count") == 4


async def test_metrics_are_not_public(env: Env) -> None:
    app = env.client._transport.app  # type: ignore[attr-defined]
    remote = httpx.ASGITransport(app=app, client=("203.0.113.7", 5555))
    async with httpx.AsyncClient(transport=remote, base_url=env.base_url) as c:
        resp = await c.get("/metrics")
    assert resp.status_code == 403
    assert "dojang_" not in resp.text


async def test_metrics_token_opens_it_to_remote_scrapers(
    tmp_path: Path, clock: FrozenClock
) -> None:
    async for env in make_env(tmp_path, clock, metrics_token="scrape-me-please"):
        app = env.client._transport.app  # type: ignore[attr-defined]
        remote = httpx.ASGITransport(app=app, client=("203.0.113.7", 5555))
        async with httpx.AsyncClient(transport=remote, base_url=env.base_url) as c:
            wrong = await c.get("/metrics", headers={"authorization": "Bearer nope"})
            right = await c.get("/metrics", headers={"authorization": "Bearer scrape-me-please"})
        assert wrong.status_code == 403
        assert right.status_code == 200 and "dojang_auth_checks" in right.text


async def test_revocations_published_are_counted(env: Env) -> None:
    login = (await env.login()).json()
    await env.client.delete("/api/v1/session", headers={"x-csrf-token": login["csrf_token"]})
    text = (await env.client.get("/metrics")).text
    assert _value(text, "dojang_revocations_published_total", '{kind="session.revoked"}') == 1


async def test_active_sessions_gauge(env: Env) -> None:
    await env.login()
    async with env.new_client() as other:
        await env.login(other, "bob")
    text = (await env.client.get("/metrics")).text
    assert _value(text, "dojang_active_sessions") == 2
    env.clock.advance(env.settings.session_idle_timeout + 1)
    assert _value((await env.client.get("/metrics")).text, "dojang_active_sessions") == 0
