"""The account modules' database helpers (outages named as the account store)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from sqlalchemy.ext.asyncio import AsyncConnection

from dojang.storage.db import Database


def begin(db: Database) -> AbstractAsyncContextManager[AsyncConnection]:
    """``db.transaction`` with outages reported as "account store did not answer"."""
    return db.transaction("account store")


def read(db: Database) -> AbstractAsyncContextManager[AsyncConnection]:
    """``db.connection`` for reads: no transaction of its own, so it never queues behind the
    SQLite write lock that ``begin`` takes."""
    return db.connection("account store")
