"""``/metrics``: the counters move with what happens, and the endpoint is not public."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dojang.clock import FrozenClock
from dojang.server.follower import EventFollower
from tests.redis_harness import free_port

from .conftest import Env, make_env
from .test_tokens import Clients, _basic, _exchange, _session_token
from .test_tokens import clients as clients  # the fixture, for this module's tests


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


def _float(text: str, name: str, labels: str = "") -> float | None:
    """The sample's value (NaN included), or None when the series is absent."""
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else None


async def _scrape(env: Env) -> str:
    resp = await env.client.get("/metrics")
    assert resp.status_code == 200, resp.text
    return resp.text


@pytest.mark.parametrize(
    "header",
    [
        {"x-forwarded-for": "203.0.113.7"},
        {"forwarded": "for=203.0.113.7;proto=https"},
        {"x-real-ip": "203.0.113.7"},
        {"x-forwarded-host": "auth.example"},
        {"x-forwarded-proto": "https"},
        {"via": "1.1 edge"},
    ],
)
async def test_loopback_proxy_relaying_a_scrape_is_refused(
    tmp_path: Path, clock: FrozenClock, header: dict[str, str]
) -> None:
    """A reverse proxy on this machine connects from loopback: the forwarding headers it adds
    must not let the outside world read /metrics through it (only the token opens it)."""
    async for env in make_env(tmp_path, clock, metrics_token="scrape-me-please"):
        relayed = await env.client.get("/metrics", headers=header)
        assert relayed.status_code == 403 and "dojang_" not in relayed.text
        with_token = await env.client.get(
            "/metrics", headers={**header, "authorization": "Bearer scrape-me-please"}
        )
        assert with_token.status_code == 200 and "dojang_auth_checks" in with_token.text
        assert (await env.client.get("/metrics")).status_code == 200  # plain loopback


async def test_relayed_scrape_refused_without_a_configured_token(env: Env) -> None:
    resp = await env.client.get("/metrics", headers={"x-forwarded-for": "127.0.0.1"})
    assert resp.status_code == 403


async def test_throttled_logins_are_counted(env: Env) -> None:
    for _ in range(8):
        await env.login(password="wrong password!")
    throttled = len(await env.services.audit.search(action="login.throttled"))
    assert throttled >= 1
    text = await _scrape(env)
    assert _value(text, "dojang_login_throttled_total") == throttled
    assert _value(text, "dojang_logins_total", '{outcome="throttled"}') == throttled
    assert _value(text, "dojang_logins_total", '{outcome="failure"}') == 8 - throttled


async def test_tokens_minted_are_counted_by_kind(env: Env, clients: Clients) -> None:
    user_token = await _session_token(env, scope="orders:read payments:charge")
    service = await env.client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers=_basic(clients.reporter_id, clients.reporter_secret),
    )
    assert service.status_code == 200, service.text
    exchanged = await _exchange(env, clients, user_token)
    assert exchanged.status_code == 200, exchanged.text
    text = await _scrape(env)
    assert _value(text, "dojang_tokens_minted_total", '{kind="access"}') == 1
    assert _value(text, "dojang_tokens_minted_total", '{kind="service"}') == 1
    assert _value(text, "dojang_tokens_minted_total", '{kind="exchange"}') == 1


async def test_session_revocations_are_counted_by_how(env: Env) -> None:
    me = (await env.login()).json()
    csrf = {"x-csrf-token": me["csrf_token"]}
    async with env.new_client() as phone, env.new_client() as laptop:
        other = (await env.login(phone)).json()
        await env.login(laptop)
        ended = await env.client.delete(f"/api/v1/sessions/{other['sid']}", headers=csrf)
        assert ended.status_code == 204
        everywhere = await env.client.delete("/api/v1/sessions", headers=csrf)
        assert everywhere.json() == {"ended": 2}  # this one and the laptop's
    async with env.new_client() as again:
        relogin = (await env.login(again)).json()
        await again.delete("/api/v1/session", headers={"x-csrf-token": relogin["csrf_token"]})
    text = await _scrape(env)
    assert _value(text, "dojang_session_revocations_total", '{how="session.revoked"}') == 1
    assert _value(text, "dojang_session_revocations_total", '{how="sessions.revoked_all"}') == 1
    assert _value(text, "dojang_session_revocations_total", '{how="logout"}') == 1


async def test_store_calls_are_timed(env: Env) -> None:
    """Logging in writes a session and an audit record: both stores' histograms move, and
    every histogram is consistent (+Inf bucket == count, a sum of real durations)."""
    before = await _scrape(env)
    await env.login()
    after = await _scrape(env)
    for store in ("sessions", "audit"):
        labels = f'{{op="write",store="{store}"}}'
        moved = _value(after, "dojang_store_seconds_count", labels) - _value(
            before, "dojang_store_seconds_count", labels
        )
        assert moved >= 1, store
        assert _value(after, "dojang_store_seconds_sum", labels) > 0
        inf = f'{{le="+Inf",op="write",store="{store}"}}'
        count = _value(after, "dojang_store_seconds_count", labels)
        assert _value(after, "dojang_store_seconds_bucket", inf) == count


async def test_database_outage_answers_are_counted(env: Env) -> None:
    """Every store outage turned into a 503 (FastAPI routes, the lean token route, /readyz)
    is counted under the store that failed."""
    await env.services.db.dispose()
    db_file = env.settings.data_dir / "dojang.db"
    db_file.unlink()
    db_file.mkdir()  # a directory where the database file was: every open fails
    login = await env.login()
    assert login.status_code == 503 and login.json()["error"] == "store_unavailable"
    token = await env.client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "svc_x", "client_secret": "y"},
    )
    assert token.status_code == 503
    assert (await env.client.get("/readyz")).status_code == 503
    text = await _scrape(env)
    assert _value(text, "dojang_store_errors_total", '{store="accounts"}') == 2
    # /readyz's database probe (1) and its session-store probe (1); the scrape's own
    # live-session count fails too (1), so the gauge reads NaN ("unknown"), not a stale 0.
    assert _value(text, "dojang_store_errors_total", '{store="database"}') == 1
    assert _value(text, "dojang_store_errors_total", '{store="sessions"}') == 2
    live = _float(text, "dojang_active_sessions")
    assert live is not None and math.isnan(live)


async def test_redis_outage_answers_are_counted(tmp_path: Path, clock: FrozenClock) -> None:
    """Sessions in a Redis that does not answer: forward auth, the API and /readyz fail
    closed with 503, and each one is counted."""
    url = f"redis://127.0.0.1:{free_port()}/0?socket_timeout=0.2&socket_connect_timeout=0.2"
    async for env in make_env(tmp_path, clock, session_store=url):
        redis_calls = ("dojang_store_seconds_count", '{op="redis",store="sessions"}')
        before = _value(await _scrape(env), *redis_calls)
        cookie = {"cookie": "dojang_session=" + "A" * 43}
        assert (await env.client.get("/auth/check", headers=cookie)).status_code == 503
        assert (await env.client.get("/api/v1/session", headers=cookie)).status_code == 503
        assert (await env.client.get("/readyz")).status_code == 503
        text = await _scrape(env)
        # Three answers, plus the failed live-session count of each scrape (two).
        assert _value(text, "dojang_store_errors_total", '{store="sessions"}') == 5
        # The failed calls were timed too (a timeout is a slow call, not a missing one).
        assert _value(text, *redis_calls) >= before + 4


# A database index of its own (the two-instance suite uses 13), emptied of this server's
# default key prefix before and after.
_REDIS_SESSIONS = "redis://127.0.0.1:6379/12"


@pytest.fixture
def redis_sessions(redis_url: str) -> Iterator[str]:
    """A Redis session store URL for a server using the default ``dojang:`` prefix."""
    import redis

    client = redis.Redis.from_url(_REDIS_SESSIONS)

    def clear() -> None:
        keys = list(client.scan_iter(match="dojang:*", count=1000))
        if keys:
            client.delete(*keys)

    clear()
    try:
        yield _REDIS_SESSIONS
    finally:
        clear()
        client.close()


async def test_active_sessions_gauge_on_redis(
    tmp_path: Path, clock: FrozenClock, redis_sessions: str
) -> None:
    """Redis sessions are counted (not left at 0): logins, a logout, and idle expiry at the
    server's clock all show in the gauge."""
    async for env in make_env(tmp_path, clock, session_store=redis_sessions):
        me = (await env.login()).json()
        async with env.new_client() as other:
            await env.login(other, "bob")
        assert _value(await _scrape(env), "dojang_active_sessions") == 2
        await env.client.delete("/api/v1/session", headers={"x-csrf-token": me["csrf_token"]})
        assert _value(await _scrape(env), "dojang_active_sessions") == 1
        env.clock.advance(env.settings.session_idle_timeout + 1)
        assert _value(await _scrape(env), "dojang_active_sessions") == 0
        # The store's calls go through the timed Redis wrapper: a login adds at least its
        # session create, the scrape its count.
        redis_calls = ("dojang_store_seconds_count", '{op="redis",store="sessions"}')
        before = _value(await _scrape(env), *redis_calls)
        await env.login()
        assert _value(await _scrape(env), *redis_calls) >= before + 2


async def test_event_follower_reports_propagation_and_lag(env: Env) -> None:
    follower = EventFollower(env.services)
    old = (await env.login()).json()
    await env.client.delete("/api/v1/session", headers={"x-csrf-token": old["csrf_token"]})
    text = await _scrape(env)
    assert _float(text, "dojang_event_subscriber_lag_seconds") is None  # not caught up yet
    # Start-up replay: the old revocation is applied, but it is no propagation measurement.
    assert await follower.catch_up() == 1
    text = await _scrape(env)
    assert _value(text, "dojang_revocation_propagation_seconds_count") == 0
    assert _value(text, "dojang_events_applied_total", '{kind="session.revoked"}') == 1
    assert _float(text, "dojang_event_subscriber_lag_seconds") == 0
    # A live revocation, applied 0.25 s after it was published.
    new = (await env.login()).json()
    await env.client.delete("/api/v1/session", headers={"x-csrf-token": new["csrf_token"]})
    env.clock.advance(0.25)
    assert await follower.catch_up() == 1
    text = await _scrape(env)
    assert _value(text, "dojang_revocation_propagation_seconds_count") == 1
    assert _value(text, "dojang_revocation_propagation_seconds_sum") == pytest.approx(0.25)
    assert _value(text, "dojang_revocation_propagation_seconds_bucket", '{le="0.1"}') == 0
    assert _value(text, "dojang_revocation_propagation_seconds_bucket", '{le="0.25"}') == 1
    assert _value(text, "dojang_events_applied_total", '{kind="session.revoked"}') == 2
    # Nothing new for 7 s without a successful read: the lag grows with the clock.
    env.clock.advance(7)
    assert _float(await _scrape(env), "dojang_event_subscriber_lag_seconds") == 7
    assert await follower.catch_up() == 0
    assert _float(await _scrape(env), "dojang_event_subscriber_lag_seconds") == 0
