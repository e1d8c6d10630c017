"""Session store on Redis: standalone, Sentinel or Redis/Valkey Cluster.

Layout (``P`` is the prefix, ``dojang:`` by default)::

    P s:<hex key_hash>   string the session record, packed (below); PEXPIREAT = expires_at
    P i:<sid>            string the raw 32-byte key_hash of the session named sid;
                                PEXPIREAT = absolute expiry
    P u:<user_id>        zset   raw 32-byte key_hashes of the user's sessions, score = absolute
                                expiry; the key expires with its longest-lived member

Keys are built from the SHA-256 of the cookie, never the cookie value, so a dump or a
``MONITOR`` yields no live cookies.

The record is one packed string, not a hash: a hash with ten short fields costs Redis about a
kilobyte per session (a dictionary entry and an object per field), a string costs its length.
``version | flags | created last_seen auth_time idle_timeout absolute_expires_at`` (five
little-endian doubles, so every float round-trips exactly and ``touch`` can rewrite
``last_seen`` in place with ``SETRANGE``), then length-prefixed (uint16) ``sid``, ``user_id``,
``csrf_secret``, ``methods``, ``ip``, ``user_agent`` and, for the rest of the string, the data
JSON. ``sid`` and ``csrf_secret`` are stored as their raw bytes when they are canonical
base64url, the user agent zlib-compressed with a preset dictionary of common user-agent
tokens (lossless: the account page still shows it as sent). The Lua scripts read the fixed
offsets and the first two strings only.

Consistency without cross-slot transactions. Every command and Lua script touches exactly one
key, so the store works unchanged on Redis Cluster (no hash tags, no CROSSSLOT errors). The
record is the single source of truth; the two index keys are hints that are always re-checked
against it:

* ``create`` writes the record first (``SET NX``: fails if it exists), then claims the sid
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
import base64
import binascii
import json
import logging
import math
import struct
import zlib
from collections.abc import Awaitable, Iterable, Sequence
from typing import TypeVar, cast

from dojang.errors import SessionCollision, SessionNotFound
from dojang.redis_client import (
    REDIS_ERRORS,
    RedisClient,
    close_redis_client,
    connect_redis,
    redis_guard,
)
from dojang.sessions.backends.redis_batch import GetBatcher
from dojang.sessions.model import Session, decode_data, encode_data

log = logging.getLogger("dojang.sessions")

_T = TypeVar("_T")

# How many per-session commands are in flight at once for list/delete/purge fan-outs.
_BATCH = 200

# -- the packed record -------------------------------------------------------------------------

_VERSION = 1
_HEAD = struct.Struct("<BB5d")  # version, flags, created, last_seen (byte 10: _TOUCH), auth,
# idle, absolute
_LEN = struct.Struct("<H")
_F_SID_RAW = 1  # sid stored as the bytes its base64url decodes to
_F_CSRF_RAW = 2  # csrf_secret likewise
_F_IP = 4
_F_UA = 8
_F_UA_ZLIB = 16

# Preset dictionary for user agents: deflate finds these substrings without paying for them,
# so a typical 110-character browser user agent packs into about 30 bytes. Changing it would
# make stored user agents unreadable: append a new dictionary under a new flag instead.
_UA_DICT = (
    b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) (Macintosh; Intel Mac OS X 10_15_7) "
    b"(X11; Linux x86_64) (X11; Ubuntu; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0 "
    b"(iPhone; CPU iPhone OS 17_5 like Mac OS X) (iPad; CPU OS 17_5 like Mac OS X) "
    b"(Linux; Android 14; K) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
    b"Mobile/15E148 Safari/604.1 AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/126.0.0.0 Mobile Safari/537.36 Edg/126.0.0.0 Safari/537.36 "
    b"curl/8.5.0 python-httpx/0.27.0 python-requests/2.32.3 okhttp/4.12.0 Go-http-client/2.0"
)


def _b64_raw(text: str) -> bytes | None:
    """The bytes of canonical unpadded base64url ``text`` (re-encodes identically), or None."""
    if len(text) % 4 == 1:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == text else None


def _b64_text(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _str(raw: bytes) -> bytes:
    if len(raw) > 0xFFFF:
        raise ValueError("session field too long to store")
    return _LEN.pack(len(raw)) + raw


def _sid_field(sid: str) -> tuple[bool, bytes]:
    raw = _b64_raw(sid)
    return (True, raw) if raw is not None else (False, sid.encode())


def _packed_sid(sid: str) -> bytes:
    """The sid exactly as it appears (length-prefixed) in a record: what the scripts compare."""
    return _str(_sid_field(sid)[1])


def _ua_pack(ua: str) -> tuple[bool, bytes]:
    raw = ua.encode()
    co = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, _UA_DICT)
    packed = co.compress(raw) + co.flush()
    return (True, packed) if len(packed) < len(raw) else (False, raw)


def _ua_unpack(raw: bytes) -> str:
    do = zlib.decompressobj(-15, _UA_DICT)
    return (do.decompress(raw) + do.flush()).decode()


def _pack(session: Session) -> bytes:
    """The record as one string (see the module docstring)."""
    flags = 0
    sid_raw, sid = _sid_field(session.sid)
    flags |= _F_SID_RAW if sid_raw else 0
    csrf = _b64_raw(session.csrf_secret)
    flags |= _F_CSRF_RAW if csrf is not None else 0
    tail = [
        _str(sid),
        _str(session.user_id.encode()),
        _str(csrf if csrf is not None else session.csrf_secret.encode()),
        _str(" ".join(session.methods).encode() if _plain(session.methods) else
             b"[" + json.dumps(list(session.methods), separators=(",", ":")).encode()),
    ]  # fmt: skip
    if session.ip is not None:
        flags |= _F_IP
        tail.append(_str(session.ip.encode()))
    if session.user_agent is not None:
        flags |= _F_UA
        zipped, ua = _ua_pack(session.user_agent)
        flags |= _F_UA_ZLIB if zipped else 0
        tail.append(_str(ua))
    if session.data:
        tail.append(encode_data(session.data).encode())
    head = _HEAD.pack(
        _VERSION,
        flags,
        float(session.created_at),
        float(session.last_seen),
        float(session.auth_time),
        float(session.idle_timeout),
        float(session.absolute_expires_at),
    )
    return head + b"".join(tail)


def _plain(methods: Sequence[str]) -> bool:
    # Space-joined when unambiguous (the usual "pwd", "otp"); JSON after a "[" marker otherwise.
    return all(m and " " not in m and not m.startswith("[") for m in methods) and bool(methods)


def _unpack(key_hash: bytes, blob: bytes) -> Session:
    version, flags, created, last_seen, auth_time, idle, absolute = _HEAD.unpack_from(blob)
    if version != _VERSION:
        raise ValueError(f"unknown session record version {version}")
    pos = _HEAD.size

    def take() -> bytes:
        nonlocal pos
        (n,) = _LEN.unpack_from(blob, pos)
        value = blob[pos + 2 : pos + 2 + n]
        pos += 2 + n
        return value

    sid_b, user_b, csrf_b, methods_b = take(), take(), take(), take()
    ip = take().decode() if flags & _F_IP else None
    ua: str | None = None
    if flags & _F_UA:
        ua_b = take()
        ua = _ua_unpack(ua_b) if flags & _F_UA_ZLIB else ua_b.decode()
    rest = blob[pos:]
    if methods_b.startswith(b"["):
        methods = tuple(json.loads(methods_b[1:]))
    else:
        methods = tuple(methods_b.decode().split(" ")) if methods_b else ()
    return Session(
        key_hash=key_hash,
        sid=_b64_text(sid_b) if flags & _F_SID_RAW else sid_b.decode(),
        user_id=user_b.decode(),
        created_at=created,
        last_seen=last_seen,
        auth_time=auth_time,
        idle_timeout=idle,
        absolute_expires_at=absolute,
        csrf_secret=_b64_text(csrf_b) if flags & _F_CSRF_RAW else csrf_b.decode(),
        methods=methods,
        ip=ip,
        user_agent=ua,
        data=decode_data(rest.decode()) if rest else {},
    )


# Lua scripts: each touches only KEYS[1], so each is atomic on one node of a cluster. They
# share this reader of the packed record (Redis bundles the ``struct`` library with its Lua).
_LUA_READ = """
local function str_at(v, pos)
  local n = string.byte(v, pos) + 256 * string.byte(v, pos + 1)
  return string.sub(v, pos, pos + 1 + n), pos + 2 + n
end
local function fields(v)
  local _, _, c, l, a, i, x = struct.unpack('<BBddddd', v)
  local sid, pos = str_at(v, 43)
  local user = str_at(v, pos)
  return {l = l, i = i, x = x, sid = sid, user = user}
end
"""

_TOUCH = (
    _LUA_READ
    + """
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local f = fields(v)
local seen = struct.unpack('<d', ARGV[1])
if seen <= f.l then return 0 end
redis.call('SETRANGE', KEYS[1], 10, ARGV[1])
local exp = math.min(seen + f.i, f.x)
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.ceil(exp * 1000)))
return 1
"""
)

# UPDATE, never upsert: a save racing a logout must not resurrect the session. Returns the
# previous (length-prefixed) user id so the caller can move the index entry if it changed.
_SAVE = (
    _LUA_READ
    + """
local v = redis.call('GET', KEYS[1])
if not v then return false end
local f = fields(v)
if f.sid ~= ARGV[1] then return false end
redis.call('SET', KEYS[1], ARGV[3], 'PXAT', ARGV[2])
return f.user
"""
)

# Conditional delete returning the deleted record. Each condition is '' (none) or '=' .. value
# (sid and user length-prefixed as in the record): ARGV[1] sid must equal, ARGV[2] user must
# equal, ARGV[3] sid must differ, ARGV[4] the session must be expired at this time.
_TAKE = (
    _LUA_READ
    + """
local v = redis.call('GET', KEYS[1])
if not v then return false end
local f = fields(v)
if ARGV[1] ~= '' and '=' .. f.sid ~= ARGV[1] then return false end
if ARGV[2] ~= '' and '=' .. f.user ~= ARGV[2] then return false end
if ARGV[3] ~= '' and '=' .. f.sid == ARGV[3] then return false end
if ARGV[4] ~= '' then
  local now = tonumber(string.sub(ARGV[4], 2))
  if now < math.min(f.l + f.i, f.x) then return false end
end
redis.call('DEL', KEYS[1])
return v
"""
)
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


def _text(value: bytes | str) -> str:
    # The client runs with decode_responses=False, but redis-py types replies as bytes | str.
    return value.decode() if isinstance(value, bytes) else value


def _raw(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _key_hash(member: bytes | str) -> bytes | None:
    """A key hash from an index entry or pointer: raw 32 bytes (or 64 hex); None if neither."""
    raw = _raw(member)
    if len(raw) == 32:
        return raw
    try:
        decoded = bytes.fromhex(raw.decode("ascii"))
    except ValueError:
        return None
    return decoded if len(decoded) == 32 else None


def _cond(value: bytes | None) -> bytes:
    return b"" if value is None else b"=" + value


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
        self._reads = GetBatcher(client)
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
        blob = await self._take(
            keys=[self._record(key_hex)],
            args=[
                _cond(None if sid is None else _packed_sid(sid)),
                _cond(None if user_id is None else _str(user_id.encode())),
                _cond(None if except_sid is None else _packed_sid(except_sid)),
                _cond(None if expired_at is None else _num(expired_at).encode()),
            ],
        )
        return _unpack(bytes.fromhex(key_hex), _raw(blob)) if blob else None

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
                    self._pointer_del(keys=[self._pointer(s.sid)], args=[s.key_hash]),
                    self._client.zrem(self._index(s.user_id), s.key_hash),
                )
            )
        except REDIS_ERRORS as e:
            log.warning(
                "session index clean-up failed (%s); TTLs will collect it", type(e).__name__
            )

    async def _index_members(self, user_id: str) -> list[bytes]:
        # Without WITHSCORES the reply is a flat list of members (raw key hashes).
        return cast("list[bytes]", await self._client.zrange(self._index(user_id), 0, -1))

    # -- the contract ------------------------------------------------------------------------

    async def create(self, session: Session) -> None:
        """Insert a new session; ``SessionCollision`` on a duplicate key or sid."""
        key_hex = session.key_hash.hex()
        record = self._record(key_hex)
        blob = _pack(session)
        async with redis_guard(self._client, "session store"):
            created = await self._client.set(record, blob, nx=True, pxat=_ms(session.expires_at))
            if not created:
                raise SessionCollision()
            try:
                claimed = await self._client.set(
                    self._pointer(session.sid),
                    session.key_hash,
                    nx=True,
                    pxat=_ms(session.absolute_expires_at),
                )
                if not claimed:
                    await self._client.delete(record)  # ours: nobody else knows this key yet
                    raise SessionCollision()
                await self._index_add(
                    keys=[self._index(session.user_id)],
                    args=[session.key_hash, _num(session.absolute_expires_at)],
                )
            except REDIS_ERRORS:
                # Half-created: undo what we can so no unindexed session lingers; if Redis is
                # gone entirely, the record's TTL removes it (and its cookie was never issued).
                await self._undo_create(session)
                raise

    async def _undo_create(self, session: Session) -> None:
        try:
            await self._client.delete(self._record(session.key_hash.hex()))
            await self._pointer_del(keys=[self._pointer(session.sid)], args=[session.key_hash])
        except REDIS_ERRORS as e:
            log.warning("undoing a failed session create failed (%s)", type(e).__name__)

    async def get(self, key_hash: bytes) -> Session | None:
        """Return the session under ``key_hash`` (one ``GET``), or ``None``; never creates."""
        async with redis_guard(self._client, "session store"):
            # Batched with the other lookups of this event-loop tick (one round trip).
            blob = await self._reads.get(self._record(key_hash.hex()))
        return _unpack(key_hash, _raw(blob)) if blob else None

    async def get_by_sid(self, sid: str) -> Session | None:
        """Follow the sid pointer to the record; a stale pointer reads as ``None``."""
        async with redis_guard(self._client, "session store"):
            pointer = await self._client.get(self._pointer(sid))
            key_hash = None if pointer is None else _key_hash(pointer)
            if key_hash is None:
                return None
            blob = await self._client.get(self._record(key_hash.hex()))
        if not blob:
            return None
        found = _unpack(key_hash, _raw(blob))
        return found if found.sid == sid else None

    async def touch(self, key_hash: bytes, last_seen: float) -> None:
        """Move ``last_seen`` forward and the record's TTL with it, in one script."""
        async with redis_guard(self._client, "session store"):
            await self._touch(
                keys=[self._record(key_hash.hex())], args=[struct.pack("<d", float(last_seen))]
            )

    async def save(self, session: Session) -> None:
        """Replace an existing session; ``SessionNotFound`` if it is gone or was replaced."""
        key_hex = session.key_hash.hex()
        async with redis_guard(self._client, "session store"):
            previous: bytes | None = await self._save(
                keys=[self._record(key_hex)],
                args=[_packed_sid(session.sid), _ms(session.expires_at), _pack(session)],
            )
            if previous is None:
                raise SessionNotFound()
            previous_user = _raw(previous)[2:].decode()
            # The absolute expiry may have moved (set_expiry, remember-me): the pointer and the
            # index entry must live as long as the record can.
            await self._pointer_expire(
                keys=[self._pointer(session.sid)],
                args=[session.key_hash, _ms(session.absolute_expires_at)],
            )
            await self._index_add(
                keys=[self._index(session.user_id)],
                args=[session.key_hash, _num(session.absolute_expires_at)],
            )
            if previous_user != session.user_id:
                await self._client.zrem(self._index(previous_user), session.key_hash)

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
            key_hash = None if pointer is None else _key_hash(pointer)
            if key_hash is None:
                return None
            taken = await self._take_record(key_hash.hex(), sid=sid)
        if taken is not None:
            await self._forget([taken])
        return taken

    async def list_for_user(self, user_id: str) -> list[Session]:
        """Return every stored session of ``user_id``; stale index entries are dropped."""
        async with redis_guard(self._client, "session store"):
            members = await self._index_members(user_id)
            hashes = [_key_hash(m) for m in members]
            blobs = await _gather(
                self._client.get(self._record(h.hex())) for h in hashes if h is not None
            )
            found: list[Session] = []
            stale: list[bytes] = [m for m, h in zip(members, hashes, strict=True) if h is None]
            valid = [(m, h) for m, h in zip(members, hashes, strict=True) if h is not None]
            for (member, key_hash), blob in zip(valid, blobs, strict=True):
                session = _unpack(key_hash, _raw(blob)) if blob else None
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
            hashes = [_key_hash(m) for m in await self._index_members(user_id)]
            taken = await _gather(
                self._take_record(h.hex(), user_id=user_id, except_sid=except_sid)
                for h in hashes
                if h is not None
            )
        deleted = [s for s in taken if s is not None]
        await self._forget(deleted)
        return [s.sid for s in deleted]

    async def count_live(self, now: float) -> int | None:
        """Not cheap on Redis (a scan over every primary): the gauge is left unset."""
        return None

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
