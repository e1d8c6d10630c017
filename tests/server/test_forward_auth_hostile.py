"""``/auth/check`` under hostile input: what a client or a careless proxy can put in the request.

Each test names the attack it stops. The answers are dojang's own, before any proxy: no
identity without a live session whatever the headers claim, redirects only to this issuer's
``/login`` with a same-origin ``next``, bounded header parsing, and exactly the requests the
shipped Traefik and Envoy configurations send (read from ``deploy/``) answered as documented in
``docs/edge.md``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs; types-PyYAML not a dep

from dojang.clock import FrozenClock
from dojang.verify import Verifier

from .conftest import Env, make_env

REPO = Path(__file__).resolve().parents[2]
ISSUER = "https://auth.example"
FORGED_FORWARDING = {
    "x-forwarded-host": "evil.example",
    "x-forwarded-proto": "https",
    "x-forwarded-for": "203.0.113.9, 10.0.0.1",
    "x-forwarded-port": "443",
    "forwarded": "for=203.0.113.9;host=evil.example;proto=https",
}
IDENTITY = ("authorization", "x-dojang-subject", "x-dojang-session")
HOSTILE_NEXT = [
    "//evil.com",
    "//evil.com/orders",
    "/\\evil.com",
    "\\\\evil.com",
    "https://evil.com",
    "http:/evil.com",
    "javascript:alert(1)",
    "/%2F%2Fevil.com",
    "/%5Cevil.com",
    "/%252F%252Fevil.com",
    "/\tevil.com",
    "orders",
]


@pytest.fixture
async def redirect_env(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Env]:
    """Behind Traefik or Envoy: https issuer, browsers redirected by dojang itself."""
    async for env in make_env(tmp_path, clock, public_url=ISSUER, auth_check_redirect=True):
        await env.services.clients.add_audience("orders-api", "orders:read orders:write")
        yield env


async def _login(env: Env) -> tuple[str, dict[str, Any]]:
    """Log alice in: (``Cookie`` header value for her session, login body); jar left empty."""
    login = await env.login()
    assert login.status_code == 201, login.text
    name = env.services.cookies.session_name
    value = env.client.cookies[name]
    env.client.cookies.clear()
    body: dict[str, Any] = login.json()
    return f"{name}={value}", body


async def _cookie(env: Env) -> str:
    """A cookie for a live session."""
    return (await _login(env))[0]


async def _dead_cookie(env: Env) -> str:
    """A cookie whose session has logged out."""
    cookie, body = await _login(env)
    resp = await env.client.delete(
        "/api/v1/session", headers={"cookie": cookie, "x-csrf-token": body["csrf_token"]}
    )
    assert resp.status_code == 204
    return cookie


def _login_target(env: Env, location: str) -> str:
    """Assert ``location`` is this issuer's /login; return its decoded ``next``."""
    parts = urlsplit(location)
    issuer = urlsplit(env.settings.issuer)
    assert (parts.scheme, parts.netloc, parts.path) == (issuer.scheme, issuer.netloc, "/login")
    [target] = parse_qs(parts.query)["next"]
    return target


def _no_identity(response: httpx.Response) -> None:
    for name in IDENTITY:
        assert name not in response.headers, name


# ----------------------------------------------------------------------------- forged forwarding


@pytest.mark.parametrize("state", ["no cookie", "dead session", "unknown cookie"])
async def test_forged_forwarding_headers_grant_no_identity(env: Env, state: str) -> None:
    """Header spoofing: X-Forwarded-* / Forwarded never stand in for a live session."""
    headers = {**FORGED_FORWARDING, "accept": "application/json"}
    if state == "dead session":
        headers["cookie"] = await _dead_cookie(env)
    elif state == "unknown cookie":
        headers["cookie"] = "dojang_session=" + "A" * 43
    resp = await env.client.get("/auth/check", params={"aud": "x"}, headers=headers)
    assert resp.status_code == 401
    assert resp.json() == {"error": "unauthenticated", "detail": "no live session"}
    _no_identity(resp)


@pytest.mark.parametrize("dead", [False, True])
async def test_forged_forwarding_headers_cannot_steer_the_login_redirect(
    redirect_env: Env, dead: bool
) -> None:
    """Open redirect: a forged X-Forwarded-Host/-Proto never becomes the redirect's origin."""
    env = redirect_env
    headers = {**FORGED_FORWARDING, "accept": "text/html", "x-original-uri": "/orders"}
    if dead:
        headers["cookie"] = await _dead_cookie(env)
    resp = await env.client.get("/auth/check", headers=headers)
    assert resp.status_code == 302
    assert resp.headers["location"] == f"{ISSUER}/login?next=%2Forders"
    assert "evil" not in resp.headers["location"]
    _no_identity(resp)


# ----------------------------------------------------------------------------- next / rd


@pytest.mark.parametrize("header", ["x-original-uri", "x-forwarded-uri"])
async def test_overlong_original_uri_falls_back_to_root(redirect_env: Env, header: str) -> None:
    """A > 2 KiB original URI is not carried into ``next`` (nor into logs or the login form)."""
    env = redirect_env
    longest = "/" + "a" * 2047  # 2 KiB exactly: still carried
    kept = await env.client.get("/auth/check", headers={"accept": "text/html", header: longest})
    assert _login_target(env, kept.headers["location"]) == longest
    resp = await env.client.get(
        "/auth/check", headers={"accept": "text/html", header: longest + "a"}
    )
    assert resp.status_code == 302
    assert resp.headers["location"] == f"{ISSUER}/login?next=%2F"


@pytest.mark.parametrize("header", ["x-original-uri", "x-forwarded-uri"])
@pytest.mark.parametrize("value", HOSTILE_NEXT)
async def test_hostile_original_uri_never_redirects_off_site(
    redirect_env: Env, header: str, value: str
) -> None:
    """Open redirect through ``next``: protocol-relative, backslash, absolute, encoded → ``/``."""
    env = redirect_env
    resp = await env.client.get("/auth/check", headers={"accept": "text/html", header: value})
    assert resp.status_code == 302
    target = _login_target(env, resp.headers["location"])
    assert target == "/", (value, target)


async def test_non_ascii_original_uri_falls_back_to_root(redirect_env: Env) -> None:
    """Bytes that are not ASCII (no proxy sends them raw) are refused, not guessed at."""
    env = redirect_env
    resp = await env.client.get(
        "/auth/check",
        headers=[(b"accept", b"text/html"), (b"x-original-uri", "/caf\u00e9".encode())],
    )
    assert resp.status_code == 302
    assert _login_target(env, resp.headers["location"]) == "/"


async def test_traefik_forward_auth_request(redirect_env: Env) -> None:
    """Exactly what Traefik sends with the shipped ``dynamic.yml``: redirect keeps the page.

    Traefik calls the middleware ``address`` with the client's ``Cookie``/``Accept`` and its own
    ``X-Forwarded-Method/-Proto/-Host/-Uri/-For``; dojang builds ``next`` from X-Forwarded-Uri.
    """
    env = redirect_env
    address = yaml.safe_load((REPO / "deploy" / "traefik" / "dynamic.yml").read_text())["http"][
        "middlewares"
    ]["dojang-auth"]["forwardAuth"]["address"]
    check = urlsplit(address)
    assert check.path == "/auth/check"
    traefik = {
        "accept": "text/html,application/xhtml+xml",
        "x-forwarded-method": "GET",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "app.example",
        "x-forwarded-uri": "/orders?page=2",
        "x-forwarded-for": "198.51.100.7",
    }
    url = f"{check.path}?{check.query}"
    away = await env.client.get(url, headers=traefik)
    assert away.status_code == 302
    assert away.headers["location"] == f"{ISSUER}/login?next=%2Forders%3Fpage%3D2"
    # A client cannot add its own X-Forwarded-Uri (trustForwardHeader: false), but should a
    # misconfigured Traefik pass one through, a hostile value still ends at "/".
    hostile = await env.client.get(url, headers={**traefik, "x-forwarded-uri": "//evil.com"})
    assert hostile.headers["location"] == f"{ISSUER}/login?next=%2F"

    live = await env.client.get(url, headers={**traefik, "cookie": await _cookie(env)})
    assert live.status_code == 200
    claims = _verifier(env).verify(live.headers["authorization"].removeprefix("Bearer "))
    assert claims["scope"] == parse_qs(check.query)["scope"][0]


# ----------------------------------------------------------------------------- identity echo


async def test_identity_request_headers_are_never_echoed(env: Env) -> None:
    """Header spoofing: X-Dojang-*/Authorization sent *to* the check never come back from it."""
    await env.services.clients.add_audience("orders-api", "orders:read")
    forged = [
        (b"x-dojang-subject", b"admin"),
        (b"x-dojang-session", b"forged-sid"),
        (b"x-dojang-subject", b"root"),
        (b"authorization", b"Bearer forged"),
    ]
    anonymous = await env.client.get("/auth/check", headers=forged)
    assert anonymous.status_code == 401
    _no_identity(anonymous)

    cookie, login = await _login(env)
    live = await env.client.get(
        "/auth/check?aud=orders-api", headers=[*forged, (b"cookie", cookie.encode())]
    )
    assert live.status_code == 200
    assert live.headers.get_list("x-dojang-subject") == [login["user"]["id"]]
    assert live.headers.get_list("x-dojang-session") == [login["sid"]]
    [authorization] = live.headers.get_list("authorization")
    assert authorization != "Bearer forged"
    claims = _verifier(env).verify(authorization.removeprefix("Bearer "))
    assert claims["sid"] == login["sid"]
    # Without ?aud= no token is minted, and the client's Authorization is not reflected.
    plain = await env.client.get("/auth/check", headers=[*forged, (b"cookie", cookie.encode())])
    assert plain.status_code == 200 and "authorization" not in plain.headers


# ----------------------------------------------------------------------------- overlong cookie


async def test_overlong_cookie_header_is_401_even_with_a_live_session(env: Env) -> None:
    """Bounded parsing: a Cookie header over 8 KiB is not searched, even if the session is in it."""
    cookie = await _cookie(env)

    def padded(total: int) -> str:
        # The live session cookie last, after padding, as a cookie-stuffing page would do.
        filler = "pad=" + "x" * (total - len(cookie) - len("pad=; "))
        header = f"{filler}; {cookie}"
        assert len(header) == total
        return header

    at_limit = await env.client.get("/auth/check", headers={"cookie": padded(8192)})
    assert at_limit.status_code == 200  # the limit, not the padding, is what refuses below
    over = await env.client.get("/auth/check", headers={"cookie": padded(8193)})
    assert over.status_code == 401
    assert over.json()["error"] == "unauthenticated"
    _no_identity(over)
    huge = await env.client.get("/auth/check", headers={"cookie": padded(64 * 1024)})
    assert huge.status_code == 401


async def test_cookie_cap_counts_every_cookie_header(env: Env) -> None:
    """Cookie stuffing split across headers: three 6 KiB Cookie headers are as over the cap
    as one 18 KiB header, even with the live session in the last one."""
    cookie = await _cookie(env)
    filler = "pad=" + "x" * 6000
    transport = env.client._transport  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=transport, base_url=env.base_url) as bare:
        split = await bare.get(
            "/auth/check",
            headers=[("cookie", filler), ("cookie", filler), ("cookie", cookie)],
        )
        single = await bare.get("/auth/check", headers=[("cookie", cookie)])
    assert single.status_code == 200  # the same cookie alone is live
    assert split.status_code == 401
    _no_identity(split)


# ----------------------------------------------------------------------------- Envoy ext_authz


def _envoy_service() -> dict[str, Any]:
    config = yaml.safe_load((REPO / "deploy" / "envoy" / "envoy.yaml").read_text())
    listener = config["static_resources"]["listeners"][0]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    [ext_authz] = [
        f["typed_config"]
        for f in manager["http_filters"]
        if f["name"] == "envoy.filters.http.ext_authz"
    ]
    service: dict[str, Any] = ext_authz["http_service"]
    return service


def _envoy_request(original: str, method: str = "GET", **client: str) -> dict[str, Any]:
    """The check request Envoy's HTTP ext_authz builds for ``method original`` with the config.

    Envoy sends ``path_prefix`` + the original path and query as ``:path``, the original
    ``:method`` and ``host``, ``content-length: 0``, the client's ``authorization`` (always
    allowed by Envoy) and the headers matched by ``allowed_headers`` (cookie, accept); no body.
    """
    service = _envoy_service()
    allowed = {p["exact"] for p in service["authorization_request"]["allowed_headers"]["patterns"]}
    headers = {"host": "app.example", "content-length": "0"}
    for name, value in client.items():
        name = name.replace("_", "-")
        if name in allowed or name == "authorization":
            headers[name] = value
    return {"method": method, "url": service["path_prefix"] + original, "headers": headers}


async def test_envoy_ext_authz_request_gets_the_documented_answers(redirect_env: Env) -> None:
    """The path/query trick: ``/auth/check?aud=…&scope=…&_path=<original>`` (docs/edge.md)."""
    env = redirect_env
    cookie = await _cookie(env)
    sent = {"accept": "application/json", "authorization": "Bearer forged", "x_dojang_subject": "x"}

    live = await env.client.request(**_envoy_request("/orders?page=2", cookie=cookie, **sent))
    assert live.status_code == 200, live.text
    assert "x-dojang-subject" in live.headers and live.headers["x-dojang-subject"] != "x"
    claims = _verifier(env).verify(live.headers["authorization"].removeprefix("Bearer "))
    assert (claims["aud"], claims["scope"]) == ("orders-api", "orders:read")

    # No session: programs get the 401 JSON, browsers the login page — landing on "/", since
    # dojang cannot tell the original page from the swallowed `_path`.
    anonymous = await env.client.request(**_envoy_request("/orders?page=2", **sent))
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "unauthenticated"
    _no_identity(anonymous)
    page = await env.client.request(
        **_envoy_request("/orders?page=2", accept="text/html", authorization="Bearer forged")
    )
    assert page.status_code == 302
    assert page.headers["location"] == f"{ISSUER}/login?next=%2F"

    # The original query's first parameter is part of `_path`'s value: harmless.
    swallowed = await env.client.request(
        **_envoy_request("/orders?aud=admin-api", cookie=cookie, **sent)
    )
    assert swallowed.status_code == 200
    claims = _verifier(env).verify(swallowed.headers["authorization"].removeprefix("Bearer "))
    assert (claims["aud"], claims["scope"]) == ("orders-api", "orders:read")
    # Fail closed: any later one that repeats aud/scope cannot choose the audience...
    for sneaky in ("/orders?x=1&aud=admin-api", "/orders?x=1&scope=orders:write"):
        refused = await env.client.request(**_envoy_request(sneaky, cookie=cookie, **sent))
        assert refused.status_code == 400, sneaky
        assert refused.json()["error"] == "invalid_request"
        _no_identity(refused)
    # ...and the parameter cap (8 fields in all, 3 of them the prefix's) refuses long queries.
    six = "/orders?" + "&".join(f"p{i}=1" for i in range(6))
    assert (await env.client.request(**_envoy_request(six, cookie=cookie))).status_code == 200
    seven = "/orders?" + "&".join(f"p{i}=1" for i in range(7))
    capped = await env.client.request(**_envoy_request(seven, cookie=cookie))
    assert capped.status_code == 400
    assert capped.json() == {"error": "invalid_request", "detail": "malformed query string"}


async def test_envoy_check_for_a_post_to_the_app(redirect_env: Env) -> None:
    """A live session's POST to the app must be checked like its GET (the body is never sent)."""
    env = redirect_env
    cookie = await _cookie(env)
    resp = await env.client.request(
        **_envoy_request("/orders", method="POST", cookie=cookie, accept="application/json")
    )
    assert resp.status_code == 200
    assert "authorization" in resp.headers


def _verifier(env: Env) -> Verifier:
    return Verifier(
        issuer=env.settings.issuer,
        audience="orders-api",
        jwks=env.services.keyset.public_jwks(),
        clock=env.clock,
    )
