"""The event-log follower: revocations published by another process reach this one's state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from dojang.errors import RevokedToken
from dojang.server.follower import EventFollower
from dojang.server.services import Services, build_services

from .conftest import FAST_HASHER, PASSWORD, Env
from .test_keywatch import _until
from .test_metrics import _value
from .test_tokens import Clients, _basic, _session_token
from .test_tokens import clients as clients  # the fixture, for this module's tests


@pytest.fixture
async def worker_b(env: Env) -> AsyncIterator[Services]:
    """A second worker on the same database and keys: it shares nothing in memory with ``env``."""
    other = await build_services(env.settings, clock=env.clock, hasher=FAST_HASHER)
    try:
        yield other
    finally:
        await other.close()


def _revoked_on(svc: Services, token: str, audience: str = "orders-api") -> bool:
    try:
        svc.verifier_for(audience).verify(token)
    except RevokedToken:
        return True
    return False


async def test_another_workers_logout_reaches_this_workers_deny_list(
    env: Env, clients: Clients, worker_b: Services
) -> None:
    """Without the follower, worker B's own verifier would keep accepting a token whose
    session ended on worker A (only its store checks would notice)."""
    token = await _session_token(env)
    sid = env.services.verifier_for("orders-api").verify(token)["sid"]
    worker_b.forward_tokens.put(sid, "orders-api", "", "cached-token", env.clock.now() + 60)
    follower = EventFollower(worker_b)
    assert await follower.catch_up() == 0
    csrf = (await env.client.get("/api/v1/session")).json()["csrf_token"]
    await env.client.delete("/api/v1/session", headers={"x-csrf-token": csrf})
    assert not _revoked_on(worker_b, token)  # published on A, not yet read on B
    assert await follower.catch_up() == 1
    assert _revoked_on(worker_b, token)
    assert worker_b.forward_tokens.get(sid, "orders-api", "", env.clock.now()) is None


async def test_token_and_user_revocations_are_applied(
    env: Env, clients: Clients, worker_b: Services
) -> None:
    follower = EventFollower(worker_b)
    await follower.catch_up()
    auth = _basic(clients.reporter_id, clients.reporter_secret)
    service = (
        await env.client.post(
            "/oauth2/token", data={"grant_type": "client_credentials"}, headers=auth
        )
    ).json()["access_token"]
    assert (
        await env.client.post("/oauth2/revoke", data={"token": service}, headers=auth)
    ).status_code == 200
    user_token = await _session_token(env)
    env.clock.advance(2)  # the password change cuts off tokens issued before it
    await env.services.accounts.set_password("alice", PASSWORD + " and more")
    assert not _revoked_on(worker_b, service) and not _revoked_on(worker_b, user_token)
    await follower.catch_up()
    assert _revoked_on(worker_b, service)  # token.revoked {jti}
    assert _revoked_on(worker_b, user_token)
    applied = worker_b.metrics.events.applied
    # A password change cuts the user off before and after the new hash is committed.
    assert applied["token.revoked"] == 1 and applied["user.sessions_revoked"] == 2


async def test_a_restarted_worker_replays_revocations_still_in_force(
    env: Env, clients: Clients, worker_b: Services
) -> None:
    token = await _session_token(env)
    csrf = (await env.client.get("/api/v1/session")).json()["csrf_token"]
    await env.client.delete("/api/v1/session", headers={"x-csrf-token": csrf})
    # Worker B starts after the logout: its deny list is empty until the start-up replay.
    assert not _revoked_on(worker_b, token)
    await EventFollower(worker_b).catch_up()
    assert _revoked_on(worker_b, token)
    # Replayed events are not propagation measurements (they could be minutes old).
    text = worker_b.metrics.render().decode()
    assert _value(text, "dojang_revocation_propagation_seconds_count") == 0
    assert _value(text, "dojang_events_applied_total", '{kind="session.revoked"}') == 1


async def test_running_follower_picks_up_revocations_within_its_poll_interval(
    env: Env, clients: Clients, worker_b: Services
) -> None:
    token = await _session_token(env)
    task = asyncio.create_task(EventFollower(worker_b).run())
    try:
        csrf = (await env.client.get("/api/v1/session")).json()["csrf_token"]
        await env.client.delete("/api/v1/session", headers={"x-csrf-token": csrf})
        # Worker B is not woken by A's publish: it reads the log once a second.
        await _until(lambda: _revoked_on(worker_b, token), "worker B to apply the logout")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert worker_b.metrics.events.caught_up_at is not None
