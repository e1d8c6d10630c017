"""Bad input on the HTML form endpoints and garbage cookies: 4xx or a redirect, never a 500,
and nothing written (no session, audit or throttle row)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from dojang.storage.accounts_tables import login_throttle_table
from dojang.storage.audit_tables import audit_table
from dojang.storage.sessions_tables import sessions_table

from .conftest import PASSWORD, Env
from .test_pages import _field

FORM = "application/x-www-form-urlencoded"


async def _rows(env: Env) -> dict[str, int]:
    counts = {}
    async with env.services.db.connection() as conn:
        for table in (sessions_table, audit_table, login_throttle_table):
            query = select(func.count()).select_from(table)
            counts[table.name] = int((await conn.execute(query)).scalar_one())
    return counts


def _bad_bodies(token: str) -> dict[str, tuple[bytes, dict[str, str], int]]:
    """name → (body, headers, expected status); each would otherwise be a good form."""
    good = f"csrf_token={token}&next=%2Faccount&username=alice&password={PASSWORD}"
    ok = good.encode()
    return {
        "json content type": (ok, {"content-type": "application/json"}, 415),
        "text/plain": (ok, {"content-type": "text/plain"}, 415),
        "multipart": (ok, {"content-type": "multipart/form-data; boundary=x"}, 415),
        "no content type": (ok, {}, 415),
        "raw invalid utf-8": (ok + b"&x=\xff\xfe", {"content-type": FORM}, 400),
        "escaped invalid utf-8": (ok + b"&x=%FF%FE", {"content-type": FORM}, 400),
        "repeated field": (ok + b"&username=bob", {"content-type": FORM}, 400),
        "repeated token": (ok + f"&csrf_token={token}".encode(), {"content-type": FORM}, 400),
        "too many fields": (ok + b"&f=1" * 80, {"content-type": FORM}, 400),
        "oversized": (ok + b"&pad=" + b"x" * 9000, {"content-type": FORM}, 413),
        "non-numeric length": (ok, {"content-type": FORM, "content-length": "12x"}, 400),
    }


BAD_BODY_NAMES = list(_bad_bodies("t"))


@pytest.mark.parametrize("case", BAD_BODY_NAMES)
async def test_bad_login_form_is_4xx_and_writes_nothing(env: Env, case: str) -> None:
    page = await env.client.get("/login")  # a valid login-CSRF pair: only the body is wrong
    token = _field(page.text, "csrf_token")
    body, headers, status = _bad_bodies(token)[case]
    before = await _rows(env)
    resp = await env.client.post("/login", content=body, headers=headers)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"] in (
        "unsupported_media_type",
        "invalid_request",
        "payload_too_large",
    )
    assert "dojang_session" not in env.client.cookies
    assert await _rows(env) == before


@pytest.mark.parametrize("path", ["/logout", "/account/sessions/end-all"])
@pytest.mark.parametrize("case", BAD_BODY_NAMES)
async def test_bad_body_on_session_forms_ends_nothing(env: Env, path: str, case: str) -> None:
    token = (await env.login()).json()["csrf_token"]
    body, headers, status = _bad_bodies(token)[case]
    before = await _rows(env)
    resp = await env.client.post(path, content=body, headers=headers)
    assert resp.status_code == status, resp.text
    assert await _rows(env) == before
    assert (await env.client.get("/api/v1/session")).status_code == 200


async def _dribble(total: int) -> AsyncIterator[bytes]:
    """A chunked body with no Content-Length: only counting while reading can stop it."""
    yield b"username=alice&password="
    sent = 0
    while sent < total:
        yield b"x" * 1024
        sent += 1024


async def test_streamed_oversized_form_without_length_is_413(env: Env) -> None:
    page = await env.client.get("/login")
    assert page.status_code == 200
    before = await _rows(env)
    resp = await env.client.post(
        "/login", content=_dribble(64 * 1024), headers={"content-type": FORM}
    )
    assert resp.status_code == 413
    assert resp.json()["error"] == "payload_too_large"
    assert resp.request.headers.get("content-length") is None  # really streamed
    assert await _rows(env) == before


GARBAGE_COOKIES: list[bytes] = [
    b"\xff",
    b"dojang_session=\xff",
    b"dojang_session=" + b"\xff" * 43,
    b"dojang_session=" + "é".encode() * 22,
    b"dojang_session=\x7f" + b"A" * 42,
    b"dojang_session",
    b"dojang_session=",
    b";;;=;=",
    b'dojang_session="' + b"A" * 41 + b'"',
    b"dojang_session=%41" + b"A" * 40,
    b"dojang_session=" + b"A" * 43 + b"; dojang_session=" + b"B" * 43,
    b"dojang_session=" + b"A" * 9000,
]


@pytest.mark.parametrize("cookie", GARBAGE_COOKIES, ids=range(len(GARBAGE_COOKIES)))
async def test_garbage_cookies_never_500(env: Env, cookie: bytes) -> None:
    """Hostile cookie bytes read as "no session" everywhere, never as an error."""
    await env.login()  # a live session exists (and is not the one the garbage names)
    env.client.cookies.clear()
    before = await _rows(env)
    headers: dict[str, Any] = {"cookie": cookie}
    answers = {
        "account": await env.client.get("/account", headers=headers),
        "api": await env.client.get("/api/v1/session", headers=headers),
        "check": await env.client.get("/auth/check", headers=headers),
        "logout": await env.client.post(
            "/logout", content=b"csrf_token=x", headers={**headers, "content-type": FORM}
        ),
        "api logout": await env.client.delete(
            "/api/v1/session", headers={**headers, "x-csrf-token": "x"}
        ),
    }
    assert answers["account"].status_code == 303
    assert answers["account"].headers["location"].startswith("/login")
    assert answers["api"].status_code == 401
    assert answers["check"].status_code == 401
    assert answers["logout"].status_code == 303
    assert answers["logout"].headers["location"] == "/login"
    assert answers["api logout"].status_code == 401
    after = await _rows(env)
    assert after["sessions"] == before["sessions"]  # the live session was not touched
    assert after["login_throttle"] == before["login_throttle"]


UNDECODABLE_NEXT = ["%FF", "/%FF%FE", "%00", "/%00", "%C0%AF%C0%AFevil.com", "/%ED%B3%BF"]


@pytest.mark.parametrize("target", UNDECODABLE_NEXT)
async def test_undecodable_next_on_login_page_is_safe(env: Env, target: str) -> None:
    """``next`` that is not UTF-8 once decoded never becomes an off-site redirect or a 500."""
    page = await env.client.get("/login?next=" + target)
    assert page.status_code == 200
    kept = _field(page.text, "next")
    assert kept.startswith("/") and not kept.startswith(("//", "/\\"))
    await env.login()
    redirect = await env.client.get("/login?next=" + target)
    assert redirect.status_code == 303
    location = redirect.headers["location"]
    assert location.startswith("/") and not location.startswith(("//", "/\\"))
    assert "evil" not in location  # a replacement character at most, on our own origin
