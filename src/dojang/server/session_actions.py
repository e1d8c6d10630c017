"""Starting and ending sessions on a user's behalf, the same way from the pages and the API."""

from __future__ import annotations

from starlette.requests import Request

from dojang.errors import InvalidCredentials
from dojang.server.context import audit, remote_ip, services, session_cookie, user_agent
from dojang.sessions.model import Session


async def start_session(request: Request, user_id: str, *, remember: bool) -> tuple[str, Session]:
    """Start a new session for a user who just proved who they are; return ``(cookie, session)``.

    No fixation: whatever session the browser carried before is ended, and the new one gets
    a fresh id and CSRF secret. A user disabled while their password was being checked gets
    no session: the account is read again once the session exists, so either this read sees
    the flag, or the session already existed when ``Accounts.disable`` ended every session
    after committing the flag. ``InvalidCredentials`` (the generic login error) then.
    """
    svc = services(request)
    old = session_cookie(request)
    if old is not None:
        await svc.sessions.destroy(old)
    cookie, session = await svc.sessions.create(
        user_id, ip=remote_ip(request), user_agent=user_agent(request), remember=remember
    )
    user = await svc.accounts.get(user_id)
    if user is None or user.disabled:
        await svc.sessions.destroy(cookie)
        raise InvalidCredentials("incorrect username or password")
    return cookie, session


async def log_out(request: Request, cookie: str, session: Session, *, via: str) -> None:
    """End the caller's own session (the cookie it came with)."""
    await services(request).sessions.destroy(cookie)
    await audit(
        request, "logout", actor=session.user_id, subject=session.user_id, sid=session.sid, via=via
    )


async def end_other(request: Request, session: Session, sid: str, *, via: str) -> bool:
    """End another session of the same user; False if there is no such session of theirs."""
    if not await services(request).sessions.revoke(sid, user_id=session.user_id):
        return False
    await audit(
        request, "session.revoked", actor=session.user_id, subject=session.user_id, sid=sid, via=via
    )
    return True


async def end_all(
    request: Request, session: Session, *, via: str, keep_current: bool = False
) -> int:
    """Log out everywhere (optionally keeping the calling session); returns how many ended."""
    ended = await services(request).sessions.revoke_all(
        session.user_id, except_sid=session.sid if keep_current else None
    )
    await audit(
        request,
        "sessions.revoked_all",
        actor=session.user_id,
        subject=session.user_id,
        sid=session.sid,
        ended=len(ended),
        via=via,
    )
    return len(ended)
