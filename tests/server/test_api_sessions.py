"""The JSON session API: log in, current session, log out, list/end sessions, CSRF."""

from __future__ import annotations

import httpx

from dojang.sessions.ids import hash_cookie

from .conftest import PASSWORD, Env


def _set_cookie(resp: httpx.Response) -> str:
    values = resp.headers.get_list("set-cookie")
    assert len(values) == 1, values
    return values[0]


async def _count_sessions(env: Env, username: str = "alice") -> int:
    user = await env.services.accounts.get_by_username(username)
    assert user is not None
    return len(await env.services.sessions.list_for_user(user.id))


async def test_login_sets_hardened_cookie_and_returns_session(env: Env) -> None:
    resp = await env.login()
    assert resp.status_code == 201
    body = resp.json()
    assert set(body) == {"sid", "csrf_token", "user", "created_at", "auth_time", "expires_at"}
    assert body["user"]["username"] == "alice"
    cookie = _set_cookie(resp)
    name, _, rest = cookie.partition("=")
    value = rest.split(";", 1)[0]
    assert name == "dojang_session"
    assert len(value) == 43  # 32 random bytes, base64url
    flags = {f.strip().split("=")[0].lower() for f in cookie.split(";")[1:]}
    assert {"path", "httponly", "samesite"} <= flags
    assert "samesite=lax" in cookie.lower()
    assert "secure" not in flags  # plain http loopback development only
    assert "max-age" not in flags  # not remember-me: a browser-session cookie
    # The store keys the session by the hash, never by the value itself.
    stored = await env.services.sessions.store.get(hash_cookie(value))
    assert stored is not None and stored.sid == body["sid"]
    assert body["sid"] != value


async def test_https_deployment_uses_host_prefix_and_secure(https_env: Env) -> None:
    resp = await https_env.login()
    cookie = _set_cookie(resp)
    assert cookie.startswith("__Host-dojang_session=")
    assert "; Secure" in cookie and "; HttpOnly" in cookie and "; Path=/" in cookie
    assert "Domain" not in cookie
    assert resp.headers["strict-transport-security"].startswith("max-age=")


async def test_remember_me_gives_persistent_cookie(env: Env) -> None:
    resp = await env.login(remember=True)
    assert resp.status_code == 201
    cookie = _set_cookie(resp)
    max_age = int(cookie.split("Max-Age=")[1].split(";")[0])
    assert max_age == int(env.settings.session_remember_me_lifetime)


async def test_current_session_and_logout(env: Env) -> None:
    login = (await env.login()).json()
    current = await env.client.get("/api/v1/session")
    assert current.status_code == 200
    assert current.json()["sid"] == login["sid"]
    assert current.headers["cache-control"] == "no-store"
    out = await env.client.delete("/api/v1/session", headers={"x-csrf-token": login["csrf_token"]})
    assert out.status_code == 204
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert (await env.client.get("/api/v1/session")).status_code == 401


async def test_logged_out_cookie_is_dead_even_if_replayed(env: Env) -> None:
    login = await env.login()
    stolen = env.client.cookies["dojang_session"]
    await env.client.delete("/api/v1/session", headers={"x-csrf-token": login.json()["csrf_token"]})
    async with env.new_client() as attacker:
        attacker.cookies.set("dojang_session", stolen)
        assert (await attacker.get("/api/v1/session")).status_code == 401


async def test_no_session_is_401_json(env: Env) -> None:
    resp = await env.client.get("/api/v1/session")
    assert resp.status_code == 401
    assert resp.json()["error"] == "session_not_found"


async def test_bad_credentials_look_identical(env: Env) -> None:
    """Enumeration: unknown user, wrong password and disabled user answer byte-for-byte alike."""
    await env.services.accounts.create_user("carol", PASSWORD)
    await env.services.accounts.disable("carol")
    answers = []
    for username, password in (
        ("alice", "wrong password!"),
        ("nobody", PASSWORD),
        ("carol", PASSWORD),
        ("x" * 64, PASSWORD),
    ):
        async with env.new_client() as c:
            r = await env.login(c, username, password)
            answers.append((r.status_code, r.content, "set-cookie" in r.headers))
    assert answers[0][0] == 401
    assert all(a == answers[0] for a in answers), answers


async def test_login_on_top_of_a_session_rotates_the_id(env: Env) -> None:
    """Session fixation: a cookie planted before login never becomes the logged-in session."""
    first = await env.login()
    planted = env.client.cookies["dojang_session"]
    second = await env.login(username="bob")
    assert second.status_code == 201
    fresh = env.client.cookies["dojang_session"]
    assert fresh != planted
    assert second.json()["sid"] != first.json()["sid"]
    assert second.json()["csrf_token"] != first.json()["csrf_token"]
    async with env.new_client() as c:
        c.cookies.set("dojang_session", planted)
        assert (await c.get("/api/v1/session")).status_code == 401


async def test_logout_requires_csrf_header(env: Env) -> None:
    await env.login()
    missing = await env.client.delete("/api/v1/session")
    assert missing.status_code == 403
    assert missing.json()["error"] == "csrf_failed"
    wrong = await env.client.delete("/api/v1/session", headers={"x-csrf-token": "A" * 43})
    assert wrong.status_code == 403
    assert (await env.client.get("/api/v1/session")).status_code == 200


async def test_csrf_token_of_another_session_is_refused(env: Env) -> None:
    """CSRF: a token that is valid for a different session must not work for this one."""
    await env.login()
    async with env.new_client() as other:
        other_token = (await env.login(other, "bob")).json()["csrf_token"]
    resp = await env.client.delete("/api/v1/session", headers={"x-csrf-token": other_token})
    assert resp.status_code == 403


async def test_cross_site_requests_are_refused(env: Env) -> None:
    """CSRF: Sec-Fetch-Site cross-site or a foreign Origin is refused even with the token."""
    token = (await env.login()).json()["csrf_token"]
    for headers in (
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
        {"origin": "https://evil.example"},
        {"origin": "null"},
    ):
        resp = await env.client.delete(
            "/api/v1/session", headers={"x-csrf-token": token, **headers}
        )
        assert resp.status_code == 403, headers
    same = await env.client.delete(
        "/api/v1/session",
        headers={
            "x-csrf-token": token,
            "origin": "http://127.0.0.1:8000",
            "sec-fetch-site": "same-origin",
        },
    )
    assert same.status_code == 204


async def test_cross_site_login_is_refused(env: Env) -> None:
    """Login CSRF through the API: a foreign Origin cannot log the victim in."""
    resp = await env.client.post(
        "/api/v1/session",
        json={"username": "alice", "password": PASSWORD},
        headers={"origin": "https://evil.example"},
    )
    assert resp.status_code == 403
    assert await _count_sessions(env) == 0


async def test_list_and_end_own_sessions(env: Env) -> None:
    token = (await env.login()).json()["csrf_token"]
    async with env.new_client() as phone:
        other_sid = (await env.login(phone)).json()["sid"]
        listed = (await env.client.get("/api/v1/sessions")).json()
        assert {s["sid"] for s in listed} >= {other_sid}
        assert sum(s["current"] for s in listed) == 1
        end = await env.client.delete(
            f"/api/v1/sessions/{other_sid}", headers={"x-csrf-token": token}
        )
        assert end.status_code == 204
        assert (await phone.get("/api/v1/session")).status_code == 401
        again = await env.client.delete(
            f"/api/v1/sessions/{other_sid}", headers={"x-csrf-token": token}
        )
        assert again.status_code == 404


async def test_cannot_end_another_users_session(env: Env) -> None:
    token = (await env.login()).json()["csrf_token"]
    async with env.new_client() as bob:
        bob_sid = (await env.login(bob, "bob")).json()["sid"]
        resp = await env.client.delete(
            f"/api/v1/sessions/{bob_sid}", headers={"x-csrf-token": token}
        )
        assert resp.status_code == 404
        assert (await bob.get("/api/v1/session")).status_code == 200


async def test_end_all_sessions(env: Env) -> None:
    token = (await env.login()).json()["csrf_token"]
    async with env.new_client() as phone, env.new_client() as bob:
        await env.login(phone)
        await env.login(bob, "bob")
        kept = await env.client.delete(
            "/api/v1/sessions?keep_current=true", headers={"x-csrf-token": token}
        )
        assert kept.status_code == 200 and kept.json() == {"ended": 1}
        assert (await phone.get("/api/v1/session")).status_code == 401
        assert (await env.client.get("/api/v1/session")).status_code == 200
        gone = await env.client.delete("/api/v1/sessions", headers={"x-csrf-token": token})
        assert gone.json() == {"ended": 1}
        assert (await env.client.get("/api/v1/session")).status_code == 401
        assert (await bob.get("/api/v1/session")).status_code == 200


async def test_login_throttled_after_repeated_failures(env: Env) -> None:
    statuses = []
    for _ in range(12):
        r = await env.login(password="wrong password!")
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["error"] == "throttled"
            break
    assert statuses[-1] == 429 and statuses[0] == 401
    # Even the right password is refused while blocked ...
    assert (await env.login()).status_code == 429
    # ... and the block expires by itself: no permanent lock-out.
    env.clock.advance(3600)
    assert (await env.login()).status_code == 201


async def test_idle_and_absolute_expiry(env: Env) -> None:
    await env.login()
    env.clock.advance(env.settings.session_idle_timeout - 10)
    assert (await env.client.get("/api/v1/session")).status_code == 200  # slides
    env.clock.advance(env.settings.session_idle_timeout - 10)
    assert (await env.client.get("/api/v1/session")).status_code == 200
    env.clock.advance(env.settings.session_idle_timeout + 1)
    assert (await env.client.get("/api/v1/session")).status_code == 401
    await env.login()
    step = env.settings.session_idle_timeout / 2
    elapsed = 0.0
    while elapsed + step < env.settings.session_absolute_lifetime:
        env.clock.advance(step)
        elapsed += step
        assert (await env.client.get("/api/v1/session")).status_code == 200
    env.clock.advance(step)
    assert (await env.client.get("/api/v1/session")).status_code == 401
