"""The relational event log: ids become visible in order, even under concurrent appends.

Subscribers resume "after the last id I saw"; an id committed after a larger one would be
skipped forever. These tests run on a real SQLite file and on PostgreSQL.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from dojang.events.backends.sql import APPEND_LOCK_KEY, SqlEventLog
from dojang.events.model import Event
from dojang.storage.db import Database
from tests.conftest import MakeDb

FAR = 4_000_000_000.0


def _event(i: int) -> Event:
    return Event("session.revoked", {"sid": f"s{i}"}, exp=FAR, created_at=1.0)


async def test_append_returns_increasing_ids_and_since_reads_them_back(db: Database) -> None:
    log = SqlEventLog(db)
    stored = await log.append([_event(1), _event(2)])
    assert stored[0].id < stored[1].id
    again = await log.since(0, now=2.0)
    assert [(e.id, e.data) for e in again] == [(e.id, e.data) for e in stored]
    assert await log.since(stored[1].id, now=2.0) == []


async def test_concurrent_appends_are_never_seen_out_of_order(db: Database) -> None:
    """A reader that keeps resuming after the last id it saw ends up with every event."""
    log = SqlEventLog(db)
    writers, per_writer = 8, 30
    appended: list[int] = []
    seen: list[int] = []
    done = asyncio.Event()

    async def writer(w: int) -> None:
        for i in range(per_writer):
            stored = await log.append([_event(w * 1000 + i)])
            appended.extend(e.id for e in stored)

    async def reader() -> None:
        cursor = 0
        while True:
            finished = done.is_set()
            for ev in await log.since(cursor, now=2.0):
                seen.append(ev.id)
                cursor = ev.id
            if finished:
                return
            await asyncio.sleep(0)

    read = asyncio.create_task(reader())
    await asyncio.gather(*(writer(w) for w in range(writers)))
    done.set()
    await read
    assert len(appended) == writers * per_writer
    assert seen == sorted(appended), "a resuming reader missed or reordered events"


@pytest.mark.postgres
async def test_postgres_appends_serialize_on_the_advisory_lock(make_db: MakeDb) -> None:
    """While another transaction holds the append lock, an append waits for it to commit."""
    db = await make_db("postgresql")
    log = SqlEventLog(db)
    async with db.engine.connect() as holder:
        tx = await holder.begin()
        await holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": APPEND_LOCK_KEY})
        pending = asyncio.create_task(log.append([_event(1)]))
        await asyncio.sleep(0.3)
        assert not pending.done(), "append did not wait for the event-log lock"
        await tx.commit()
    stored = await asyncio.wait_for(pending, timeout=5)
    assert [e.data for e in stored] == [{"sid": "s1"}]
