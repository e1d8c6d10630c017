"""The account modules' transaction helper (outages named as the account store)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from sqlalchemy.ext.asyncio import AsyncConnection

from dojang.storage.db import Database


def begin(db: Database) -> AbstractAsyncContextManager[AsyncConnection]:
    """``db.transaction`` with outages reported as "account store did not answer"."""
    return db.transaction("account store")
