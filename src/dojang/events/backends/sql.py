"""Event log in the relational database (the embedded default)."""

from __future__ import annotations

import json

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import DBAPIError

from dojang.errors import StoreUnavailable
from dojang.events.model import Event
from dojang.storage.db import Database
from dojang.storage.events_tables import events_table


class SqlEventLog:
    """``EventLog`` on SQLite or PostgreSQL through SQLAlchemy Core."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def append(self, events: list[Event]) -> list[Event]:
        """Append in one transaction, so a revocation is never half-recorded."""
        stored: list[Event] = []
        try:
            async with self._db.engine.begin() as conn:
                for ev in events:
                    result = await conn.execute(
                        insert(events_table)
                        .values(
                            kind=ev.kind,
                            data=json.dumps(ev.data, separators=(",", ":")),
                            created_at=ev.created_at,
                            exp=ev.exp,
                        )
                        .returning(events_table.c.id)
                    )
                    stored.append(
                        Event(ev.kind, ev.data, ev.exp, ev.created_at, int(result.scalar_one()))
                    )
        except (DBAPIError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"event log did not answer: {type(exc).__name__}") from None
        return stored

    async def since(self, after_id: int, *, now: float, limit: int = 1000) -> list[Event]:
        """Unexpired events after ``after_id``, oldest first, at most ``limit``."""
        stmt = (
            select(events_table)
            .where(events_table.c.id > after_id, events_table.c.exp > now)
            .order_by(events_table.c.id)
            .limit(limit)
        )
        try:
            async with self._db.engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        except (DBAPIError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"event log did not answer: {type(exc).__name__}") from None
        return [Event(r.kind, json.loads(r.data), r.exp, r.created_at, r.id) for r in rows]

    async def last_id(self) -> int:
        """Newest id, 0 when empty."""
        try:
            async with self._db.engine.connect() as conn:
                value = (await conn.execute(select(func.max(events_table.c.id)))).scalar()
        except (DBAPIError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"event log did not answer: {type(exc).__name__}") from None
        return int(value or 0)

    async def purge(self, now: float) -> int:
        """Delete expired events."""
        async with self._db.engine.begin() as conn:
            result = await conn.execute(delete(events_table).where(events_table.c.exp <= now))
        return int(result.rowcount or 0)
