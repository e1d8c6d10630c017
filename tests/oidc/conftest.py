"""OIDC test helpers: registered relying parties and a code-flow driver over the in-process app.

The app runs in-process through ``httpx.ASGITransport`` (see ``tests/server/conftest.py``);
nothing is mocked. Redirect URIs are loopback URLs that the in-process tests never contact.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from dojang.accounts.clients import OIDCClient
from dojang.clock import FrozenClock
from tests.server.conftest import Env, make_env

REDIRECT = "http://127.0.0.1:9/callback"
POST_LOGOUT = "http://127.0.0.1:9/signed-out"
TOKEN = "/oauth2/token"


@dataclass
class RP:
    """A registered relying party and its secret (None for public clients)."""

    client: OIDCClient
    secret: str | None

    @property
    def client_id(self) -> str:
        """The client id."""
        return self.client.client_id

    def auth(self) -> httpx.Auth:
        """client_secret_basic credentials (no authentication for a public client)."""
        return httpx.Auth() if self.secret is None else httpx.BasicAuth(self.client_id, self.secret)


@dataclass
class Pkce:
    """A PKCE pair (RFC 7636 §4.1-4.2)."""

    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        """S256 challenge."""
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture
async def env(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Env]:
    """The in-process app (SQLite file, http loopback)."""
    async for e in make_env(tmp_path, clock):
        yield e


async def add_rp(
    env: Env,
    name: str = "shop",
    *,
    client_type: str = "confidential",
    first_party: bool = False,
    backchannel: str | None = None,
) -> RP:
    """Register a relying party."""
    client, secret = await env.services.clients.add_oidc_client(
        name,
        client_type=client_type,
        redirect_uris=[REDIRECT],
        post_logout_redirect_uris=[POST_LOGOUT],
        backchannel_logout_uri=backchannel,
        first_party=first_party,
    )
    return RP(client, secret)


@pytest.fixture
async def rp(env: Env) -> RP:
    """A confidential, third-party relying party."""
    return await add_rp(env)


def auth_params(rp: RP, pkce: Pkce, **extra: str) -> dict[str, str]:
    """A well-formed authorization request."""
    params = {
        "client_id": rp.client_id,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "openid profile",
        "state": "st-" + secrets.token_urlsafe(8),
        "nonce": "n-" + secrets.token_urlsafe(8),
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
    }
    params.update(extra)
    return {k: v for k, v in params.items() if v != "<omit>"}


def client_url(response: httpx.Response) -> str:
    """Where dojang sends the browser back to the client (302 or the refresh page)."""
    if response.status_code == 302:
        return response.headers["location"]
    assert response.status_code == 200, response.text
    refresh = response.headers["refresh"]
    return refresh.split("url=", 1)[1]


def query_of(url: str) -> dict[str, str]:
    """The query of ``url`` as a flat dict."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def get_code(
    env: Env, rp: RP, pkce: Pkce, client: httpx.AsyncClient | None = None, **extra: str
) -> tuple[str, dict[str, str]]:
    """Run authorize (+ consent if asked) for a logged-in browser; return (code, params)."""
    c = client or env.client
    params = auth_params(rp, pkce, **extra)
    r = await c.get("/oauth2/authorize", params=params)
    if r.status_code == 200 and "decision" in r.text:
        r = await allow(c, r)
    q = query_of(client_url(r))
    assert "code" in q, q
    assert q["state"] == params["state"]
    return q["code"], params


async def allow(c: httpx.AsyncClient, consent_page: httpx.Response) -> httpx.Response:
    """Submit the consent form of ``consent_page`` with "allow" (its CSRF token included)."""
    html = consent_page.text
    csrf = html.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    form = {**_hidden(html), "csrf_token": csrf, "decision": "allow"}
    return await c.post("/oauth2/authorize", data=form)


def _hidden(html: str) -> dict[str, str]:
    import html as html_lib
    import re

    out = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html):
        out[name] = html_lib.unescape(value)
    return out


async def redeem(env: Env, rp: RP, code: str, pkce: Pkce, **extra: str) -> httpx.Response:
    """POST the code to the token endpoint."""
    data: dict[str, Any] = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": pkce.verifier,
    }
    if rp.secret is None:
        data["client_id"] = rp.client_id
    data.update(extra)
    data = {k: v for k, v in data.items() if v != "<omit>"}
    return await env.new_client().post(TOKEN, data=data, auth=rp.auth())


async def refresh(env: Env, rp: RP, token: str, **extra: str) -> httpx.Response:
    """Use a refresh token."""
    data = {"grant_type": "refresh_token", "refresh_token": token, **extra}
    if rp.secret is None:
        data["client_id"] = rp.client_id
    return await env.new_client().post(TOKEN, data=data, auth=rp.auth())
