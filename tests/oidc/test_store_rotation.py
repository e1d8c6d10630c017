"""Refresh-token rotation in the OIDC store, on a real SQLite file and on PostgreSQL.

Rotations are group-committed: concurrent ones share a transaction, and the outcome of each
must be exactly what it would be alone.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from sqlalchemy import event

from dojang.clock import FrozenClock
from dojang.oidc.store import OIDCStore, RefreshRecord
from dojang.storage.db import Database

RECORD = RefreshRecord(
    family_id="fam",
    client_id="rp_1",
    user_id="u1",
    sid="s1",
    scope="openid",
    auth_time=1.0,
    amr=("pwd",),
    expires_at=4_000_000_000.0,
    rotated_at=None,
    revoked=False,
)


async def test_one_token_used_ten_times_at_once_rotates_once(db: Database) -> None:
    store = OIDCStore(db, FrozenClock(1_000.0))
    await store.save_refresh("old", RECORD)
    won = await asyncio.gather(*(store.rotate_refresh("old", f"new{i}", RECORD) for i in range(10)))
    assert won.count(True) == 1
    winner = won.index(True)
    for i in range(10):
        found = await store.get_refresh(f"new{i}")
        # Only the winner's successor exists: a loser never leaves a live token behind.
        assert (found is not None) == (i == winner)
    old = await store.get_refresh("old")
    assert old is not None and old.rotated_at == 1_000.0


async def test_concurrent_rotations_of_different_tokens_share_transactions(db: Database) -> None:
    store = OIDCStore(db, FrozenClock(1_000.0))
    n = 20
    for i in range(n):
        await store.save_refresh(f"t{i}", replace(RECORD, family_id=f"f{i}"))
    commits = [0]

    @event.listens_for(db.engine.sync_engine, "commit")
    def _count(_conn: object) -> None:
        commits[0] += 1

    won = await asyncio.gather(
        *(
            store.rotate_refresh(f"t{i}", f"n{i}", replace(RECORD, family_id=f"f{i}"))
            for i in range(n)
        )
    )
    assert won == [True] * n
    assert commits[0] < n
    for i in range(n):
        successor = await store.get_refresh(f"n{i}")
        assert successor is not None and successor.family_id == f"f{i}"
        assert successor.rotated_at is None and not successor.revoked


async def test_revoked_and_already_rotated_tokens_do_not_rotate(db: Database) -> None:
    store = OIDCStore(db, FrozenClock(1_000.0))
    await store.save_refresh("a", RECORD)
    await store.save_refresh("b", replace(RECORD, family_id="other"))
    await store.revoke_family("fam")
    assert await store.rotate_refresh("a", "a2", RECORD) is False
    assert await store.get_refresh("a2") is None
    assert await store.rotate_refresh("b", "b2", RECORD) is True
    assert await store.rotate_refresh("b", "b3", RECORD) is False
    assert await store.rotate_refresh("missing", "m2", RECORD) is False
    assert await store.get_refresh("b3") is None and await store.get_refresh("m2") is None


async def test_the_audit_record_commits_with_the_winning_rotation_only(db: Database) -> None:
    from dojang.audit import AuditLog

    clock = FrozenClock(1_000.0)
    store, audit = OIDCStore(db, clock), AuditLog(db, clock=clock)
    await store.save_refresh("old", RECORD)
    rows = [audit.prepare("oidc.refreshed", actor=f"try{i}").row for i in range(10)]
    won = await asyncio.gather(
        *(store.rotate_refresh("old", f"n{i}", RECORD, audit_row=rows[i]) for i in range(10))
    )
    (records,) = [await audit.search(action="oidc.refreshed")]
    assert won.count(True) == 1
    assert [r.actor for r in records] == [f"try{won.index(True)}"]
