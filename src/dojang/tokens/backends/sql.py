"""SQL replay store: a ``used_jtis`` row per redeemed one-time token (SQLite or PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError, OperationalError

from dojang.clock import SYSTEM_CLOCK, Clock
from dojang.errors import StoreUnavailable
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
            async with self._db.session() as session, session.begin():
                await session.execute(insert(UsedJti).values(jti=jti, exp=exp))
        except IntegrityError:
            return False
        except OperationalError as exc:
            # Fail closed: "could not record" must never read as "first use".
            raise StoreUnavailable("replay store did not answer") from exc
        return True

    async def purge(self) -> int:
        """Delete records whose tokens have expired; return how many were removed."""
        try:
            async with self._db.session() as session, session.begin():
                result = await session.execute(
                    delete(UsedJti).where(UsedJti.exp < self._clock.now())
                )
        except OperationalError as exc:
            raise StoreUnavailable("replay store did not answer") from exc
        return int(getattr(result, "rowcount", 0) or 0)
