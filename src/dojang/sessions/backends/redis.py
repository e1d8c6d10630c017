"""Session store on Redis: standalone, Sentinel or Redis/Valkey Cluster.

Layout (``P`` is the prefix, ``dojang:`` by default; ``H`` is SHA-256)::

    P s:<key_hash>      string  the session record, packed (below); PEXPIREAT = expires_at.
                                 The 32 raw bytes of the key hash, not 64 hex characters.
    P i:<ref[:2]>       hash    sid pointers: field ref[2:] (14 bytes), value key_hash (32) +
                                 absolute expiry (uint32 LE, whole seconds rounded up)
    P u:<H(user)[:2]>   hash    user index: field H(user)[2:6] (a 4-byte user tag) + ref (16),
                                 value absolute expiry (uint32 LE)

``ref`` is the sid as 16 bytes: the bytes its base64url decodes to (``new_sid`` makes exactly
those), or for any other sid string the first 16 bytes of ``H("dojang-sid\\0" + sid)``. A hash
ref could only meet another sid's ref by a 128-bit coincidence, and every lookup re-checks the
sid in the record anyway. Keys are built from the SHA-256 of the cookie, never the cookie
value, so a dump or a ``MONITOR`` yields no live cookies.

Why this shape: memory is per-key overhead more than data. Every top-level key costs a
dictionary entry, an object header, an entry in the expiry dictionary and slots in both hash
tables, roughly 100 bytes plus its name, so the index is grouped into small hashes instead of
two keys per session: 65,536 sid buckets and 65,536 user buckets, each a listpack (a flat
array: a couple of bytes of overhead per entry). ``bench/scaleout_bench.py`` measures about
390 bytes per session at one million sessions: the record ~290 (its 121-byte value in a
128-byte allocation, its key and their overheads), its sid pointer ~65, its user index entry
~37. A bucket holds ~15 entries at one million sessions and ~150 at ten million, below
Redis' default ``hash-max-listpack-entries`` (512), and every value is far below
``hash-max-listpack-value`` (64): no configuration change is needed. A deployment that lowered
the entries limit below ~200 would see buckets turn into real hash tables past a few million
sessions: still correct, about twice the index memory. Every write to a bucket scans it once:
measured ~20 µs of server time at ~15 entries, ~90 µs at ~150, twice per login. The fixed
bucket count is the price: with 100,000 sessions most buckets hold one or two entries and
share their key's overhead less (~480 bytes per session in all), though still less than a key
per pointer.

Hash fields have no TTL of their own (Redis 7.0), so each entry carries its absolute expiry:
the script that adds an entry first drops the bucket's entries whose expiry has passed on the
server's clock (their records have expired too), then sets the bucket's ``PEXPIREAT`` to the
latest expiry left, so a bucket nobody writes to any more disappears with its last session.
Entries that end early (logout) are removed explicitly; idle-expired sessions' entries wait for
their absolute expiry, like the per-sid keys before them. ``save`` rewrites the entries only
when the owner or the absolute expiry (in whole seconds) changes, so a data update costs the
record script alone.

The record is one packed string, not a hash: a hash with ten short fields costs Redis about a
kilobyte per session (a dictionary entry and an object per field), a string costs its length,
rounded up to the allocator's size class (…, 112, 128, 160, 192, … bytes): a dozen bytes less
can save 32. Layout::

    version (2) | flags | last_seen idle_timeout absolute_expires_at created_at
                | [auth_time] | sid user_id csrf_secret methods [ip] [user_agent] | data JSON

The times are little-endian doubles, so every float round-trips bit-exactly and ``touch`` can
rewrite ``last_seen`` in place (``SETRANGE`` at byte 2). ``auth_time`` is left out when it is
bit-identical to ``created_at`` (a fresh login). Each string field has a header byte ``2n + c``
(``n`` < 127 its length, or ``n`` = 127 and a uint16 length follows) where ``c`` says the
field is in its compact form: base64url decoded to raw bytes (``sid``, ``user_id``,
``csrf_secret``, only when the text is canonical, so it re-encodes identically), a JSON array
(``methods``, plain space-joined otherwise), 4 or 16 binary bytes (``ip``, when it converts
back to the same text), zlib with a preset dictionary of common user-agent tokens
(``user_agent``: lossless, the account page shows it as sent). The header is part of what the
scripts compare, so a compact and a plain field never compare equal. The rest of the string is
the data JSON. The Lua scripts read the fixed offsets and the first two fields only.

Consistency without cross-slot transactions. Every command and Lua script touches exactly one
key, so the store works unchanged on Redis Cluster (no hash tags in the prefix; the binary
parts of key names may by chance contain braces, and then Redis and the client alike hash the
bytes between them: a key still maps to one slot, spread as evenly; a session's three keys may
live on three nodes). The record is the single source of truth; the index entries are hints
that are always re-checked against it:

* ``create`` writes the record first (``SET NX``: fails if it exists), then claims the sid in
  its bucket (a script: fails if a live pointer for that sid exists; on a clash ``create``
  deletes its own record again), then adds the user index entry. Until ``create`` returns only
  its caller knows the cookie and the sid, so nobody can observe the half-built state; the
  index entry comes last, so an index entry always refers to a record that was fully created
  and a sid pointer that is in place.
* Deletion deletes the record first (atomically with any condition: owner, excepted sid,
  expiry), then the user index entry, then the sid pointer (only if it still names that
  record). The pointer goes last so the sid cannot be claimed again while the old index entry
  still exists, so removing the old entry can never remove a new session's. A crash in between
  leaves a dangling pointer or index entry: ``get_by_sid`` and ``list_for_user`` follow them to
  the record and check its own ``sid``/``user`` fields, ignore (or lazily drop) what does not
  match, and the entries' expiries collect them in any case.
* A login racing "log out everywhere" is either seen by ``delete_for_user`` (index entry
  present, and then its pointer and record are too) or is ordered after it; no session can be
  listed yet escape deletion.
* The user tag is a hash: a bucket may hold another user's entries with the same tag. They
  are followed like any other and fail the record's owner check; they are never dropped as
  stale (only entries whose pointer or record is gone, or whose record belongs to a user with
  another tag, are).

TTLs use the session's own timestamps (``PEXPIREAT`` on ``expires_at``), refreshed by
``touch`` and ``save``, so Redis drops dead sessions by itself and ``purge_expired`` is only a
safety net (it scans, O(sessions)). With a frozen test clock far from real time those
timestamps are still applied as wall-clock instants; index expiries are whole seconds up to
2106 (uint32), later ones are stored as 2106.

Changing this layout (from the hex-keyed, key-per-pointer, zset-per-user one before it) leaves
sessions written by an older version unreadable: they stay invisible and expire with their
TTLs, and their users sign in again.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import json
import logging
import math
import random
import struct
import zlib
from collections.abc import Awaitable, Iterable, Sequence
from typing import TypeVar

from redis.asyncio import RedisCluster

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

_VERSION = 2
_HEAD = struct.Struct("<BB4d")  # version, flags, last_seen (byte 2: _TOUCH), idle, absolute,
# created
_TIME = struct.Struct("<d")
_LEN = struct.Struct("<H")
_F_AUTH = 1  # auth_time follows the head (else it equals created_at)
_F_IP = 2
_F_UA = 4
_LONG = 127  # a field header's length value meaning "uint16 length follows"

# Preset dictionary for user agents: deflate finds these substrings without paying for them,
# so a typical 110-character browser user agent packs into about 30 bytes. Changing it would
# make stored user agents unreadable: bump _VERSION (or add a flag) instead.
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


def _field(compact: bool, raw: bytes) -> bytes:
    """One string field: header ``2n + compact`` (n < 127, else 127 and a uint16), then bytes."""
    n = len(raw)
    if n > 0xFFFF:
        raise ValueError("session field too long to store")
    if n < _LONG:
        return bytes((n << 1 | compact,)) + raw
    return bytes((_LONG << 1 | compact,)) + _LEN.pack(n) + raw


def _read_field(blob: bytes, pos: int) -> tuple[bool, bytes, int]:
    """The field at ``pos``: (compact, bytes, position after it)."""
    head = blob[pos]
    n, pos = head >> 1, pos + 1
    if n == _LONG:
        (n,) = _LEN.unpack_from(blob, pos)
        pos += 2
    return bool(head & 1), blob[pos : pos + n], pos + n


def _b64_field(text: str) -> bytes:
    raw = _b64_raw(text)
    return _field(True, raw) if raw is not None else _field(False, text.encode())


def _b64_unfield(compact: bool, raw: bytes) -> str:
    return _b64_text(raw) if compact else raw.decode()


def _ip_field(ip: str) -> bytes:
    try:
        packed = ipaddress.ip_address(ip).packed
    except ValueError:
        packed = b""
    # Only when it converts back to exactly this text (no zone id, no odd spelling) and saves.
    if packed and str(ipaddress.ip_address(packed)) == ip and len(packed) < len(ip.encode()):
        return _field(True, packed)
    return _field(False, ip.encode())


def _ua_field(ua: str) -> bytes:
    raw = ua.encode()
    co = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, _UA_DICT)
    packed = co.compress(raw) + co.flush()
    return _field(True, packed) if len(packed) < len(raw) else _field(False, raw)


def _ua_unpack(raw: bytes) -> str:
    do = zlib.decompressobj(-15, _UA_DICT)
    return (do.decompress(raw) + do.flush()).decode()


def _same_float(a: float, b: float) -> bool:
    # Bit-exact (0.0 and -0.0 differ, a NaN equals itself): the elided field must come back
    # as exactly the float that went in.
    return _TIME.pack(a) == _TIME.pack(b)


def _pack(session: Session) -> bytes:
    """The record as one string (see the module docstring)."""
    created, auth = float(session.created_at), float(session.auth_time)
    flags = 0 if _same_float(auth, created) else _F_AUTH
    methods = session.methods
    tail = [
        _b64_field(session.sid),
        _b64_field(session.user_id),
        _b64_field(session.csrf_secret),
        # Space-joined when unambiguous (the usual "pwd", "otp"); a JSON array otherwise.
        _field(False, " ".join(methods).encode()) if _plain(methods) else
        _field(True, json.dumps(list(methods), separators=(",", ":")).encode()),
    ]  # fmt: skip
    if session.ip is not None:
        flags |= _F_IP
        tail.append(_ip_field(session.ip))
    if session.user_agent is not None:
        flags |= _F_UA
        tail.append(_ua_field(session.user_agent))
    if session.data:
        tail.append(encode_data(session.data).encode())
    head = _HEAD.pack(
        _VERSION,
        flags,
        float(session.last_seen),
        float(session.idle_timeout),
        float(session.absolute_expires_at),
        created,
    )
    return head + (_TIME.pack(auth) if flags & _F_AUTH else b"") + b"".join(tail)


def _plain(methods: Sequence[str]) -> bool:
    return all(m and " " not in m for m in methods)


def _unpack(key_hash: bytes, blob: bytes) -> Session:
    version, flags, last_seen, idle, absolute, created = _HEAD.unpack_from(blob)
    if version != _VERSION:
        raise ValueError(f"unknown session record version {version}")
    pos = _HEAD.size
    auth = created
    if flags & _F_AUTH:
        (auth,) = _TIME.unpack_from(blob, pos)
        pos += _TIME.size
    sid_c, sid_b, pos = _read_field(blob, pos)
    user_c, user_b, pos = _read_field(blob, pos)
    csrf_c, csrf_b, pos = _read_field(blob, pos)
    methods_c, methods_b, pos = _read_field(blob, pos)
    ip: str | None = None
    if flags & _F_IP:
        ip_c, ip_b, pos = _read_field(blob, pos)
        ip = str(ipaddress.ip_address(ip_b)) if ip_c else ip_b.decode()
    ua: str | None = None
    if flags & _F_UA:
        ua_c, ua_b, pos = _read_field(blob, pos)
        ua = _ua_unpack(ua_b) if ua_c else ua_b.decode()
    rest = blob[pos:]
    if methods_c:
        methods = tuple(json.loads(methods_b))
    else:
        methods = tuple(methods_b.decode().split(" ")) if methods_b else ()
    return Session(
        key_hash=key_hash,
        sid=_b64_unfield(sid_c, sid_b),
        user_id=_b64_unfield(user_c, user_b),
        created_at=created,
        last_seen=last_seen,
        auth_time=auth,
        idle_timeout=idle,
        absolute_expires_at=absolute,
        csrf_secret=_b64_unfield(csrf_c, csrf_b),
        methods=methods,
        ip=ip,
        user_agent=ua,
        data=decode_data(rest.decode()) if rest else {},
    )


# -- the index ---------------------------------------------------------------------------------

_BUCKET = 2  # bytes of a ref / user hash naming the bucket: 65,536 buckets per kind
_TAG = 4  # bytes of the user hash kept in a user index field
_REF = 16
_EXPIRY = struct.Struct("<I")


def _sid_ref(sid: str) -> bytes:
    """The sid as 16 bytes (see the module docstring): raw when it is a canonical 16-byte
    base64url string, as every ``new_sid`` is; hashed otherwise."""
    raw = _b64_raw(sid)
    if raw is not None and len(raw) == _REF:
        return raw
    return hashlib.sha256(b"dojang-sid\0" + sid.encode()).digest()[:_REF]


def _user_hash(user_id: str) -> bytes:
    """Bucket (first bytes) and tag (next bytes) of a user's index entries."""
    return hashlib.sha256(user_id.encode()).digest()[: _BUCKET + _TAG]


def _expiry(t: float) -> bytes:
    """An absolute expiry as a bucket entry stores it: uint32 seconds, rounded up, so an entry
    never goes before its session; clamped to the uint32 range (2106 at the latest)."""
    seconds = -(-_ms(t) // 1000)  # from the record's own millisecond rounding: never earlier
    return _EXPIRY.pack(min(max(seconds, 0), 0xFFFFFFFF))


# Lua scripts: each touches only KEYS[1], so each is atomic on one node of a cluster. The
# record scripts share this reader of the packed record (Redis bundles ``struct`` with Lua).
_LUA_READ = """
local function field_at(v, pos)
  local n, head = math.floor(string.byte(v, pos) / 2), 1
  if n == 127 then n, head = string.byte(v, pos + 1) + 256 * string.byte(v, pos + 2), 3 end
  return string.sub(v, pos, pos + head - 1 + n), pos + head + n
end
local function fields(v)
  local _, flags, l, i, x = struct.unpack('<BBddd', v)
  local sid, pos = field_at(v, flags % 2 == 1 and 43 or 35)
  local user = field_at(v, pos)
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
redis.call('SETRANGE', KEYS[1], 2, ARGV[1])
local exp = math.min(seen + f.i, f.x)
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.ceil(exp * 1000)))
return 1
"""
)

# UPDATE, never upsert: a save racing a logout must not resurrect the session. Returns the
# previous user id field and absolute expiry (8 bytes), so the caller knows whether the index
# entries must move.
_SAVE = (
    _LUA_READ
    + """
local v = redis.call('GET', KEYS[1])
if not v then return false end
local f = fields(v)
if f.sid ~= ARGV[1] then return false end
redis.call('SET', KEYS[1], ARGV[3], 'PXAT', ARGV[2])
return f.user .. string.sub(v, 19, 26)
"""
)

# Conditional delete returning the deleted record. Each condition is '' (none) or '=' .. value
# (sid and user as fields of the record): ARGV[1] sid must equal, ARGV[2] user must equal,
# ARGV[3] sid must differ, ARGV[4] the session must be expired at this time.
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

# Write one bucket entry (ARGV[1] field, ARGV[2] value ending in its uint32 expiry). ARGV[3]:
# 'nx' only if the field is absent (claiming a sid), 'xx' only if present with a value that
# starts with ARGV[4] (the same record's pointer), 'set' always. First drops the entries whose
# expiry has passed on the server's clock, last sets the bucket's expiry to its latest
# entry's. Returns 1 if written.
_BUCKET_PUT = """
local now = tonumber(redis.call('TIME')[1])
local function expiry(v) return (struct.unpack('<I4', v, #v - 3)) end
local items = redis.call('HGETALL', KEYS[1])
local dead, last, cur = {}, 0, nil
for k = 1, #items, 2 do
  local exp = expiry(items[k + 1])
  if exp <= now then
    dead[#dead + 1] = items[k]
  elseif items[k] == ARGV[1] then
    cur = items[k + 1]
  elseif exp > last then
    last = exp
  end
end
if #dead > 0 then redis.call('HDEL', KEYS[1], unpack(dead)) end
local ok
if ARGV[3] == 'nx' then ok = cur == nil
elseif ARGV[3] == 'xx' then ok = cur ~= nil and string.sub(cur, 1, #ARGV[4]) == ARGV[4]
else ok = true end
if ok then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  cur = ARGV[2]
end
if cur then last = math.max(last, expiry(cur)) end
if cur or last > 0 then
  redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', last * 1000))
end
if ok then return 1 end
return 0
"""

# Delete a bucket entry if its value starts with ARGV[2] ('' matches any): a pointer only if
# it still names this record, an index entry only if it is still the one that was read.
_BUCKET_DEL = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and string.sub(v, 1, #ARGV[2]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
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


def _raw(value: bytes | str) -> bytes:
    # The client runs with decode_responses=False, but redis-py types replies as bytes | str.
    return value.encode() if isinstance(value, str) else value


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
        self._prefix = prefix.encode()
        self._owns_client = False
        self._reads = GetBatcher(client)
        self._touch = client.register_script(_TOUCH)
        self._save = client.register_script(_SAVE)
        self._take = client.register_script(_TAKE)
        self._bucket_put = client.register_script(_BUCKET_PUT)
        self._bucket_del = client.register_script(_BUCKET_DEL)

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
        return f"RedisSessionStore(prefix={self._prefix.decode()!r})"

    # -- key names and index entries (bench/scaleout_bench.py writes with these too) ---------

    def _record(self, key_hash: bytes) -> bytes:
        return self._prefix + b"s:" + key_hash

    def _pointer(self, ref: bytes) -> tuple[bytes, bytes]:
        """(bucket key, field) of the sid pointer for ``ref``."""
        return self._prefix + b"i:" + ref[:_BUCKET], ref[_BUCKET:]

    def _index(self, user_id: str) -> tuple[bytes, bytes]:
        """(bucket key, tag) of the user index entries of ``user_id``."""
        h = _user_hash(user_id)
        return self._prefix + b"u:" + h[:_BUCKET], h[_BUCKET:]

    def _pointer_entry(self, session: Session) -> tuple[bytes, bytes, bytes]:
        """(key, field, value) of the session's sid pointer."""
        key, field = self._pointer(_sid_ref(session.sid))
        return key, field, session.key_hash + _expiry(session.absolute_expires_at)

    def _index_entry(self, session: Session) -> tuple[bytes, bytes, bytes]:
        """(key, field, value) of the session's user index entry."""
        key, tag = self._index(session.user_id)
        return key, tag + _sid_ref(session.sid), _expiry(session.absolute_expires_at)

    # -- helpers -----------------------------------------------------------------------------

    async def _take_record(
        self,
        key_hash: bytes,
        *,
        sid: str | None = None,
        user_id: str | None = None,
        except_sid: str | None = None,
        expired_at: float | None = None,
    ) -> Session | None:
        """Atomically delete the record if every given condition holds; return it."""
        blob = await self._take(
            keys=[self._record(key_hash)],
            args=[
                _cond(None if sid is None else _b64_field(sid)),
                _cond(None if user_id is None else _b64_field(user_id)),
                _cond(None if except_sid is None else _b64_field(except_sid)),
                _cond(None if expired_at is None else _num(expired_at).encode()),
            ],
        )
        return _unpack(key_hash, _raw(blob)) if blob else None

    async def _unlink(self, session: Session) -> None:
        # The index entry before the pointer: while the pointer exists nobody can claim the
        # sid again, so the entry deleted here is this session's and never a successor's.
        key, field, _ = self._index_entry(session)
        await self._bucket_del(keys=[key], args=[field, b""])
        key, field, _ = self._pointer_entry(session)
        await self._bucket_del(keys=[key], args=[field, session.key_hash])

    async def _forget(self, sessions: Sequence[Session]) -> None:
        """Drop the index entries of records already deleted.

        The deletion itself has happened (it is what callers act on, e.g. to publish
        revocations), so an outage here is logged, not raised: a leftover entry points at no
        record, is ignored by every reader and expires with the session's absolute expiry.
        """
        try:
            await _gather(self._unlink(s) for s in sessions)
        except REDIS_ERRORS as e:
            log.warning(
                "session index clean-up failed (%s); expiries will collect it", type(e).__name__
            )

    async def _resolve(self, sid: str) -> bytes | None:
        """The key hash the sid pointer names, or None."""
        key, field = self._pointer(_sid_ref(sid))
        value = await self._client.hget(key, field)
        return None if value is None else _raw(value)[: -_EXPIRY.size]

    async def _user_entries(self, user_id: str) -> list[tuple[bytes, bytes, bytes | None]]:
        """(field, value, key hash or None) of every index entry with ``user_id``'s tag."""
        key, tag = self._index(user_id)
        items = await self._client.hgetall(key)
        entries = [
            (field, _raw(value))
            for field, value in ((_raw(f), v) for f, v in items.items())
            if len(field) == _TAG + _REF and field.startswith(tag)
        ]
        values = await _gather(
            self._client.hget(*self._pointer(field[_TAG:])) for field, _ in entries
        )
        return [
            (field, value, None if v is None else _raw(v)[: -_EXPIRY.size])
            for (field, value), v in zip(entries, values, strict=True)
        ]

    # -- the contract ------------------------------------------------------------------------

    async def create(self, session: Session) -> None:
        """Insert a new session; ``SessionCollision`` on a duplicate key or sid."""
        record = self._record(session.key_hash)
        blob = _pack(session)
        pointer_key, pointer_field, pointer = self._pointer_entry(session)
        index_key, index_field, index = self._index_entry(session)
        async with redis_guard(self._client, "session store"):
            created = await self._client.set(record, blob, nx=True, pxat=_ms(session.expires_at))
            if not created:
                raise SessionCollision()
            try:
                claimed = await self._bucket_put(
                    keys=[pointer_key], args=[pointer_field, pointer, b"nx"]
                )
                if not claimed:
                    await self._client.delete(record)  # ours: nobody else knows this key yet
                    raise SessionCollision()
                await self._bucket_put(keys=[index_key], args=[index_field, index, b"set"])
            except REDIS_ERRORS:
                # Half-created: undo what we can so no unindexed session lingers; if Redis is
                # gone entirely, the record's TTL removes it (and its cookie was never issued).
                await self._undo_create(session)
                raise

    async def _undo_create(self, session: Session) -> None:
        try:
            await self._client.delete(self._record(session.key_hash))
            # Only if the sid is ours: had the claim failed, the index entry of that (user,
            # sid) would belong to whoever holds the sid.
            if await self._resolve(session.sid) == session.key_hash:
                await self._unlink(session)
        except REDIS_ERRORS as e:
            log.warning("undoing a failed session create failed (%s)", type(e).__name__)

    async def get(self, key_hash: bytes) -> Session | None:
        """Return the session under ``key_hash`` (one ``GET``), or ``None``; never creates."""
        async with redis_guard(self._client, "session store"):
            # Batched with the other lookups of this event-loop tick (one round trip).
            blob = await self._reads.get(self._record(key_hash))
        return _unpack(key_hash, _raw(blob)) if blob else None

    async def get_by_sid(self, sid: str) -> Session | None:
        """Follow the sid pointer to the record; a stale pointer reads as ``None``."""
        async with redis_guard(self._client, "session store"):
            key_hash = await self._resolve(sid)
            if key_hash is None:
                return None
            blob = await self._client.get(self._record(key_hash))
        if not blob:
            return None
        found = _unpack(key_hash, _raw(blob))
        return found if found.sid == sid else None

    async def touch(self, key_hash: bytes, last_seen: float) -> None:
        """Move ``last_seen`` forward and the record's TTL with it, in one script."""
        async with redis_guard(self._client, "session store"):
            await self._touch(keys=[self._record(key_hash)], args=[_TIME.pack(float(last_seen))])

    async def save(self, session: Session) -> None:
        """Replace an existing session; ``SessionNotFound`` if it is gone or was replaced."""
        pointer_key, pointer_field, pointer = self._pointer_entry(session)
        index_key, index_field, index = self._index_entry(session)
        async with redis_guard(self._client, "session store"):
            previous: bytes | None = await self._save(
                keys=[self._record(session.key_hash)],
                args=[_b64_field(session.sid), _ms(session.expires_at), _pack(session)],
            )
            if previous is None:
                raise SessionNotFound()
            compact, raw, pos = _read_field(_raw(previous), 0)
            previous_user = _b64_unfield(compact, raw)
            (previous_absolute,) = _TIME.unpack_from(_raw(previous), pos)
            moved = _expiry(previous_absolute) != _expiry(session.absolute_expires_at)
            if previous_user == session.user_id and not moved:
                return  # the usual save (new data): the index entries stay as they are
            # The absolute expiry moved (set_expiry, remember-me): the pointer and the index
            # entry must live as long as the record can. Or the owner changed: move the entry.
            await self._bucket_put(
                keys=[pointer_key], args=[pointer_field, pointer, b"xx", session.key_hash]
            )
            await self._bucket_put(keys=[index_key], args=[index_field, index, b"set"])
            if previous_user != session.user_id:
                old_key, old_tag = self._index(previous_user)
                old_field = old_tag + _sid_ref(session.sid)
                if (old_key, old_field) != (index_key, index_field):  # same tag: just rewritten
                    await self._bucket_del(keys=[old_key], args=[old_field, b""])

    async def delete(self, key_hash: bytes) -> bool:
        """Delete by key; return whether a session was deleted."""
        async with redis_guard(self._client, "session store"):
            taken = await self._take_record(key_hash)
        if taken is None:
            return False
        await self._forget([taken])
        return True

    async def delete_by_sid(self, sid: str) -> Session | None:
        """Delete by public id; return the deleted session."""
        async with redis_guard(self._client, "session store"):
            key_hash = await self._resolve(sid)
            if key_hash is None:
                return None
            taken = await self._take_record(key_hash, sid=sid)
        if taken is not None:
            await self._forget([taken])
        return taken

    async def list_for_user(self, user_id: str) -> list[Session]:
        """Return every stored session of ``user_id``; stale index entries are dropped."""
        index_key, tag = self._index(user_id)
        async with redis_guard(self._client, "session store"):
            entries = await self._user_entries(user_id)
            live = [(field, value, h) for field, value, h in entries if h is not None]
            blobs = await _gather(self._client.get(self._record(h)) for _, _, h in live)
            found: list[Session] = []
            stale = [(field, value) for field, value, h in entries if h is None]
            for (field, value, key_hash), blob in zip(live, blobs, strict=True):
                session = _unpack(key_hash, _raw(blob)) if blob else None
                if session is not None and session.user_id == user_id:
                    if _sid_ref(session.sid) == field[_TAG:]:
                        found.append(session)
                # A missing record is gone for good (key hashes are never reused); a record of
                # a user with another tag was moved by save() after we read the index. A user
                # with the same tag may own the entry: leave it to its expiry.
                elif session is None or self._index(session.user_id)[1] != tag:
                    stale.append((field, value))
            # Only if still the entry we read: a sid can be claimed again once its pointer is
            # gone, and a successor's entry must survive (it would differ in expiry or tag).
            await _gather(
                self._bucket_del(keys=[index_key], args=[field, value]) for field, value in stale
            )
        return found

    async def delete_for_user(self, user_id: str, *, except_sid: str | None = None) -> list[str]:
        """Delete every session of ``user_id`` but ``except_sid``; return the deleted sids.

        Each record is deleted by a script that re-checks its owner and sid, so an index
        entry that is stale, moved or another user's can never delete somebody else's session.
        """
        async with redis_guard(self._client, "session store"):
            entries = await self._user_entries(user_id)
            taken = await _gather(
                self._take_record(h, user_id=user_id, except_sid=except_sid)
                for _, _, h in entries
                if h is not None
            )
        deleted = [s for s in taken if s is not None]
        await self._forget(deleted)
        return [s.sid for s in deleted]

    async def count_live(self, now: float) -> int | None:
        """Sessions live at ``now``: counted on a store of up to 50,000 keys, else estimated.

        For the ``dojang_active_sessions`` gauge only; never for a decision. ``DBSIZE`` (O(1),
        summed over the primaries) picks the method:

        * Up to 50,000 keys (about 15,000 sessions): ``SCAN`` the record keys, one round trip
          per thousand keys. Redis drops a record when its session ends or expires and SCAN
          skips expired keys, so when ``now`` is at most a second ahead of Redis' clock
          (``TIME``) each record found is a live session; a ``now`` further ahead (a test
          clock) is checked record by record with ``GETRANGE`` of its 26 bytes of times.
        * More: the 65,536 sid-pointer buckets (one pointer per session, bucket by a uniform
          hash of the sid) are read in a random order, 256 per round trip, until 500 pointers
          or 2,048 buckets have been read; each pointer's record is checked with ``GETRANGE``
          (a pointer outlives an idle-expired record), and the live count is scaled by
          65,536 / buckets read: unbiased, about ±5 % (one standard error) from ~15,000
          sessions up, and at most ~2,500 pipelined commands per scrape.
        """
        exact_up_to, target, max_buckets, per_round = 50_000, 500, 2_048, 256
        n_buckets = 1 << (8 * _BUCKET)

        async def live_records(key_hashes: Sequence[bytes]) -> int:
            """How many of these records exist and are live at ``now``."""
            if not key_hashes:
                return 0
            pipe = self._client.pipeline(transaction=False)
            for key_hash in key_hashes:
                pipe.getrange(self._record(key_hash), 0, _HEAD.size - 1)
            live = 0
            for blob in await pipe.execute():
                head = _raw(blob or b"")
                if len(head) == _HEAD.size:  # else the record is gone (expired or ended)
                    version, _, last_seen, idle, absolute, _ = _HEAD.unpack(head)
                    live += version == _VERSION and now < min(last_seen + idle, absolute)
            return live

        async with redis_guard(self._client, "session store"):
            if isinstance(self._client, RedisCluster):
                size = await self._client.dbsize(target_nodes=RedisCluster.PRIMARIES)
            else:
                size = await self._client.dbsize()
            if size <= exact_up_to:
                start = len(self._record(b""))
                found = [
                    _raw(key)[start:]
                    async for key in self._client.scan_iter(match=self._record(b"*"), count=1000)
                    if len(_raw(key)) == start + 32
                ]
                seconds, _ = await self._client.time()
                if now <= float(seconds) + 1.0:
                    return len(found)
                return await live_records(found)
            # A random walk over the bucket ids: an odd stride is coprime with 2**16, so no
            # bucket is read twice. Sampling, not security: ``random`` is enough.
            first = random.randrange(n_buckets)  # noqa: S311
            stride = random.randrange(n_buckets // 2) * 2 + 1  # noqa: S311
            read = seen = live = 0
            while seen < target and read < max_buckets:
                pipe = self._client.pipeline(transaction=False)
                for i in range(read, read + per_round):
                    ref = ((first + i * stride) % n_buckets).to_bytes(_BUCKET)
                    pipe.hgetall(self._prefix + b"i:" + ref)
                pointers = [
                    _raw(value)[: -_EXPIRY.size]
                    for entries in await pipe.execute()
                    for value in (entries or {}).values()
                ]
                read, seen = read + per_round, seen + len(pointers)
                live += await live_records(pointers)
        return round(live * n_buckets / read)

    async def purge_expired(self, now: float) -> int:
        """Delete every session expired at ``now``; return how many.

        Redis already expires records at their ``expires_at``; this scan over every primary
        only matters when the caller's clock runs ahead of the server's.
        """
        deleted: list[Session] = []
        start = len(self._record(b""))
        async with redis_guard(self._client, "session store"):
            batch: list[bytes] = []
            async for key in self._client.scan_iter(match=self._record(b"*"), count=500):
                batch.append(_raw(key)[start:])
                if len(batch) >= _BATCH:
                    deleted += await self._purge_batch(batch, now)
                    batch = []
            deleted += await self._purge_batch(batch, now)
        await self._forget(deleted)
        return len(deleted)

    async def _purge_batch(self, key_hashes: list[bytes], now: float) -> list[Session]:
        taken = await _gather(self._take_record(k, expired_at=now) for k in key_hashes)
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
