"""Persistence for the OIDC provider: codes, refresh-token families, consents, client
sessions and back-channel logout deliveries (SQLAlchemy Core on the relational database).

Single use is enforced by the database, not by a read-then-write in Python: consuming a code
or rotating a refresh token is one ``UPDATE … WHERE used IS NULL`` whose row count decides the
winner, so two concurrent redemptions can never both succeed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Delete, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dojang.accounts._storage import begin, read
from dojang.clock import Clock
from dojang.storage.audit_tables import audit_table
from dojang.storage.db import Database
from dojang.storage.group_commit import GroupCommit
from dojang.storage.oidc_tables import (
    client_sessions_table,
    codes_table,
    consents_table,
    logout_deliveries_table,
    refresh_tokens_table,
)
from dojang.storage.sqlite_read import IndexedSelect

_REFRESH_BY_HASH = IndexedSelect(
    select(refresh_tokens_table).where(refresh_tokens_table.c.token_hash == bindparam("token_hash"))
)


@dataclass(frozen=True, slots=True)
class CodeRecord:
    """What an authorization code stands for."""

    client_id: str
    user_id: str
    sid: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str
    auth_time: float
    amr: tuple[str, ...]
    expires_at: float
    used_at: float | None
    family_id: str | None
    access_jti: str | None
    access_exp: float | None


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    """One refresh token of a family."""

    family_id: str
    client_id: str
    user_id: str
    sid: str
    scope: str
    auth_time: float
    amr: tuple[str, ...]
    expires_at: float
    rotated_at: float | None
    revoked: bool


@dataclass(frozen=True, slots=True)
class Delivery:
    """A back-channel logout notification waiting to be (re)sent."""

    id: int
    client_id: str
    sid: str
    sub: str
    uri: str
    state: str
    attempts: int
    next_attempt_at: float
    last_error: str | None


@dataclass(frozen=True, slots=True)
class _Rotation:
    old_hash: str
    successor: dict[str, object] | None
    now: float
    audit_row: dict[str, Any] | None = None


async def _rotate_batch(conn: AsyncConnection, items: Sequence[_Rotation]) -> list[bool]:
    """Retire every still-live token of the batch in one UPDATE, then insert the successors
    of the ones this batch retired. The same token twice in one batch: the first wins."""
    t = refresh_tokens_table
    result = await conn.execute(
        update(t)
        .where(
            t.c.token_hash.in_(list(dict.fromkeys(i.old_hash for i in items))),
            t.c.rotated_at.is_(None),
            t.c.revoked.is_(False),
        )
        .values(rotated_at=max(i.now for i in items))
        .returning(t.c.token_hash)
    )
    retired = set(result.scalars().all())
    won: list[bool] = []
    successors: list[dict[str, object]] = []
    audit_rows: list[dict[str, Any]] = []
    for item in items:
        ok = item.old_hash in retired
        retired.discard(item.old_hash)
        if ok and item.successor is not None:
            successors.append(item.successor)
        if ok and item.audit_row is not None:
            audit_rows.append(item.audit_row)
        won.append(ok)
    if successors:
        await conn.execute(insert(t), successors)
    if audit_rows:
        # The rotation and its audit record commit together: one transaction, never one
        # without the other.
        await conn.execute(insert(audit_table), audit_rows)
    return won


def _delivery(r: Any) -> Delivery:
    return Delivery(
        r.id, r.client_id, r.sid, r.sub, r.uri, r.state, r.attempts, r.next_attempt_at, r.last_error
    )


class OIDCStore:
    """The OIDC tables of one database. A server keeps one (``Services.oidc``): concurrent
    refresh rotations through it share transactions."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._rotations: GroupCommit[_Rotation, bool] = GroupCommit(
            db, "account store", _rotate_batch
        )

    # --- authorization codes ------------------------------------------------------------

    async def save_code(self, code_hash: str, record: CodeRecord) -> None:
        """Store a fresh code under its hash."""
        async with begin(self._db) as conn:
            await conn.execute(
                insert(codes_table).values(
                    code_hash=code_hash,
                    client_id=record.client_id,
                    user_id=record.user_id,
                    sid=record.sid,
                    redirect_uri=record.redirect_uri,
                    scope=record.scope,
                    nonce=record.nonce,
                    code_challenge=record.code_challenge,
                    auth_time=record.auth_time,
                    amr=" ".join(record.amr),
                    expires_at=record.expires_at,
                )
            )

    async def get_code(self, code_hash: str) -> CodeRecord | None:
        """The code stored under ``code_hash`` (used or not), or None."""
        async with read(self._db) as conn:
            r = (
                await conn.execute(select(codes_table).where(codes_table.c.code_hash == code_hash))
            ).first()
        if r is None:
            return None
        return CodeRecord(
            r.client_id,
            r.user_id,
            r.sid,
            r.redirect_uri,
            r.scope,
            r.nonce,
            r.code_challenge,
            r.auth_time,
            tuple(r.amr.split()),
            r.expires_at,
            r.used_at,
            r.family_id,
            r.access_jti,
            r.access_exp,
        )

    async def consume_code(self, code_hash: str) -> bool:
        """Mark the code used; True only for the one caller that used it first."""
        async with begin(self._db) as conn:
            result = await conn.execute(
                update(codes_table)
                .where(codes_table.c.code_hash == code_hash, codes_table.c.used_at.is_(None))
                .values(used_at=self._clock.now())
            )
        return result.rowcount == 1

    async def record_products(
        self, code_hash: str, *, family_id: str, access_jti: str, access_exp: float
    ) -> None:
        """Remember what a code produced, so that replaying it can revoke exactly that."""
        async with begin(self._db) as conn:
            await conn.execute(
                update(codes_table)
                .where(codes_table.c.code_hash == code_hash)
                .values(family_id=family_id, access_jti=access_jti, access_exp=access_exp)
            )

    async def _delete(self, stmt: Delete) -> int:
        async with begin(self._db) as conn:
            result = await conn.execute(stmt)
        return int(result.rowcount or 0)

    async def purge_codes(self, older_than: float) -> int:
        """Forget codes that expired before ``older_than`` (replay detection needs them a while)."""
        return await self._delete(delete(codes_table).where(codes_table.c.expires_at < older_than))

    async def purge_refresh(self, now: float) -> int:
        """Forget refresh tokens past their expiry (bounded by their session's absolute end:
        nothing can redeem them, and reuse detection of an expired family is moot)."""
        t = refresh_tokens_table
        return await self._delete(delete(t).where(t.c.expires_at <= now))

    async def purge_client_sessions(self, created_before: float) -> int:
        """Forget RP sessions older than any dojang session can live (their session ended by
        expiry, which takes no back-channel logout)."""
        t = client_sessions_table
        return await self._delete(delete(t).where(t.c.created_at < created_before))

    async def purge_deliveries(self, finished_before: float) -> int:
        """Forget back-channel deliveries that ended (delivered or given up) long enough ago
        that their record has served its purpose; pending ones are never purged."""
        t = logout_deliveries_table
        return await self._delete(
            delete(t).where(t.c.state != "pending", t.c.next_attempt_at < finished_before)
        )

    # --- refresh tokens -----------------------------------------------------------------

    def _refresh_row(self, token_hash: str, record: RefreshRecord) -> dict[str, object]:
        return {
            "token_hash": token_hash,
            "family_id": record.family_id,
            "client_id": record.client_id,
            "user_id": record.user_id,
            "sid": record.sid,
            "scope": record.scope,
            "auth_time": record.auth_time,
            "amr": " ".join(record.amr),
            "created_at": self._clock.now(),
            "expires_at": record.expires_at,
            "revoked": False,
        }

    async def save_refresh(self, token_hash: str, record: RefreshRecord) -> None:
        """Store a new refresh token of ``record.family_id``."""
        async with begin(self._db) as conn:
            await conn.execute(
                insert(refresh_tokens_table).values(self._refresh_row(token_hash, record))
            )

    async def get_refresh(self, token_hash: str) -> RefreshRecord | None:
        """The refresh token stored under ``token_hash``, or None."""
        r = await _REFRESH_BY_HASH.one(self._db, "account store", token_hash=token_hash)
        if r is None:
            return None
        return RefreshRecord(
            r.family_id,
            r.client_id,
            r.user_id,
            r.sid,
            r.scope,
            r.auth_time,
            tuple(r.amr.split()),
            r.expires_at,
            r.rotated_at,
            bool(r.revoked),
        )

    async def rotate_refresh(
        self,
        token_hash: str,
        new_hash: str | None = None,
        new: RefreshRecord | None = None,
        *,
        audit_row: dict[str, Any] | None = None,
    ) -> bool:
        """Retire a refresh token on use and, in the same transaction, store its successor.

        True only for the first, unrevoked use; otherwise nothing is written (a successor is
        never stored beside a token that was already used: that is reuse). ``audit_row`` (an
        ``AuditLog.prepare`` row) is inserted in the same transaction, only if the rotation
        wins. Concurrent rotations share transactions (group commit), each answered once
        committed.
        """
        row = None if new_hash is None or new is None else self._refresh_row(new_hash, new)
        rotation = _Rotation(token_hash, row, self._clock.now(), audit_row)
        return await self._rotations.submit(rotation)

    async def revoke_family(self, family_id: str) -> None:
        """End every refresh token of one family."""
        t = refresh_tokens_table
        async with begin(self._db) as conn:
            await conn.execute(update(t).where(t.c.family_id == family_id).values(revoked=True))

    async def revoke_for_sessions(self, sids: Iterable[str]) -> None:
        """End every refresh token minted under these dojang sessions."""
        sid_list = list(sids)
        if not sid_list:
            return
        t = refresh_tokens_table
        async with begin(self._db) as conn:
            await conn.execute(update(t).where(t.c.sid.in_(sid_list)).values(revoked=True))

    # --- consent ------------------------------------------------------------------------

    async def consented_scopes(self, user_id: str, client_id: str) -> frozenset[str]:
        """The scopes this user has already allowed this client."""
        t = consents_table
        async with read(self._db) as conn:
            r = (
                await conn.execute(
                    select(t.c.scopes).where(t.c.user_id == user_id, t.c.client_id == client_id)
                )
            ).first()
        return frozenset() if r is None else frozenset(r.scopes.split())

    async def grant_consent(self, user_id: str, client_id: str, scopes: Iterable[str]) -> None:
        """Remember consent for ``scopes`` (added to what was allowed before)."""
        t = consents_table
        merged = await self.consented_scopes(user_id, client_id) | frozenset(scopes)
        async with begin(self._db) as conn:
            await conn.execute(delete(t).where(t.c.user_id == user_id, t.c.client_id == client_id))
            await conn.execute(
                insert(t).values(
                    user_id=user_id,
                    client_id=client_id,
                    scopes=" ".join(sorted(merged)),
                    granted_at=self._clock.now(),
                )
            )

    # --- which clients hold a session of which dojang session ---------------------------

    async def add_client_session(self, sid: str, client_id: str, user_id: str) -> None:
        """Record that ``client_id`` got a code in dojang session ``sid`` (idempotent)."""
        try:
            async with begin(self._db) as conn:
                await conn.execute(
                    insert(client_sessions_table).values(
                        sid=sid, client_id=client_id, user_id=user_id, created_at=self._clock.now()
                    )
                )
        except IntegrityError:
            return

    async def take_client_sessions(self, sids: Iterable[str]) -> list[tuple[str, str, str]]:
        """Delete and return ``(sid, client_id, user_id)`` for these sessions.

        ``DELETE … RETURNING`` hands each row to exactly one caller, so a session ended twice
        (hook and sweep, or two workers) notifies each client once.
        """
        sid_list = list(sids)
        if not sid_list:
            return []
        t = client_sessions_table
        async with begin(self._db) as conn:
            rows = (
                await conn.execute(
                    delete(t)
                    .where(t.c.sid.in_(sid_list))
                    .returning(t.c.sid, t.c.client_id, t.c.user_id)
                )
            ).all()
        return [(r.sid, r.client_id, r.user_id) for r in rows]

    async def client_session_sids(self, limit: int) -> list[tuple[str, str]]:
        """Distinct ``(sid, user_id)`` pairs that some client holds (for the sweep)."""
        t = client_sessions_table
        async with read(self._db) as conn:
            rows = (await conn.execute(select(t.c.sid, t.c.user_id).distinct().limit(limit))).all()
        return [(r.sid, r.user_id) for r in rows]

    # --- back-channel logout deliveries -------------------------------------------------

    async def enqueue(self, items: Iterable[tuple[str, str, str, str]]) -> list[int]:
        """Queue ``(client_id, sid, sub, uri)`` notifications; returns their ids."""
        now = self._clock.now()
        ids: list[int] = []
        async with begin(self._db) as conn:
            for client_id, sid, sub, uri in items:
                result = await conn.execute(
                    insert(logout_deliveries_table)
                    .values(
                        client_id=client_id,
                        sid=sid,
                        sub=sub,
                        uri=uri,
                        state="pending",
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                    )
                    .returning(logout_deliveries_table.c.id)
                )
                ids.append(int(result.scalar_one()))
        return ids

    async def due(self, limit: int, ids: Iterable[int] | None = None) -> list[Delivery]:
        """Pending deliveries whose next attempt is due (optionally only ``ids``)."""
        t = logout_deliveries_table
        query = select(t).where(t.c.state == "pending", t.c.next_attempt_at <= self._clock.now())
        if ids is not None:
            query = query.where(t.c.id.in_(list(ids)))
        async with read(self._db) as conn:
            rows = (await conn.execute(query.order_by(t.c.next_attempt_at).limit(limit))).all()
        return [_delivery(r) for r in rows]

    async def deliveries(self, sid: str | None = None) -> list[Delivery]:
        """Every delivery record (of one session), oldest first: for operators and tests."""
        t = logout_deliveries_table
        query = select(t).order_by(t.c.id)
        if sid is not None:
            query = query.where(t.c.sid == sid)
        async with read(self._db) as conn:
            rows = (await conn.execute(query)).all()
        return [_delivery(r) for r in rows]

    async def finish_attempt(
        self, delivery_id: int, *, state: str, attempts: int, next_at: float, error: str | None
    ) -> None:
        """Record the outcome of one attempt."""
        t = logout_deliveries_table
        now = self._clock.now()
        async with begin(self._db) as conn:
            await conn.execute(
                update(t)
                .where(t.c.id == delivery_id)
                .values(
                    state=state,
                    attempts=attempts,
                    next_attempt_at=next_at,
                    last_error=error,
                    delivered_at=now if state == "delivered" else None,
                )
            )
