"""Remember-me sessions: their own idle timeout (``DOJANG_SESSION_REMEMBER_ME_IDLE``) and
lifetime, enforced over HTTP with the injected clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from dojang.clock import FrozenClock
from dojang.config import load_settings
from dojang.errors import ConfigError

from .conftest import Env, make_env
from .test_form_login import _post_login

HOUR = 3600.0


async def test_remember_me_idle_is_configurable_and_slides(
    tmp_path: Path, clock: FrozenClock
) -> None:
    async for env in make_env(tmp_path, clock, session_remember_me_idle=2 * HOUR):
        assert env.services.sessions.policy.remember_me_idle == 2 * HOUR
        assert (await env.login(remember=True)).status_code == 201
        for _ in range(5):  # used within the idle timeout: stays alive well past it
            env.clock.advance(2 * HOUR - 60)
            assert (await env.client.get("/api/v1/session")).status_code == 200
            assert (await env.client.get("/auth/check")).status_code == 200
        env.clock.advance(2 * HOUR + 1)
        assert (await env.client.get("/api/v1/session")).status_code == 401
        assert (await env.client.get("/auth/check")).status_code == 401


async def test_remember_me_from_the_form_gets_the_remember_me_idle(
    tmp_path: Path, clock: FrozenClock
) -> None:
    async for env in make_env(tmp_path, clock, session_remember_me_idle=2 * HOUR):
        resp = await _post_login(env.client, remember="1")
        assert resp.status_code == 303
        cookie = next(c for c in resp.headers.get_list("set-cookie") if "dojang_session=" in c)
        assert f"Max-Age={int(env.settings.session_remember_me_lifetime)}" in cookie
        env.clock.advance(2 * HOUR - 1)
        assert (await env.client.get("/account")).status_code == 200
        env.clock.advance(2 * HOUR + 1)
        assert (await env.client.get("/account")).status_code == 303


async def test_remember_me_outlives_the_ordinary_idle_timeout(env: Env) -> None:
    """The two kinds differ only where they should: a quiet hour ends an ordinary session,
    not a remembered one (default remember-me idle: a week)."""
    async with env.new_client() as ordinary:
        await env.login(ordinary)
        await env.login(remember=True)
        env.clock.advance(env.settings.session_idle_timeout + 1)
        assert (await ordinary.get("/api/v1/session")).status_code == 401
        assert (await env.client.get("/api/v1/session")).status_code == 200
        env.clock.advance(env.settings.session_remember_me_idle + 1)
        assert (await env.client.get("/api/v1/session")).status_code == 401


async def test_remember_me_lifetime_caps_a_busy_session(tmp_path: Path, clock: FrozenClock) -> None:
    flags = {"session_remember_me_idle": 2 * HOUR, "session_remember_me_lifetime": 5 * HOUR}
    async for env in make_env(tmp_path, clock, **flags):
        await env.login(remember=True)
        for _ in range(4):
            env.clock.advance(HOUR)
            assert (await env.client.get("/api/v1/session")).status_code == 200
        env.clock.advance(HOUR + 1)
        assert (await env.client.get("/api/v1/session")).status_code == 401


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_bad_remember_me_idle_stops_start_up_naming_the_option(value: str) -> None:
    with pytest.raises(ConfigError, match="DOJANG_SESSION_REMEMBER_ME_IDLE"):
        load_settings(env={"DOJANG_SESSION_REMEMBER_ME_IDLE": value})


def test_remember_me_idle_cannot_exceed_its_lifetime_and_both_checks_report() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            env={
                "DOJANG_SESSION_REMEMBER_ME_IDLE": "7200",
                "DOJANG_SESSION_REMEMBER_ME_LIFETIME": "3600",
                "DOJANG_SESSION_IDLE_TIMEOUT": "100",
                "DOJANG_SESSION_ABSOLUTE_LIFETIME": "50",
            }
        )
    problems = caught.value.problems  # every problem at once, one entry each
    assert any(p.startswith("DOJANG_SESSION_REMEMBER_ME_IDLE: must not exceed") for p in problems)
    assert any(p.startswith("DOJANG_SESSION_IDLE_TIMEOUT: must not exceed") for p in problems)
    assert len(problems) == 2
    settings = load_settings(env={"DOJANG_SESSION_REMEMBER_ME_IDLE": "3600"})
    assert settings.session_remember_me_idle == 3600.0
