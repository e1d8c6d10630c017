"""CSRF over every state-changing route that acts on the caller's session.

Each forged request (missing token, wrong token, a token of another session, a cross-site
``Sec-Fetch-Site`` or a foreign ``Origin`` with the right token) is refused with 403 and
changes nothing: every session stays alive, nothing is minted, consented or audited as done.
A control request with the right token proves each request would otherwise have worked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from dojang.oidc import grants
from tests.oidc.conftest import RP, Pkce, add_rp, auth_params

from .conftest import PASSWORD, Env
from .test_pages import _field

AUDIENCE = "orders-api"
STATE_ACTIONS = (
    "logout",
    "session.revoked",
    "sessions.revoked_all",
    "token.minted",
    "oidc.consent_granted",
    "login.success",
)


@dataclass
class World:
    """Alice on a laptop (the caller) and a phone, Bob elsewhere, a relying party."""

    alice_id: str
    bob_id: str
    token: str  # the laptop session's CSRF token
    phone_sid: str
    phone_token: str
    bob_token: str
    rp: RP
    clients: list[httpx.AsyncClient]


async def _world(env: Env) -> World:
    await env.services.clients.add_audience(AUDIENCE, "orders:read")
    rp = await add_rp(env)
    laptop = (await env.login()).json()
    phone_client, bob_client = env.new_client(), env.new_client()
    phone = (await env.login(phone_client)).json()
    bob = (await env.login(bob_client, "bob")).json()
    return World(
        alice_id=laptop["user"]["id"],
        bob_id=bob["user"]["id"],
        token=laptop["csrf_token"],
        phone_sid=phone["sid"],
        phone_token=phone["csrf_token"],
        bob_token=bob["csrf_token"],
        rp=rp,
        clients=[phone_client, bob_client],
    )


async def _state(env: Env, w: World) -> tuple[Any, ...]:
    """Everything a forged request could change."""
    svc = env.services
    alice = sorted(s.sid for s in await svc.sessions.list_for_user(w.alice_id))
    bob = sorted(s.sid for s in await svc.sessions.list_for_user(w.bob_id))
    consent = await grants.store(svc).consented_scopes(w.alice_id, w.rp.client_id)
    done = [r.action for r in await svc.audit.search(limit=10_000) if r.action in STATE_ACTIONS]
    return alice, bob, consent, sorted(done)


# How each route takes its token: the X-CSRF-Token header (JSON API) or a form field.
Body = Callable[[World], dict[str, Any]]


@dataclass(frozen=True)
class Route:
    """One state-changing route and a request body that would succeed with the right token."""

    method: str
    path: str
    via: str  # "header" | "form"
    body: Body = lambda w: {}
    json: bool = False

    def url(self, w: World) -> str:
        return self.path.format(phone_sid=w.phone_sid)

    async def send(
        self, env: Env, w: World, token: str | None, headers: dict[str, str]
    ) -> httpx.Response:
        hdrs = dict(headers)
        body = self.body(w)
        if self.via == "header":
            if token is not None:
                hdrs["x-csrf-token"] = token
        elif token is not None:
            body = {**body, "csrf_token": token}
        kwargs: dict[str, Any] = {}
        if self.json:
            kwargs["json"] = body
        elif self.via == "form":
            # Always a form body (possibly empty), as a forged HTML form would send.
            hdrs["content-type"] = "application/x-www-form-urlencoded"
            kwargs["content"] = urlencode(body)
        return await env.client.request(self.method, self.url(w), headers=hdrs, **kwargs)


ROUTES = {
    "api log out": Route("DELETE", "/api/v1/session", "header"),
    "api end one": Route("DELETE", "/api/v1/sessions/{phone_sid}", "header"),
    "api end all": Route("DELETE", "/api/v1/sessions", "header"),
    "api mint token": Route(
        "POST",
        "/api/v1/tokens",
        "header",
        body=lambda w: {"audience": AUDIENCE, "scope": "orders:read"},
        json=True,
    ),
    "form log out": Route("POST", "/logout", "form"),
    "form end one": Route("POST", "/account/sessions/{phone_sid}/end", "form"),
    "form end all": Route("POST", "/account/sessions/end-all", "form"),
    "oidc consent": Route(
        "POST",
        "/oauth2/authorize",
        "form",
        body=lambda w: {**auth_params(w.rp, Pkce()), "decision": "allow"},
    ),
    "oidc log out": Route("POST", "/oauth2/logout", "form"),
}

ATTACKS: dict[str, Callable[[World], tuple[str | None, dict[str, str]]]] = {
    "missing token": lambda w: (None, {}),
    "empty token": lambda w: ("", {}),
    "wrong token": lambda w: ("A" * 43, {}),
    "other user's session token": lambda w: (w.bob_token, {}),
    "own other session's token": lambda w: (w.phone_token, {}),
    "cross-site fetch": lambda w: (w.token, {"sec-fetch-site": "cross-site"}),
    "same-site fetch": lambda w: (w.token, {"sec-fetch-site": "same-site"}),
    "foreign origin": lambda w: (w.token, {"origin": "https://evil.example"}),
    "null origin": lambda w: (w.token, {"origin": "null"}),
}


async def _closing(clients: list[httpx.AsyncClient], fn: Awaitable[None]) -> None:
    try:
        await fn
    finally:
        for c in clients:
            await c.aclose()


@pytest.mark.parametrize("route", list(ROUTES))
async def test_forged_state_change_is_refused_and_changes_nothing(env: Env, route: str) -> None:
    """CSRF: no forged request may log out, end sessions, mint tokens or grant consent."""
    w = await _world(env)

    async def check() -> None:
        before = await _state(env, w)
        for attack, forge in ATTACKS.items():
            token, headers = forge(w)
            resp = await ROUTES[route].send(env, w, token, headers)
            assert resp.status_code == 403, (attack, resp.text)
            assert resp.json()["error"] == "csrf_failed", attack
            assert "access_token" not in resp.text, attack
            assert "set-cookie" not in resp.headers, attack  # the cookie is not cleared either
            assert await _state(env, w) == before, attack
            assert (await env.client.get("/api/v1/session")).status_code == 200, attack

    await _closing(w.clients, check())


@pytest.mark.parametrize("route", list(ROUTES))
async def test_the_same_request_with_the_right_token_works(env: Env, route: str) -> None:
    """Control: the matrix's requests are well-formed, so its 403s come from the CSRF check."""
    w = await _world(env)

    async def check() -> None:
        before = await _state(env, w)
        headers = {"origin": env.settings.public_url, "sec-fetch-site": "same-origin"}
        resp = await ROUTES[route].send(env, w, w.token, headers)
        assert resp.status_code < 400, resp.text
        assert await _state(env, w) != before

    await _closing(w.clients, check())


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
        {"origin": "https://evil.example"},
        {"origin": "null"},
    ],
)
async def test_cross_site_form_login_is_refused(env: Env, headers: dict[str, str]) -> None:
    """Login CSRF: a cross-site form cannot log the victim into the attacker's account,
    even when it carries a valid login token and cookie pair."""
    page = await env.client.get("/login")
    form = {
        "csrf_token": _field(page.text, "csrf_token"),
        "next": "/account",
        "username": "bob",
        "password": PASSWORD,
    }
    resp = await env.client.post("/login", data=form, headers=headers)
    assert resp.status_code == 403
    assert resp.json()["error"] == "csrf_failed"
    assert "dojang_session" not in env.client.cookies
    bob = await env.services.accounts.get_by_username("bob")
    assert bob is not None and await env.services.sessions.list_for_user(bob.id) == []
    # The same form, same-origin, does log in: the refusal was the cross-site check.
    ok = await env.client.post("/login", data=form, headers={"sec-fetch-site": "same-origin"})
    assert ok.status_code == 303
