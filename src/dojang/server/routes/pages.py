"""Server-rendered pages: log in, log out, register, the account page with its sessions."""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from dojang.errors import (
    AuthError,
    InvalidCredentials,
    SessionNotFound,
    Throttled,
    UserExists,
    WeakPassword,
)
from dojang.server import session_actions
from dojang.server.bodies import read_form
from dojang.server.context import (
    audit,
    check_csrf_token,
    check_same_origin,
    current_session,
    optional_session,
    remote_ip,
    services,
)
from dojang.server.cookies import read_cookie
from dojang.server.pages import render, session_rows
from dojang.server.redirects import safe_next
from dojang.server.responses import HTTPError
from dojang.sessions.model import Session

router = APIRouter(include_in_schema=False)

GENERIC_LOGIN_ERROR = "Incorrect username or password."
FORM_LIMIT = 8192


def _redirect(location: str, *cookies: str) -> RedirectResponse:
    response = RedirectResponse(location, status_code=303, headers={"cache-control": "no-store"})
    for cookie in cookies:
        response.headers.append("set-cookie", cookie)
    return response


def _login_page(
    request: Request,
    *,
    status: int = 200,
    error: str | None = None,
    username: str = "",
    next_path: str = "/account",
    template: str = "login.html",
) -> Response:
    """Render the login (or register) form with a fresh login-CSRF token (double submit)."""
    svc = services(request)
    token = secrets.token_urlsafe(32)
    return render(
        template,
        status=status,
        error=error,
        username=username,
        next=next_path,
        login_csrf=token,
        registration=svc.settings.registration_enabled,
        user=None,
        headers={"set-cookie": svc.cookies.login_csrf_cookie(token)},
    )


def _check_login_csrf(request: Request, form: dict[str, str]) -> None:
    """Login CSRF: the form's token must equal the Strict cookie set with the form."""
    svc = services(request)
    cookie = read_cookie(request.headers.get("cookie"), svc.cookies.login_csrf_name)
    field = form.get("csrf_token", "")
    if not cookie or not field or not hmac.compare_digest(cookie.encode(), field.encode()):
        raise HTTPError(403, "csrf_failed", "the login form expired or was not ours; reload it")


def _session_set_cookie(request: Request, cookie: str, session: Session, remember: bool) -> str:
    svc = services(request)
    max_age = int(session.absolute_expires_at - svc.clock.now()) if remember else None
    return svc.cookies.session_cookie(cookie, max_age=max_age)


@router.get("/")
async def home(request: Request) -> Response:
    """Send people to their account page, or to log in."""
    return _redirect("/account" if await optional_session(request) else "/login")


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    """The login form. Already signed in: go straight to ``next``."""
    target = safe_next(next)
    if await optional_session(request):
        return _redirect(target)
    return _login_page(request, next_path=target)


@router.post("/login")
async def login_submit(request: Request) -> Response:
    """Check the credentials; on success start a new session and go to ``next``."""
    check_same_origin(request)
    form = await read_form(request, FORM_LIMIT)
    _check_login_csrf(request, form)
    svc = services(request)
    username = form.get("username", "")[:64]
    target = safe_next(form.get("next"))
    remember = form.get("remember") == "1"
    try:
        user = await svc.accounts.authenticate(
            username, form.get("password", ""), ip=remote_ip(request)
        )
        cookie, session = await session_actions.start_session(request, user.id, remember=remember)
    except Throttled as exc:
        await audit(request, "login.throttled", outcome="denied", subject=username, via="form")
        return _login_page(
            request,
            status=429,
            username=username,
            next_path=target,
            error=f"Too many attempts. Try again in {int(exc.retry_after) + 1} s.",
        )
    except AuthError:
        # InvalidCredentials, and any username/password shape error, look the same to the
        # client: one generic message, so the form leaks nothing about which part was wrong.
        await audit(request, "login.failure", outcome="failure", subject=username, via="form")
        return _login_page(
            request, status=401, username=username, next_path=target, error=GENERIC_LOGIN_ERROR
        )
    await audit(
        request,
        "login.success",
        actor=user.id,
        subject=user.id,
        sid=session.sid,
        via="form",
        remember=remember,
    )
    return _redirect(
        target,
        _session_set_cookie(request, cookie, session, remember),
        svc.cookies.clear_login_csrf_cookie(),
    )


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the current session (CSRF-checked), clear the cookie, back to the login page."""
    check_same_origin(request)
    form = await read_form(request, FORM_LIMIT)
    svc = services(request)
    try:
        cookie, session = await current_session(request)
    except SessionNotFound:
        return _redirect("/login", svc.cookies.clear_session_cookie())
    check_csrf_token(session, form.get("csrf_token"))
    await session_actions.log_out(request, cookie, session, via="form")
    return _redirect("/login", svc.cookies.clear_session_cookie())


@router.get("/register")
async def register_form(request: Request) -> Response:
    """Self-service registration, only when ``DOJANG_REGISTRATION_ENABLED`` is on."""
    if not services(request).settings.registration_enabled:
        raise HTTPError(404, "not_found", "registration is disabled on this server")
    return _login_page(request, template="register.html")


@router.post("/register")
async def register_submit(request: Request) -> Response:
    """Create the account and sign the new user in."""
    svc = services(request)
    if not svc.settings.registration_enabled:
        raise HTTPError(404, "not_found", "registration is disabled on this server")
    check_same_origin(request)
    form = await read_form(request, FORM_LIMIT)
    _check_login_csrf(request, form)
    username = form.get("username", "")[:64]
    try:
        user = await svc.accounts.create_user(username, form.get("password", ""))
    except (UserExists, WeakPassword, InvalidCredentials, AuthError) as exc:
        message = "That username is taken." if isinstance(exc, UserExists) else exc.message
        return _login_page(
            request, status=400, username=username, error=message, template="register.html"
        )
    cookie, session = await session_actions.start_session(request, user.id, remember=False)
    await audit(request, "user.registered", actor=user.id, subject=user.id, sid=session.sid)
    return _redirect(
        "/account",
        _session_set_cookie(request, cookie, session, False),
        svc.cookies.clear_login_csrf_cookie(),
    )


@router.get("/account")
async def account(request: Request) -> Response:
    """The signed-in user's sessions, each with an "end" button, plus "log out everywhere"."""
    found = await optional_session(request)
    if found is None:
        return _redirect("/login?next=/account")
    _, session = found
    svc = services(request)
    user = await svc.accounts.get(session.user_id)
    if user is None or user.disabled:
        # The account vanished or was disabled under a live session (its sessions are ended
        # on disable; this catches one that survived a failure there): end it, fail closed.
        await svc.sessions.revoke(session.sid)
        return _redirect("/login", svc.cookies.clear_session_cookie())
    sessions = await svc.sessions.list_for_user(session.user_id)
    notice = {"ended": "Session ended.", "all": "Every other session was ended."}.get(
        request.query_params.get("done", "")
    )
    return render(
        "account.html",
        user=user,
        csrf_token=session.csrf_secret,
        notice=notice,
        sessions=session_rows(sessions, session.sid),
    )


@router.post("/account/sessions/{sid}/end")
async def end_session(request: Request, sid: str) -> Response:
    """End one of the user's own sessions (the current one means: log out)."""
    check_same_origin(request)
    form = await read_form(request, FORM_LIMIT)
    cookie, session = await current_session(request)
    check_csrf_token(session, form.get("csrf_token"))
    svc = services(request)
    if sid == session.sid:
        await session_actions.log_out(request, cookie, session, via="account page")
        return _redirect("/login", svc.cookies.clear_session_cookie())
    await session_actions.end_other(request, session, sid, via="account page")
    return _redirect("/account?done=ended")


@router.post("/account/sessions/end-all")
async def end_all_sessions(request: Request) -> Response:
    """Log out everywhere: every session of this user, this one included."""
    check_same_origin(request)
    form = await read_form(request, FORM_LIMIT)
    _, session = await current_session(request)
    check_csrf_token(session, form.get("csrf_token"))
    svc = services(request)
    await session_actions.end_all(request, session, via="account page")
    return _redirect("/login", svc.cookies.clear_session_cookie())
