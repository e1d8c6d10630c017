"""The SPA example in real Chromium against real processes: dojang ``--demo`` and the orders API.

The orders API runs on another loopback port, following dojang's revocation feed (its default)
and allowing exactly dojang's origin by CORS (``ORDERS_CORS_ORIGIN``). The page logs in with the
session cookie, mints a token, calls the API with it, logs out, and must see that very token
refused within ``REVOCATION_BOUND_S``; the test checks the same from outside the browser.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from examples.orders_api.app import Settings as OrdersSettings
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from dojang.config import load_settings
from dojang.server import create_app
from dojang.server.routes.spa import page_csp

from .harness import (
    REVOCATION_BOUND_S,
    Dojang,
    Proc,
    StartError,
    free_port,
    start_dojang,
    start_orders_api,
    until_refused,
)

OTHER_ORIGIN = "http://127.0.0.1:1"


@dataclass
class Stack:
    """dojang (its own public origin) and the orders API on a second loopback port."""

    dojang: Dojang
    api: Proc
    api_url: str

    @property
    def spa_url(self) -> str:
        """The SPA page configured for this run's API."""
        return f"{self.dojang.url}/spa/?api={self.api_url}"

    def diagnostics(self) -> str:
        """Process output for failure messages."""
        return (
            f"--- dojang ---\n{self.dojang.proc.output()[-4000:]}\n"
            f"--- orders-api ---\n{self.api.output()[-4000:]}"
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """``orders-api`` registered before ``dojang serve --demo``; the API follows its feed."""
    tmp = tmp_path_factory.mktemp("spa")
    dojang_port, api_port = free_port(), free_port()
    origin = f"http://127.0.0.1:{dojang_port}"
    started: list[Proc] = []
    try:
        try:
            dojang = start_dojang(tmp, dojang_port, origin)
            started.append(dojang.proc)
            api = start_orders_api(
                api_port,
                origin,
                f"{origin}/.well-known/jwks.json",
                ORDERS_CORS_ORIGIN=origin,
            )
            started.append(api)
        except StartError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield Stack(dojang, api, f"http://127.0.0.1:{api_port}")
    finally:
        for proc in reversed(started):
            proc.stop()


def _open_spa(browser: Browser, url: str, console: list[str]) -> Page:
    page = browser.new_context().new_page()
    page.on("console", lambda m: _note(console, m))
    page.goto(url)
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    return page


def _note(console: list[str], message: ConsoleMessage) -> None:
    if message.type == "error":
        console.append(message.text)


def _orders(api_url: str, token: str) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=5.0) as client:
        return client.get(f"{api_url}/orders", headers={"authorization": f"Bearer {token}"})


def test_spa_token_dies_at_the_api_right_after_logout(stack: Stack, browser: Browser) -> None:
    """Log in, mint, call the API (200 with data); log out → the same token is refused."""
    console: list[str] = []
    page = _open_spa(browser, stack.spa_url, console)
    page.fill("#username", stack.dojang.username)
    page.fill("#password", stack.dojang.password)
    page.click("#login")
    expect(page.locator("#user")).to_have_text(stack.dojang.username)

    page.click("#get-token")
    expect(page.locator("#call-api")).to_be_enabled()
    token = page.locator("#token").text_content() or ""
    assert token.count(".") == 2, token
    expect(page.locator("#token-scope")).to_have_text("orders:read orders:write")

    page.click("#call-api")
    expect(page.locator("#api-status")).to_have_text("200")
    data = json.loads(page.locator("#api-result").text_content() or "null")
    assert [o["item"] for o in data["orders"]] == ["green tea"], data
    assert _orders(stack.api_url, token).status_code == 200  # outside the browser too

    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/session") and r.request.method == "DELETE"
    ) as logged_out:
        page.click("#logout")
    # Taken when the test learns of the logout response, a little after the page did; the
    # page's own measurement below starts at the response itself.
    since = time.perf_counter()
    assert logged_out.value.status == 204
    # From outside: the very same token is refused within the bound (polled, not slept).
    with httpx.Client(trust_env=False, timeout=5.0) as client:
        elapsed, answer = until_refused(client, f"{stack.api_url}/orders", token, since)
    assert answer.status_code == 401, f"token still accepted\n{stack.diagnostics()}"
    assert elapsed < REVOCATION_BOUND_S, f"refused after {elapsed * 1000:.0f} ms"
    assert answer.json()["error"] == "revoked_token"
    expect(page.locator("#login-section")).to_be_visible()
    # The page saw it too, and shows how long it took from the logout response.
    revocation = page.locator("#revocation")
    expect(revocation).to_have_attribute("data-state", "refused")
    expect(revocation).to_contain_text("revoked_token")
    page_elapsed = float(revocation.get_attribute("data-elapsed-ms") or "nan")
    assert 0 <= page_elapsed < REVOCATION_BOUND_S * 1000, page_elapsed
    # Nothing was blocked by the page's CSP (Chromium reports violations as console errors).
    assert not [m for m in console if "Content Security Policy" in m], console
    page.context.close()


def test_browser_on_another_origin_cannot_call_the_api(stack: Stack, browser: Browser) -> None:
    """CORS admits dojang's origin only: the same script from ``localhost`` is blocked."""
    script = """async ([api]) => {
        try {
            const r = await fetch(api + "/orders", {headers: {Authorization: "Bearer x"}});
            return "status " + r.status;
        } catch (e) { return "blocked"; }
    }"""
    allowed = _open_spa(browser, stack.spa_url, [])
    # From the allowed origin the (bad) token reaches the API and gets its 401 back.
    assert allowed.evaluate(script, [stack.api_url]) == "status 401"
    allowed.context.close()
    # localhost is loopback, but a different origin from 127.0.0.1: the preflight fails.
    port = stack.dojang.url.rsplit(":", 1)[1]
    other = _open_spa(browser, f"http://localhost:{port}/spa/?api={stack.api_url}", [])
    assert other.evaluate(script, [stack.api_url]) == "blocked"
    other.context.close()


def test_cors_preflight_names_exactly_one_origin(stack: Stack) -> None:
    """A preflight from another origin gets no Access-Control-Allow-Origin; ours gets ours."""
    ask = {
        "access-control-request-method": "GET",
        "access-control-request-headers": "authorization",
    }
    with httpx.Client(base_url=stack.api_url, trust_env=False, timeout=5.0) as client:
        foreign = client.options("/orders", headers={"origin": OTHER_ORIGIN, **ask})
        assert "access-control-allow-origin" not in foreign.headers
        simple = client.get("/orders", headers={"origin": OTHER_ORIGIN})
        assert "access-control-allow-origin" not in simple.headers
        ours = client.options("/orders", headers={"origin": stack.dojang.url, **ask})
    assert ours.status_code == 200
    assert ours.headers["access-control-allow-origin"] == stack.dojang.url
    assert "authorization" in ours.headers["access-control-allow-headers"].lower()
    # Bearer tokens only: cookies never cross to the API.
    assert "access-control-allow-credentials" not in ours.headers


def test_spa_page_carries_its_own_csp_and_refuses_foreign_api_origins(stack: Stack) -> None:
    """Only /spa/ relaxes the CSP, and only towards a loopback API origin (no token exfil)."""
    with httpx.Client(base_url=stack.dojang.url, trust_env=False, timeout=5.0) as client:
        page = client.get("/spa/", params={"api": stack.api_url})
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == page_csp(stack.api_url)
        assert "'unsafe-inline'" not in page.headers["content-security-policy"]
        assert page.headers.get_list("content-security-policy") == [page_csp(stack.api_url)]
        script = client.get("/spa/app.js")
        assert script.headers["content-type"].startswith("text/javascript")
        assert "connect-src" not in script.headers["content-security-policy"]
        assert (
            client.get("/login").headers["content-security-policy"].startswith("default-src 'none'")
        )
        for bad in ("https://evil.example", "http://127.0.0.1:9000/path", "javascript:alert(1)"):
            refused = client.get("/spa/", params={"api": bad})
            assert refused.status_code == 400, bad
        assert client.get("/spa/", params={"audience": "a b"}).status_code == 400
        assert client.get("/spa/../../pyproject.toml").status_code == 404
        assert client.get("/spa/index.html").status_code == 404


def test_spa_is_served_in_demo_mode_only(tmp_path: Path) -> None:
    """Without ``--demo`` the example page does not exist.

    The route needs no services, so the app is driven in-process without its lifespan, on an
    event loop in a worker thread: this module's Playwright owns this thread's loop.
    """

    async def status(demo: bool) -> int:
        settings = load_settings({"demo": demo, "data_dir": str(tmp_path)}, env={})
        transport = httpx.ASGITransport(app=create_app(settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            return (await c.get("/spa/", headers={"accept": "application/json"})).status_code

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(asyncio.run, status(True)).result(30) == 200
        assert pool.submit(asyncio.run, status(False)).result(30) == 404


def test_orders_cors_origin_must_be_one_origin() -> None:
    """ORDERS_CORS_ORIGIN accepts exactly one origin, never a wildcard or a list."""
    ok = OrdersSettings.from_env({"ORDERS_CORS_ORIGIN": "http://127.0.0.1:8000/"})
    assert ok.cors_origin == "http://127.0.0.1:8000"
    assert OrdersSettings.from_env({}).cors_origin is None
    for bad in ("*", "http://a.example,http://b.example", "http://a.example/app", "a.example"):
        with pytest.raises(ValueError, match="ORDERS_CORS_ORIGIN"):
            OrdersSettings.from_env({"ORDERS_CORS_ORIGIN": bad})
