"""The login journey in a real browser against a real ``dojang serve --demo`` process.

Two browser contexts play two devices of the demo user: A logs in after a wrong password, B logs
in too, A ends B's session from the account page, then A logs out. At each step the test checks
what the person sees *and* what the browser actually stored, because the security properties
of a session cookie (``HttpOnly``, ``SameSite``, no ``Secure`` on http loopback) only exist in
the headers a browser honours, not in the server's intentions.

Screenshots of the account page are written to ``tests/browser/artifacts/`` only when
``DOJANG_SCREENSHOTS`` is set, so a default run leaves the tree clean.
"""

from __future__ import annotations

import os
import re
import time
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    APIRequestContext,
    BrowserContext,
    ConsoleMessage,
    Error,
    Locator,
    Page,
    Response,
    expect,
)

from .conftest import ARTIFACTS, DojangServer, NewContext

pytestmark = pytest.mark.browser

COOKIE = "dojang_session"  # plain name: the public URL is http loopback (DESIGN "Sessions")
GENERIC_ERROR = "Incorrect username or password."
LOGIN_URL = re.compile(r"/login(\?.*)?$")
ACCOUNT_URL = re.compile(r"/account(\?.*)?$")  # a notice may ride along, e.g. ?done=ended
BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")


# ----------------------------------------------------------------------------- helpers


def _path(url: str) -> str:
    return urlsplit(url).path


def _session_cookie(context: BrowserContext) -> dict[str, object] | None:
    """The session cookie the browser stored, if any (an emptied one counts as none)."""
    for cookie in context.cookies():
        if cookie.get("name") == COOKIE and cookie.get("value"):
            return dict(cookie)
    return None


def _watch_console(page: Page) -> list[str]:
    """Collect script errors, CSP violations and failed subresources (styles, images...).

    Chromium's own "Failed to load resource" console lines are left out: the documents they
    duplicate are judged by the test itself (a wrong password is a 401 page by design), and the
    ``/favicon.ico`` the browser asks for on its own is no part of the journey.
    """
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(f"console: {message.text} ({message.location.get('url')})")

    def on_page_error(error: Error) -> None:
        problems.append(f"pageerror: {error.message}")

    def on_response(response: Response) -> None:
        if response.request.resource_type != "document" and response.status >= 400:
            problems.append(f"{response.status} for {response.request.method} {response.url}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    page.on("response", on_response)
    return problems


def _submit(page: Page, button: Locator) -> Response:
    """Click a form's submit button; returns the answer to the POST itself (before redirects).

    A refused form (403) or a server error fails here with the page text, so a broken CSRF or
    same-origin check reads as what it is. (Chromium sends ``Origin: null`` on every form POST
    from a page served with ``Referrer-Policy: no-referrer``: a same-origin check must cope.)
    """
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.request.resource_type == "document"
    ) as posted:
        button.click()
    page.wait_for_load_state()
    response = posted.value
    if response.status == 403 or response.status >= 500:
        main = page.locator("main").inner_text()
        pytest.fail(
            f"POST {_path(response.url)} answered {response.status}: {main!r}", pytrace=False
        )
    return response


def _submit_login(page: Page, username: str, password: str, *, remember: bool = False) -> Response:
    """Fill and submit the login form; returns the answer to the POST itself."""
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    if remember:
        page.locator('input[name="remember"]').check()
    response = _submit(page, page.get_by_role("button", name="Log in"))
    assert _path(response.url) == "/login"
    return response


def _session_rows(page: Page) -> Locator:
    return page.locator("table.sessions tbody tr[data-sid]")


def _current_sid(page: Page) -> str:
    """The ``sid`` of the row the account page marks "this device" (exactly one row)."""
    current = page.locator("table.sessions tr[data-sid]").filter(
        has=page.locator(".badge", has_text="this device")
    )
    expect(current).to_have_count(1)
    sid = current.get_attribute("data-sid")
    assert sid, "the current session row has an empty data-sid"
    return sid


def _assert_no_session(request: APIRequestContext, who: str) -> None:
    """Both the JSON API and forward auth must refuse: the session is dead server-side."""
    session = request.get("/api/v1/session", max_redirects=0)
    assert session.status == 401, f"{who}: GET /api/v1/session → {session.status}"
    body = session.json()
    assert isinstance(body.get("error"), str), f"{who}: 401 body is not the error shape: {body}"
    check = request.get("/auth/check", max_redirects=0)
    assert check.status == 401, f"{who}: GET /auth/check → {check.status}"
    assert "x-dojang-subject" not in check.headers
    assert "x-dojang-session" not in check.headers


def _assert_csp_without_inline_script(response: Response | None, page: Page) -> None:
    """Pages carry a CSP that forbids inline script, and ship none (DESIGN "HTTP contract")."""
    assert response is not None
    csp = response.headers.get("content-security-policy")
    assert csp, f"no Content-Security-Policy on {response.url}"
    directives: dict[str, list[str]] = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = [w.lower() for w in words[1:]]
    script_src = directives.get("script-src", directives.get("default-src"))
    assert script_src is not None, f"CSP restricts no scripts: {csp!r}"
    assert "'unsafe-inline'" not in script_src, f"CSP allows inline script: {csp!r}"
    assert "'unsafe-eval'" not in script_src, f"CSP allows eval: {csp!r}"
    assert "<script" not in page.content().lower(), "the page ships a <script> element"


def _maybe_screenshot(page: Page, name: str) -> None:
    if not os.environ.get("DOJANG_SCREENSHOTS"):
        return
    ARTIFACTS.mkdir(exist_ok=True)
    ignore = ARTIFACTS / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def _to_login_from_account(page: Page) -> None:
    """Opening /account without a live session lands on the login form, ``next`` kept."""
    page.goto("/account")
    expect(page).to_have_url(LOGIN_URL)
    expect(page.locator('input[name="next"]')).to_have_value("/account")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()


# ----------------------------------------------------------------------------- the journey


def test_login_journey(dojang_server: DojangServer, new_context: NewContext) -> None:
    """Wrong password, login, a second device, ending it remotely, logging out, replay."""
    server = dojang_server
    account_url = f"{server.base_url}/account"

    # 1. Device A: /account sends a stranger to /login; a wrong password stores nothing.
    a = new_context()
    page_a = a.new_page()
    problems_a = _watch_console(page_a)
    _to_login_from_account(page_a)

    failed = _submit_login(page_a, server.username, server.password + "-wrong")
    assert failed.status != 303, "a wrong password was answered with a redirect"
    expect(page_a).to_have_url(LOGIN_URL)
    expect(page_a.locator("#login-error")).to_have_text(GENERIC_ERROR)
    # The re-rendered form still carries where the person was going.
    expect(page_a.locator('input[name="next"]')).to_have_value("/account")
    assert _session_cookie(a) is None, f"a failed login stored a session cookie: {a.cookies()}"

    # 2. The right password: 303 to /account, one session, marked "this device".
    ok = _submit_login(page_a, server.username, server.password)
    assert ok.status == 303, f"POST /login → {ok.status}, expected 303"
    assert _path(ok.headers["location"]) == "/account"
    expect(page_a).to_have_url(account_url)
    expect(page_a.get_by_role("heading", name="Your sessions")).to_be_visible()
    expect(_session_rows(page_a)).to_have_count(1)
    sid_a = _current_sid(page_a)
    assert BASE64URL.match(sid_a), sid_a

    cookie = _session_cookie(a)
    assert cookie is not None, f"no {COOKIE} cookie after login: {a.cookies()}"
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/"
    assert cookie["secure"] is False, "Secure on an http loopback origin: browser would drop it"
    assert cookie["domain"] == "127.0.0.1", cookie["domain"]
    # Without "Keep me signed in" the cookie dies with the browser.
    assert cookie["expires"] == -1, f"not a browser-session cookie: expires={cookie['expires']}"
    value_a = str(cookie["value"])
    assert len(value_a) == 43 and BASE64URL.match(value_a), "cookie is not 32 bytes base64url"
    assert value_a != sid_a, "the public sid must not be the cookie value"
    # HttpOnly really holds: page script cannot read it.
    assert COOKIE not in page_a.evaluate("document.cookie")
    # The cookie value never leaves the cookie (DESIGN "Sessions").
    assert value_a not in page_a.content()

    account = page_a.reload()
    _assert_csp_without_inline_script(account, page_a)
    # The stylesheet loaded under that CSP and actually applies.
    rules = page_a.evaluate("[...document.styleSheets].reduce((n, s) => n + s.cssRules.length, 0)")
    assert rules > 0, "no CSS rules applied to the account page"

    me = a.request.get("/api/v1/session")
    assert me.status == 200, me.text()
    me_body = me.json()
    assert me_body["sid"] == sid_a
    assert me_body["user"]["username"] == server.username
    assert me_body["csrf_token"], "no csrf_token in GET /api/v1/session"
    check_a = a.request.get("/auth/check")
    assert check_a.status == 200
    assert check_a.headers.get("x-dojang-session") == sid_a
    assert check_a.headers.get("x-dojang-subject") == str(me_body["user"]["id"])

    # 3. Device B logs in too; A sees two sessions and ends B's.
    b = new_context()
    page_b = b.new_page()
    problems_b = _watch_console(page_b)
    page_b.goto("/login")
    ok_b = _submit_login(page_b, server.username, server.password, remember=True)
    assert ok_b.status == 303, f"POST /login (device B) → {ok_b.status}"
    expect(page_b).to_have_url(account_url)
    sid_b = _current_sid(page_b)
    assert sid_b != sid_a
    cookie_b = _session_cookie(b)
    assert cookie_b is not None
    assert cookie_b["value"] != value_a, "two logins share one cookie value"
    # "Keep me signed in on this device" makes it persistent (remember-me, DESIGN "Sessions").
    assert float(str(cookie_b["expires"])) > time.time() + 86400, cookie_b["expires"]

    page_a.reload()
    expect(_session_rows(page_a)).to_have_count(2)
    assert _current_sid(page_a) == sid_a, "A's badge moved to another session"
    row_b = page_a.locator(f'tr[data-sid="{sid_b}"]')
    expect(row_b.locator(".badge", has_text="this device")).to_have_count(0)
    end_b = row_b.locator("button", has_text="End this session")
    expect(end_b).to_be_visible()
    expect(page_a.get_by_role("button", name="Log out everywhere")).to_be_visible()
    _maybe_screenshot(page_a, "account.png")

    assert _submit(page_a, end_b).status == 303
    expect(page_a).to_have_url(ACCOUNT_URL)
    expect(page_a.get_by_role("status")).to_have_text("Session ended.")
    expect(row_b).to_have_count(0)
    expect(_session_rows(page_a)).to_have_count(1)
    assert _current_sid(page_a) == sid_a

    # B is out everywhere: the page, the JSON API and forward auth.
    _to_login_from_account(page_b)
    _assert_no_session(b.request, "device B after A ended its session")
    # ...and A is untouched.
    page_a.reload()
    expect(page_a.get_by_role("heading", name="Your sessions")).to_be_visible()
    assert a.request.get("/auth/check").status == 200

    # 4. A logs out from the header; the old cookie is dead even when replayed elsewhere.
    header_logout = page_a.locator("header").get_by_role("button", name="Log out")
    assert _submit(page_a, header_logout).status == 303
    expect(page_a).to_have_url(LOGIN_URL)
    assert _session_cookie(a) is None, f"cookie survives logout: {a.cookies()}"
    _to_login_from_account(page_a)
    _assert_no_session(a.request, "device A after logout")

    thief = new_context()
    thief.add_cookies([{"name": COOKIE, "value": value_a, "url": server.base_url}])
    _assert_no_session(thief.request, "a replay of A's old cookie")

    # No CSP violations, missing styles or script errors along the way.
    assert problems_a == [], problems_a
    assert problems_b == [], problems_b
