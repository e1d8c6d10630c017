"""dojang behind nginx ``auth_request``, with the shipped ``deploy/nginx/dojang.conf``.

One origin (nginx) serves dojang's pages and the orders API. These tests drive it the way the
outside world does: plain HTTP for the header contract, Debian's Chromium for the person's
journey (protected page → login → back to the page → log out → refused again), and the API
called directly with a token minted at the edge: after logout it refuses that token within
``REVOCATION_BOUND_S`` because it follows dojang's revocation feed.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Response

from dojang import Verifier

from .conftest import Edge
from .harness import AUDIENCE, REVOCATION_BOUND_S, until_refused

COOKIE = "dojang_session"  # plain name: the public URL is http loopback
LOGIN = re.compile(r"/login(\?.*)?$")


# ----------------------------------------------------------------------------- helpers


def _login(edge: Edge) -> tuple[str, dict[str, Any]]:
    """Log the demo user in through nginx with the JSON API: (cookie value, session body)."""
    with httpx.Client(base_url=edge.public.url, trust_env=False, timeout=10.0) as client:
        response = client.post(
            "/api/v1/session",
            json={"username": edge.dojang.username, "password": edge.dojang.password},
        )
    assert response.status_code == 201, response.text
    cookie = response.cookies.get(COOKIE)
    assert cookie, response.headers
    body: dict[str, Any] = response.json()
    return cookie, body


def _logout(edge: Edge, cookie: str, csrf: str) -> None:
    with httpx.Client(base_url=edge.public.url, trust_env=False, timeout=10.0) as client:
        response = client.delete(
            "/api/v1/session", headers={"cookie": f"{COOKIE}={cookie}", "x-csrf-token": csrf}
        )
    assert response.status_code in (200, 204), response.text


def _claims(token: str) -> dict[str, Any]:
    """The payload of a compact JWS, unverified (callers verify separately)."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def _verifier(edge: Edge) -> Verifier:
    """What a business server behind this edge embeds."""
    return Verifier(
        issuer=edge.dojang.public_url,
        audience=AUDIENCE,
        jwks=f"{edge.dojang.url}/.well-known/jwks.json",
    )


def _introspect(edge: Edge, token: str) -> dict[str, Any]:
    with httpx.Client(base_url=edge.public.url, trust_env=False, timeout=10.0) as client:
        response = client.post(
            "/oauth2/introspect",
            data={"token": token},
            auth=(edge.dojang.client_id, edge.dojang.client_secret),
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _next_of(location: str) -> str:
    parts = urlsplit(location)
    assert parts.path == "/login", location
    assert not parts.scheme and not parts.netloc, f"absolute redirect: {location}"
    return parse_qs(parts.query)["next"][0]


# ----------------------------------------------------------------------------- plain HTTP


def test_api_request_without_session_gets_401_json(edge: Edge, http: httpx.Client) -> None:
    """A program (no text/html in Accept) gets dojang's 401 JSON; the API is never reached."""
    response = http.get("/orders", headers={"accept": "application/json"})
    assert response.status_code == 401, edge.diagnostics()
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"error": "unauthenticated", "detail": "no live session"}
    assert response.headers["www-authenticate"] == 'Cookie realm="dojang"'
    assert response.headers["cache-control"] == "no-store"
    assert "accept" in response.headers["vary"].lower()


def test_browser_request_without_session_is_redirected_to_login(http: httpx.Client) -> None:
    """A page request gets 302 to the login form, which brings the person back afterwards."""
    response = http.get("/orders", headers={"accept": "text/html,application/xhtml+xml"})
    assert response.status_code == 302
    assert response.headers["location"] in ("/login?next=%2Forders", "/login?next=/orders")
    assert _next_of(response.headers["location"]) == "/orders"
    # A simple query survives; one that nginx cannot encode safely falls back to its path.
    kept = http.get("/orders?page=2", headers={"accept": "text/html"})
    assert _next_of(kept.headers["location"]) == "/orders?page=2"
    cut = http.get("/orders?a=1&next=//evil.example", headers={"accept": "text/html"})
    assert _next_of(cut.headers["location"]) == "/orders"
    # Open redirect: a protocol-relative request path never becomes `next` as is.
    sneaky = http.get("//evil.example/x", headers={"accept": "text/html"})
    assert sneaky.status_code == 302
    assert not _next_of(sneaky.headers["location"]).startswith("//")
    # The target is a real login form served through the same origin.
    page = http.get(response.headers["location"], headers={"accept": "text/html"})
    assert page.status_code == 200
    assert 'name="password"' in page.text


def test_internal_check_location_is_not_reachable(http: httpx.Client) -> None:
    """``/_dojang_check`` is nginx-internal: a client cannot probe it or bypass the app route."""
    assert http.get("/_dojang_check").status_code == 404


def test_forged_identity_headers_never_reach_the_app(edge: Edge) -> None:
    """Header spoofing: client-sent ``X-Dojang-*`` / ``Authorization`` are replaced, not passed.

    The echo instance runs the same template in front of an app that reflects what it got.
    """
    forged = {
        "accept": "application/json",
        "x-dojang-subject": "admin",
        "x-dojang-session": "forged-sid",
        "authorization": "Bearer forged",
    }
    with httpx.Client(base_url=edge.echo.url, trust_env=False, timeout=10.0) as client:
        # Without a session: refused at the edge, whatever the headers claim.
        refused = client.get("/anything", headers=forged)
        assert refused.status_code == 401
        assert refused.json()["error"] == "unauthenticated"

        cookie, session = _login(edge)
        seen = client.get(
            "/anything", headers={**forged, "cookie": f"theme=dark; {COOKIE}={cookie}; lang=ko"}
        )
    assert seen.status_code == 200, edge.diagnostics()
    headers: list[list[str]] = seen.json()["headers"]

    def values(name: str) -> list[str]:
        return [v for k, v in headers if k == name]

    user_id = session["user"]["id"]
    assert values("x-dojang-subject") == [user_id]
    assert values("x-dojang-session") == [session["sid"]]
    [authorization] = values("authorization")
    scheme, _, token = authorization.partition(" ")
    assert scheme == "Bearer" and token != "forged"
    claims = _verifier(edge).verify(token)
    assert claims["sub"] == user_id and claims["sid"] == session["sid"]
    assert claims["aud"] == AUDIENCE and claims["scope"] == "orders:read"
    # The app gets the access token, never the session credential; other cookies pass.
    [cookies] = values("cookie")
    assert COOKIE not in cookies
    assert "theme=dark" in cookies and "lang=ko" in cookies


def test_forged_bearer_with_a_session_is_replaced_by_the_minted_token(edge: Edge) -> None:
    """The orders API behind nginx sees the caller's real token, not the client's forgery."""
    cookie, session = _login(edge)
    with httpx.Client(base_url=edge.public.url, trust_env=False, timeout=10.0) as client:
        response = client.get(
            "/whoami",
            headers={
                "cookie": f"{COOKIE}={cookie}",
                "authorization": "Bearer forged",
                "x-dojang-subject": "admin",
            },
        )
    assert response.status_code == 200, edge.diagnostics()
    assert response.json()["sub"] == session["user"]["id"]
    assert response.json()["sid"] == session["sid"]


# ----------------------------------------------------------------------------- revocation


def test_a_logged_out_sessions_token_is_refused_by_the_api_within_the_bound(edge: Edge) -> None:
    """Logout reaches the business API: the token the app received is refused within the bound.

    The token is captured before logout exactly as the app gets it (nginx's ``Authorization``,
    seen by the echo app), then presented to the orders API *directly*, not through nginx: that
    API verifies locally, and only the revocation feed it follows can make it refuse a token
    whose signature, audience and lifetime are all still fine.
    """
    cookie, session = _login(edge)
    with httpx.Client(base_url=edge.echo.url, trust_env=False, timeout=10.0) as client:
        seen = client.get("/anything", headers={"cookie": f"{COOKIE}={cookie}"})
    assert seen.status_code == 200, edge.diagnostics()
    [authorization] = [v for k, v in seen.json()["headers"] if k == "authorization"]
    token = authorization.removeprefix("Bearer ")
    claims = _claims(token)
    assert claims["sid"] == session["sid"] and claims["aud"] == AUDIENCE

    with httpx.Client(base_url=edge.api_url, trust_env=False, timeout=10.0) as api:
        assert api.get("/healthz").json() == {"status": "ok", "revocations": "feed"}
        before = api.get("/whoami", headers={"authorization": f"Bearer {token}"})
        assert before.status_code == 200, edge.diagnostics()
        assert before.json()["sid"] == session["sid"]
        assert _introspect(edge, token)["active"] is True

        _logout(edge, cookie, session["csrf_token"])
        since = time.perf_counter()
        elapsed, refused = until_refused(api, "/whoami", token, since)

    assert refused.status_code == 401, f"still accepted after {elapsed * 1000:.0f} ms"
    assert elapsed < REVOCATION_BOUND_S, f"refused after {elapsed * 1000:.0f} ms"
    assert refused.json()["error"] == "revoked_token", refused.text
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    # Refused because of the logout, not because it expired meanwhile.
    assert time.time() < claims["exp"]
    # dojang itself: introspection says inactive, and nginx refuses the dead cookie.
    assert _introspect(edge, token) == {"active": False}
    with httpx.Client(base_url=edge.public.url, trust_env=False, timeout=10.0) as client:
        check = client.get(
            "/orders", headers={"cookie": f"{COOKIE}={cookie}", "accept": "application/json"}
        )
        assert check.status_code == 401
        # Through nginx with the captured token and the dead cookie: the check refuses
        # before the app is asked, whatever Authorization the client sends.
        forged = client.get(
            "/orders",
            headers={
                "cookie": f"{COOKIE}={cookie}",
                "authorization": f"Bearer {token}",
                "accept": "application/json",
            },
        )
        assert forged.status_code == 401
        assert forged.json() == {"error": "unauthenticated", "detail": "no live session"}


# ----------------------------------------------------------------------------- the browser


@pytest.fixture
def page(browser: Browser, edge: Edge) -> Iterator[Page]:
    """A fresh browser context (its own cookie jar) on the public origin."""
    context = browser.new_context(base_url=edge.public.url)
    try:
        yield context.new_page()
    finally:
        context.close()


def _document(page: Page, action: Any) -> Response:
    """Run ``action`` and return the last document response it led to (after redirects)."""
    with page.expect_response(
        lambda r: r.request.resource_type == "document" and r.status < 300
    ) as answered:
        action()
    page.wait_for_load_state()
    return answered.value


@pytest.mark.browser
def test_browser_journey_through_nginx(page: Page, edge: Edge) -> None:
    """Protected page → login form → back on the page with the API's JSON → log out → refused."""
    landed = page.goto("/orders")
    assert landed is not None
    assert LOGIN.search(page.url), page.url
    assert parse_qs(urlsplit(page.url).query)["next"] == ["/orders"]
    page.locator("#username").fill(edge.dojang.username)
    page.locator("#password").fill(edge.dojang.password)
    orders = _document(page, page.get_by_role("button", name="Log in").click)

    # Back where the person started, looking at the API's answer for their own user.
    assert urlsplit(page.url).path == "/orders", page.url
    assert orders.status == 200, edge.diagnostics()
    me = page.request.get("/api/v1/session").json()
    assert orders.json() == {"user": me["user"]["id"], "orders": []}
    assert me["user"]["id"] in page.locator("body").inner_text()
    # The API saw a valid access token for orders-api tied to this browser's session.
    whoami = page.goto("/whoami")
    assert whoami is not None and whoami.status == 200
    assert whoami.json()["sub"] == me["user"]["id"]
    assert whoami.json()["sid"] == me["sid"]
    assert whoami.json()["scope"] == "orders:read"

    # Log out from the account page (served by dojang through the same origin).
    page.goto("/account")
    assert urlsplit(page.url).path == "/account"
    _document(page, page.get_by_role("button", name="Log out", exact=True).click)
    assert LOGIN.search(page.url), page.url
    assert not [c for c in page.context.cookies() if c.get("name") == COOKIE and c.get("value")]

    # The next visit to the protected page is refused: back to the login form.
    page.goto("/orders")
    assert LOGIN.search(page.url), page.url
    assert parse_qs(urlsplit(page.url).query)["next"] == ["/orders"]
