"""Session lifecycle: create, load (with sliding expiry), rotate, expire, destroy, revoke.

The manager owns every policy decision (timeouts, throttled touches, data limits, who may end
which session); stores only keep records. Cookie values are checked for shape before they are
hashed, so malformed input never reaches a store.
"""

from __future__ import annotations

import dataclasses
import hmac
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dojang.clock import SYSTEM_CLOCK, Clock
from dojang.errors import SessionCollision, SessionDataTooLarge, SessionError, SessionNotFound
from dojang.sessions.ids import (
    hash_cookie,
    is_well_formed_cookie,
    is_well_formed_sid,
    new_cookie_value,
    new_csrf_secret,
    new_sid,
)
from dojang.sessions.model import USER_AGENT_MAX, Session, encode_data, expiry
from dojang.sessions.store import Brief, CannotAnswerNow, SessionStore

IP_MAX = 64
"""Longest client address kept (an IPv6 address with zone id fits comfortably)."""

OnRevoke = Callable[[list[Session]], Awaitable[None]]
"""Called with the sessions that just ended (logout, revocation, expiry found on load)."""


@dataclass(frozen=True)
class SessionPolicy:
    """Timeouts and limits for sessions; all durations in seconds."""

    idle_timeout: float = 1800
    absolute_lifetime: float = 12 * 3600
    remember_me_lifetime: float = 30 * 86400
    remember_me_idle: float = 7 * 86400
    # Sliding expiry writes last_seen at most this often per session, so a busy page does
    # not turn every request into a store write.
    touch_interval: float = 60
    max_data_bytes: int = 4096


def _positive_duration(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SessionError(f"{name} must be a number of seconds")
    if not math.isfinite(value) or value <= 0:
        raise SessionError(f"{name} must be a positive, finite number of seconds")
    return float(value)


class SessionManager:
    """Creates, loads and ends sessions on a :class:`~dojang.sessions.store.SessionStore`."""

    def __init__(
        self,
        store: SessionStore,
        policy: SessionPolicy = SessionPolicy(),
        *,
        clock: Clock = SYSTEM_CLOCK,
        on_revoke: OnRevoke | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self._clock = clock
        self._on_revoke = on_revoke
        # Optional synchronous lookup (store.PeekableStore), used by peek().
        self._peek_now: Callable[[bytes], Brief | None] | None = getattr(store, "peek_now", None)

    def __repr__(self) -> str:
        return f"SessionManager({self.store!r}, {self.policy!r})"

    async def _ended(self, sessions: list[Session]) -> None:
        # Errors from the callback propagate: a revocation that could not be announced must
        # not look like a clean success to the caller.
        if sessions and self._on_revoke is not None:
            await self._on_revoke(sessions)

    def _check_data(self, data: object) -> dict[str, Any]:
        if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
            raise SessionError("session data must be a JSON object with string keys")
        try:
            encoded = encode_data(data)
        except (TypeError, ValueError) as e:
            raise SessionError(f"session data is not JSON-serialisable: {e}") from e
        size = len(encoded.encode("utf-8"))
        if size > self.policy.max_data_bytes:
            raise SessionDataTooLarge(
                f"session data is {size} bytes encoded; the limit is {self.policy.max_data_bytes}"
            )
        return dict(data)

    async def create(
        self,
        user_id: str,
        *,
        methods: Sequence[str] = ("pwd",),
        ip: str | None = None,
        user_agent: str | None = None,
        remember: bool = False,
        data: dict[str, Any] | None = None,
    ) -> tuple[str, Session]:
        """Start a session for ``user_id``; return ``(cookie_value, session)``.

        ``remember`` selects the remember-me idle timeout and lifetime. The cookie value is
        returned once and never stored.
        """
        checked = self._check_data({} if data is None else data)
        now = self._clock.now()
        p = self.policy
        idle = p.remember_me_idle if remember else p.idle_timeout
        lifetime = p.remember_me_lifetime if remember else p.absolute_lifetime
        # 256 random bits do not collide in practice; one retry covers a freak or a store
        # that reports a transient duplicate, and a second collision means something is wrong.
        for attempt in range(2):
            cookie = new_cookie_value()
            session = Session(
                key_hash=hash_cookie(cookie),
                sid=new_sid(),
                user_id=user_id,
                created_at=now,
                last_seen=now,
                auth_time=now,
                idle_timeout=idle,
                absolute_expires_at=now + lifetime,
                csrf_secret=new_csrf_secret(),
                methods=tuple(methods),
                ip=None if ip is None else ip[:IP_MAX],
                user_agent=None if user_agent is None else user_agent[:USER_AGENT_MAX],
                data=checked,
            )
            try:
                await self.store.create(session)
            except SessionCollision:
                if attempt:
                    raise
                continue
            return cookie, session
        raise AssertionError("unreachable")  # pragma: no cover

    async def _load(self, cookie_value: str | None) -> tuple[bytes, Session, float]:
        if cookie_value is None or not is_well_formed_cookie(cookie_value):
            raise SessionNotFound()
        key = hash_cookie(cookie_value)
        session = await self.store.get(key)
        if session is None:
            raise SessionNotFound()
        now = self._clock.now()
        if session.is_expired(now):
            # Whoever deletes it announces it, so concurrent loads report the expiry once.
            if await self.store.delete(key):
                await self._ended([session])
            raise SessionNotFound("the session has expired")
        return key, session, now

    async def load(self, cookie_value: str | None) -> Session:
        """Return the live session for a cookie value.

        ``SessionNotFound`` for ``None``, malformed, unknown or expired values (expired ones are
        deleted and reported to ``on_revoke``). Sliding expiry: ``last_seen`` is written at most
        once per ``policy.touch_interval``; the returned session shows what the store holds.
        """
        key, session, now = await self._load(cookie_value)
        if self._touch_due(session.last_seen, now):
            await self.store.touch(key, now)
            session.last_seen = now
        return session

    def peek(self, cookie_value: str | None) -> tuple[str, str] | None:
        """Answer "whose live session is this?" synchronously, when that needs no write.

        Returns ``(user_id, sid)`` for a live session whose ``last_seen`` needs no touch;
        raises ``SessionNotFound`` for malformed or unknown values; returns ``None`` whenever
        only :meth:`load` can answer (the store has no synchronous peek or it failed, the
        session has expired and must be deleted and announced, or a touch is due), and the
        caller then awaits :meth:`load`. The forward-auth path uses it: on the SQLite file a
        peek costs about a third of a full ``load`` and the answer is the same.
        """
        if self._peek_now is None:
            return None
        if cookie_value is None or not is_well_formed_cookie(cookie_value):
            raise SessionNotFound()
        try:
            brief = self._peek_now(hash_cookie(cookie_value))
        except CannotAnswerNow:
            return None
        if brief is None:
            raise SessionNotFound()
        sid, user_id, last_seen, idle_timeout, absolute_expires_at = brief
        now = self._clock.now()
        # The same rules as load(): Session.is_expired and the touch interval.
        if now >= expiry(last_seen, idle_timeout, absolute_expires_at):
            return None
        if self._touch_due(last_seen, now):
            return None
        return user_id, sid

    def _touch_due(self, last_seen: float, now: float) -> bool:
        # Sliding expiry writes last_seen at most once per touch_interval.
        return now - last_seen >= self.policy.touch_interval

    async def rotate(
        self, cookie_value: str, *, methods: Sequence[str] | None = None
    ) -> tuple[str, Session]:
        """Replace the session with a fresh key, sid and CSRF secret; return the new pair.

        For logins on top of a session and privilege changes (stops session fixation). User,
        data and expiry settings carry over; the absolute expiry does not move, so rotating
        never extends a session. ``methods``, when given, records a fresh authentication
        (``auth_time`` becomes now). The old cookie is dead afterwards.
        """
        old_key, old, now = await self._load(cookie_value)
        for attempt in range(2):
            cookie = new_cookie_value()
            new = dataclasses.replace(
                old,
                key_hash=hash_cookie(cookie),
                sid=new_sid(),
                csrf_secret=new_csrf_secret(),
                last_seen=now,
                methods=old.methods if methods is None else tuple(methods),
                auth_time=old.auth_time if methods is None else now,
                data=dict(old.data),
            )
            try:
                await self.store.create(new)
            except SessionCollision:
                if attempt:
                    raise
                continue
            break
        if not await self.store.delete(old_key):
            # The old session was ended meanwhile (logout, revocation): its successor must
            # not outlive it.
            await self.store.delete(new.key_hash)
            raise SessionNotFound("the session was ended during rotation")
        return cookie, new

    async def set_expiry(
        self,
        cookie_value: str,
        *,
        idle_timeout: float | None = None,
        absolute_lifetime: float | None = None,
    ) -> Session:
        """Change one session's idle timeout and/or lifetime (counted from now).

        For remember-me after login. Values must be positive and finite, else ``SessionError``.
        """
        idle = None if idle_timeout is None else _positive_duration("idle_timeout", idle_timeout)
        life = (
            None
            if absolute_lifetime is None
            else _positive_duration("absolute_lifetime", absolute_lifetime)
        )
        _, session, now = await self._load(cookie_value)
        if idle is not None:
            session.idle_timeout = idle
        if life is not None:
            session.absolute_expires_at = now + life
        session.last_seen = now
        await self.store.save(session)
        return session

    async def update_data(self, cookie_value: str, data: dict[str, Any]) -> Session:
        """Replace the session's data with ``data``.

        Must be a JSON object with string keys (else ``SessionError``) of at most
        ``policy.max_data_bytes`` encoded (else ``SessionDataTooLarge``).
        """
        checked = self._check_data(data)
        _, session, _ = await self._load(cookie_value)
        session.data = checked
        await self.store.save(session)
        return session

    async def destroy(self, cookie_value: str | None) -> Session | None:
        """Log out: delete the session behind the cookie; return it, or ``None`` if none."""
        if cookie_value is None or not is_well_formed_cookie(cookie_value):
            return None
        key = hash_cookie(cookie_value)
        session = await self.store.get(key)
        if session is None or not await self.store.delete(key):
            return None
        await self._ended([session])
        return session

    async def revoke(self, sid: str, *, user_id: str | None = None) -> bool:
        """End the session named ``sid``; return whether one was ended.

        With ``user_id``, only a session of that user is ended, so a user can never end (or
        probe for) someone else's session by guessing sids.
        """
        if not is_well_formed_sid(sid):
            return False
        if user_id is not None:
            found = await self.store.get_by_sid(sid)
            if found is None or found.user_id != user_id:
                return False
        ended = await self.store.delete_by_sid(sid)
        if ended is None:
            return False
        await self._ended([ended])
        return True

    async def list_for_user(self, user_id: str) -> list[Session]:
        """Return the user's live sessions, newest first."""
        now = self._clock.now()
        live = [s for s in await self.store.list_for_user(user_id) if not s.is_expired(now)]
        live.sort(key=lambda s: (s.created_at, s.last_seen), reverse=True)
        return live

    async def revoke_all(self, user_id: str, *, except_sid: str | None = None) -> list[str]:
        """End every session of ``user_id`` except ``except_sid``; return the ended sids.

        ``on_revoke`` receives the ended sessions that were listed just before the delete; a
        session created between the two steps is deleted and its sid returned all the same.
        """
        before = {s.sid: s for s in await self.store.list_for_user(user_id)}
        sids = await self.store.delete_for_user(user_id, except_sid=except_sid)
        await self._ended([before[sid] for sid in sids if sid in before])
        return sids

    async def check_csrf(self, session: Session, token: str | None) -> bool:
        """Tell whether ``token`` is the session's CSRF secret (constant-time comparison)."""
        if not isinstance(token, str) or not token:
            return False
        # compare_digest on str rejects non-ASCII with TypeError; bytes compare anything.
        return hmac.compare_digest(token.encode("utf-8"), session.csrf_secret.encode("utf-8"))
