"""Bad input gets a clear 4xx JSON answer, never a 500, and writes nothing."""

from __future__ import annotations

import pytest

from .conftest import PASSWORD, Env


async def _session_count(env: Env) -> int:
    total = 0
    for name in ("alice", "bob"):
        user = await env.services.accounts.get_by_username(name)
        assert user is not None
        total += len(await env.services.sessions.list_for_user(user.id))
    return total


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b'{"username": "alice", "password": ', "application/json", 400, "invalid_json"),
        (b"\xff\xfe{}", "application/json", 400, "invalid_request"),
        (b"[1, 2]", "application/json", 400, "invalid_json"),
        (b'"alice"', "application/json", 400, "invalid_json"),
        (b"null", "application/json", 400, "invalid_json"),
        (b'{"username": "alice", "password": NaN}', "application/json", 400, "invalid_json"),
        (b'{"username": 1, "password": "x"}', "application/json", 400, "invalid_request"),
        (b'{"username": "alice"}', "application/json", 400, "invalid_request"),
        (
            b'{"username": "alice", "password": "x", "admin": true}',
            "application/json",
            400,
            "invalid_request",
        ),
        (b'{"a":' * 40 + b"1" + b"}" * 40, "application/json", 400, "invalid_json"),
        (
            b"username=alice&password=x",
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
        ),
        (b'{"username": "alice", "password": "x"}', "text/plain", 415, "unsupported_media_type"),
        (b'{"username": "alice", "password": "x"}', "", 415, "unsupported_media_type"),
    ],
)
async def test_malformed_login_bodies(
    env: Env, content: bytes, content_type: str, status: int, code: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    resp = await env.client.post("/api/v1/session", content=content, headers=headers)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"] == code
    assert "set-cookie" not in resp.headers
    assert await _session_count(env) == 0


async def test_oversized_body_is_413(env: Env) -> None:
    big = b'{"username": "alice", "password": "' + b"x" * 100_000 + b'"}'
    resp = await env.client.post(
        "/api/v1/session", content=big, headers={"content-type": "application/json"}
    )
    assert resp.status_code == 413
    assert resp.json()["error"] == "payload_too_large"
    assert await _session_count(env) == 0


async def test_lying_content_length_is_refused(env: Env) -> None:
    resp = await env.client.post(
        "/api/v1/session",
        content=b"{}",
        headers={"content-type": "application/json", "content-length": "abc"},
    )
    assert resp.status_code == 400


@pytest.mark.parametrize(
    "cookie",
    [
        "garbage",
        "A" * 42,
        "A" * 44,
        "!" * 43,
        "A" * 5000,
        "é" * 43,
        "",
        "A" * 42 + "=",
    ],
)
async def test_garbage_cookies_are_401(env: Env, cookie: str) -> None:
    headers = {"cookie": f"dojang_session={cookie}".encode()}  # raw UTF-8 bytes on the wire
    for path in ("/api/v1/session", "/auth/check"):
        resp = await env.client.get(path, headers=headers)
        assert resp.status_code == 401, (path, cookie)


async def test_unknown_well_formed_cookie_is_401_and_creates_nothing(env: Env) -> None:
    resp = await env.client.get("/api/v1/session", headers={"cookie": "dojang_session=" + "A" * 43})
    assert resp.status_code == 401
    assert await _session_count(env) == 0


async def test_oversized_cookie_header(env: Env) -> None:
    await env.login()
    real = env.client.cookies["dojang_session"]
    env.client.cookies.clear()
    header = "x=" + "y" * 20000 + f"; dojang_session={real}"
    resp = await env.client.get("/auth/check", headers={"cookie": header})
    assert resp.status_code == 401


async def test_unknown_route_and_method_are_json(env: Env) -> None:
    nf = await env.client.get("/api/v1/nope")
    assert nf.status_code == 404 and nf.json()["error"] == "not_found"
    bad = await env.client.put("/api/v1/session")
    assert bad.status_code == 405 and bad.json()["error"] == "method_not_allowed"


async def test_malformed_sid_in_path_is_404(env: Env) -> None:
    token = (await env.login()).json()["csrf_token"]
    for sid in ("..%2F..", "x" * 300, "%00"):
        resp = await env.client.delete(f"/api/v1/sessions/{sid}", headers={"x-csrf-token": token})
        assert resp.status_code in (404, 400), sid
        assert resp.headers["content-type"].startswith("application/json")


async def test_get_never_changes_state(env: Env) -> None:
    """No state change on GET: logout and session ending answer 405 to GET."""
    await env.login()
    for path in ("/logout", "/account/sessions/end-all"):
        resp = await env.client.get(path)
        assert resp.status_code == 405, path
    assert (await env.client.get("/api/v1/session")).status_code == 200


async def test_good_login_still_works_after_bad_input(env: Env) -> None:
    for _ in range(3):
        await env.client.post(
            "/api/v1/session", content=b"{", headers={"content-type": "application/json"}
        )
    resp = await env.client.post(
        "/api/v1/session", json={"username": "alice", "password": PASSWORD}
    )
    assert resp.status_code == 201
