"""Server-rendered pages: login form with login-CSRF, safe ``next``, account page, logout."""

from __future__ import annotations

import re

import httpx
import pytest

from .conftest import PASSWORD, Env

HOSTILE_NEXT = [
    "//evil.com",
    "/\\evil.com",
    "https:evil.com",
    "https://evil.com",
    "http://evil.com/x",
    "/%2F%2Fevil.com",
    "%2F%2Fevil.com",
    "/%5Cevil.com",
    "/%252F%252Fevil.com",
    "\\\\evil.com",
    "javascript:alert(1)",
    "/\t/evil.com",
    "/\n/evil.com",
    " //evil.com",
    "evil.com",
    "//evil.com/%2e%2e",
    "/" + "a" * 3000,
]


def _field(html: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert m, f"no field {name}"
    return m.group(1)


async def _form_login(
    env: Env, client: httpx.AsyncClient, next_path: str | None = None, password: str = PASSWORD
) -> httpx.Response:
    page = await client.get("/login", params={"next": next_path} if next_path else None)
    assert page.status_code == 200
    data = {
        "csrf_token": _field(page.text, "csrf_token"),
        "next": _field(page.text, "next"),
        "username": "alice",
        "password": password,
    }
    return await client.post("/login", data=data)


async def test_login_page_renders_without_inline_script(env: Env) -> None:
    page = await env.client.get("/login")
    assert page.status_code == 200
    assert "<script" not in page.text.lower()
    assert 'autocomplete="current-password"' in page.text
    assert '<label for="username">' in page.text
    assert "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "dojang_login_csrf=" in page.headers["set-cookie"]
    assert "SameSite=Strict" in page.headers["set-cookie"]


async def test_form_login_then_account_then_logout(env: Env) -> None:
    resp = await _form_login(env, env.client)
    assert resp.status_code == 303
    assert resp.headers["location"] == "/account"
    account = await env.client.get("/account")
    assert account.status_code == 200
    assert "alice" in account.text and "this device" in account.text
    token = _field(account.text, "csrf_token")
    out = await env.client.post("/logout", data={"csrf_token": token})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert (await env.client.get("/account")).status_code == 303


async def test_login_form_without_login_csrf_is_refused(env: Env) -> None:
    """Login CSRF: a forged cross-site form (no token cookie) cannot log the victim in."""
    resp = await env.client.post(
        "/login", data={"username": "alice", "password": PASSWORD, "csrf_token": "forged"}
    )
    assert resp.status_code == 403
    page = await env.client.get("/login")
    wrong = await env.client.post(
        "/login",
        data={
            "username": "alice",
            "password": PASSWORD,
            "csrf_token": "x" + _field(page.text, "csrf_token"),
        },
    )
    assert wrong.status_code == 403
    assert "dojang_session" not in env.client.cookies


async def test_wrong_password_form_shows_generic_error(env: Env) -> None:
    resp = await _form_login(env, env.client, password="not the password")
    assert resp.status_code == 401
    assert "Incorrect username or password." in resp.text
    assert "dojang_session" not in env.client.cookies


@pytest.mark.parametrize("target", HOSTILE_NEXT)
async def test_hostile_next_is_never_followed(env: Env, target: str) -> None:
    resp = await _form_login(env, env.client, next_path=target)
    assert resp.status_code == 303
    assert resp.headers["location"] == "/account"


async def test_relative_next_is_followed(env: Env) -> None:
    resp = await _form_login(env, env.client, next_path="/account?tab=1")
    assert resp.headers["location"] == "/account?tab=1"


async def test_end_other_session_from_account_page(env: Env) -> None:
    await _form_login(env, env.client)
    async with env.new_client() as other:
        other_sid = (await env.login(other)).json()["sid"]
        account = await env.client.get("/account")
        assert other_sid in account.text
        token = _field(account.text, "csrf_token")
        resp = await env.client.post(
            f"/account/sessions/{other_sid}/end", data={"csrf_token": token}
        )
        assert resp.status_code == 303
        assert (await other.get("/api/v1/session")).status_code == 401
        assert (await env.client.get("/account")).status_code == 200


async def test_account_forms_need_the_session_csrf_token(env: Env) -> None:
    await _form_login(env, env.client)
    resp = await env.client.post("/account/sessions/end-all", data={"csrf_token": "nope"})
    assert resp.status_code == 403
    assert (await env.client.get("/account")).status_code == 200


async def test_log_out_everywhere(env: Env) -> None:
    await _form_login(env, env.client)
    async with env.new_client() as other:
        await env.login(other)
        token = _field((await env.client.get("/account")).text, "csrf_token")
        resp = await env.client.post("/account/sessions/end-all", data={"csrf_token": token})
        assert resp.status_code == 303
        assert (await other.get("/api/v1/session")).status_code == 401
        assert (await env.client.get("/api/v1/session")).status_code == 401


async def test_registration_off_by_default(env: Env) -> None:
    assert (await env.client.get("/register")).status_code == 404
    assert (await env.client.post("/register", data={})).status_code == 404


async def test_html_error_page_for_browsers(env: Env) -> None:
    resp = await env.client.post(
        "/account/sessions/end-all", data={"csrf_token": "x"}, headers={"accept": "text/html"}
    )
    assert resp.status_code == 401
    assert resp.headers["content-type"].startswith("text/html")
    assert "Please log in" in resp.text
