"""The synchronous peek behind forward auth: same answers as ``load``, or no answer at all.

``SessionManager.peek`` answers only the common case (a live session with no touch due) from a
store's optional ``peek_now``; everything else (expiry to delete and announce, a sliding touch,
a store that cannot read synchronously) must come back as ``None`` so the caller awaits
``load``. A peek that answered "live" for a session ``load`` would refuse would be a bypass.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from dojang.clock import FrozenClock
from dojang.errors import SessionNotFound
from dojang.sessions.backends import MemorySessionStore, SqlSessionStore
from dojang.sessions.ids import hash_cookie, new_cookie_value
from dojang.sessions.manager import SessionManager, SessionPolicy
from dojang.sessions.model import Session
from dojang.sessions.store import CannotAnswerNow
from dojang.storage import Database
from dojang.storage.sqlite_read import SqliteReader

from .test_manager import RecordingStore
from .test_store_contract import T0, make_session

POLICY = SessionPolicy(idle_timeout=1800, absolute_lifetime=12 * 3600, touch_interval=60)


def brief(s: Session) -> tuple[str, str, float, float, float]:
    return (s.sid, s.user_id, s.last_seen, s.idle_timeout, s.absolute_expires_at)


@pytest.fixture(params=["memory", "sqlite"])
async def peekable(
    request: pytest.FixtureRequest, make_db: Callable[[str], Awaitable[Database]]
) -> MemorySessionStore | SqlSessionStore:
    if request.param == "memory":
        return MemorySessionStore()
    return SqlSessionStore(await make_db("sqlite"))


async def test_peek_now_reports_what_get_holds(
    peekable: MemorySessionStore | SqlSessionStore,
) -> None:
    s = make_session()
    await peekable.create(s)
    assert peekable.peek_now(s.key_hash) == brief(s)
    await peekable.touch(s.key_hash, T0 + 120)
    got = await peekable.get(s.key_hash)
    assert got is not None and got.last_seen == T0 + 120
    assert peekable.peek_now(s.key_hash) == brief(got)
    got.idle_timeout, got.absolute_expires_at = 60.0, T0 + 600
    await peekable.save(got)
    assert peekable.peek_now(s.key_hash) == brief(got)
    await peekable.delete(s.key_hash)
    assert peekable.peek_now(s.key_hash) is None


async def test_peek_now_of_unknown_key_creates_nothing(
    peekable: MemorySessionStore | SqlSessionStore,
) -> None:
    key = hash_cookie(new_cookie_value())
    assert peekable.peek_now(key) is None
    assert await peekable.get(key) is None


@pytest.mark.postgres
async def test_postgresql_declines_to_peek(
    make_db: Callable[[str], Awaitable[Database]],
) -> None:
    """No synchronous reader on PostgreSQL: the peek declines and get() answers."""
    store = SqlSessionStore(await make_db("postgresql"))
    s = make_session()
    await store.create(s)
    with pytest.raises(CannotAnswerNow):
        store.peek_now(s.key_hash)
    assert await store.get(s.key_hash) == s


async def test_a_failing_sqlite_reader_declines(
    make_db: Callable[[str], Awaitable[Database]], tmp_path: Path
) -> None:
    """A read error (here: the reader's file is gone) never reads as "no such session"."""
    db = await make_db("sqlite")
    store = SqlSessionStore(db)
    s = make_session()
    await store.create(s)
    assert db.reader is not None
    db.reader.close()
    db.reader = SqliteReader(tmp_path / "missing" / "dojang.db")
    with pytest.raises(CannotAnswerNow):
        store.peek_now(s.key_hash)
    assert await store.get(s.key_hash) == s  # the async path still answers


@pytest.fixture
async def sqlite_store(make_db: Callable[[str], Awaitable[Database]]) -> SqlSessionStore:
    return SqlSessionStore(await make_db("sqlite"))


async def test_peek_answers_a_live_session_without_writing(
    sqlite_store: SqlSessionStore, clock: FrozenClock
) -> None:
    manager = SessionManager(sqlite_store, POLICY, clock=clock)
    cookie, s = await manager.create("alice")
    clock.advance(59)
    assert manager.peek(cookie) == ("alice", s.sid)
    stored = await sqlite_store.get(s.key_hash)
    assert stored is not None and stored.last_seen == s.last_seen  # no touch written


async def test_peek_leaves_the_touch_to_load(
    sqlite_store: SqlSessionStore, clock: FrozenClock
) -> None:
    """Sliding expiry: once a touch is due the peek declines, and load() writes it."""
    manager = SessionManager(sqlite_store, POLICY, clock=clock)
    cookie, s = await manager.create("alice")
    clock.advance(60)
    assert manager.peek(cookie) is None
    await manager.load(cookie)
    stored = await sqlite_store.get(s.key_hash)
    assert stored is not None and stored.last_seen == clock.now()
    assert manager.peek(cookie) == ("alice", s.sid)


@pytest.mark.parametrize("advance", [1800, 1800.5, 12 * 3600 + 1])
async def test_peek_never_answers_for_an_expired_session(
    sqlite_store: SqlSessionStore, clock: FrozenClock, advance: float
) -> None:
    """Idle and absolute expiry: the peek declines, and load() deletes and announces."""
    ended: list[str] = []

    async def on_revoke(sessions: list[Session]) -> None:
        ended.extend(x.sid for x in sessions)

    manager = SessionManager(sqlite_store, POLICY, clock=clock, on_revoke=on_revoke)
    cookie, s = await manager.create("alice")
    if advance > 1800 * 2:  # absolute: stay active so idle never ends it first
        for _ in range(int(advance // 1500)):
            clock.advance(1500)
            await manager.load(cookie)
        clock.set(s.absolute_expires_at)
    else:
        clock.advance(advance)
    assert manager.peek(cookie) is None
    with pytest.raises(SessionNotFound):
        await manager.load(cookie)
    assert ended == [s.sid]
    with pytest.raises(SessionNotFound):
        manager.peek(cookie)  # deleted: now plainly unknown


@pytest.mark.parametrize("bad", ["", "short", "x" * 43, "é" * 43, new_cookie_value() + "\n"])
async def test_peek_refuses_malformed_and_unknown_cookies(
    sqlite_store: SqlSessionStore, clock: FrozenClock, bad: str
) -> None:
    manager = SessionManager(sqlite_store, POLICY, clock=clock)
    with pytest.raises(SessionNotFound):
        manager.peek(bad)
    with pytest.raises(SessionNotFound):
        manager.peek(new_cookie_value())


async def test_peek_declines_for_stores_without_peek_now(clock: FrozenClock) -> None:
    """A store with no synchronous lookup (Redis, or any wrapper) always goes through load()."""
    inner = MemorySessionStore()
    manager = SessionManager(RecordingStore(inner), POLICY, clock=clock)
    cookie, _ = await manager.create("alice")
    assert manager.peek(cookie) is None
    assert (await manager.load(cookie)).user_id == "alice"
