"""Session store on the relational database (SQLite embedded default, or PostgreSQL)."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeAlias, cast

from sqlalchemy import Row, bindparam, case, delete, exc, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dojang.errors import SessionCollision, SessionNotFound
from dojang.sessions.model import Session, decode_data, encode_data
from dojang.sessions.store import Brief, CannotAnswerNow
from dojang.storage.db import Database
from dojang.storage.sessions_tables import sessions_table as t
from dojang.storage.sqlite_read import IndexedSelect

log = logging.getLogger("dojang.sessions")

_Row: TypeAlias = Row[*tuple[Any, ...]]

_COLUMNS = (
    t.c.key_hash,
    t.c.sid,
    t.c.user_id,
    t.c.created_at,
    t.c.last_seen,
    t.c.auth_time,
    t.c.idle_timeout,
    t.c.absolute_expires_at,
    t.c.csrf_secret,
    t.c.methods,
    t.c.ip,
    t.c.user_agent,
    t.c.data,
)

# Primary-key and sid lookups: synchronous on a SQLite file (the forward-auth hot path), the
# same statement through SQLAlchemy elsewhere (dojang.storage.sqlite_read).
_BY_KEY = IndexedSelect(select(*_COLUMNS).where(t.c.key_hash == bindparam("key_hash")))
_BY_SID = IndexedSelect(select(*_COLUMNS).where(t.c.sid == bindparam("sid")))
# The forward-auth peek: only the columns a liveness check needs (store.Brief's order).
_BRIEF = IndexedSelect(
    select(t.c.sid, t.c.user_id, t.c.last_seen, t.c.idle_timeout, t.c.absolute_expires_at).where(
        t.c.key_hash == bindparam("key_hash")
    )
)


def _to_row(session: Session) -> dict[str, Any]:
    return {
        "key_hash": session.key_hash,
        "sid": session.sid,
        "user_id": session.user_id,
        "created_at": session.created_at,
        "last_seen": session.last_seen,
        "auth_time": session.auth_time,
        "idle_timeout": session.idle_timeout,
        "absolute_expires_at": session.absolute_expires_at,
        "expires_at": session.expires_at,
        "csrf_secret": session.csrf_secret,
        "methods": json.dumps(list(session.methods)),
        "ip": session.ip,
        "user_agent": session.user_agent,
        "data": encode_data(session.data),
    }


def _from_row(row: _Row) -> Session:
    return Session(
        key_hash=bytes(row.key_hash),
        sid=row.sid,
        user_id=row.user_id,
        created_at=row.created_at,
        last_seen=row.last_seen,
        auth_time=row.auth_time,
        idle_timeout=row.idle_timeout,
        absolute_expires_at=row.absolute_expires_at,
        csrf_secret=row.csrf_secret,
        methods=tuple(json.loads(row.methods)),
        ip=row.ip,
        user_agent=row.user_agent,
        data=decode_data(row.data),
    )


# Most sessions carry the same few method lists and an empty data dict; decoding those JSON
# strings once and reusing the result keeps the hot read path free of json.loads calls.
_DECODED_METHODS: dict[str, tuple[str, ...]] = {}


def _methods(text: str) -> tuple[str, ...]:
    found = _DECODED_METHODS.get(text)
    if found is None:
        found = tuple(json.loads(text))
        if len(_DECODED_METHODS) < 64:
            _DECODED_METHODS[text] = found
    return found


def _from_tuple(row: tuple[Any, ...]) -> Session:
    (
        key_hash,
        sid,
        user_id,
        created_at,
        last_seen,
        auth_time,
        idle_timeout,
        absolute,
        csrf,
        methods,
        ip,
        user_agent,
        data,
    ) = row
    return Session(
        key_hash=bytes(key_hash),
        sid=sid,
        user_id=user_id,
        created_at=created_at,
        last_seen=last_seen,
        auth_time=auth_time,
        idle_timeout=idle_timeout,
        absolute_expires_at=absolute,
        csrf_secret=csrf,
        methods=_methods(methods),
        ip=ip,
        user_agent=user_agent,
        data={} if data == "{}" else decode_data(data),
    )


class SqlSessionStore:
    """A :class:`~dojang.sessions.store.SessionStore` on the ``sessions`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __repr__(self) -> str:
        # The URL may carry a password; name the dialect only.
        return f"SqlSessionStore({'sqlite' if self._db.is_sqlite else 'postgresql'})"

    def _begin(self) -> AbstractAsyncContextManager[AsyncConnection]:
        # IntegrityError passes through (create translates it into SessionCollision).
        return self._db.transaction("session store")

    async def create(self, session: Session) -> None:
        """Insert a new session; ``SessionCollision`` on a duplicate key or sid."""
        try:
            async with self._begin() as conn:
                await conn.execute(insert(t).values(_to_row(session)))
        except exc.IntegrityError as e:
            raise SessionCollision() from e

    def _read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        # Reads need no write lock and no transaction of their own.
        return self._db.connection("session store")

    async def get(self, key_hash: bytes) -> Session | None:
        """Return the session under ``key_hash``, or ``None``; never creates one."""
        row = await _BY_KEY.one(self._db, "session store", key_hash=key_hash)
        return None if row is None else _from_tuple(row)

    def peek_now(self, key_hash: bytes) -> Brief | None:
        """The liveness columns under ``key_hash`` from the SQLite file, synchronously.

        ``CannotAnswerNow`` on PostgreSQL (no synchronous reader) or when the read fails; the
        caller then goes through ``get``, whose own fallback fails closed.
        """
        try:
            row = _BRIEF.raw_now(self._db, key_hash)
        except (LookupError, sqlite3.Error) as exc:
            raise CannotAnswerNow() from exc
        return None if row is None else cast(Brief, row)

    async def get_by_sid(self, sid: str) -> Session | None:
        """Return the session named ``sid``, or ``None``."""
        row = await _BY_SID.one(self._db, "session store", sid=sid)
        return None if row is None else _from_tuple(row)

    async def touch(self, key_hash: bytes, last_seen: float) -> None:
        """Move ``last_seen`` forward in one UPDATE; a missing session stays missing."""
        idle_end = literal(last_seen) + t.c.idle_timeout
        stmt = (
            update(t)
            .where(t.c.key_hash == key_hash, t.c.last_seen < last_seen)
            .values(
                last_seen=last_seen,
                # Portable min(): SQLite has min(a, b), PostgreSQL calls it LEAST.
                expires_at=case(
                    (idle_end < t.c.absolute_expires_at, idle_end),
                    else_=t.c.absolute_expires_at,
                ),
            )
        )
        async with self._begin() as conn:
            await conn.execute(stmt)

    async def save(self, session: Session) -> None:
        """Update an existing session; ``SessionNotFound`` if it was deleted meanwhile."""
        values = _to_row(session)
        del values["key_hash"], values["sid"]
        # UPDATE only, never an upsert: a concurrent logout must stay a logout.
        stmt = (
            update(t).where(t.c.key_hash == session.key_hash, t.c.sid == session.sid).values(values)
        )
        async with self._begin() as conn:
            result = await conn.execute(stmt)
        if result.rowcount == 0:
            raise SessionNotFound()

    async def delete(self, key_hash: bytes) -> bool:
        """Delete by key; return whether a session was deleted."""
        async with self._begin() as conn:
            result = await conn.execute(delete(t).where(t.c.key_hash == key_hash))
        return result.rowcount > 0

    async def delete_by_sid(self, sid: str) -> Session | None:
        """Delete by public id in one statement; return the deleted session."""
        async with self._begin() as conn:
            result = await conn.execute(delete(t).where(t.c.sid == sid).returning(*_COLUMNS))
            row = result.first()
        return None if row is None else _from_row(row)

    async def list_for_user(self, user_id: str) -> list[Session]:
        """Return every stored session of ``user_id``."""
        async with self._read() as conn:
            rows: Sequence[_Row] = (
                await conn.execute(select(*_COLUMNS).where(t.c.user_id == user_id))
            ).all()
        return [_from_row(r) for r in rows]

    async def delete_for_user(self, user_id: str, *, except_sid: str | None = None) -> list[str]:
        """Delete every session of ``user_id`` but ``except_sid``; return the deleted sids."""
        stmt = delete(t).where(t.c.user_id == user_id)
        if except_sid is not None:
            stmt = stmt.where(t.c.sid != except_sid)
        async with self._begin() as conn:
            result = await conn.execute(stmt.returning(t.c.sid))
            return [r.sid for r in result.all()]

    async def purge_expired(self, now: float) -> int:
        """Delete every session expired at ``now`` (one indexed range delete)."""
        async with self._begin() as conn:
            result = await conn.execute(delete(t).where(t.c.expires_at <= now))
        return result.rowcount

    async def count_live(self, now: float) -> int | None:
        """One indexed count over ``expires_at``."""
        async with self._read() as conn:
            value = (await conn.execute(select(func.count()).where(t.c.expires_at > now))).scalar()
        return int(value or 0)

    async def close(self) -> None:
        """Nothing to release: the engine and the fast reader belong to the ``Database``."""

    async def ping(self) -> None:
        """Run ``SELECT 1``; ``StoreUnavailable`` if the database does not answer."""
        async with self._read() as conn:
            await conn.execute(select(literal(1)))
