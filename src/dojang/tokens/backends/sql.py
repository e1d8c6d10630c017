"""SQL replay store: a ``used_jtis`` row per redeemed one-time token (SQLite or PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError

from dojang.clock import SYSTEM_CLOCK, Clock
from dojang.storage.db import Database
from dojang.storage.tokens_tables import UsedJti

__all__ = ["SqlReplayStore"]


class SqlReplayStore:
    """Replay store on the dojang database.

    Atomicity comes from the primary key: concurrent INSERTs of one ``jti`` cannot both commit,
    on any isolation level, so there is no read-then-write window to race.
    """

    def __init__(self, db: Database, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._db = db
        self._clock = clock

    async def redeem(self, jti: str, exp: float) -> bool:
        """Insert ``jti``; True if this call created the row, False if it already existed."""
        try:
            # Database.transaction: SQLite writers queue in-process, and every driver or
            # network failure becomes StoreUnavailable. Fail closed: "could not record" must
            # never read as "first use".
            async with self._db.transaction("replay store") as conn:
                await conn.execute(insert(UsedJti).values(jti=jti, exp=exp))
        except IntegrityError:
            return False
        return True

    async def purge(self) -> int:
        """Delete records whose tokens have expired; return how many were removed."""
        async with self._db.transaction("replay store") as conn:
            result = await conn.execute(delete(UsedJti).where(UsedJti.exp < self._clock.now()))
        return int(result.rowcount or 0)
