"""JSON API for sessions: ``/api/v1/session`` (log in / current / log out) and ``/api/v1/sessions``.

State-changing calls need the session's ``X-CSRF-Token`` header (except log-in, which has no
session yet and is protected by requiring ``application/json`` plus the Origin check: a
cross-site form cannot send JSON, and no CORS is offered).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from dojang.errors import AuthError, InvalidCredentials, Throttled
from dojang.server import session_actions
from dojang.server.bodies import read_json
from dojang.server.context import (
    audit,
    check_csrf_token,
    check_same_origin,
    current_session,
    remote_ip,
    services,
)
from dojang.server.responses import HTTPError, json_ok
from dojang.sessions.ids import is_well_formed_sid
from dojang.sessions.model import Session

router = APIRouter(prefix="/api/v1", tags=["sessions"])
BODY_LIMIT = 8192


class LoginRequest(BaseModel):
    """Credentials for ``POST /api/v1/session``."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=1024)
    remember: bool = False


class UserOut(BaseModel):
    """The public view of a user."""

    id: str
    username: str


class SessionOut(BaseModel):
    """The current session as the API shows it to its owner."""

    sid: str
    csrf_token: str
    user: UserOut
    created_at: float
    auth_time: float
    expires_at: float


class SessionSummary(BaseModel):
    """One entry of ``GET /api/v1/sessions``."""

    sid: str
    created_at: float
    last_seen: float
    expires_at: float
    ip: str | None
    user_agent: str | None
    current: bool


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no live session / bad credentials"},
    403: {"description": "CSRF check failed"},
}


def _summary(s: Session, current_sid: str) -> dict[str, Any]:
    return SessionSummary(
        sid=s.sid,
        created_at=s.created_at,
        last_seen=s.last_seen,
        expires_at=s.expires_at,
        ip=s.ip,
        user_agent=s.user_agent,
        current=s.sid == current_sid,
    ).model_dump()


async def _session_out(request: Request, session: Session) -> dict[str, Any]:
    svc = services(request)
    user = await svc.accounts.get(session.user_id)
    if user is None or user.disabled:
        # Disabling ends every session; this catches one that survived a failure there.
        await svc.sessions.revoke(session.sid)
        raise HTTPError(401, "session_not_found", "the session's user no longer exists")
    return SessionOut(
        sid=session.sid,
        csrf_token=session.csrf_secret,
        user=UserOut(id=user.id, username=user.username),
        created_at=session.created_at,
        auth_time=session.auth_time,
        expires_at=session.expires_at,
    ).model_dump()


@router.post(
    "/session",
    status_code=201,
    response_model=SessionOut,
    responses=ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": LoginRequest.model_json_schema()}},
        }
    },
)
async def log_in(request: Request) -> Response:
    """Log in with username and password; sets the session cookie (new id every time)."""
    check_same_origin(request)
    body = await read_json(request, LoginRequest, BODY_LIMIT)
    svc = services(request)
    try:
        user = await svc.accounts.authenticate(body.username, body.password, ip=remote_ip(request))
        # A fresh session every time (no fixation); none for a user disabled meanwhile.
        cookie, session = await session_actions.start_session(
            request, user.id, remember=body.remember
        )
    except Throttled:
        await audit(
            request, "login.throttled", outcome="denied", subject=body.username[:64], via="api"
        )
        raise
    except AuthError:
        # One generic answer for every bad credential (unknown user, wrong password,
        # disabled account, malformed username): no account enumeration.
        await audit(
            request, "login.failure", outcome="failure", subject=body.username[:64], via="api"
        )
        raise InvalidCredentials("incorrect username or password") from None
    await audit(
        request,
        "login.success",
        actor=user.id,
        subject=user.id,
        sid=session.sid,
        via="api",
        remember=body.remember,
    )
    max_age = int(session.absolute_expires_at - svc.clock.now()) if body.remember else None
    data = await _session_out(request, session)
    return json_ok(data, 201, {"set-cookie": svc.cookies.session_cookie(cookie, max_age)})


@router.get("/session", response_model=SessionOut, responses=ERRORS)
async def get_session(request: Request) -> Response:
    """The caller's current session."""
    _, session = await current_session(request)
    return json_ok(await _session_out(request, session))


@router.delete("/session", status_code=204, responses=ERRORS)
async def log_out(request: Request) -> Response:
    """Log out: end this session and clear the cookie. Needs ``X-CSRF-Token``."""
    check_same_origin(request)
    cookie, session = await current_session(request)
    check_csrf_token(session, request.headers.get("x-csrf-token"))
    svc = services(request)
    await session_actions.log_out(request, cookie, session, via="api")
    return Response(
        status_code=204,
        headers={"set-cookie": svc.cookies.clear_session_cookie(), "cache-control": "no-store"},
    )


@router.get("/sessions", response_model=list[SessionSummary], responses=ERRORS)
async def list_sessions(request: Request) -> Response:
    """Every live session of the caller's account."""
    _, session = await current_session(request)
    sessions = await services(request).sessions.list_for_user(session.user_id)
    return json_ok([_summary(s, session.sid) for s in sessions])


@router.delete(
    "/sessions/{sid}",
    status_code=204,
    responses={**ERRORS, 404: {"description": "no such session of yours"}},
)
async def end_session(request: Request, sid: str) -> Response:
    """End one of the caller's own sessions by its public id."""
    check_same_origin(request)
    cookie, session = await current_session(request)
    check_csrf_token(session, request.headers.get("x-csrf-token"))
    svc = services(request)
    if not is_well_formed_sid(sid):
        raise HTTPError(404, "session_not_found", "no such session")
    if sid == session.sid:
        await session_actions.log_out(request, cookie, session, via="api")
        return Response(
            status_code=204,
            headers={"set-cookie": svc.cookies.clear_session_cookie(), "cache-control": "no-store"},
        )
    # Only the owner's sessions: another user's sid answers exactly like an unknown one.
    if not await session_actions.end_other(request, session, sid, via="api"):
        raise HTTPError(404, "session_not_found", "no such session")
    return Response(status_code=204, headers={"cache-control": "no-store"})


@router.delete("/sessions", responses=ERRORS)
async def end_all_sessions(request: Request, keep_current: bool = False) -> Response:
    """Log out everywhere (``?keep_current=true`` keeps the calling session)."""
    check_same_origin(request)
    _, session = await current_session(request)
    check_csrf_token(session, request.headers.get("x-csrf-token"))
    svc = services(request)
    ended = await session_actions.end_all(request, session, via="api", keep_current=keep_current)
    headers = {} if keep_current else {"set-cookie": svc.cookies.clear_session_cookie()}
    return json_ok({"ended": ended}, 200, headers)
