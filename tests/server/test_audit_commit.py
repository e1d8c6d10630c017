"""Audit group commit and the SQLite writer queue, on a real SQLite file and PostgreSQL.

``AuditLog.record`` returns only after its row is committed, but concurrent records share
transactions; ``Database.transaction`` queues this process's SQLite writers instead of letting
them collide in SQLite's busy handler.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from sqlalchemy import event, text

from dojang.audit import AuditLog
from dojang.errors import StoreUnavailable
from dojang.storage.db import Database


def _count_commits(db: Database) -> list[int]:
    commits = [0]

    @event.listens_for(db.engine.sync_engine, "commit")
    def _on_commit(_conn: Any) -> None:
        commits[0] += 1

    return commits


async def test_concurrent_records_share_transactions_and_all_land(db: Database) -> None:
    audit = AuditLog(db)
    commits = _count_commits(db)
    n = 60
    recs = await asyncio.gather(
        *(audit.record("token.minted", actor=f"svc{i}", kind="service") for i in range(n))
    )
    assert sorted(r.id for r in recs) == sorted({r.id for r in recs}), "ids must be distinct"
    assert all(r.id > 0 for r in recs)
    stored = await audit.search(action="token.minted", limit=1000)
    # Each caller got the id of its own row, not a neighbour's.
    assert {(r.id, r.actor) for r in stored} == {(r.id, r.actor) for r in recs}
    assert 1 <= commits[0] < n, f"{commits[0]} commits for {n} concurrent records"


async def test_one_record_at_a_time_is_one_transaction_each(db: Database) -> None:
    audit = AuditLog(db)
    commits = _count_commits(db)
    for i in range(3):
        rec = await audit.record("login.success", actor=f"u{i}")
        (found,) = await audit.search(actor=f"u{i}")
        assert found.id == rec.id  # committed before record() returned
    assert commits[0] == 3


async def test_a_failed_batch_fails_every_waiting_caller_then_recovers(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = AuditLog(db)
    real = db.transaction

    def broken(what: str = "database") -> Any:
        raise StoreUnavailable(f"{what} did not answer: OSError")

    monkeypatch.setattr(db, "transaction", broken)
    results = await asyncio.gather(
        *(audit.record("login.failure", outcome="failure") for _ in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(r, StoreUnavailable) for r in results)
    monkeypatch.setattr(db, "transaction", real)
    rec = await audit.record("login.success", actor="back")
    assert rec.id > 0 and [r.actor for r in await audit.search()] == ["back"]


async def test_a_cancelled_caller_does_not_lose_the_others(db: Database) -> None:
    audit = AuditLog(db)
    first = asyncio.ensure_future(audit.record("logout", actor="gone"))
    others = [asyncio.ensure_future(audit.record("logout", actor=f"k{i}")) for i in range(4)]
    await asyncio.sleep(0)
    first.cancel()
    kept = await asyncio.gather(*others)
    assert {r.actor for r in kept} == {"k0", "k1", "k2", "k3"}
    actors = {r.actor for r in await audit.search(action="logout")}
    assert {"k0", "k1", "k2", "k3"} <= actors


async def test_sqlite_writers_of_one_process_take_turns(make_db: Any) -> None:
    """Transactions that hold the write lock across awaits never overlap, and none fails."""
    db: Database = await make_db("sqlite")
    spans: list[tuple[float, float]] = []

    async def writer(i: int) -> None:
        async with db.transaction("test") as conn:
            start = time.monotonic()
            await conn.execute(
                text(
                    "INSERT INTO audit_log (at, action, outcome, detail)"
                    " VALUES (:a, 'x', 'success', '{}')"
                ),
                {"a": float(i)},
            )
            await asyncio.sleep(0.005)  # other writers get the loop meanwhile
            spans.append((start, time.monotonic()))

    await asyncio.gather(*(writer(i) for i in range(20)))
    spans.sort()
    assert len(spans) == 20
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))


async def test_nested_sqlite_transaction_is_refused_not_deadlocked(make_db: Any) -> None:
    db: Database = await make_db("sqlite")
    async with db.transaction("outer"):
        with pytest.raises(RuntimeError, match="nested"):
            async with db.transaction("inner"):
                pass

    # A task started inside a transaction does not hold the lock: it just waits its turn.
    async def later() -> int:
        async with db.transaction("later") as conn:
            return int((await conn.execute(text("SELECT 1"))).scalar_one())

    async with db.transaction("outer"):
        pending = asyncio.ensure_future(later())
        await asyncio.sleep(0.01)
        assert not pending.done()
    assert await asyncio.wait_for(pending, 5) == 1
