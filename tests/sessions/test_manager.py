"""SessionManager policy: expiry, sliding, rotation, limits, revocation, CSRF."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from dojang.clock import FrozenClock
from dojang.errors import SessionCollision, SessionDataTooLarge, SessionError, SessionNotFound
from dojang.sessions.backends import MemorySessionStore, SqlSessionStore
from dojang.sessions.ids import hash_cookie, new_cookie_value, new_sid
from dojang.sessions.manager import SessionManager, SessionPolicy
from dojang.sessions.model import Session
from dojang.sessions.store import SessionStore
from dojang.storage import Database

POLICY = SessionPolicy(
    idle_timeout=1800,
    absolute_lifetime=12 * 3600,
    remember_me_lifetime=30 * 86400,
    remember_me_idle=7 * 86400,
    touch_interval=60,
    max_data_bytes=256,
)


class RecordingStore:
    """Wraps a real store and records every key that reaches it (no behaviour changed)."""

    def __init__(self, inner: SessionStore) -> None:
        self.inner = inner
        self.keys: list[bytes] = []
        self.touches = 0

    async def create(self, session: Session) -> None:
        self.keys.append(session.key_hash)
        await self.inner.create(session)

    async def get(self, key_hash: bytes) -> Session | None:
        self.keys.append(key_hash)
        return await self.inner.get(key_hash)

    async def get_by_sid(self, sid: str) -> Session | None:
        return await self.inner.get_by_sid(sid)

    async def touch(self, key_hash: bytes, last_seen: float) -> None:
        self.touches += 1
        await self.inner.touch(key_hash, last_seen)

    async def save(self, session: Session) -> None:
        await self.inner.save(session)

    async def delete(self, key_hash: bytes) -> bool:
        self.keys.append(key_hash)
        return await self.inner.delete(key_hash)

    async def delete_by_sid(self, sid: str) -> Session | None:
        return await self.inner.delete_by_sid(sid)

    async def list_for_user(self, user_id: str) -> list[Session]:
        return await self.inner.list_for_user(user_id)

    async def delete_for_user(self, user_id: str, *, except_sid: str | None = None) -> list[str]:
        return await self.inner.delete_for_user(user_id, except_sid=except_sid)

    async def purge_expired(self, now: float) -> int:
        return await self.inner.purge_expired(now)

    async def ping(self) -> None:
        await self.inner.ping()


class Revocations:
    """Collects what ``on_revoke`` was called with."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def __call__(self, sessions: list[Session]) -> None:
        self.calls.append([s.sid for s in sessions])


@pytest.fixture(params=["memory", "sqlite"])
async def store(
    request: pytest.FixtureRequest, make_db: Callable[[str], Awaitable[Database]]
) -> RecordingStore:
    kind: str = request.param
    inner: SessionStore = (
        MemorySessionStore() if kind == "memory" else SqlSessionStore(await make_db(kind))
    )
    return RecordingStore(inner)


@pytest.fixture
def revoked() -> Revocations:
    return Revocations()


@pytest.fixture
def manager(store: RecordingStore, clock: FrozenClock, revoked: Revocations) -> SessionManager:
    return SessionManager(store, POLICY, clock=clock, on_revoke=revoked)


async def test_create_and_load(manager: SessionManager, clock: FrozenClock) -> None:
    cookie, s = await manager.create(
        "alice", methods=("pwd", "otp"), ip="192.0.2.1", user_agent="x" * 1000, data={"k": 1}
    )
    assert len(cookie) == 43
    assert s.key_hash == hash_cookie(cookie)
    assert s.user_id == "alice"
    assert s.methods == ("pwd", "otp")
    assert s.user_agent == "x" * 512
    assert s.created_at == s.auth_time == s.last_seen == clock.now()
    assert s.expires_at == clock.now() + 1800
    assert await manager.load(cookie) == s


async def test_cookie_value_is_not_stored(manager: SessionManager, store: RecordingStore) -> None:
    """A store dump must not contain live cookies."""
    cookie, s = await manager.create("alice")
    stored = await store.inner.get(s.key_hash)
    assert stored is not None
    assert cookie not in repr(stored)
    assert all(cookie not in str(v) and cookie.encode() != v for v in vars_of(stored))


def vars_of(s: Session) -> list[object]:
    return [getattr(s, name) for name in Session.__slots__]


async def test_repr_hides_secrets(manager: SessionManager) -> None:
    _, s = await manager.create("alice", data={"secret": "v"})
    assert s.csrf_secret not in repr(s)
    assert "secret" not in repr(s).replace("csrf", "")


async def test_idle_expiry(
    manager: SessionManager, clock: FrozenClock, revoked: Revocations
) -> None:
    cookie, s = await manager.create("alice")
    clock.advance(1799)
    await manager.load(cookie)  # used: idle timer restarts
    clock.advance(1799)
    await manager.load(cookie)
    clock.advance(1800)
    with pytest.raises(SessionNotFound):
        await manager.load(cookie)
    assert revoked.calls == [[s.sid]]
    # Deleted, not merely refused: it stays gone and is reported once.
    with pytest.raises(SessionNotFound):
        await manager.load(cookie)
    assert revoked.calls == [[s.sid]]


async def test_absolute_expiry_despite_activity(
    manager: SessionManager, clock: FrozenClock
) -> None:
    cookie, _ = await manager.create("alice")
    for _ in range(12 * 3600 // 1200 - 1):
        clock.advance(1200)
        await manager.load(cookie)
    clock.advance(1200)
    with pytest.raises(SessionNotFound):
        await manager.load(cookie)


async def test_sliding_writes_are_throttled(
    manager: SessionManager, store: RecordingStore, clock: FrozenClock
) -> None:
    cookie, s = await manager.create("alice")
    t0 = clock.now()
    for _ in range(5):
        clock.advance(10)
        loaded = await manager.load(cookie)
        assert loaded.last_seen == t0
    stored = await store.inner.get(s.key_hash)
    assert stored is not None
    assert stored.last_seen == t0
    assert store.touches == 0
    clock.advance(10)  # 60 s since the last write
    loaded = await manager.load(cookie)
    assert loaded.last_seen == t0 + 60
    stored = await store.inner.get(s.key_hash)
    assert stored is not None
    assert stored.last_seen == t0 + 60
    assert store.touches == 1


async def test_remember_me(manager: SessionManager, clock: FrozenClock) -> None:
    cookie, s = await manager.create("alice", remember=True)
    assert s.idle_timeout == 7 * 86400
    assert s.absolute_expires_at == clock.now() + 30 * 86400
    clock.advance(86400)
    assert (await manager.load(cookie)).user_id == "alice"


async def test_set_expiry(manager: SessionManager, clock: FrozenClock) -> None:
    cookie, _ = await manager.create("alice")
    clock.advance(100)
    s = await manager.set_expiry(cookie, idle_timeout=86400, absolute_lifetime=3 * 86400)
    assert s.idle_timeout == 86400
    assert s.absolute_expires_at == clock.now() + 3 * 86400
    clock.advance(3600)  # beyond the default idle timeout
    assert (await manager.load(cookie)).absolute_expires_at == s.absolute_expires_at
    clock.advance(3 * 86400)
    with pytest.raises(SessionNotFound):
        await manager.load(cookie)


async def test_set_expiry_can_shorten(manager: SessionManager, clock: FrozenClock) -> None:
    cookie, _ = await manager.create("alice")
    await manager.set_expiry(cookie, idle_timeout=10)
    clock.advance(10)
    with pytest.raises(SessionNotFound):
        await manager.load(cookie)


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), True])
async def test_set_expiry_rejects_bad_durations(manager: SessionManager, bad: float) -> None:
    cookie, _ = await manager.create("alice")
    with pytest.raises(SessionError, match="idle_timeout"):
        await manager.set_expiry(cookie, idle_timeout=bad)
    with pytest.raises(SessionError, match="absolute_lifetime"):
        await manager.set_expiry(cookie, absolute_lifetime=bad)


async def test_rotate(manager: SessionManager, clock: FrozenClock) -> None:
    """Session fixation: after a privilege change the old cookie must be worthless."""
    cookie, old = await manager.create("alice", data={"cart": [1]})
    clock.advance(30)
    new_cookie, new = await manager.rotate(cookie)
    assert new_cookie != cookie
    assert new.sid != old.sid
    assert new.csrf_secret != old.csrf_secret
    assert (new.user_id, new.data, new.created_at) == ("alice", {"cart": [1]}, old.created_at)
    assert new.absolute_expires_at == old.absolute_expires_at
    assert new.auth_time == old.auth_time
    with pytest.raises(SessionNotFound):
        await manager.load(cookie)
    assert await manager.load(new_cookie) == new
    assert [s.sid for s in await manager.list_for_user("alice")] == [new.sid]


async def test_rotate_with_new_methods_records_fresh_auth(
    manager: SessionManager, clock: FrozenClock
) -> None:
    cookie, _ = await manager.create("alice")
    clock.advance(30)
    _, new = await manager.rotate(cookie, methods=("pwd", "otp"))
    assert new.methods == ("pwd", "otp")
    assert new.auth_time == clock.now()


async def test_rotate_dead_session(manager: SessionManager) -> None:
    with pytest.raises(SessionNotFound):
        await manager.rotate(new_cookie_value())


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "short",
        "x" * 44,
        "a" * 42 + "=",
        "a" * 42 + "B",  # right alphabet, non-canonical last character
        "é" * 43,
        "a" * 42 + "\x00",
        "../../etc/passwd" + "A" * 27,
        "A" * 10_000,
    ],
)
async def test_malformed_cookies_never_reach_the_store(
    manager: SessionManager, store: RecordingStore, value: str | None
) -> None:
    with pytest.raises(SessionNotFound):
        await manager.load(value)
    assert await manager.destroy(value) is None
    assert store.keys == []


async def test_unknown_cookie(manager: SessionManager) -> None:
    with pytest.raises(SessionNotFound):
        await manager.load(new_cookie_value())


async def test_update_data(manager: SessionManager) -> None:
    cookie, _ = await manager.create("alice")
    s = await manager.update_data(cookie, {"lang": "ko"})
    assert s.data == {"lang": "ko"}
    assert (await manager.load(cookie)).data == {"lang": "ko"}


async def test_data_size_limit(manager: SessionManager) -> None:
    cookie, _ = await manager.create("alice", data={"small": "x"})
    with pytest.raises(SessionDataTooLarge):
        await manager.update_data(cookie, {"big": "x" * 300})
    # Multi-byte characters count as their UTF-8 size.
    with pytest.raises(SessionDataTooLarge):
        await manager.update_data(cookie, {"big": "한" * 100})
    with pytest.raises(SessionDataTooLarge):
        await manager.create("alice", data={"big": "x" * 300})
    assert (await manager.load(cookie)).data == {"small": "x"}


@pytest.mark.parametrize(
    "data", [{"k": object()}, {"k": float("nan")}, {1: "int key"}, ["not", "a", "dict"]]
)
async def test_data_must_be_json_object(manager: SessionManager, data: object) -> None:
    cookie, _ = await manager.create("alice")
    with pytest.raises(SessionError):
        await manager.update_data(cookie, data)  # type: ignore[arg-type]
    with pytest.raises(SessionError):
        await manager.create("alice", data=data)  # type: ignore[arg-type]


async def test_destroy(manager: SessionManager, revoked: Revocations) -> None:
    cookie, s = await manager.create("alice")
    assert await manager.destroy(cookie) == s
    assert revoked.calls == [[s.sid]]
    with pytest.raises(SessionNotFound):
        await manager.load(cookie)
    assert await manager.destroy(cookie) is None
    assert revoked.calls == [[s.sid]]


async def test_save_after_logout_does_not_resurrect(manager: SessionManager) -> None:
    cookie, _ = await manager.create("alice")
    await manager.destroy(cookie)
    with pytest.raises(SessionNotFound):
        await manager.update_data(cookie, {"k": 1})
    with pytest.raises(SessionNotFound):
        await manager.load(cookie)


async def test_revoke_only_own_sessions(manager: SessionManager, revoked: Revocations) -> None:
    """A user guessing or knowing another user's sid cannot end that session."""
    alice_cookie, alice = await manager.create("alice")
    _, bob = await manager.create("bob")
    assert await manager.revoke(alice.sid, user_id="bob") is False
    assert await manager.load(alice_cookie) == alice
    assert revoked.calls == []
    assert await manager.revoke(bob.sid, user_id="bob") is True
    assert revoked.calls == [[bob.sid]]
    assert await manager.revoke(bob.sid, user_id="bob") is False


async def test_revoke_by_admin(manager: SessionManager) -> None:
    cookie, s = await manager.create("alice")
    assert await manager.revoke(s.sid) is True
    with pytest.raises(SessionNotFound):
        await manager.load(cookie)


@pytest.mark.parametrize("sid", ["", "nope", "A" * 23, "é" * 22, new_sid()])
async def test_revoke_unknown_or_malformed_sid(manager: SessionManager, sid: str) -> None:
    assert await manager.revoke(sid) is False
    assert await manager.revoke(sid, user_id="alice") is False


async def test_list_for_user_live_only_newest_first(
    manager: SessionManager, clock: FrozenClock
) -> None:
    _, first = await manager.create("alice")
    clock.advance(10)
    _, second = await manager.create("alice")
    clock.advance(10)
    short_cookie, short = await manager.create("alice")
    await manager.set_expiry(short_cookie, idle_timeout=5)
    await manager.create("bob")
    clock.advance(5)
    assert [s.sid for s in await manager.list_for_user("alice")] == [second.sid, first.sid]
    assert short.sid not in [s.sid for s in await manager.list_for_user("alice")]


async def test_revoke_all_except_current(manager: SessionManager, revoked: Revocations) -> None:
    keep_cookie, keep = await manager.create("alice")
    c1, s1 = await manager.create("alice")
    c2, s2 = await manager.create("alice")
    bob_cookie, _ = await manager.create("bob")
    ended = await manager.revoke_all("alice", except_sid=keep.sid)
    assert sorted(ended) == sorted([s1.sid, s2.sid])
    assert len(revoked.calls) == 1
    assert sorted(revoked.calls[0]) == sorted([s1.sid, s2.sid])
    for cookie in (c1, c2):
        with pytest.raises(SessionNotFound):
            await manager.load(cookie)
    assert (await manager.load(keep_cookie)).sid == keep.sid
    assert (await manager.load(bob_cookie)).user_id == "bob"
    assert await manager.revoke_all("alice") == [keep.sid]


async def test_revoke_all_with_nothing_to_end(
    manager: SessionManager, revoked: Revocations
) -> None:
    assert await manager.revoke_all("nobody") == []
    assert revoked.calls == []


async def test_check_csrf(manager: SessionManager) -> None:
    _, s = await manager.create("alice")
    _, other = await manager.create("alice")
    assert await manager.check_csrf(s, s.csrf_secret) is True
    assert await manager.check_csrf(s, other.csrf_secret) is False
    assert await manager.check_csrf(s, None) is False
    assert await manager.check_csrf(s, "") is False
    assert await manager.check_csrf(s, s.csrf_secret[:-1]) is False
    assert await manager.check_csrf(s, "한" * 43) is False  # non-ASCII must not raise


async def test_csrf_secret_rotates_with_rotate(manager: SessionManager) -> None:
    cookie, old = await manager.create("alice")
    _, new = await manager.rotate(cookie)
    assert await manager.check_csrf(new, old.csrf_secret) is False


async def test_create_retries_once_on_collision(clock: FrozenClock) -> None:
    store = CollidingStore(collisions=1)
    manager = SessionManager(store, POLICY, clock=clock)
    cookie, s = await manager.create("alice")
    assert await manager.load(cookie) == s
    assert store.attempts == 2


async def test_create_gives_up_after_second_collision(clock: FrozenClock) -> None:
    store = CollidingStore(collisions=2)
    manager = SessionManager(store, POLICY, clock=clock)
    with pytest.raises(SessionCollision):
        await manager.create("alice")
    assert store.attempts == 2
    assert await store.list_for_user("alice") == []


async def test_rotate_racing_a_logout_keeps_nothing(clock: FrozenClock) -> None:
    """A logout that lands mid-rotation must win: no successor session survives."""
    store = LogoutDuringCreate()
    manager = SessionManager(store, POLICY, clock=clock)
    cookie, _ = await manager.create("alice")
    store.logout_next = hash_cookie(cookie)
    with pytest.raises(SessionNotFound):
        await manager.rotate(cookie)
    assert await store.list_for_user("alice") == []


class CollidingStore(MemorySessionStore):
    """A memory store whose first ``collisions`` creates report a collision.

    Real collisions of 256 random bits cannot be provoked, so this one is declared.
    """

    def __init__(self, collisions: int) -> None:
        super().__init__()
        self._left = collisions
        self.attempts = 0

    async def create(self, session: Session) -> None:
        self.attempts += 1
        if self._left:
            self._left -= 1
            raise SessionCollision()
        await super().create(session)


class LogoutDuringCreate(MemorySessionStore):
    """Deletes ``logout_next`` just before the next create, like a concurrent logout."""

    logout_next: bytes | None = None

    async def create(self, session: Session) -> None:
        if self.logout_next is not None:
            await self.delete(self.logout_next)
            self.logout_next = None
        await super().create(session)
