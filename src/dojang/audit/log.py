"""Append-only audit records, stored in the database and emitted as JSON log lines.

What is recorded: logins (success, failure, throttled), logouts, session revocations (who
ended whose session), token mints and exchanges, client, audience, key and user changes.
What is never recorded: passwords, cookie values, tokens, CSRF secrets. Session ids are
stored hashed (``session_ref``), so the trail links events of one session without naming it.

Group commit (``dojang.storage.group_commit``): ``record`` returns only once its row is
committed (an audited action is never answered before its record is durable), but concurrent
records share one transaction.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dojang.clock import SYSTEM_CLOCK, Clock
from dojang.logs import JsonMessage
from dojang.storage.audit_tables import audit_table
from dojang.storage.db import Database
from dojang.storage.group_commit import GroupCommit

log = logging.getLogger("dojang.audit")

Outcome = Literal["success", "failure", "denied"]
_SECRET_WORDS = ("password", "secret", "token", "cookie", "csrf")


def session_ref(sid: str | None) -> str | None:
    """A stable, non-reversible reference to a session id for the audit trail."""
    if sid is None:
        return None
    return hashlib.sha256(b"dojang-audit:" + sid.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited action."""

    action: str
    outcome: Outcome = "success"
    actor: str | None = None
    subject: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    session_ref: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0
    id: int = 0


@dataclass(frozen=True, slots=True)
class PreparedRecord:
    """A record built but not yet written: ``row`` is what goes into ``audit_log``."""

    record: AuditRecord
    row: dict[str, Any]


def _clean_detail(detail: dict[str, Any]) -> dict[str, Any]:
    # Defence in depth: a caller passing a secret by mistake must not get it stored.
    for key in detail:
        if any(word in key.lower() for word in _SECRET_WORDS):
            raise ValueError(f"audit detail key {key!r} looks like a secret; never audit secrets")
    return detail


async def _insert(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> list[int]:
    result = await conn.execute(
        insert(audit_table).returning(audit_table.c.id, sort_by_parameter_order=True), rows
    )
    return [int(i) for i in result.scalars().all()]


class AuditLog:
    """Writes audit records to the ``audit_log`` table and to the ``dojang.audit`` logger."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock = SYSTEM_CLOCK,
        on_record: Callable[[str, str, dict[str, Any]], None] | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._on_record = on_record
        self._writes: GroupCommit[dict[str, Any], int] = GroupCommit(db, "audit log", _insert)

    def prepare(
        self,
        action: str,
        *,
        outcome: Outcome = "success",
        actor: str | None = None,
        subject: str | None = None,
        client_ip: str | None = None,
        user_agent: str | None = None,
        sid: str | None = None,
        **detail: Any,
    ) -> PreparedRecord:
        """Build a record without writing or logging it (see :meth:`announce`).

        For an action whose record must commit in the same transaction as the action itself
        (a refresh-token rotation and its "refreshed" record): the caller inserts ``row`` into
        ``audit_log`` inside its transaction, then calls :meth:`announce` once it committed.
        """
        rec = AuditRecord(
            action=action,
            outcome=outcome,
            actor=actor,
            subject=subject,
            client_ip=client_ip,
            user_agent=(user_agent or None) and user_agent[:256],
            session_ref=session_ref(sid),
            detail=_clean_detail(detail),
            at=self._clock.now(),
        )
        row: dict[str, Any] = {
            "at": rec.at,
            "action": rec.action,
            "outcome": rec.outcome,
            "actor": rec.actor,
            "subject": rec.subject,
            "client_ip": rec.client_ip,
            "user_agent": rec.user_agent,
            "session_ref": rec.session_ref,
            "detail": json.dumps(rec.detail, separators=(",", ":")),
        }
        return PreparedRecord(rec, row)

    def announce(self, prepared: PreparedRecord) -> None:
        """Emit the JSON log line and the metrics hook of a record."""
        rec = prepared.record
        # The log line: the row's fields, empty ones left out, detail as an object.
        line = {k: v for k, v in prepared.row.items() if v is not None}
        if rec.detail:
            line["detail"] = rec.detail
        else:
            del line["detail"]
        log.info(JsonMessage(line))
        if self._on_record is not None:
            self._on_record(rec.action, rec.outcome, rec.detail)

    async def record(self, action: str, **fields: Any) -> AuditRecord:
        """Append one record; the JSON log line is emitted even if the database is down.

        ``fields`` are :meth:`prepare`'s keywords (``outcome``, ``actor``, ``subject``,
        ``client_ip``, ``user_agent``, ``sid``, then free-form detail).
        """
        prepared = self.prepare(action, **fields)
        self.announce(prepared)
        new_id = await self._writes.submit(prepared.row)
        return replace(prepared.record, id=new_id)

    async def search(
        self,
        *,
        action: str | None = None,
        actor: str | None = None,
        subject: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
    ) -> list[AuditRecord]:
        """Newest first; every filter optional (``action`` matches a prefix, e.g. ``login``)."""
        t = audit_table
        stmt = select(t).order_by(t.c.id.desc()).limit(max(1, min(limit, 10_000)))
        if action:
            stmt = stmt.where(t.c.action.startswith(action, autoescape=True))
        if actor:
            stmt = stmt.where(t.c.actor == actor)
        if subject:
            stmt = stmt.where(t.c.subject == subject)
        if since is not None:
            stmt = stmt.where(t.c.at >= since)
        if until is not None:
            stmt = stmt.where(t.c.at < until)
        async with self._db.connection("audit log") as conn:
            rows = (await conn.execute(stmt)).all()
        return [
            AuditRecord(
                action=r.action,
                outcome=r.outcome,
                actor=r.actor,
                subject=r.subject,
                client_ip=r.client_ip,
                user_agent=r.user_agent,
                session_ref=r.session_ref,
                detail=json.loads(r.detail),
                at=r.at,
                id=r.id,
            )
            for r in rows
        ]
