"""The contract every session store keeps (one protocol, one module per backend).

Modelled on Django's ``contrib/sessions/backends/base.py``: ``create`` never overwrites,
``get`` never creates, ``save`` never resurrects a session that was deleted meanwhile. Expiry
is the manager's decision; a store only keeps records and purges on request. A store that does
not answer raises :class:`~dojang.errors.StoreUnavailable` so callers fail closed.
"""

from __future__ import annotations

from typing import Protocol, TypeAlias

from dojang.sessions.model import Session

Brief: TypeAlias = tuple[str, str, float, float, float]
"""What the forward-auth check needs of a session, in this order:
``(sid, user_id, last_seen, idle_timeout, absolute_expires_at)``."""


class CannotAnswerNow(Exception):
    """A synchronous peek cannot answer (no synchronous reader, or it failed): use ``get``."""


class PeekableStore(Protocol):
    """A store that can also answer a key lookup synchronously, on the event loop's thread.

    Optional (``SessionManager.peek`` looks for ``peek_now``): only worth having where a
    lookup costs microseconds without I/O waits, as on the SQLite file (``SqlSessionStore``).
    """

    def peek_now(self, key_hash: bytes) -> Brief | None:
        """The :data:`Brief` of the session under ``key_hash`` (expired ones too), or ``None``.

        Same record as ``get`` would return at the same moment; never creates one. Raises
        :class:`CannotAnswerNow` when it cannot answer synchronously (callers use ``get``).
        """
        ...


class SessionStore(Protocol):
    """Persistence for :class:`~dojang.sessions.model.Session` records, keyed by ``key_hash``."""

    async def create(self, session: Session) -> None:
        """Insert a new session.

        Raises ``SessionCollision`` if a session with the same ``key_hash`` or ``sid`` exists;
        the existing record is left untouched.
        """
        ...

    async def get(self, key_hash: bytes) -> Session | None:
        """Return the session stored under ``key_hash`` (expired ones too), or ``None``.

        Never creates a record.
        """
        ...

    async def get_by_sid(self, sid: str) -> Session | None:
        """Return the session with public id ``sid``, or ``None``."""
        ...

    async def touch(self, key_hash: bytes, last_seen: float) -> None:
        """Move ``last_seen`` forward (never backward); a missing session stays missing."""
        ...

    async def save(self, session: Session) -> None:
        """Write every field of an existing session.

        Raises ``SessionNotFound`` if it was deleted meanwhile: a save never resurrects a
        session that was logged out or revoked concurrently.
        """
        ...

    async def delete(self, key_hash: bytes) -> bool:
        """Delete the session under ``key_hash``; return whether one was deleted."""
        ...

    async def delete_by_sid(self, sid: str) -> Session | None:
        """Delete the session with public id ``sid``; return the deleted record or ``None``."""
        ...

    async def list_for_user(self, user_id: str) -> list[Session]:
        """Return every stored session of ``user_id`` (expired ones too), in no set order."""
        ...

    async def delete_for_user(self, user_id: str, *, except_sid: str | None = None) -> list[str]:
        """Delete every session of ``user_id`` except ``except_sid``; return the deleted sids."""
        ...

    async def purge_expired(self, now: float) -> int:
        """Delete every session that is expired at ``now``; return how many were deleted."""
        ...

    async def ping(self) -> None:
        """Return if the store answers; raise ``StoreUnavailable`` otherwise."""
        ...

    async def count_live(self, now: float) -> int | None:
        """How many sessions are live at ``now``, or None if the store cannot say cheaply.

        For the ``dojang_active_sessions`` gauge; never used for a security decision.
        """
        ...

    async def close(self) -> None:
        """Release what the store holds of its own (shared pools belong to their owner)."""
        ...
