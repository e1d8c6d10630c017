"""Random identifiers for sessions: the secret cookie value, its store key, the public sid.

The cookie value is the only bearer secret. The store keys a session by SHA-256 of it, so a
dump of the store (or a backup, or a replica) yields no cookie that would log anyone in.
"""

from __future__ import annotations

import hashlib
import re
import secrets

COOKIE_VALUE_LENGTH = 43
"""``secrets.token_urlsafe(32)``: 32 random bytes, unpadded base64url."""

SID_LENGTH = 22
"""``secrets.token_urlsafe(16)``: 16 random bytes, unpadded base64url."""

# 32 bytes are 256 bits; 43 base64url characters carry 258, so the last character encodes
# only its top 4 bits and its 2 low bits are zero. Accepting only these characters makes the
# encoding canonical: one secret has exactly one cookie value. A compiled pattern, because
# this check runs on every forward-auth request (a per-character loop cost ~10 us).
# re.ASCII plus explicit classes: no Unicode digit or letter can slip through.
_COOKIE_RE = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]", re.ASCII)
# 16 bytes are 128 bits; 22 characters carry 132, so the last one keeps its top 2 bits only.
_SID_RE = re.compile(r"[A-Za-z0-9_-]{21}[AQgw]", re.ASCII)


def new_cookie_value() -> str:
    """Return a fresh cookie value: 32 bytes from ``secrets``, base64url (43 characters)."""
    return secrets.token_urlsafe(32)


def hash_cookie(value: str) -> bytes:
    """Return the store key for a cookie value: its SHA-256 digest (32 bytes).

    Call :func:`is_well_formed_cookie` first; this function assumes an ASCII value.
    """
    return hashlib.sha256(value.encode("ascii")).digest()


def _well_formed(value: object, length: int, pattern: re.Pattern[str]) -> bool:
    # fullmatch, never match: "$" would also accept a trailing newline.
    return isinstance(value, str) and len(value) == length and pattern.fullmatch(value) is not None


def is_well_formed_cookie(value: object) -> bool:
    """Tell whether ``value`` could be a cookie value dojang issued.

    Exactly 43 characters of the base64url alphabet in canonical form. Checked before hashing
    or touching the store, so garbage (overlong, non-ASCII, injected) never reaches a backend.
    """
    return _well_formed(value, COOKIE_VALUE_LENGTH, _COOKIE_RE)


def is_well_formed_sid(value: object) -> bool:
    """Tell whether ``value`` could be a public session id dojang issued (22 base64url chars)."""
    return _well_formed(value, SID_LENGTH, _SID_RE)


def new_sid() -> str:
    """Return a fresh public session id: 16 random bytes, base64url (22 characters)."""
    return secrets.token_urlsafe(16)


def new_csrf_secret() -> str:
    """Return a fresh per-session CSRF synchronizer token: 32 random bytes, base64url."""
    return secrets.token_urlsafe(32)
