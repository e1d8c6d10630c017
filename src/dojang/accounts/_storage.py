"""Database error mapping shared by the account modules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncConnection

from dojang.errors import StoreUnavailable
from dojang.storage.db import Database


@asynccontextmanager
async def begin(db: Database) -> AsyncIterator[AsyncConnection]:
    """One transaction; driver and network failures become ``StoreUnavailable``.

    ``IntegrityError`` passes through: it is an answer (a duplicate), not an outage.
    """
    try:
        async with db.engine.begin() as conn:
            yield conn
    except exc.IntegrityError:
        raise
    except (exc.DBAPIError, OSError, TimeoutError) as e:
        raise StoreUnavailable(f"account store did not answer: {type(e).__name__}") from e
