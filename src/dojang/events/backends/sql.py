"""Event log in the relational database (the embedded default).

The signed form of each event (its SET, ``dojang.events.secevent``) is stored beside the
payload in the ``signed`` column, so the durable log holds exactly what subscribers verify.

Ids must become visible in order. Subscribers resume "after the last id I saw", so an id that
commits *after* a larger one would be skipped for good: on PostgreSQL two concurrent appends
can take ids 7 and 8 from the sequence and commit 8 first; a reader polling in between sees 8,
moves its cursor past 7, and never learns of that revocation. Appends therefore take a
transaction-scoped advisory lock before inserting, so ids are drawn and committed in one
order. SQLite needs nothing: it admits one writer at a time, so its rowids already commit in
order.
"""

from __future__ import annotations

import json

from sqlalchemy import delete, func, insert, select, text

from dojang.events.model import Event
from dojang.storage.db import Database
from dojang.storage.events_tables import events_table

# pg_advisory_xact_lock key: the first 8 bytes of sha256("dojang.events.append") as a signed
# int64, a constant so every dojang instance on the database serializes on the same lock.
APPEND_LOCK_KEY = 1_145_984_938_694_070_929


def _encode(ev: Event) -> str:
    return json.dumps(ev.data, separators=(",", ":"))


def _decode(kind: str, raw: str, signed: str, exp: float, created_at: float, id_: int) -> Event:
    return Event(kind, json.loads(raw), exp, created_at, id_, signed)


class SqlEventLog:
    """``EventLog`` on SQLite or PostgreSQL through SQLAlchemy Core."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def append(self, events: list[Event]) -> list[Event]:
        """Append in one transaction, so a revocation is never half-recorded."""
        stored: list[Event] = []
        async with self._db.transaction("event log") as conn:
            if not self._db.is_sqlite:
                # Held until commit: see the module docstring (ids commit in order).
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK_KEY}
                )
            for ev in events:
                result = await conn.execute(
                    insert(events_table)
                    .values(
                        kind=ev.kind,
                        data=_encode(ev),
                        signed=ev.set_jws,
                        created_at=ev.created_at,
                        exp=ev.exp,
                    )
                    .returning(events_table.c.id)
                )
                stored.append(
                    Event(
                        ev.kind,
                        ev.data,
                        ev.exp,
                        ev.created_at,
                        int(result.scalar_one()),
                        ev.set_jws,
                    )
                )
        return stored

    async def since(self, after_id: int, *, now: float, limit: int = 1000) -> list[Event]:
        """Unexpired events after ``after_id``, oldest first, at most ``limit``."""
        stmt = (
            select(events_table)
            .where(events_table.c.id > after_id, events_table.c.exp > now)
            .order_by(events_table.c.id)
            .limit(limit)
        )
        async with self._db.connection("event log") as conn:
            rows = (await conn.execute(stmt)).all()
        return [_decode(r.kind, r.data, r.signed, r.exp, r.created_at, r.id) for r in rows]

    async def last_id(self) -> int:
        """Newest id, 0 when empty."""
        async with self._db.connection("event log") as conn:
            value = (await conn.execute(select(func.max(events_table.c.id)))).scalar()
        return int(value or 0)

    async def first_id(self) -> int:
        """Oldest id still held (0 when empty); ids below it were purged."""
        async with self._db.connection("event log") as conn:
            value = (await conn.execute(select(func.min(events_table.c.id)))).scalar()
        return int(value or 0)

    async def purge(self, now: float) -> int:
        """Delete expired events, always keeping the newest row.

        On SQLite the id is the rowid, which is reused once the highest row is deleted; keeping
        the newest row keeps ids strictly increasing forever, so a subscriber's resume point can
        never silently name a different, newer event.
        """
        newest = select(func.max(events_table.c.id)).scalar_subquery()
        async with self._db.transaction("event log") as conn:
            result = await conn.execute(
                delete(events_table).where(events_table.c.exp <= now, events_table.c.id < newest)
            )
        return int(result.rowcount or 0)
