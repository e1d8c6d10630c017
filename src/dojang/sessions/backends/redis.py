"""Session store on Redis: standalone, Sentinel or Redis/Valkey Cluster.

Layout (``P`` is the prefix, ``dojang:`` by default)::

    P s:<hex key_hash>   hash   the session record; PEXPIREAT = the session's expires_at
    P i:<sid>            string hex key_hash of the session named sid; PEXPIREAT = absolute expiry
    P u:<user_id>        zset   hex key_hashes of the user's sessions, score = absolute expiry;
                                the key expires with its longest-lived member

Keys are built from the SHA-256 of the cookie, never the cookie value, so a dump or a
``MONITOR`` yields no live cookies.

Consistency without cross-slot transactions. Every command and Lua script touches exactly one
key, so the store works unchanged on Redis Cluster (no hash tags, no CROSSSLOT errors). The
record is the single source of truth; the two index keys are hints that are always re-checked
against it:

* ``create`` writes the record first (a script that fails if it exists), then claims the sid
  with ``SET NX`` (on a clash it deletes its own record again), then adds the user index
  entry. Until ``create`` returns only its caller knows the cookie and the sid, so nobody can
  observe the half-built state; the index entry comes last, so an index entry always refers
  to a record that was fully created.
* Deletion deletes the record first (atomically with any condition: owner, excepted sid,
  expiry) and then removes the index entries. A crash in between leaves a dangling sid pointer
  or index entry: ``get_by_sid`` and ``list_for_user`` check the record's own ``sid``/``user``
  fields and ignore (or lazily drop) such entries, and TTLs collect them in any case.
* A login racing "log out everywhere" is either seen by ``delete_for_user`` (index entry
  present) or is ordered after it; no session can be listed yet escape deletion.

TTLs use the session's own timestamps (``PEXPIREAT`` on ``expires_at``), refreshed by
``touch`` and ``save``, so Redis drops dead sessions by itself and ``purge_expired`` is only a
safety net (it scans, O(sessions)). With a frozen test clock far from real time those
timestamps are still applied as wall-clock instants.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import TypeVar, cast

from dojang.errors import SessionCollision, SessionNotFound
from dojang.redis_client import (
    REDIS_ERRORS,
    RedisClient,
    close_redis_client,
    connect_redis,
    redis_guard,
)
from dojang.sessions.model import Session, decode_data, encode_data

log = logging.getLogger("dojang.sessions")

_T = TypeVar("_T")

# How many per-session commands are in flight at once for list/delete/purge fan-outs.
_BATCH = 200

# Lua scripts: each touches only KEYS[1], so each is atomic on one node of a cluster.

_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1
"""

_TOUCH = """
local cur = redis.call('HMGET', KEYS[1], 'l', 'i', 'x')
if not cur[1] then return 0 end
local seen = tonumber(ARGV[1])
if seen <= tonumber(cur[1]) then return 0 end
redis.call('HSET', KEYS[1], 'l', ARGV[1])
local exp = math.min(seen + tonumber(cur[2]), tonumber(cur[3]))
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.ceil(exp * 1000)))
return 1
"""

# UPDATE, never upsert: a save racing a logout must not resurrect the session. Returns the
# previous user id so the caller can move the index entry if the owner changed.
_SAVE = """
local cur = redis.call('HMGET', KEYS[1], 's', 'u')
if cur[1] ~= ARGV[1] then return false end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return cur[2]
"""

# Conditional delete returning the deleted record. Each condition is '' (none) or '=' .. value:
# ARGV[1] sid must equal, ARGV[2] user must equal, ARGV[3] sid must differ, ARGV[4] the session
# must be expired at this time.
_TAKE = """
local v = redis.call('HGETALL', KEYS[1])
if #v == 0 then return v end
local f = {}
for n = 1, #v, 2 do f[v[n]] = v[n + 1] end
if ARGV[1] ~= '' and '=' .. f['s'] ~= ARGV[1] then return {} end
if ARGV[2] ~= '' and '=' .. f['u'] ~= ARGV[2] then return {} end
if ARGV[3] ~= '' and '=' .. f['s'] == ARGV[3] then return {} end
if ARGV[4] ~= '' then
  local now = tonumber(string.sub(ARGV[4], 2))
  local exp = math.min(tonumber(f['l']) + tonumber(f['i']), tonumber(f['x']))
  if now < exp then return {} end
end
redis.call('DEL', KEYS[1])
return v
"""

# Delete or re-expire a sid pointer only if it still names this record.
_POINTER_DEL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_POINTER_EXPIRE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIREAT', KEYS[1], ARGV[2]) end
return 0
"""

# Add to a user's index; drop members whose absolute expiry has passed on the server's clock
# (their records have expired too), and keep the key alive as long as its longest member.
_INDEX_ADD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.6f', now))
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] then
  redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.ceil(tonumber(top[2]) * 1000)))
end
return 1
"""


def _num(x: float) -> str:
    # Exact and short: integral floats as "1800000000", others by repr (round-trips exactly).
    # float() first: callers may pass ints (idle_timeout=1800).
    x = float(x)
    return str(int(x)) if x.is_integer() and abs(x) < 2**53 else repr(x)


def _ms(t: float) -> int:
    """A Unix time in whole milliseconds, rounded up so a key never dies before the session."""
    if not math.isfinite(t):
        raise ValueError("session expiry must be a finite time")
    return math.ceil(t * 1000)


def _fields(session: Session) -> list[str]:
    """The record as HSET arguments; optional fields are left out when empty."""
    out = [
        "s", session.sid,
        "u", session.user_id,
        "c", _num(session.created_at),
        "l", _num(session.last_seen),
        "a", _num(session.auth_time),
        "i", _num(session.idle_timeout),
        "x", _num(session.absolute_expires_at),
        "k", session.csrf_secret,
        "m", json.dumps(list(session.methods), separators=(",", ":")),
    ]  # fmt: skip
    if session.ip is not None:
        out += ["p", session.ip]
    if session.user_agent is not None:
        out += ["g", session.user_agent]
    if session.data:
        out += ["d", encode_data(session.data)]
    return out


def _text(value: bytes | str) -> str:
    # The client runs with decode_responses=False, but redis-py types replies as bytes | str.
    return value.decode() if isinstance(value, bytes) else value


def _decode(
    key_hash: bytes, raw: Mapping[bytes, bytes] | Mapping[bytes | str, bytes | str]
) -> Session:
    f = {_text(k): _text(v) for k, v in raw.items()}
    return Session(
        key_hash=key_hash,
        sid=f["s"],
        user_id=f["u"],
        created_at=float(f["c"]),
        last_seen=float(f["l"]),
        auth_time=float(f["a"]),
        idle_timeout=float(f["i"]),
        absolute_expires_at=float(f["x"]),
        csrf_secret=f["k"],
        methods=tuple(json.loads(f["m"])),
        ip=f.get("p"),
        user_agent=f.get("g"),
        data=decode_data(f.get("d", "{}")),
    )


def _pairs(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _cond(value: str | None) -> str:
    return "" if value is None else "=" + value


async def _gather(aws: Iterable[Awaitable[_T]]) -> list[_T]:
    """Run awaitables in bounded batches (a user may have many sessions; a scan many more)."""
    pending = list(aws)
    out: list[_T] = []
    for start in range(0, len(pending), _BATCH):
        out += await asyncio.gather(*pending[start : start + _BATCH])
    return out


class RedisSessionStore:
    """A :class:`~dojang.sessions.store.SessionStore` on Redis (see the module docstring).

    ``client`` is a redis-py asyncio client with ``decode_responses=False`` (the default), as
    made by :func:`dojang.redis_client.connect_redis`; it stays the caller's unless the store
    was built by :meth:`from_url`.
    """

    def __init__(self, client: RedisClient, *, prefix: str = "dojang:") -> None:
        if any(c in prefix for c in "{}*?[]\\"):
            # Braces would turn the prefix into a cluster hash tag (every key on one node);
            # glob characters would break the purge scan's MATCH pattern.
            raise ValueError("the key prefix must not contain {, }, *, ?, [, ] or \\")
        self._client = client
        self._prefix = prefix
        self._owns_client = False
        self._create = client.register_script(_CREATE)
        self._touch = client.register_script(_TOUCH)
        self._save = client.register_script(_SAVE)
        self._take = client.register_script(_TAKE)
        self._pointer_del = client.register_script(_POINTER_DEL)
        self._pointer_expire = client.register_script(_POINTER_EXPIRE)
        self._index_add = client.register_script(_INDEX_ADD)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "dojang:") -> RedisSessionStore:
        """Build a store with its own client for ``url``; :meth:`close` closes that client.

        Raises ``ConfigError`` (naming ``DOJANG_SESSION_STORE``) for a bad URL.
        """
        store = cls(connect_redis(url, option="DOJANG_SESSION_STORE"), prefix=prefix)
        store._owns_client = True
        return store

    def __repr__(self) -> str:
        # Never the URL: it may carry a password.
        return f"RedisSessionStore(prefix={self._prefix!r})"

    # -- key names ---------------------------------------------------------------------------

    def _record(self, key_hex: str) -> str:
        return f"{self._prefix}s:{key_hex}"

    def _pointer(self, sid: str) -> str:
        return f"{self._prefix}i:{sid}"

    def _index(self, user_id: str) -> str:
        return f"{self._prefix}u:{user_id}"

    # -- helpers -----------------------------------------------------------------------------

    async def _take_record(
        self,
        key_hex: str,
        *,
        sid: str | None = None,
        user_id: str | None = None,
        except_sid: str | None = None,
        expired_at: float | None = None,
    ) -> Session | None:
        """Atomically delete the record if every given condition holds; return it."""
        flat = await self._take(
            keys=[self._record(key_hex)],
            args=[
                _cond(sid),
                _cond(user_id),
                _cond(except_sid),
                _cond(None if expired_at is None else _num(expired_at)),
            ],
        )
        return _decode(bytes.fromhex(key_hex), _pairs(flat)) if flat else None

    async def _forget(self, sessions: Sequence[Session]) -> None:
        """Drop the index entries of records already deleted.

        The deletion itself has happened (it is what callers act on, e.g. to publish
        revocations), so an outage here is logged, not raised: a leftover entry points at no
        record, is ignored by every reader and expires with its TTL.
        """
        try:
            await _gather(
                aw
                for s in sessions
                for aw in (
                    self._pointer_del(keys=[self._pointer(s.sid)], args=[s.key_hash.hex()]),
                    self._client.zrem(self._index(s.user_id), s.key_hash.hex()),
                )
            )
        except REDIS_ERRORS as e:
            log.warning(
                "session index clean-up failed (%s); TTLs will collect it", type(e).__name__
            )

    async def _index_members(self, user_id: str) -> list[str]:
        # Without WITHSCORES the reply is a flat list of members.
        members = cast("list[bytes]", await self._client.zrange(self._index(user_id), 0, -1))
        return [_text(m) for m in members]

    # -- the contract ------------------------------------------------------------------------

    async def create(self, session: Session) -> None:
        """Insert a new session; ``SessionCollision`` on a duplicate key or sid."""
        key_hex = session.key_hash.hex()
        record = self._record(key_hex)
        async with redis_guard(self._client, "session store"):
            created = await self._create(
                keys=[record], args=[_ms(session.expires_at), *_fields(session)]
            )
            if not created:
                raise SessionCollision()
            try:
                claimed = await self._client.set(
                    self._pointer(session.sid),
                    key_hex,
                    nx=True,
                    pxat=_ms(session.absolute_expires_at),
                )
                if not claimed:
                    await self._client.delete(record)  # ours: nobody else knows this key yet
                    raise SessionCollision()
                await self._index_add(
                    keys=[self._index(session.user_id)],
                    args=[key_hex, _num(session.absolute_expires_at)],
                )
            except REDIS_ERRORS:
                # Half-created: undo what we can so no unindexed session lingers; if Redis is
                # gone entirely, the record's TTL removes it (and its cookie was never issued).
                await self._undo_create(session)
                raise

    async def _undo_create(self, session: Session) -> None:
        try:
            await self._client.delete(self._record(session.key_hash.hex()))
            await self._pointer_del(
                keys=[self._pointer(session.sid)], args=[session.key_hash.hex()]
            )
        except REDIS_ERRORS as e:
            log.warning("undoing a failed session create failed (%s)", type(e).__name__)

    async def get(self, key_hash: bytes) -> Session | None:
        """Return the session under ``key_hash`` (one ``HGETALL``), or ``None``; never creates."""
        async with redis_guard(self._client, "session store"):
            raw = await self._client.hgetall(self._record(key_hash.hex()))
        return _decode(key_hash, raw) if raw else None

    async def get_by_sid(self, sid: str) -> Session | None:
        """Follow the sid pointer to the record; a stale pointer reads as ``None``."""
        async with redis_guard(self._client, "session store"):
            pointer = await self._client.get(self._pointer(sid))
            if pointer is None:
                return None
            key_hex = _text(pointer)
            raw = await self._client.hgetall(self._record(key_hex))
        if not raw:
            return None
        found = _decode(bytes.fromhex(key_hex), raw)
        return found if found.sid == sid else None

    async def touch(self, key_hash: bytes, last_seen: float) -> None:
        """Move ``last_seen`` forward and the record's TTL with it, in one script."""
        async with redis_guard(self._client, "session store"):
            await self._touch(keys=[self._record(key_hash.hex())], args=[_num(last_seen)])

    async def save(self, session: Session) -> None:
        """Replace an existing session; ``SessionNotFound`` if it is gone or was replaced."""
        key_hex = session.key_hash.hex()
        async with redis_guard(self._client, "session store"):
            previous_user: bytes | None = await self._save(
                keys=[self._record(key_hex)],
                args=[session.sid, _ms(session.expires_at), *_fields(session)],
            )
            if previous_user is None:
                raise SessionNotFound()
            # The absolute expiry may have moved (set_expiry, remember-me): the pointer and the
            # index entry must live as long as the record can.
            await self._pointer_expire(
                keys=[self._pointer(session.sid)],
                args=[key_hex, _ms(session.absolute_expires_at)],
            )
            await self._index_add(
                keys=[self._index(session.user_id)],
                args=[key_hex, _num(session.absolute_expires_at)],
            )
            if previous_user.decode() != session.user_id:
                await self._client.zrem(self._index(previous_user.decode()), key_hex)

    async def delete(self, key_hash: bytes) -> bool:
        """Delete by key; return whether a session was deleted."""
        async with redis_guard(self._client, "session store"):
            taken = await self._take_record(key_hash.hex())
        if taken is None:
            return False
        await self._forget([taken])
        return True

    async def delete_by_sid(self, sid: str) -> Session | None:
        """Delete by public id; return the deleted session."""
        async with redis_guard(self._client, "session store"):
            pointer = await self._client.get(self._pointer(sid))
            if pointer is None:
                return None
            taken = await self._take_record(_text(pointer), sid=sid)
        if taken is not None:
            await self._forget([taken])
        return taken

    async def list_for_user(self, user_id: str) -> list[Session]:
        """Return every stored session of ``user_id``; stale index entries are dropped."""
        async with redis_guard(self._client, "session store"):
            members = await self._index_members(user_id)
            raws = await _gather(self._client.hgetall(self._record(m)) for m in members)
            found: list[Session] = []
            stale: list[str] = []
            for member, raw in zip(members, raws, strict=True):
                session = _decode(bytes.fromhex(member), raw) if raw else None
                # A missing record is gone for good (key hashes are never reused); a record
                # of another user was moved by save() after we read the index.
                if session is None or session.user_id != user_id:
                    stale.append(member)
                else:
                    found.append(session)
            if stale:
                await self._client.zrem(self._index(user_id), *stale)
        return found

    async def delete_for_user(self, user_id: str, *, except_sid: str | None = None) -> list[str]:
        """Delete every session of ``user_id`` but ``except_sid``; return the deleted sids.

        Each record is deleted by a script that re-checks its owner and sid, so an index
        entry that is stale or moved can never delete somebody else's session.
        """
        async with redis_guard(self._client, "session store"):
            members = await self._index_members(user_id)
            taken = await _gather(
                self._take_record(m, user_id=user_id, except_sid=except_sid) for m in members
            )
        deleted = [s for s in taken if s is not None]
        await self._forget(deleted)
        return [s.sid for s in deleted]

    async def purge_expired(self, now: float) -> int:
        """Delete every session expired at ``now``; return how many.

        Redis already expires records at their ``expires_at``; this scan over every primary
        only matters when the caller's clock runs ahead of the server's.
        """
        deleted: list[Session] = []
        async with redis_guard(self._client, "session store"):
            batch: list[str] = []
            start = len(self._record(""))
            async for key in self._client.scan_iter(match=self._record("*"), count=500):
                batch.append(key.decode()[start:])
                if len(batch) >= _BATCH:
                    deleted += await self._purge_batch(batch, now)
                    batch = []
            deleted += await self._purge_batch(batch, now)
        await self._forget(deleted)
        return len(deleted)

    async def _purge_batch(self, key_hexes: list[str], now: float) -> list[Session]:
        taken = await _gather(self._take_record(k, expired_at=now) for k in key_hexes)
        return [s for s in taken if s is not None]

    async def ping(self) -> None:
        """``PING`` the server; ``StoreUnavailable`` if it does not answer."""
        async with redis_guard(self._client, "session store"):
            await self._client.ping()

    async def close(self) -> None:
        """Close the client if this store created it (:meth:`from_url`); else leave it."""
        if self._owns_client:
            await close_redis_client(self._client)


__all__ = ["RedisSessionStore"]
