"""Per-request helpers shared by the route modules: services lookup, session, CSRF, origin."""

from __future__ import annotations

import hmac
from typing import Any, cast

from starlette.requests import Request

from dojang.errors import SessionNotFound
from dojang.server.cookies import read_cookie
from dojang.server.netutil import client_ip
from dojang.server.responses import HTTPError
from dojang.server.services import Services
from dojang.sessions.model import Session


def services(request: Request) -> Services:
    """The application's services (built once in the lifespan)."""
    return cast(Services, request.app.state.services)


def session_cookie(request: Request) -> str | None:
    """The raw session cookie value, if any (never logged)."""
    svc = services(request)
    return read_cookie(request.headers.get("cookie"), svc.cookies.session_name)


async def current_session(request: Request) -> tuple[str, Session]:
    """Load the caller's live session or raise ``SessionNotFound`` (→ 401)."""
    cookie = session_cookie(request)
    if cookie is None:
        raise SessionNotFound("no session cookie")
    session = await services(request).sessions.load(cookie)
    return cookie, session


async def optional_session(request: Request) -> tuple[str, Session] | None:
    """Like ``current_session`` but returns None when there is no live session."""
    try:
        return await current_session(request)
    except SessionNotFound:
        return None


def remote_ip(request: Request) -> str | None:
    """Client IP, honouring ``X-Forwarded-For`` only from trusted proxies."""
    return client_ip(request, services(request).trusted_proxies)


def user_agent(request: Request) -> str | None:
    """The User-Agent, truncated (it is stored with the session for the account page)."""
    ua = request.headers.get("user-agent")
    return ua[:512] if ua else None


async def audit(request: Request, action: str, **fields: Any) -> None:
    """Record an audited action with the request's client IP and user agent."""
    await services(request).audit.record(
        action, client_ip=remote_ip(request), user_agent=user_agent(request), **fields
    )


def check_same_origin(request: Request) -> None:
    """Refuse state-changing requests that a browser marks as coming from another site.

    ``Sec-Fetch-Site`` (sent by every current browser) must be ``same-origin`` or ``none``
    (user typed/bookmarked); ``Origin``, when present, must equal our public origin. Non-browser
    clients send neither and are judged by the CSRF token / content type alone.
    """
    svc = services(request)
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise HTTPError(403, "csrf_failed", f"cross-site request refused (Sec-Fetch-Site: {site})")
    origin = request.headers.get("origin")
    if origin is not None and origin != svc.public_origin:
        raise HTTPError(403, "csrf_failed", "request Origin does not match this server")


def check_csrf_token(session: Session, token: str | None) -> None:
    """Compare the synchronizer token in constant time; 403 when missing or wrong."""
    if not token:
        raise HTTPError(403, "csrf_failed", "missing CSRF token")
    if not hmac.compare_digest(token.encode("utf-8", "replace"), session.csrf_secret.encode()):
        raise HTTPError(403, "csrf_failed", "CSRF token does not match this session")
