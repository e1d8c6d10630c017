"""Redis-specific behaviour of RedisSessionStore: layout, TTLs, buckets, outages and recovery.

The contract itself runs in test_store_contract.py (params "redis" and "redis-cluster"). Redis
TTLs and the buckets' expiry pruning use real time, so the sessions here are stamped relative
to ``time.time()``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import secrets
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError

from dojang.errors import ConfigError, SessionCollision, StoreUnavailable
from dojang.redis_client import RedisClient, connect_redis
from dojang.sessions.backends import open_session_store
from dojang.sessions.backends import redis as rstore
from dojang.sessions.backends.redis import RedisSessionStore
from dojang.sessions.ids import hash_cookie, new_cookie_value, new_csrf_secret, new_sid
from dojang.sessions.model import Session
from dojang.storage import Database
from tests.redis_harness import REDIS_SERVER, RedisServer, free_port, unreachable
from tests.sessions.test_store_contract import make_session

CHROME = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)


def live_session(
    user_id: str = "u1", *, idle: float = 1800, absolute: float = 12 * 3600, **kw: Any
) -> Session:
    """A contract-suite session on the wall clock (Redis expires keys in real time)."""
    now = time.time()
    extra: dict[str, Any] = {
        "idle_timeout": idle,
        "absolute_expires_at": now + absolute,
        "ip": "192.0.2.1",
        "user_agent": "Mozilla/5.0",
        "data": {"k": "v"},
    }
    return make_session(user_id, now=now, **{**extra, **kw})


def sid_in_bucket(bucket: bytes) -> str:
    """A fresh canonical sid whose pointer lands in the sid bucket named ``bucket``."""
    return base64.urlsafe_b64encode(bucket + secrets.token_bytes(14)).rstrip(b"=").decode()


def sid_bytes(sid: str) -> bytes:
    return base64.urlsafe_b64decode(sid + "==")


def expiry_bytes(t: float) -> bytes:
    return struct.pack("<I", math.ceil(t))


@pytest.fixture(params=["redis", "redis-cluster"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[RedisClient]:
    url: str = request.getfixturevalue(
        "redis_url" if request.param == "redis" else "redis_cluster_url"
    )
    c = connect_redis(url)
    try:
        yield c
    finally:
        await c.aclose()


@pytest.fixture
def store(client: RedisClient, redis_prefix: str) -> RedisSessionStore:
    return RedisSessionStore(client, prefix=redis_prefix)


async def pttl_s(client: RedisClient, key: bytes) -> float:
    return int(await client.pttl(key)) / 1000


async def all_keys(client: RedisClient, prefix: str) -> list[bytes]:
    return [k async for k in client.scan_iter(match=prefix + "*")]


async def dump(client: RedisClient, prefix: str) -> dict[bytes, Any]:
    """Every key under ``prefix`` with its value (a string's bytes, a hash's mapping)."""
    out: dict[bytes, Any] = {}
    for key in await all_keys(client, prefix):
        is_hash = await client.type(key) == b"hash"
        out[key] = await (client.hgetall(key) if is_hash else client.get(key))
    return out


# -- layout -----------------------------------------------------------------------------------


async def test_layout_is_pinned(
    store: RedisSessionStore, client: RedisClient, redis_prefix: str
) -> None:
    """One string per session and two bucket entries, byte for byte as the docstring says."""
    s = live_session()
    await store.create(s)
    p = redis_prefix.encode()
    raw_sid = sid_bytes(s.sid)
    user_hash = hashlib.sha256(b"u1").digest()
    record = p + b"s:" + s.key_hash  # 32 raw bytes, not hex
    pointers = p + b"i:" + raw_sid[:2]
    index = p + b"u:" + user_hash[:2]
    assert sorted(await all_keys(client, redis_prefix)) == sorted([record, pointers, index])

    assert await client.type(record) == b"string"
    blob = await client.get(record)
    assert blob[:2] == bytes((2, 2 | 4))  # version 2; ip and user agent present, no auth_time
    assert struct.unpack_from("<4d", blob, 2) == (
        s.last_seen,
        s.idle_timeout,
        s.absolute_expires_at,
        s.created_at,
    )
    assert blob[34:51] == bytes((16 << 1 | 1,)) + raw_sid  # compact (raw) sid field

    for bucket in (pointers, index):
        assert await client.type(bucket) == b"hash"
        assert await client.object("encoding", bucket) == b"listpack"
    assert await client.hgetall(pointers) == {
        raw_sid[2:]: s.key_hash + expiry_bytes(s.absolute_expires_at)
    }
    assert await client.hgetall(index) == {
        user_hash[2:6] + raw_sid: expiry_bytes(s.absolute_expires_at)
    }


def test_a_typical_record_stays_in_the_128_byte_allocation() -> None:
    """Redis allocates a record string in size classes (…, 128, 160, …) with 4 bytes of
    header: a fresh login with a common user agent must pack into at most 124 bytes, or the
    per-session memory target is lost (bench/scaleout_bench.py measures it)."""
    now = time.time()
    s = Session(
        key_hash=hash_cookie(new_cookie_value()),
        sid=new_sid(),
        user_id=secrets.token_urlsafe(16),  # what accounts/users.py issues
        created_at=now,
        last_seen=now,
        auth_time=now,
        idle_timeout=1800,
        absolute_expires_at=now + 43200,
        csrf_secret=new_csrf_secret(),
        methods=("pwd",),
        ip="203.0.113.254",
        user_agent=CHROME,
    )
    assert len(rstore._pack(s)) <= 124


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"auth_time": 1_700_000_123.25},  # re-authenticated: stored on its own
        {"created_at": -0.0, "auth_time": 0.0},  # bit-exact, not ==
        {"created_at": 0.0, "auth_time": -0.0},
        {"last_seen": 1e-300, "idle_timeout": 1 / 3, "absolute_expires_at": 2.0**62},
        {"ip": "2001:db8::1"},  # shorter as text than as 16 bytes
        {"ip": "2001:db8:85a3:8d3:1319:8a2e:370:7348"},  # shorter as bytes
        {"ip": "::ffff:192.0.2.1"},
        {"ip": "fe80::1%eth0"},  # a zone id does not survive binary: kept as text
        {"ip": "192.0.2.01"},  # not an address Python accepts: kept as text
        {"ip": "not an ip"},
        {"ip": None, "user_agent": None},
        {"user_agent": "x" * 600 + " 한글"},
        {"user_agent": ""},
        {"methods": ()},
        {"methods": ("pwd", "webauthn", "otp")},
        {"methods": ("has space", "", "[x")},
        {"sid": "not base64 !", "user_id": "user@example.com", "csrf_secret": "a=b"},
        {"sid": "AAAA", "user_id": "", "csrf_secret": ""},
        {"user_id": "é" * 200, "sid": "s" * 300},  # fields past 126 bytes: 3-byte header
        {"data": {"nested": [1, 2.5, None, True], "ü": "한글"}},
    ],
)
def test_pack_round_trips_exactly(kw: dict[str, Any]) -> None:
    s = live_session(**kw)
    back = rstore._unpack(s.key_hash, rstore._pack(s))
    assert back == s
    for name in ("created_at", "last_seen", "auth_time", "idle_timeout", "absolute_expires_at"):
        assert struct.pack("<d", getattr(back, name)) == struct.pack("<d", float(getattr(s, name)))


async def test_long_and_odd_fields_work_in_the_scripts(store: RedisSessionStore) -> None:
    """The Lua reader finds sid and user behind an auth_time and 3-byte field headers."""
    s = live_session("é" * 200, sid="s" * 300, auth_time=time.time() - 60)
    await store.create(s)
    await store.touch(s.key_hash, s.last_seen + 5)
    s.last_seen += 5
    assert await store.get_by_sid(s.sid) == s
    s.data = {"saved": True}
    await store.save(s)
    assert await store.list_for_user(s.user_id) == [s]
    assert await store.delete_for_user(s.user_id, except_sid="s" * 299) == [s.sid]
    assert await store.get(s.key_hash) is None


async def test_keys_and_values_never_contain_the_cookie(
    store: RedisSessionStore, client: RedisClient, redis_prefix: str
) -> None:
    """A dump of the store (or MONITOR) must yield no live cookie value."""
    cookie = new_cookie_value()
    s = live_session()
    s.key_hash = hash_cookie(cookie)
    await store.create(s)
    await store.touch(s.key_hash, s.last_seen + 1)
    keys = await all_keys(client, redis_prefix)
    assert len(keys) == 3
    blob = b" ".join(keys)
    for key in keys:
        if await client.type(key) == b"hash":
            blob += b" ".join(b"%s=%s" % kv for kv in (await client.hgetall(key)).items())
        else:
            blob += await client.get(key)
    assert cookie.encode() not in blob
    assert s.key_hash in blob  # keyed by the hash, as designed


# -- TTLs and buckets -------------------------------------------------------------------------


async def test_ttl_follows_idle_and_absolute_expiry(
    store: RedisSessionStore, client: RedisClient
) -> None:
    s = live_session(idle=600, absolute=3600)
    await store.create(s)
    record = store._record(s.key_hash)
    pointers = store._pointer_entry(s)[0]
    index = store._index_entry(s)[0]
    assert 598 < await pttl_s(client, record) <= 601  # idle bound
    assert 3598 < await pttl_s(client, pointers) <= 3601  # absolute bound (whole seconds)
    assert 3598 < await pttl_s(client, index) <= 3601

    await store.touch(s.key_hash, s.last_seen + 300)  # sliding: idle end moves forward
    assert 898 < await pttl_s(client, record) <= 901
    await store.touch(s.key_hash, s.last_seen + 100)  # never backward
    assert 898 < await pttl_s(client, record) <= 901
    await store.touch(s.key_hash, s.last_seen + 3500)  # the absolute end caps it
    assert 3598 < await pttl_s(client, record) <= 3601

    s.idle_timeout = 30
    await store.save(s)  # save writes every field and recomputes the TTL from them
    assert 28 < await pttl_s(client, record) <= 31
    s.absolute_expires_at += 86400  # remember-me: pointer and index live longer too
    s.idle_timeout = 7 * 86400
    await store.save(s)
    day_plus_hour = 86400 + 3600
    assert day_plus_hour - 2 < await pttl_s(client, pointers) <= day_plus_hour + 1
    assert day_plus_hour - 2 < await pttl_s(client, index) <= day_plus_hour + 1
    value = await client.hget(pointers, store._pointer_entry(s)[1])
    assert value == s.key_hash + expiry_bytes(s.absolute_expires_at)


async def test_a_save_that_keeps_owner_and_expiry_leaves_the_buckets_alone(
    store: RedisSessionStore, client: RedisClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """update_data saves often: it costs the record script only, no bucket scan."""
    s = live_session()
    s.absolute_expires_at = math.floor(s.absolute_expires_at) + 0.5
    await store.create(s)
    calls: list[Any] = []
    real = store._bucket_put

    async def spy(*, keys: list[bytes], args: list[bytes]) -> Any:
        calls.append(args)
        return await real(keys=keys, args=args)

    monkeypatch.setattr(store, "_bucket_put", spy)
    s.data = {"cart": [1, 2]}
    s.idle_timeout = 60
    await store.save(s)
    assert calls == []
    s.absolute_expires_at += 0.25  # the same whole second, as the index stores it
    await store.save(s)
    s.absolute_expires_at += 10
    await store.save(s)
    assert [a[2] for a in calls] == [b"xx", b"set"]
    assert await store.get_by_sid(s.sid) == s


async def test_bucket_expiry_is_its_latest_entry(
    store: RedisSessionStore, client: RedisClient
) -> None:
    """Two sessions in one sid bucket: the bucket lives as long as the longer one, and
    follows it down again when save() shortens it."""
    bucket = secrets.token_bytes(2)
    short = live_session(sid=sid_in_bucket(bucket), absolute=3600)
    long = live_session(sid=sid_in_bucket(bucket), absolute=7200)
    await store.create(short)
    await store.create(long)
    pointers = store._pointer_entry(short)[0]
    assert pointers == store._pointer_entry(long)[0]
    assert await client.hlen(pointers) == 2
    assert 7198 < await pttl_s(client, pointers) <= 7201
    long.absolute_expires_at = time.time() + 1800
    await store.save(long)
    assert 3598 < await pttl_s(client, pointers) <= 3601  # now the other one is the latest
    assert await store.delete(short.key_hash)
    assert await client.hlen(pointers) == 1
    assert await store.delete(long.key_hash)
    assert not await client.exists(pointers)  # an empty hash is no key at all


async def test_writing_to_a_bucket_prunes_its_expired_entries(
    store: RedisSessionStore, client: RedisClient
) -> None:
    """Hash fields have no TTL: the script adding an entry drops those past their expiry."""
    first = live_session("alice")
    await store.create(first)
    pointers, _, _ = store._pointer_entry(first)
    index, _, _ = store._index_entry(first)
    tag = store._index("alice")[1]
    now = time.time()
    dead, alive = secrets.token_bytes(14), secrets.token_bytes(14)
    await client.hset(pointers, dead, secrets.token_bytes(32) + expiry_bytes(now - 5))
    await client.hset(pointers, alive, secrets.token_bytes(32) + expiry_bytes(now + 60))
    dead_entry, alive_entry = tag + secrets.token_bytes(16), tag + secrets.token_bytes(16)
    await client.hset(index, dead_entry, expiry_bytes(now - 5))
    await client.hset(index, alive_entry, expiry_bytes(now + 60))

    second = live_session("alice", sid=sid_in_bucket(sid_bytes(first.sid)[:2]))
    await store.create(second)
    assert not await client.hexists(pointers, dead)
    assert await client.hexists(pointers, alive)
    assert await client.hlen(pointers) == 3
    assert not await client.hexists(index, dead_entry)
    assert await client.hexists(index, alive_entry)
    assert await client.hlen(index) == 3
    assert {s.sid for s in await store.list_for_user("alice")} == {first.sid, second.sid}
    assert not await client.hexists(index, alive_entry)  # no pointer behind it: dropped


async def test_an_expired_pointer_does_not_block_its_sid(
    store: RedisSessionStore, client: RedisClient
) -> None:
    """Like SET NX on an expired key: a leftover pointer past its expiry is pruned, not a
    collision."""
    s = live_session()
    pointers, field, _ = store._pointer_entry(s)
    await client.hset(pointers, field, secrets.token_bytes(32) + expiry_bytes(time.time() - 1))
    await store.create(s)
    assert await store.get_by_sid(s.sid) == s


async def test_a_live_leftover_pointer_blocks_its_sid(
    store: RedisSessionStore, client: RedisClient
) -> None:
    s = live_session()
    pointers, field, _ = store._pointer_entry(s)
    await client.hset(pointers, field, secrets.token_bytes(32) + expiry_bytes(time.time() + 60))
    with pytest.raises(SessionCollision):
        await store.create(s)
    assert await store.get(s.key_hash) is None  # create removed its own record again


async def test_redis_drops_the_session_and_its_buckets_when_it_expires(
    store: RedisSessionStore, client: RedisClient, redis_prefix: str
) -> None:
    s = live_session(idle=0.3, absolute=0.6)
    await store.create(s)
    assert await store.get(s.key_hash) is not None
    deadline = time.monotonic() + 5
    while await store.get(s.key_hash) is not None:
        assert time.monotonic() < deadline, "the record outlived its expiry"
        await asyncio.sleep(0.05)
    # Readers see through the entries the record left behind.
    assert await store.list_for_user("u1") == []
    assert await store.get_by_sid(s.sid) is None
    # The buckets go with their last entry's absolute expiry (whole seconds, rounded up).
    while await all_keys(client, redis_prefix):
        assert time.monotonic() < deadline, "a bucket outlived its last entry"
        await asyncio.sleep(0.05)


async def test_a_stale_pointer_reads_as_none_and_stale_entries_are_dropped(
    store: RedisSessionStore, client: RedisClient
) -> None:
    """The record is gone but its pointer and index entry are left (a crash mid-delete)."""
    s = live_session()
    await store.create(s)
    await client.delete(store._record(s.key_hash))
    assert await store.get_by_sid(s.sid) is None
    assert await store.delete_by_sid(s.sid) is None
    assert await store.delete_for_user("u1") == []
    index, entry, _ = store._index_entry(s)
    assert await client.hexists(index, entry)
    assert await store.list_for_user("u1") == []
    assert not await client.hexists(index, entry)  # dropped by the list
    # The sid stays claimed until the pointer's expiry or removal, as with SET NX before.
    with pytest.raises(SessionCollision):
        await store.create(live_session(sid=s.sid))


async def test_save_never_takes_over_another_records_pointer(
    store: RedisSessionStore, client: RedisClient
) -> None:
    """A crash left a record without its pointer and the sid was claimed again: saving the
    old record must not point the sid back at it."""
    old = live_session()
    await store.create(old)
    pointers, field, _ = store._pointer_entry(old)
    await client.hdel(pointers, field)
    new = live_session(sid=old.sid)
    await store.create(new)
    old.data = {"late": True}
    old.absolute_expires_at += 60  # so that save rewrites the index entries
    await store.save(old)
    assert await store.get_by_sid(old.sid) == new
    assert await client.hget(pointers, field) == new.key_hash + expiry_bytes(
        new.absolute_expires_at
    )


@pytest.mark.parametrize("failing", [b"nx", b"set"])
async def test_a_failed_create_is_undone_without_touching_others(
    store: RedisSessionStore,
    client: RedisClient,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    failing: bytes,
) -> None:
    """Redis fails while claiming the sid (nx) or adding the index entry (set): the half-made
    session goes, and a session already holding that sid keeps its pointer and entry."""
    holder = live_session()
    await store.create(holder)
    before = await dump(client, redis_prefix)
    real = store._bucket_put

    async def flaky(*, keys: list[bytes], args: list[bytes]) -> Any:
        if args[2] == failing:
            if failing == b"nx":  # as if the claim ran (and failed) before the reply was lost
                await real(keys=keys, args=args)
            raise RedisConnectionError("lost")
        return await real(keys=keys, args=args)

    monkeypatch.setattr(store, "_bucket_put", flaky)
    fresh, clash = live_session(), live_session(sid=holder.sid)
    with pytest.raises(StoreUnavailable):
        await store.create(fresh)
    # The clash never reaches the index entry: it fails at its claim either way.
    with pytest.raises(StoreUnavailable if failing == b"nx" else SessionCollision):
        await store.create(clash)
    for s in (fresh, clash):
        assert await store.get(s.key_hash) is None
    monkeypatch.undo()
    assert await dump(client, redis_prefix) == before
    assert await store.list_for_user("u1") == [holder]


async def test_an_infinite_expiry_is_refused_before_anything_is_written(
    store: RedisSessionStore, client: RedisClient, redis_prefix: str
) -> None:
    with pytest.raises(ValueError, match="finite"):
        await store.create(live_session(absolute=math.inf))
    assert await all_keys(client, redis_prefix) == []


async def test_deletes_remove_the_bucket_entries(
    store: RedisSessionStore, client: RedisClient, redis_prefix: str
) -> None:
    a1, a2, a3, b1 = (live_session(u) for u in ("alice", "alice", "alice", "bob"))
    for s in (a1, a2, a3, b1):
        await store.create(s)

    async def entries(s: Session) -> tuple[bool, bool]:
        pointers, field, _ = store._pointer_entry(s)
        index, entry, _ = store._index_entry(s)
        return bool(await client.hexists(pointers, field)), bool(await client.hexists(index, entry))

    assert await store.get_by_sid(a1.sid) == a1
    assert await store.delete_by_sid(a1.sid) == a1
    assert await entries(a1) == (False, False)
    assert await store.delete(a2.key_hash)
    assert await entries(a2) == (False, False)
    assert await store.list_for_user("alice") == [a3]
    assert await store.delete_for_user("alice") == [a3.sid]
    assert await entries(a3) == (False, False)
    assert await entries(b1) == (True, True)
    # alice's emptied buckets are gone (a bucket she shared with bob is one of his).
    left = {store._record(b1.key_hash), store._pointer_entry(b1)[0], store._index_entry(b1)[0]}
    assert set(await all_keys(client, redis_prefix)) == left


async def test_sids_that_are_not_16_byte_base64url_are_hashed_into_refs(
    store: RedisSessionStore, client: RedisClient
) -> None:
    s = live_session(sid="legacy-sid:42")
    await store.create(s)
    ref = hashlib.sha256(b"dojang-sid\0legacy-sid:42").digest()[:16]
    pointers, field, _ = store._pointer_entry(s)
    assert (pointers, field) == store._pointer(ref)
    assert await client.hexists(pointers, field)
    assert await store.get_by_sid("legacy-sid:42") == s
    assert await store.get_by_sid("legacy-sid:43") is None
    assert await store.list_for_user("u1") == [s]
    assert await store.delete_by_sid("legacy-sid:42") == s


async def test_concurrent_creates_with_one_sid_one_wins(store: RedisSessionStore) -> None:
    sid = new_sid()
    sessions = [live_session(f"user{i}") for i in range(20)]
    for s in sessions:
        s.sid = sid

    async def create(s: Session) -> bool:
        try:
            await store.create(s)
        except SessionCollision:
            return False
        return True

    results = await asyncio.gather(*(create(s) for s in sessions))
    assert results.count(True) == 1
    winner = sessions[results.index(True)]
    assert await store.get_by_sid(sid) == winner
    for loser in (s for s, ok in zip(sessions, results, strict=True) if not ok):
        assert await store.get(loser.key_hash) is None
        assert await store.list_for_user(loser.user_id) == []


async def test_stale_index_entries_harm_nobody(
    store: RedisSessionStore, client: RedisClient
) -> None:
    """An index entry pointing at another user's record is neither listed nor deleted."""
    alice, bob = live_session("alice"), live_session("bob")
    await store.create(alice)
    await store.create(bob)
    index, tag = store._index("alice")
    forged = tag + rstore._sid_ref(bob.sid)
    await client.hset(index, forged, expiry_bytes(time.time() + 60))
    assert [s.sid for s in await store.list_for_user("alice")] == [alice.sid]
    assert not await client.hexists(index, forged)  # bob has another tag: stale, dropped
    await client.hset(index, forged, expiry_bytes(time.time() + 60))
    assert await store.delete_for_user("alice") == [alice.sid]
    assert await store.get(bob.key_hash) == bob
    assert await store.list_for_user("bob") == [bob]


async def test_users_sharing_a_tag_are_kept_apart(
    store: RedisSessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 48-bit user hash can collide: the record's owner check keeps users apart, and a
    colliding user's entries are never dropped as stale."""
    monkeypatch.setattr(rstore, "_user_hash", lambda user_id: b"\x00" * 6)
    alice, bob = live_session("alice"), live_session("bob")
    await store.create(alice)
    await store.create(bob)
    assert await store.list_for_user("alice") == [alice]
    assert await store.list_for_user("bob") == [bob]  # alice's list left bob's entry alone
    assert await store.delete_for_user("alice") == [alice.sid]
    assert await store.list_for_user("bob") == [bob]
    bob.user_id = "carol"  # same tag again: save rewrites the one entry, deletes nothing
    await store.save(bob)
    assert await store.list_for_user("carol") == [bob]
    assert await store.list_for_user("bob") == []


async def test_save_moving_owner_moves_index(store: RedisSessionStore, client: RedisClient) -> None:
    s = live_session("alice")
    await store.create(s)
    old_index, old_entry, _ = store._index_entry(s)
    s.user_id = "bob"
    await store.save(s)
    assert not await client.hexists(old_index, old_entry)
    assert await store.list_for_user("alice") == []
    assert await store.list_for_user("bob") == [s]


async def test_purge_finds_binary_record_keys(store: RedisSessionStore) -> None:
    s = live_session(idle=600)
    await store.create(s)
    assert await store.purge_expired(time.time()) == 0
    assert await store.purge_expired(time.time() + 601) == 1
    assert await store.get_by_sid(s.sid) is None
    assert await store.list_for_user("u1") == []


async def test_close_leaves_a_borrowed_client_open(store: RedisSessionStore) -> None:
    await store.close()
    await store.ping()


def test_repr_and_prefix_checks(redis_prefix: str) -> None:
    c = aioredis.Redis(password="hunter2")
    assert "hunter2" not in repr(RedisSessionStore(c, prefix=redis_prefix))
    with pytest.raises(ValueError, match="prefix"):
        RedisSessionStore(c, prefix="{tag}:")


# -- Redis Cluster ----------------------------------------------------------------------------


async def test_cluster_one_session_spans_nodes(redis_cluster_url: str, redis_prefix: str) -> None:
    """No hash tags: a session's record and buckets land on different nodes, and every
    operation (one key per command or script) still works; key hashes containing braces
    hash the bytes between them, on the client and the server alike."""
    client = connect_redis(redis_cluster_url)
    assert isinstance(client, RedisCluster)
    store = RedisSessionStore(client, prefix=redis_prefix)
    try:
        await store.ping()  # the client learns the slot map
        spread = None
        for _ in range(50):
            s = live_session("carol")
            keys = [store._record(s.key_hash), store._pointer_entry(s)[0]]
            keys.append(store._index_entry(s)[0])
            if len({client.get_node_from_key(k).name for k in keys}) == 3:
                spread = s
                break
        assert spread is not None, "50 sessions and none spread over three nodes"
        braced = live_session("carol", key_hash=b"{ab}" + secrets.token_bytes(28))
        other = live_session("carol", key_hash=b"x{cd}" + secrets.token_bytes(27))
        for s in (spread, braced, other):
            await store.create(s)
            assert await store.get(s.key_hash) == s
            assert await store.get_by_sid(s.sid) == s
            await store.touch(s.key_hash, s.last_seen + 1)
            s.last_seen += 1
        assert client.keyslot(store._record(braced.key_hash)) == client.keyslot(b"ab")
        assert sorted(s.sid for s in await store.list_for_user("carol")) == sorted(
            s.sid for s in (spread, braced, other)
        )
        assert await store.delete_by_sid(braced.sid) == braced
        assert sorted(await store.delete_for_user("carol", except_sid=other.sid)) == [spread.sid]
        assert await store.list_for_user("carol") == [other]
        assert await store.purge_expired(other.expires_at + 1) == 1
        assert await all_keys(client, redis_prefix) == []
    finally:
        await client.aclose()


# -- outages --------------------------------------------------------------------------------


async def _every_method(store: RedisSessionStore) -> list[tuple[str, Any]]:
    s = live_session()
    return [
        ("create", store.create(s)),
        ("get", store.get(s.key_hash)),
        ("get_by_sid", store.get_by_sid(s.sid)),
        ("touch", store.touch(s.key_hash, time.time())),
        ("save", store.save(s)),
        ("delete", store.delete(s.key_hash)),
        ("delete_by_sid", store.delete_by_sid(s.sid)),
        ("list_for_user", store.list_for_user("u1")),
        ("delete_for_user", store.delete_for_user("u1")),
        ("purge_expired", store.purge_expired(time.time())),
        ("ping", store.ping()),
    ]


@pytest.mark.parametrize("scheme", ["redis", "redis+cluster"])
async def test_nothing_listening_fails_closed_quickly(scheme: str) -> None:
    """An outage must raise StoreUnavailable at once, never read as "no such session"."""
    store = RedisSessionStore.from_url(f"{scheme}://127.0.0.1:{free_port()}")
    try:
        for name, call in await _every_method(store):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await call
            assert time.monotonic() - started < 2, name
    finally:
        await store.close()


async def test_same_store_recovers_after_a_restart(tmp_path: Path) -> None:
    """Stop the server: StoreUnavailable. Start it again on the same port: the same store
    object works again, with no re-creation (the pool reconnects)."""
    if REDIS_SERVER is None:
        unreachable("redis-server is not installed: the restart test cannot run")
    server = RedisServer(tmp_path)
    server.start()
    store = RedisSessionStore.from_url(f"redis://127.0.0.1:{server.port}")
    try:
        s = live_session()
        await store.create(s)
        assert await store.get(s.key_hash) == s
        server.stop()
        for name, call in await _every_method(store):
            with pytest.raises(StoreUnavailable):
                await call
            del name
        server.start()  # same port, empty (no persistence)
        await store.ping()
        assert await store.get(s.key_hash) is None
        await store.create(s)
        assert await store.get_by_sid(s.sid) == s
    finally:
        await store.close()
        server.stop()


# -- configuration --------------------------------------------------------------------------


async def test_open_session_store_builds_a_redis_store(tmp_path: Path, redis_url: str) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    store = open_session_store(redis_url, db)
    try:
        assert isinstance(store, RedisSessionStore)
        await store.ping()
    finally:
        await store.close()
        await db.dispose()


async def test_open_session_store_bad_redis_url(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(ConfigError, match="DOJANG_SESSION_STORE") as info:
        open_session_store("redis://:hunter2@h:99999/x", db)
    assert "hunter2" not in str(info.value)
    await db.dispose()
