"""An in-process session store: single worker, tests, and ``DOJANG_SESSION_STORE=memory``.

Sessions vanish on restart and are not shared between workers. Every method runs without an
``await`` in its body, so each one is atomic under the event loop without a lock.
"""

from __future__ import annotations

import dataclasses

from dojang.errors import SessionCollision, SessionNotFound
from dojang.sessions.model import Session, decode_data, encode_data
from dojang.sessions.store import Brief


def _copy(session: Session) -> Session:
    # Callers own the objects they pass in and get back, as with a real store: nobody may
    # change a stored session by mutating a returned object. The JSON round trip also makes
    # data behave exactly as in the SQL store (tuples come back as lists, and so on).
    return dataclasses.replace(session, data=decode_data(encode_data(session.data)))


class MemorySessionStore:
    """A dict-backed :class:`~dojang.sessions.store.SessionStore`."""

    def __init__(self) -> None:
        self._by_key: dict[bytes, Session] = {}
        self._key_by_sid: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"MemorySessionStore(<{len(self._by_key)} sessions>)"

    async def create(self, session: Session) -> None:
        """Insert a new session; ``SessionCollision`` on a duplicate key or sid."""
        if session.key_hash in self._by_key or session.sid in self._key_by_sid:
            raise SessionCollision()
        self._by_key[session.key_hash] = _copy(session)
        self._key_by_sid[session.sid] = session.key_hash

    async def get(self, key_hash: bytes) -> Session | None:
        """Return a copy of the stored session, or ``None``."""
        found = self._by_key.get(key_hash)
        return None if found is None else _copy(found)

    def peek_now(self, key_hash: bytes) -> Brief | None:
        """The liveness fields of the stored session, or ``None`` (always answers)."""
        s = self._by_key.get(key_hash)
        if s is None:
            return None
        return (s.sid, s.user_id, s.last_seen, s.idle_timeout, s.absolute_expires_at)

    async def get_by_sid(self, sid: str) -> Session | None:
        """Return a copy of the session named ``sid``, or ``None``."""
        key = self._key_by_sid.get(sid)
        return None if key is None else _copy(self._by_key[key])

    async def touch(self, key_hash: bytes, last_seen: float) -> None:
        """Move ``last_seen`` forward if the session still exists."""
        found = self._by_key.get(key_hash)
        if found is not None and last_seen > found.last_seen:
            found.last_seen = last_seen

    async def save(self, session: Session) -> None:
        """Replace an existing session; ``SessionNotFound`` if it is gone."""
        current = self._by_key.get(session.key_hash)
        if current is None:
            raise SessionNotFound()
        if current.sid != session.sid:
            # The sid is the public name of the record; it never changes under one key.
            raise SessionNotFound("the session was replaced")
        self._by_key[session.key_hash] = _copy(session)

    def _remove(self, key_hash: bytes) -> bool:
        found = self._by_key.pop(key_hash, None)
        if found is None:
            return False
        del self._key_by_sid[found.sid]
        return True

    async def delete(self, key_hash: bytes) -> bool:
        """Delete by key; return whether a session was deleted."""
        return self._remove(key_hash)

    async def delete_by_sid(self, sid: str) -> Session | None:
        """Delete by public id; return the deleted session."""
        key = self._key_by_sid.pop(sid, None)
        if key is None:
            return None
        return self._by_key.pop(key)

    async def list_for_user(self, user_id: str) -> list[Session]:
        """Return copies of every session of ``user_id``."""
        return [_copy(s) for s in self._by_key.values() if s.user_id == user_id]

    async def delete_for_user(self, user_id: str, *, except_sid: str | None = None) -> list[str]:
        """Delete every session of ``user_id`` but ``except_sid``; return the deleted sids."""
        doomed = [s for s in self._by_key.values() if s.user_id == user_id and s.sid != except_sid]
        for s in doomed:
            self._remove(s.key_hash)
        return [s.sid for s in doomed]

    async def purge_expired(self, now: float) -> int:
        """Delete every session expired at ``now``."""
        doomed = [s.key_hash for s in self._by_key.values() if s.is_expired(now)]
        for key in doomed:
            self._remove(key)
        return len(doomed)

    async def count_live(self, now: float) -> int | None:
        """Sessions in this process that have not expired."""
        return sum(1 for s in self._by_key.values() if not s.is_expired(now))

    async def close(self) -> None:
        """Nothing to release."""

    async def ping(self) -> None:
        """Always answers: the store is this process."""
