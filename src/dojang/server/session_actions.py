"""Ending sessions on a user's behalf, audited the same way from the pages and the API."""

from __future__ import annotations

from starlette.requests import Request

from dojang.server.context import audit, services
from dojang.sessions.model import Session


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
