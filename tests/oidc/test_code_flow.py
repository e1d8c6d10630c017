"""Authorization code flow with PKCE, ID tokens, userinfo and refresh-token rotation."""

from __future__ import annotations

import asyncio

from dojang import Verifier
from dojang.errors import InvalidToken, WrongTokenType
from dojang.jose import decode_segments, parse_json_object
from tests.oidc.conftest import (
    REDIRECT,
    RP,
    Pkce,
    add_rp,
    client_url,
    get_code,
    query_of,
    redeem,
    refresh,
)
from tests.server.conftest import Env


def _claims(token: str) -> dict[str, object]:
    header, payload, _, _ = decode_segments(token)
    return {"header": header, **parse_json_object(payload)}


async def test_discovery_document(env: Env) -> None:
    r = await env.client.get("/.well-known/openid-configuration")
    assert r.status_code == 200
    meta = r.json()
    assert meta["issuer"] == env.settings.issuer
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["response_types_supported"] == ["code"]
    assert meta["backchannel_logout_supported"] is True
    assert meta["end_session_endpoint"].endswith("/oauth2/logout")


async def test_no_session_goes_to_dojang_login(env: Env, rp: RP) -> None:
    pkce = Pkce()
    r = await env.client.get(
        "/oauth2/authorize",
        params={
            "client_id": rp.client_id,
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": "openid",
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
        },
    )
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=%2Foauth2%2Fauthorize%3F")


async def test_full_flow_consent_tokens_userinfo(env: Env, rp: RP) -> None:
    await env.login()
    pkce = Pkce()
    code, params = await get_code(env, rp, pkce)
    r = await redeem(env, rp, code, pkce)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "openid profile"
    idt = _claims(body["id_token"])
    assert idt["header"]["typ"] == "JWT"  # type: ignore[index]
    assert idt["aud"] == rp.client_id and idt["iss"] == env.settings.issuer
    assert idt["nonce"] == params["nonce"]
    assert int(idt["exp"]) - int(idt["iat"]) <= 300  # type: ignore[call-overload]
    assert idt["amr"] == ["pwd"] and "auth_time" in idt and "acr" in idt
    session = (await env.client.get("/api/v1/session")).json()
    assert idt["sid"] == session["sid"]
    u = await env.new_client().get(
        "/oauth2/userinfo", headers={"authorization": f"Bearer {body['access_token']}"}
    )
    assert u.status_code == 200, u.text
    assert u.json() == {"sub": idt["sub"], "preferred_username": "alice"}


async def test_consent_is_remembered_per_client(env: Env, rp: RP) -> None:
    await env.login()
    await get_code(env, rp, Pkce())  # consents
    r = await env.client.get(
        "/oauth2/authorize",
        params={
            "client_id": rp.client_id,
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": "openid profile",
            "code_challenge": Pkce().challenge,
            "code_challenge_method": "S256",
        },
    )
    assert r.status_code == 302 and "code=" in r.headers["location"]
    other = await add_rp(env, "other")
    r2 = await env.client.get(
        "/oauth2/authorize",
        params={
            "client_id": other.client_id,
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": "openid",
            "code_challenge": Pkce().challenge,
            "code_challenge_method": "S256",
        },
    )
    assert r2.status_code == 200 and 'value="allow"' in r2.text


async def test_first_party_skips_consent_and_public_client_needs_no_secret(env: Env) -> None:
    rp = await add_rp(env, "spa", client_type="public", first_party=True)
    assert rp.secret is None
    await env.login()
    pkce = Pkce()
    r = await env.client.get(
        "/oauth2/authorize",
        params={
            "client_id": rp.client_id,
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": "openid",
            "state": "s",
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
        },
    )
    assert r.status_code == 302
    q = query_of(client_url(r))
    assert q["iss"] == env.settings.issuer  # RFC 9207
    t = await redeem(env, rp, q["code"], pkce)
    assert t.status_code == 200, t.text


async def test_deny_returns_access_denied(env: Env, rp: RP) -> None:
    await env.login()
    pkce = Pkce()
    r = await env.client.get(
        "/oauth2/authorize",
        params={
            "client_id": rp.client_id,
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": "openid",
            "state": "xyz",
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
        },
    )
    csrf = r.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    from tests.oidc.conftest import _hidden

    d = await env.client.post(
        "/oauth2/authorize", data={**_hidden(r.text), "csrf_token": csrf, "decision": "deny"}
    )
    q = query_of(client_url(d))
    assert q["error"] == "access_denied" and q["state"] == "xyz"


async def test_id_token_and_access_token_never_interchangeable(env: Env, rp: RP) -> None:
    """Token confusion: an ID token must not pass as an access token, nor the reverse."""
    await env.login()
    pkce = Pkce()
    code, _ = await get_code(env, rp, pkce)
    body = (await redeem(env, rp, code, pkce)).json()
    u = await env.new_client().get(
        "/oauth2/userinfo", headers={"authorization": f"Bearer {body['id_token']}"}
    )
    assert u.status_code == 401
    verifier = Verifier(
        issuer=env.settings.issuer, audience=rp.client_id, jwks=env.services.keyset, clock=env.clock
    )
    try:
        verifier.verify(body["id_token"])
        raise AssertionError("an ID token passed as an access token")
    except WrongTokenType:
        pass
    id_verifier = Verifier(
        issuer=env.settings.issuer,
        audience=str(_claims(body["access_token"])["aud"]),
        jwks=env.services.keyset,
        typ="JWT",
        clock=env.clock,
    )
    try:
        id_verifier.verify(body["access_token"])
        raise AssertionError("an access token passed as an ID token")
    except InvalidToken:
        pass
    # The logout endpoint's id_token_hint takes ID tokens only.
    r = await env.client.get("/oauth2/logout", params={"id_token_hint": body["access_token"]})
    assert r.status_code == 400


async def test_refresh_rotation_and_reuse_ends_family_and_session(env: Env, rp: RP) -> None:
    """Refresh-token theft: replaying a rotated token ends the family and the dojang session."""
    await env.login()
    pkce = Pkce()
    code, _ = await get_code(env, rp, pkce)
    first = (await redeem(env, rp, code, pkce)).json()
    r1 = await refresh(env, rp, first["refresh_token"])
    assert r1.status_code == 200, r1.text
    second = r1.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert "nonce" not in _claims(second["id_token"])
    # The thief replays the first token.
    replay = await refresh(env, rp, first["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    # The whole family is dead, and so is the dojang session.
    r2 = await refresh(env, rp, second["refresh_token"])
    assert r2.status_code == 400 and r2.json()["error"] == "invalid_grant"
    assert (await env.client.get("/api/v1/session")).status_code == 401
    u = await env.new_client().get(
        "/oauth2/userinfo", headers={"authorization": f"Bearer {second['access_token']}"}
    )
    assert u.status_code == 401


async def test_concurrent_uses_of_one_refresh_token_let_exactly_one_through(
    env: Env, rp: RP
) -> None:
    """Rotation is atomic: of 10 simultaneous uses one wins, the rest are reuse (family ends)."""
    await env.login()
    pkce = Pkce()
    code, _ = await get_code(env, rp, pkce)
    token = (await redeem(env, rp, code, pkce)).json()["refresh_token"]
    answers = await asyncio.gather(*(refresh(env, rp, token) for _ in range(10)))
    assert sorted(a.status_code for a in answers).count(200) == 1
    assert all(a.json()["error"] == "invalid_grant" for a in answers if a.status_code != 200)
    (winner,) = [a.json() for a in answers if a.status_code == 200]
    # The race was a replay: the winner's successor died with the family.
    r = await refresh(env, rp, winner["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    refreshed = await env.services.audit.search(action="oidc.refreshed")
    assert len(refreshed) == 1 and refreshed[0].actor == rp.client_id


async def test_refresh_dies_with_the_session(env: Env, rp: RP) -> None:
    await env.login()
    pkce = Pkce()
    code, _ = await get_code(env, rp, pkce)
    tokens = (await redeem(env, rp, code, pkce)).json()
    assert (
        await env.client.delete(
            "/api/v1/session",
            headers={
                "x-csrf-token": (await env.client.get("/api/v1/session")).json()["csrf_token"]
            },
        )
    ).status_code in (200, 204)
    r = await refresh(env, rp, tokens["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_refresh_scope_can_narrow_not_widen(env: Env, rp: RP) -> None:
    await env.login()
    pkce = Pkce()
    code, _ = await get_code(env, rp, pkce, scope="openid")
    tokens = (await redeem(env, rp, code, pkce)).json()
    wide = await refresh(env, rp, tokens["refresh_token"], scope="openid profile")
    assert wide.status_code == 400 and wide.json()["error"] == "invalid_scope"


async def test_refresh_token_of_another_client_is_refused(env: Env, rp: RP) -> None:
    other = await add_rp(env, "other")
    await env.login()
    pkce = Pkce()
    code, _ = await get_code(env, rp, pkce)
    tokens = (await redeem(env, rp, code, pkce)).json()
    r = await refresh(env, other, tokens["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_prompt_none_and_max_age(env: Env, rp: RP) -> None:
    pkce = Pkce()
    base = {
        "client_id": rp.client_id,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "openid",
        "state": "s1",
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
    }
    r = await env.client.get("/oauth2/authorize", params={**base, "prompt": "none"})
    assert query_of(client_url(r))["error"] == "login_required"
    await env.login()
    r = await env.client.get("/oauth2/authorize", params={**base, "prompt": "none"})
    assert query_of(client_url(r))["error"] == "consent_required"
    await get_code(env, rp, pkce, scope="openid")  # consent once
    env.clock.advance(120)
    r = await env.client.get("/oauth2/authorize", params={**base, "max_age": "60"})
    assert r.status_code == 200 and 'action="/login"' in r.text  # fresh login demanded
    r = await env.client.get("/oauth2/authorize", params={**base, "prompt": "login"})
    assert r.status_code == 200 and 'action="/login"' in r.text
    assert "prompt" not in r.text.split('name="next" value="', 1)[1].split('"', 1)[0]
    r = await env.client.get(
        "/oauth2/authorize", params={**base, "max_age": "60", "prompt": "none"}
    )
    assert query_of(client_url(r))["error"] == "login_required"
