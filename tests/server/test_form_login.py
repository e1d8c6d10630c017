"""The HTML login form: hostile ``next`` posted directly, enumeration, fixation, throttling,
the login-CSRF cookie's removal, and registration when it is switched on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from dojang.clock import FrozenClock

from .conftest import PASSWORD, Env, make_env
from .test_pages import HOSTILE_NEXT, _field, _form_login

DIRECT_HOSTILE_NEXT = [
    "//evil.com",
    "/\\evil.com",
    "https:evil.com",
    "%2F%2Fevil.com",
    "/%5Cevil.com",
    "javascript:alert(1)",
    "https://evil.com/",
    "/%2F/evil.com",
    "/%5C%5Cevil.com",
    "%252F%252Fevil.com",
    "/%09/evil.com",
    "/\x00/evil.com",
    "\\/evil.com",
    "///evil.com",
]


async def _post_login(
    client: httpx.AsyncClient, *, username: str = "alice", password: str = PASSWORD, **extra: str
) -> httpx.Response:
    """Fetch the form for a login-CSRF pair, then post these fields directly."""
    page = await client.get("/login")
    assert page.status_code == 200
    fields = {"csrf_token": _field(page.text, "csrf_token"), "username": username}
    return await client.post("/login", data={**fields, "password": password, **extra})


def _same_origin_path(location: str) -> bool:
    return location.startswith("/") and not location.startswith(("//", "/\\"))


@pytest.mark.parametrize("target", sorted(set(DIRECT_HOSTILE_NEXT + HOSTILE_NEXT)))
async def test_hostile_next_posted_directly_is_not_followed(env: Env, target: str) -> None:
    """Open redirect: a crafted form that skips GET /login still lands on our own origin."""
    resp = await _post_login(env.client, next=target)
    assert resp.status_code == 303
    assert resp.headers["location"] == "/account"
    assert "dojang_session" in env.client.cookies  # the login itself worked


@pytest.mark.parametrize("target", DIRECT_HOSTILE_NEXT)
async def test_hostile_next_when_already_logged_in(env: Env, target: str) -> None:
    await env.login()
    resp = await env.client.get("/login", params={"next": target})
    assert resp.status_code == 303
    assert _same_origin_path(resp.headers["location"])
    assert resp.headers["location"] == "/account"


async def test_safe_next_is_kept_when_posted_directly(env: Env) -> None:
    resp = await _post_login(env.client, next="/account?tab=sessions")
    assert resp.headers["location"] == "/account?tab=sessions"


def _normalised(resp: httpx.Response, token: str) -> tuple[int, bytes, list[tuple[str, str]]]:
    """The answer with its one per-request value (the fresh login-CSRF token) blanked."""
    headers = [(k, v.replace(token, "<token>")) for k, v in resp.headers.multi_items()]
    return resp.status_code, resp.content.replace(token.encode(), b"<token>"), headers


async def test_form_answers_alike_for_unknown_wrong_password_and_disabled(env: Env) -> None:
    """Enumeration: the form answers byte for byte alike whether "zed" does not exist, typed
    the wrong password, or is disabled (only the fresh login-CSRF token differs)."""
    answers = []

    async def attempt(password: str) -> None:
        async with env.new_client() as c:
            resp = await _post_login(c, username="zed", password=password, next="/account")
            token = _field(resp.text, "csrf_token")
            assert token in resp.headers["set-cookie"]
            answers.append(_normalised(resp, token))

    await attempt(PASSWORD)  # no such user
    await env.services.accounts.create_user("zed", PASSWORD)
    await attempt("not the password")  # wrong password
    await env.services.accounts.disable("zed")
    await attempt(PASSWORD)  # right password, disabled account
    assert answers[0][0] == 401
    assert b"Incorrect username or password." in answers[0][1]
    assert answers[1] == answers[0]
    assert answers[2] == answers[0]


async def test_form_login_replaces_an_existing_session(env: Env) -> None:
    """Session fixation: a session the browser already had is ended, never reused."""
    page = await env.client.get("/login")  # the form is open ...
    before = (await env.login(username="bob")).json()  # ... when a session arrives
    planted = env.client.cookies["dojang_session"]
    form = {"csrf_token": _field(page.text, "csrf_token"), "username": "alice"}
    resp = await env.client.post("/login", data={**form, "password": PASSWORD})
    assert resp.status_code == 303
    fresh = env.client.cookies["dojang_session"]
    assert fresh != planted
    now = (await env.client.get("/api/v1/session")).json()
    assert now["user"]["username"] == "alice"
    assert now["sid"] != before["sid"] and now["csrf_token"] != before["csrf_token"]
    async with env.new_client() as attacker:
        attacker.cookies.set("dojang_session", planted)
        assert (await attacker.get("/api/v1/session")).status_code == 401


async def test_form_login_ignores_a_planted_unknown_cookie(env: Env) -> None:
    """Fixation by cookie injection: an attacker-chosen value never becomes the session."""
    planted = "A" * 43
    page = await env.client.get("/login", headers={"cookie": f"dojang_session={planted}"})
    assert page.status_code == 200
    resp = await env.client.post(
        "/login",
        data={
            "csrf_token": _field(page.text, "csrf_token"),
            "username": "alice",
            "password": PASSWORD,
        },
        headers={
            "cookie": f"dojang_session={planted}; dojang_login_csrf="
            + env.client.cookies["dojang_login_csrf"]
        },
    )
    assert resp.status_code == 303
    (issued,) = [
        c.split(";")[0].removeprefix("dojang_session=")
        for c in resp.headers.get_list("set-cookie")
        if c.startswith("dojang_session=")
    ]
    assert issued != planted and len(issued) == 43
    async with env.new_client() as attacker:
        attacker.cookies.set("dojang_session", planted)
        assert (await attacker.get("/api/v1/session")).status_code == 401
        attacker.cookies.clear()
        attacker.cookies.set("dojang_session", issued)
        assert (await attacker.get("/api/v1/session")).status_code == 200


async def test_form_login_is_throttled_per_account(env: Env) -> None:
    statuses = []
    for _ in range(12):
        resp = await _post_login(env.client, password="not the password")
        statuses.append(resp.status_code)
        if resp.status_code == 429:
            assert "Too many attempts" in resp.text
            assert "Incorrect username or password." not in resp.text
            break
    assert statuses[0] == 401 and statuses[-1] == 429
    blocked = await _post_login(env.client)  # even the right password, while blocked
    assert blocked.status_code == 429
    assert "dojang_session" not in env.client.cookies
    env.clock.advance(3600)  # no permanent lock-out
    assert (await _post_login(env.client)).status_code == 303


async def test_login_is_throttled_per_client_ip(env: Env) -> None:
    """Password spraying: many accounts tried from one address block that address only."""
    app = env.client._transport.app  # type: ignore[attr-defined]
    other_ip = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
    for i in range(40):
        resp = await env.login(username=f"sprayed{i}", password="not the password")
        if resp.status_code == 429:
            break
    assert resp.status_code == 429
    # A different account from the same address is blocked too (the address is) ...
    assert (await env.login()).status_code == 429
    assert (await _post_login(env.client)).status_code == 429
    # ... while the same account from another address logs in.
    async with httpx.AsyncClient(transport=other_ip, base_url=env.base_url) as api_client:
        assert (await env.login(api_client)).status_code == 201
    async with httpx.AsyncClient(transport=other_ip, base_url=env.base_url) as browser:
        assert (await _post_login(browser)).status_code == 303


async def test_login_csrf_cookie_is_cleared_with_the_attributes_it_was_set_with(
    https_env: Env,
) -> None:
    """A ``__Host-`` cookie can only be deleted by a ``Set-Cookie`` with ``Secure``."""
    page = await https_env.client.get("/login")
    set_it = page.headers["set-cookie"]
    assert set_it.startswith("__Host-dojang_login_csrf=")
    resp = await https_env.client.post(
        "/login",
        data={
            "csrf_token": _field(page.text, "csrf_token"),
            "username": "alice",
            "password": PASSWORD,
        },
    )
    assert resp.status_code == 303
    cleared = [
        c for c in resp.headers.get_list("set-cookie") if c.startswith("__Host-dojang_login_csrf=")
    ]
    assert cleared == [
        "__Host-dojang_login_csrf=; Path=/; HttpOnly; SameSite=Strict; Secure; Max-Age=0"
    ]
    attributes = sorted(a.strip() for a in set_it.split(";")[1:] if "Max-Age" not in a)
    assert attributes == sorted(a.strip() for a in cleared[0].split(";")[1:] if "Max-Age" not in a)


async def test_login_csrf_cookie_is_cleared_on_http_too(env: Env) -> None:
    resp = await _form_login(env, env.client)
    assert "dojang_login_csrf=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0" in (
        resp.headers.get_list("set-cookie")
    )
    assert "dojang_login_csrf" not in env.client.cookies


async def test_registration_when_enabled(tmp_path: Path, clock: FrozenClock) -> None:
    async for env in make_env(tmp_path, clock, registration_enabled=True):
        page = await env.client.get("/register")
        assert page.status_code == 200
        assert 'autocomplete="new-password"' in page.text
        form = {"csrf_token": _field(page.text, "csrf_token"), "username": "Newbie"}
        resp = await env.client.post("/register", data={**form, "password": "a fine password"})
        assert resp.status_code == 303 and resp.headers["location"] == "/account"
        assert "dojang_login_csrf=; " in " ".join(resp.headers.get_list("set-cookie"))
        account = await env.client.get("/account")
        assert account.status_code == 200 and "newbie" in account.text
        # The new account logs in like any other, in a fresh browser.
        async with env.new_client() as fresh:
            again = await _post_login(fresh, username="newbie", password="a fine password")
            assert again.status_code == 303
        # Taken names, weak passwords and forged forms create nothing.
        async with env.new_client() as other:
            page = await other.get("/register")
            token = _field(page.text, "csrf_token")
            taken = await other.post(
                "/register", data={"csrf_token": token, "username": "NEWBIE", "password": "x" * 12}
            )
            assert taken.status_code == 400 and "That username is taken." in taken.text
            token = _field(taken.text, "csrf_token")
            weak = await other.post(
                "/register", data={"csrf_token": token, "username": "shorty", "password": "short"}
            )
            assert weak.status_code == 400 and "dojang_session" not in other.cookies
            forged = await other.post(
                "/register",
                data={"csrf_token": "forged", "username": "mallory", "password": "x" * 12},
            )
            assert forged.status_code == 403
        names = [u.username for u in await env.services.accounts.list_users()]
        assert names == ["alice", "bob", "newbie"]


async def test_registration_off_means_404_for_both_methods(env: Env) -> None:
    assert (await env.client.get("/register")).status_code == 404
    page = await env.client.get("/login")
    assert "/register" not in page.text
    resp = await env.client.post(
        "/register",
        data={
            "csrf_token": _field(page.text, "csrf_token"),
            "username": "x1",
            "password": "y" * 12,
        },
    )
    assert resp.status_code == 404
    assert await env.services.accounts.get_by_username("x1") is None


async def test_embedded_database_runs_in_wal_mode(env: Env) -> None:
    """WAL lets the login page read while a login writes; it is a property of the file."""
    async with env.services.db.connection() as conn:
        mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
    assert str(mode).lower() == "wal"
    await env.login()  # a write, so the write-ahead log exists beside the file
    path = env.settings.data_dir / "dojang.db"
    assert path.with_name("dojang.db-wal").exists()
    # A plain connection that sets nothing still finds the file in WAL mode.
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()
