"""Interop: Authlib's OAuth 2.0 client (httpx) runs code + PKCE, refresh rotation and userinfo
against dojang unchanged — a peer implementation reading our discovery document."""

from __future__ import annotations

import secrets
import warnings

from authlib.deprecate import AuthlibDeprecationWarning

from dojang import Verifier
from tests.oidc.conftest import REDIRECT, RP, client_url, query_of
from tests.server.conftest import Env

with warnings.catch_warnings():
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)  # httpx → httpx2 notice
    from authlib.integrations.httpx_client import AsyncOAuth2Client


async def test_authlib_code_pkce_refresh_userinfo(env: Env, rp: RP) -> None:
    meta = (await env.client.get("/.well-known/openid-configuration")).json()
    assert rp.secret is not None
    async with AsyncOAuth2Client(
        rp.client_id,
        rp.secret,
        scope="openid profile",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
        transport=env.client._transport,
        leeway=5,
    ) as client:
        verifier = secrets.token_urlsafe(48)
        nonce = secrets.token_urlsafe(12)
        url, state = client.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
        )
        # The browser leg: log in, consent.
        await env.login()
        from tests.oidc.conftest import allow

        answer = await allow(env.client, await env.client.get(url))
        callback = client_url(answer)
        assert query_of(callback)["state"] == state
        token = await client.fetch_token(
            meta["token_endpoint"], authorization_response=callback, code_verifier=verifier
        )
        claims = Verifier(
            issuer=env.settings.issuer,
            audience=rp.client_id,
            jwks=(await env.client.get(meta["jwks_uri"])).json(),
            typ="JWT",
            clock=env.clock,
        ).verify(token["id_token"])
        assert claims["nonce"] == nonce
        info = (await client.get(meta["userinfo_endpoint"])).json()
        assert info == {"sub": claims["sub"], "preferred_username": "alice"}
        # Rotation: each refresh returns a new refresh token; the old one is spent.
        old = token["refresh_token"]
        new = await client.refresh_token(meta["token_endpoint"], refresh_token=old)
        assert new["refresh_token"] != old
        newer = await client.refresh_token(
            meta["token_endpoint"], refresh_token=new["refresh_token"]
        )
        assert newer["refresh_token"] not in (old, new["refresh_token"])
        info2 = (await client.get(meta["userinfo_endpoint"])).json()
        assert info2["sub"] == claims["sub"]
