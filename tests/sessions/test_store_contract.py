"""One contract suite for every SessionStore backend (see the ``store`` fixture)."""

from __future__ import annotations

from typing import Any

import pytest

from dojang.clock import FrozenClock
from dojang.errors import SessionCollision, SessionNotFound
from dojang.sessions.ids import hash_cookie, new_cookie_value, new_csrf_secret, new_sid
from dojang.sessions.model import Session
from dojang.sessions.store import SessionStore

T0 = FrozenClock.DEFAULT_START  # far from the wall clock: see FrozenClock


def make_session(user_id: str = "user-1", *, now: float = T0, **kw: Any) -> Session:
    """A valid session for ``user_id`` created at ``now`` (30 min idle, 12 h absolute)."""
    fields: dict[str, Any] = {
        "key_hash": hash_cookie(new_cookie_value()),
        "sid": new_sid(),
        "user_id": user_id,
        "created_at": now,
        "last_seen": now,
        "auth_time": now,
        "idle_timeout": 1800.0,
        "absolute_expires_at": now + 12 * 3600,
        "csrf_secret": new_csrf_secret(),
    }
    fields.update(kw)
    return Session(**fields)


async def test_create_get_round_trip(store: SessionStore) -> None:
    s = make_session(
        methods=("pwd", "otp"),
        ip="2001:db8::1",
        user_agent="Mozilla/5.0 (X11)",
        data={"theme": "dark", "n": 3, "nested": {"list": [1, 2.5, None, True]}, "ü": "한글"},
    )
    await store.create(s)
    assert await store.get(s.key_hash) == s
    assert await store.get_by_sid(s.sid) == s


async def test_data_round_trips_as_json(store: SessionStore) -> None:
    """Stores keep JSON, so a tuple comes back as a list in every backend alike."""
    s = make_session(data={"t": (1, 2)})
    await store.create(s)
    got = await store.get(s.key_hash)
    assert got is not None
    assert got.data == {"t": [1, 2]}


async def test_returned_sessions_are_copies(store: SessionStore) -> None:
    s = make_session(data={"a": 1})
    await store.create(s)
    s.data["a"] = 2
    got = await store.get(s.key_hash)
    assert got is not None
    got.data["a"] = 3
    again = await store.get(s.key_hash)
    assert again is not None
    assert again.data == {"a": 1}


async def test_create_collision_on_duplicate_key(store: SessionStore) -> None:
    first = make_session("alice")
    await store.create(first)
    with pytest.raises(SessionCollision):
        await store.create(make_session("mallory", key_hash=first.key_hash))
    # Never overwrite: the original is intact and the intruder's sid was not recorded.
    assert await store.get(first.key_hash) == first


async def test_create_collision_on_duplicate_sid(store: SessionStore) -> None:
    first = make_session("alice")
    await store.create(first)
    other = make_session("mallory", sid=first.sid)
    with pytest.raises(SessionCollision):
        await store.create(other)
    assert await store.get(other.key_hash) is None
    assert await store.get_by_sid(first.sid) == first


async def test_get_unknown_returns_none_without_creating(store: SessionStore) -> None:
    key = hash_cookie(new_cookie_value())
    assert await store.get(key) is None
    assert await store.get(key) is None
    assert await store.get_by_sid(new_sid()) is None
    assert await store.list_for_user("user-1") == []
    assert await store.purge_expired(T0 + 10**9) == 0


async def test_get_returns_expired_sessions(store: SessionStore) -> None:
    """Expiry is the manager's call; the store hands back what it has."""
    s = make_session(now=T0 - 10**6)
    await store.create(s)
    assert await store.get(s.key_hash) == s


async def test_touch_moves_last_seen_forward_only(store: SessionStore) -> None:
    s = make_session()
    await store.create(s)
    await store.touch(s.key_hash, T0 + 100)
    got = await store.get(s.key_hash)
    assert got is not None
    assert got.last_seen == T0 + 100
    await store.touch(s.key_hash, T0 + 50)
    got = await store.get(s.key_hash)
    assert got is not None
    assert got.last_seen == T0 + 100


async def test_touch_of_missing_session_creates_nothing(store: SessionStore) -> None:
    key = hash_cookie(new_cookie_value())
    await store.touch(key, T0)
    assert await store.get(key) is None


async def test_save_updates_existing(store: SessionStore) -> None:
    s = make_session()
    await store.create(s)
    s.data = {"cart": ["x"]}
    s.idle_timeout = 60.0
    s.absolute_expires_at = T0 + 120
    await store.save(s)
    assert await store.get(s.key_hash) == s


async def test_save_after_concurrent_delete_raises(store: SessionStore) -> None:
    """A save racing a logout must not resurrect the session (Django's contract)."""
    s = make_session()
    await store.create(s)
    assert await store.delete(s.key_hash) is True
    s.data = {"late": True}
    with pytest.raises(SessionNotFound):
        await store.save(s)
    assert await store.get(s.key_hash) is None


async def test_save_of_never_created_session_raises(store: SessionStore) -> None:
    s = make_session()
    with pytest.raises(SessionNotFound):
        await store.save(s)
    assert await store.get(s.key_hash) is None


async def test_delete(store: SessionStore) -> None:
    s = make_session()
    await store.create(s)
    assert await store.delete(s.key_hash) is True
    assert await store.get(s.key_hash) is None
    assert await store.get_by_sid(s.sid) is None
    assert await store.delete(s.key_hash) is False


async def test_delete_by_sid_returns_the_deleted_session(store: SessionStore) -> None:
    s = make_session()
    keep = make_session()
    await store.create(s)
    await store.create(keep)
    assert await store.delete_by_sid(s.sid) == s
    assert await store.get(s.key_hash) is None
    assert await store.delete_by_sid(s.sid) is None
    assert await store.get(keep.key_hash) == keep


async def test_sid_is_free_again_after_delete(store: SessionStore) -> None:
    s = make_session()
    await store.create(s)
    await store.delete(s.key_hash)
    again = make_session(sid=s.sid)
    await store.create(again)
    assert await store.get_by_sid(s.sid) == again


async def test_list_for_user(store: SessionStore) -> None:
    a1, a2, b1 = make_session("alice"), make_session("alice"), make_session("bob")
    for s in (a1, a2, b1):
        await store.create(s)
    listed = await store.list_for_user("alice")
    assert sorted(s.sid for s in listed) == sorted([a1.sid, a2.sid])
    assert await store.list_for_user("carol") == []


async def test_delete_for_user(store: SessionStore) -> None:
    a1, a2, b1 = make_session("alice"), make_session("alice"), make_session("bob")
    for s in (a1, a2, b1):
        await store.create(s)
    assert sorted(await store.delete_for_user("alice")) == sorted([a1.sid, a2.sid])
    assert await store.list_for_user("alice") == []
    assert await store.list_for_user("bob") == [b1]
    assert await store.delete_for_user("alice") == []


async def test_delete_for_user_except_sid(store: SessionStore) -> None:
    a1, a2, a3, b1 = (make_session(u) for u in ("alice", "alice", "alice", "bob"))
    for s in (a1, a2, a3, b1):
        await store.create(s)
    deleted = await store.delete_for_user("alice", except_sid=a2.sid)
    assert sorted(deleted) == sorted([a1.sid, a3.sid])
    assert await store.list_for_user("alice") == [a2]
    # except_sid of somebody else's session protects nothing of alice's and harms nobody.
    assert await store.delete_for_user("alice", except_sid=b1.sid) == [a2.sid]
    assert await store.list_for_user("bob") == [b1]


async def test_purge_expired(store: SessionStore) -> None:
    idle_dead = make_session(now=T0 - 1801)  # idle timeout passed
    abs_dead = make_session(now=T0 - 10, absolute_expires_at=T0)  # absolute expiry reached
    alive = make_session(now=T0 - 1000)
    touched = make_session(now=T0 - 1801)
    for s in (idle_dead, abs_dead, alive, touched):
        await store.create(s)
    await store.touch(touched.key_hash, T0 - 100)  # sliding keeps it alive
    assert await store.purge_expired(T0) == 2
    assert await store.get(idle_dead.key_hash) is None
    assert await store.get(abs_dead.key_hash) is None
    assert await store.get(alive.key_hash) == alive
    assert await store.get(touched.key_hash) is not None
    assert await store.purge_expired(T0) == 0


async def test_purge_respects_saved_expiry(store: SessionStore) -> None:
    s = make_session(now=T0 - 1000)
    await store.create(s)
    s.idle_timeout = 500.0
    await store.save(s)
    assert await store.purge_expired(T0) == 1


async def test_ping(store: SessionStore) -> None:
    await store.ping()
    assert await store.list_for_user("user-1") == []


async def test_count_live_counts_only_unexpired(store: SessionStore) -> None:
    """count_live is either None (not cheap on this store) or exact."""
    await store.create(make_session())
    await store.create(make_session("user-2"))
    live = await store.count_live(T0)
    if live is None:  # e.g. Redis: counting would mean a scan over every primary
        return
    assert live == 2
    assert await store.count_live(T0 + 10 * 365 * 86400) == 0
