"""Bad input at the OIDC endpoints: spec error codes, never a redirect to an unverified URI,
never a 500. One misuse per test."""

from __future__ import annotations

import pytest

from tests.oidc.conftest import (
    REDIRECT,
    RP,
    Pkce,
    add_rp,
    auth_params,
    client_url,
    get_code,
    query_of,
    redeem,
)
from tests.server.conftest import Env


async def _authorize(env: Env, **params: str) -> tuple[int, str | None, str]:
    r = await env.client.get("/oauth2/authorize", params=params)
    location = r.headers.get("location") or (
        r.headers["refresh"].split("url=", 1)[1] if "refresh" in r.headers else None
    )
    return r.status_code, location, r.text


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://127.0.0.1:9/callback/extra",  # prefix match is not a match
        "http://127.0.0.1:9/CALLBACK",
        "http://127.0.0.1:9/callback?x=1",
        "https://evil.example/callback",
        "<omit>",
    ],
)
async def test_unregistered_redirect_uri_is_never_redirected_to(
    env: Env, rp: RP, redirect_uri: str
) -> None:
    """Open redirector (RFC 6749 §10.15): mismatched URIs get dojang's own error page."""
    await env.login()
    status, location, text = await _authorize(
        env, **auth_params(rp, Pkce(), redirect_uri=redirect_uri)
    )
    assert status == 400 and location is None
    assert "redirect_uri" in text


async def test_unknown_client_gets_error_page(env: Env, rp: RP) -> None:
    status, location, _ = await _authorize(env, **auth_params(rp, Pkce(), client_id="nope"))
    assert status == 400 and location is None


async def test_repeated_parameter_is_refused(env: Env, rp: RP) -> None:
    params: list[tuple[str, str | int | float | bool | None]] = [
        *auth_params(rp, Pkce()).items(),
        ("redirect_uri", "https://evil.example/"),
    ]
    r = await env.client.get("/oauth2/authorize", params=params)
    assert r.status_code == 400 and "location" not in r.headers


async def test_oversized_parameters(env: Env, rp: RP) -> None:
    status, location, _ = await _authorize(env, **auth_params(rp, Pkce(), state="s" * 5000))
    assert status == 400 and location is None
    status, location, _ = await _authorize(env, **auth_params(rp, Pkce(), nonce="n" * 300))
    assert status == 400 and location is None


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": "code id_token"}, "unsupported_response_type"),
        ({"response_mode": "fragment"}, "invalid_request"),
        ({"response_mode": "form_post"}, "invalid_request"),
        ({"code_challenge": "<omit>"}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": "<omit>"}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"scope": "profile"}, "invalid_scope"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"prompt": "select_account"}, "invalid_request"),
        ({"max_age": "-1"}, "invalid_request"),
        ({"request": "eyJ..."}, "request_not_supported"),
        ({"request_uri": "https://x.example/r"}, "request_uri_not_supported"),
    ],
)
async def test_bad_request_errors_go_back_to_the_client(
    env: Env, rp: RP, override: dict[str, str], error: str
) -> None:
    status, location, _ = await _authorize(env, **auth_params(rp, Pkce(), state="keep", **override))
    assert status in (200, 302) and location is not None, status
    assert location.startswith(REDIRECT + "?")
    q = query_of(location)
    assert q["error"] == error and q["state"] == "keep"


async def _code(env: Env, rp: RP) -> tuple[str, Pkce]:
    await env.login()
    pkce = Pkce()
    code, _ = await get_code(env, rp, pkce)
    return code, pkce


async def test_wrong_pkce_verifier(env: Env, rp: RP) -> None:
    code, _ = await _code(env, rp)
    r = await redeem(env, rp, code, Pkce())
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_missing_pkce_verifier_burns_the_code(env: Env, rp: RP) -> None:
    code, pkce = await _code(env, rp)
    r = await redeem(env, rp, code, pkce, code_verifier="<omit>")
    assert r.json()["error"] == "invalid_grant"
    assert (await redeem(env, rp, code, pkce)).json()["error"] == "invalid_grant"


async def test_redirect_uri_must_match_at_the_token_endpoint(env: Env, rp: RP) -> None:
    code, pkce = await _code(env, rp)
    r = await redeem(env, rp, code, pkce, redirect_uri="http://127.0.0.1:9/other")
    assert r.json()["error"] == "invalid_grant"


async def test_replayed_code_revokes_what_it_produced(env: Env, rp: RP) -> None:
    """Code replay (RFC 6749 §4.1.2): the second use fails and the first use's tokens die."""
    code, pkce = await _code(env, rp)
    first = await redeem(env, rp, code, pkce)
    assert first.status_code == 200
    tokens = first.json()
    again = await redeem(env, rp, code, pkce)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    u = await env.new_client().get(
        "/oauth2/userinfo", headers={"authorization": f"Bearer {tokens['access_token']}"}
    )
    assert u.status_code == 401
    r = await env.new_client().post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=rp.auth(),
    )
    assert r.json()["error"] == "invalid_grant"


async def test_code_used_by_another_client(env: Env, rp: RP) -> None:
    other = await add_rp(env, "other")
    code, pkce = await _code(env, rp)
    r = await redeem(env, other, code, pkce)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_expired_code(env: Env, rp: RP) -> None:
    code, pkce = await _code(env, rp)
    env.clock.advance(61)
    assert (await redeem(env, rp, code, pkce)).json()["error"] == "invalid_grant"


async def test_public_client_cannot_pretend_and_confidential_needs_secret(env: Env) -> None:
    conf = await add_rp(env, "conf")
    await env.login()
    pkce = Pkce()
    code, _ = await get_code(env, conf, pkce)
    r = await env.new_client().post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": pkce.verifier,
            "client_id": conf.client_id,
        },
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = await env.new_client().post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": code},
        auth=("svc_unknown", "wrong"),
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


async def test_token_endpoint_garbage(env: Env, rp: RP) -> None:
    c = env.new_client()
    r = await c.post(
        "/oauth2/token",
        content=b"\xff\xfe",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await c.post("/oauth2/token", data={"grant_type": "password"}, auth=rp.auth())
    assert r.json()["error"] == "unsupported_grant_type"
    r = await c.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": "x" * 5000},
        auth=rp.auth(),
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await c.post(
        "/oauth2/token",
        content=b"a=" + b"x" * 20000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413


async def test_consent_post_needs_csrf_token(env: Env, rp: RP) -> None:
    """Consent CSRF: a forged POST without the session's token is refused."""
    await env.login()
    r = await env.client.post(
        "/oauth2/authorize", data={**auth_params(rp, Pkce()), "decision": "allow"}
    )
    assert r.status_code == 403


async def test_userinfo_without_or_with_bad_token(env: Env) -> None:
    c = env.new_client()
    r = await c.get("/oauth2/userinfo")
    assert r.status_code == 401 and "Bearer" in r.headers["www-authenticate"]
    r = await c.get("/oauth2/userinfo", headers={"authorization": "Bearer not.a.jwt"})
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_client_url_helper_sanity(env: Env, rp: RP) -> None:
    await env.login()
    code, _ = await get_code(env, rp, Pkce())
    assert code
    r = await env.client.get("/oauth2/authorize", params=auth_params(rp, Pkce()))
    assert client_url(r).startswith(REDIRECT)
