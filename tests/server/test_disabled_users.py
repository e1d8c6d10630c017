"""Disabled users lose every session at once and cannot get a new one, even through races
and failures in the middle of disabling."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from dojang.cli import app as cli
from dojang.errors import StoreUnavailable
from dojang.server.cookies import CookiePolicy

from .conftest import Env
from .test_form_login import _post_login

CHEAP_ARGON2 = {
    "DOJANG_ARGON2_TIME_COST": "1",
    "DOJANG_ARGON2_MEMORY_COST": "8",
    "DOJANG_ARGON2_PARALLELISM": "1",
}


async def _alive(env: Env, cookie: str) -> tuple[int, int]:
    """``/api/v1/session`` and ``/auth/check`` statuses for a session cookie."""
    async with env.new_client() as c:
        c.cookies.set(CookiePolicy(https=False).session_name, cookie)
        api = (await c.get("/api/v1/session")).status_code
        check = (await c.get("/auth/check")).status_code
    return api, check


async def _logins(env: Env) -> list[str]:
    """Alice logs in twice, by API and by form; return both session cookies."""
    cookies = []
    async with env.new_client() as api, env.new_client() as browser:
        assert (await env.login(api)).status_code == 201
        assert (await _post_login(browser)).status_code == 303
        cookies = [api.cookies["dojang_session"], browser.cookies["dojang_session"]]
    for cookie in cookies:
        assert await _alive(env, cookie) == (200, 200)
    return cookies


async def _alice_sessions(env: Env) -> int:
    user = await env.services.accounts.get_by_username("alice")
    assert user is not None
    return len(await env.services.sessions.list_for_user(user.id))


async def _assert_cannot_log_in(env: Env) -> None:
    async with env.new_client() as api, env.new_client() as ghost:
        refused = await env.login(api)
        unknown = await env.login(ghost, "ghost")
        assert refused.status_code == 401
        assert refused.content == unknown.content  # the same generic error
        assert "set-cookie" not in refused.headers
    async with env.new_client() as browser:
        page = await _post_login(browser)
        assert page.status_code == 401 and "Incorrect username or password." in page.text
        assert "dojang_session" not in browser.cookies


async def test_cli_disable_ends_live_sessions_end_to_end(env: Env) -> None:
    """``dojang users disable`` (another process on the same database) ends the sessions a
    running server holds: its API and ``/auth/check`` answer 401 at once."""
    cookies = await _logins(env)
    cli_env = {"DOJANG_DATA_DIR": str(env.settings.data_dir), **CHEAP_ARGON2}
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["users", "disable", "alice"], env=cli_env
    )
    assert result.exit_code == 0, result.output
    assert "ended 2 session(s)" in result.output
    for cookie in cookies:
        assert await _alive(env, cookie) == (401, 401)
    await _assert_cannot_log_in(env)
    assert await _alice_sessions(env) == 0


async def test_disable_in_process_ends_sessions_and_tokens(env: Env) -> None:
    cookies = await _logins(env)
    await env.services.accounts.disable("alice")
    for cookie in cookies:
        assert await _alive(env, cookie) == (401, 401)
    await _assert_cannot_log_in(env)
    await env.services.accounts.enable("alice")
    assert (await env.login()).status_code == 201


def _fail_on_call(
    monkeypatch: pytest.MonkeyPatch, env: Env, failing_call: int
) -> Callable[[], int]:
    """Make the ``failing_call``-th ``revoke_all`` of the session manager raise an outage."""
    real: Callable[..., Awaitable[list[str]]] = env.services.sessions.revoke_all
    calls = 0

    async def flaky(*args: Any, **kwargs: Any) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == failing_call:
            raise StoreUnavailable("session store did not answer")
        return await real(*args, **kwargs)

    monkeypatch.setattr(env.services.sessions, "revoke_all", flaky)
    return lambda: calls


async def test_an_outage_after_the_flag_is_set_leaves_no_old_session_alive(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disabling must not end up "disabled, but the sessions still work": the sessions that
    existed are ended before the flag is committed, so a failure after it cannot save them."""
    cookies = await _logins(env)
    calls = _fail_on_call(monkeypatch, env, failing_call=2)
    with pytest.raises(StoreUnavailable):
        await env.services.accounts.disable("alice")  # reported: the operator runs it again
    assert calls() == 2
    user = await env.services.accounts.get_by_username("alice")
    assert user is not None and user.disabled
    for cookie in cookies:
        assert await _alive(env, cookie) == (401, 401)
    await _assert_cannot_log_in(env)


async def test_an_outage_before_the_flag_changes_nothing(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    cookies = await _logins(env)
    _fail_on_call(monkeypatch, env, failing_call=1)
    with pytest.raises(StoreUnavailable):
        await env.services.accounts.disable("alice")
    user = await env.services.accounts.get_by_username("alice")
    assert user is not None and not user.disabled  # nothing half-done: all or retry
    for cookie in cookies:
        assert await _alive(env, cookie) == (200, 200)
    await env.services.accounts.disable("alice")  # the retry finishes the job
    for cookie in cookies:
        assert await _alive(env, cookie) == (401, 401)


@pytest.mark.parametrize("via", ["api", "form"])
async def test_login_racing_with_disable_gets_no_session(
    env: Env, monkeypatch: pytest.MonkeyPatch, via: str
) -> None:
    """The password checks out, then the account is disabled before the session is made:
    the login fails with the generic error and leaves no session behind."""
    accounts = env.services.accounts
    real = accounts.authenticate

    async def then_disabled(username: str, password: str, *, ip: str | None) -> Any:
        user = await real(username, password, ip=ip)
        await accounts.disable(username)  # the operator wins the race
        return user

    monkeypatch.setattr(accounts, "authenticate", then_disabled)
    async with env.new_client() as c:
        if via == "api":
            resp = await env.login(c)
            assert resp.status_code == 401
            assert resp.json()["error"] == "invalid_credentials"
        else:
            resp = await _post_login(c)
            assert resp.status_code == 401 and "Incorrect username or password." in resp.text
        assert "dojang_session" not in c.cookies
    assert await _alice_sessions(env) == 0


async def test_a_surviving_session_of_a_disabled_user_is_refused_and_ended(env: Env) -> None:
    """Belt and braces: should a session outlive the disabling (the flag written without the
    hook, as by hand in the database), the pages that read the account end it."""
    cookies = await _logins(env)
    await env.services.accounts.users.update("alice", disabled=True)  # no hook: sessions live
    assert await _alive(env, cookies[0]) == (401, 401)  # the API ended it ...
    async with env.new_client() as browser:
        browser.cookies.set("dojang_session", cookies[1])
        page = await browser.get("/account")
        assert page.status_code == 303 and page.headers["location"] == "/login"
    assert await _alive(env, cookies[1]) == (401, 401)  # ... and so did the account page
    assert await _alice_sessions(env) == 0


async def test_a_password_change_that_fails_after_its_commit_leaves_no_old_session_alive(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Password change ends the user's sessions before the new hash is committed, so an
    outage afterwards cannot leave sessions that knew the old password alive."""
    cookies = await _logins(env)
    calls = _fail_on_call(monkeypatch, env, failing_call=2)
    with pytest.raises(StoreUnavailable):
        await env.services.accounts.set_password("alice", "a brand new passphrase")
    assert calls() == 2
    for cookie in cookies:
        assert await _alive(env, cookie) == (401, 401)
    assert (await env.login()).status_code == 401  # the old password is gone
    assert (await env.login(password="a brand new passphrase")).status_code == 201
