"""``Issuer``: mints access, service and one-time tokens with the active key.

Claim sets are fixed per kind (RFC 9068 §2.2 for access tokens) and carry no personal data:
``sub`` is an opaque user or client id, never a name or an email address. Lifetimes are
checked against per-kind maxima at issue time, so a misconfigured caller gets an error instead
of a long-lived bearer credential.

Issuance is on the hot path of ``/auth/check`` and the token endpoint, so the header segment
is encoded once per (key, typ), scope strings already checked are remembered, ``jti`` values
come from a buffer of ``os.urandom`` bytes, and the claims are serialized once, compactly: the
only per-token work beyond the signature is one ``json`` call and two base64 encodings.
"""

from __future__ import annotations

import binascii
import json
import os
import re
from collections.abc import Iterable, Mapping
from json.encoder import encode_basestring
from typing import Any, Final

from dojang.clock import SYSTEM_CLOCK, Clock
from dojang.errors import ConfigError, InvalidClaims, LifetimeTooLong, TokenTooLarge
from dojang.jose import MAX_TOKEN_BYTES, KeySet
from dojang.tokens.kinds import (
    ACCESS_TYP,
    DEFAULT_MAX_TTL,
    HARD_MAX_TTL,
    ONE_TIME_TYP,
    Kind,
)

__all__ = ["Issuer", "normalize_scope"]

MAX_ID_LENGTH: Final = 255
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_KEY_FRAGMENTS: dict[str, str] = {}


def _encode_claims(claims: dict[str, Any]) -> str:
    """``_ENCODE(claims)``, faster for the flat claim sets every kind mints.

    Strings go through the very escaper ``json`` uses with ``ensure_ascii=False`` and ints
    through ``int.__repr__``, exactly as the encoder writes them; any other value (a nested
    ``act`` or ``data``, a float, a bool) hands the whole dict to the encoder. The output is
    byte for byte the encoder's (tests/tokens/test_issuer.py holds the two together).
    """
    parts = []
    for name, value in claims.items():
        fragment = _KEY_FRAGMENTS.get(name)
        if fragment is None:
            if type(name) is not str:
                return _ENCODE(claims)
            fragment = encode_basestring(name) + ":"
            if len(_KEY_FRAGMENTS) < 64:
                _KEY_FRAGMENTS[name] = fragment
        kind = type(value)
        if kind is str:
            parts.append(fragment + encode_basestring(value))
        elif kind is int:
            parts.append(fragment + int.__repr__(value))
        else:
            return _ENCODE(claims)
    return "{" + ",".join(parts) + "}"


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> bytes:
    # base64.urlsafe_b64encode without its two Python-level wrappers (hot path).
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")


class _JtiSource:
    """Token ids: 16 bytes from ``os.urandom`` each (128 bits), base64url, 22 characters.

    The bytes are drawn 4 KiB at a time, so minting a token costs no system call of its own;
    they are the same CSPRNG output ``secrets.token_urlsafe(16)`` would give. A jti is a
    unique name, not a secret, and every byte is used once.
    """

    _BATCH = 256

    def __init__(self) -> None:
        self._ids: list[str] = []

    def __call__(self) -> str:
        ids = self._ids
        if not ids:
            # Each id is encoded on its own (16 bytes are 21⅓ base64 characters), so ids share
            # no bits and each is canonical: 22 characters, the last one's low bits zero.
            raw = os.urandom(16 * self._BATCH)
            ids.extend(_b64(raw[i : i + 16]).decode("ascii") for i in range(0, len(raw), 16))
        return ids.pop()


_new_jti = _JtiSource()


def _identifier(name: str, value: object) -> str:
    if type(value) is not str or not value or len(value) > MAX_ID_LENGTH:
        raise InvalidClaims(f"{name} must be a non-empty string of at most {MAX_ID_LENGTH} chars")
    return value


# Scope strings already normalized (a service asks for the same few again and again); bounded,
# and only strings that passed the checks below are remembered.
_NORMALIZED: dict[str, str] = {}
_NORMALIZED_MAX = 1024


def normalize_scope(scope: str | Iterable[str]) -> str:
    """Return ``scope`` as one space-delimited string of unique RFC 6749 scope tokens."""
    if type(scope) is str:
        found = _NORMALIZED.get(scope)
        if found is None:
            found = _normalize(scope)
            if len(_NORMALIZED) >= _NORMALIZED_MAX:
                _NORMALIZED.clear()
            _NORMALIZED[scope] = found
        return found
    return _normalize(scope)


def _normalize(scope: str | Iterable[str]) -> str:
    items = scope.split(" ") if isinstance(scope, str) else list(scope)
    seen: dict[str, None] = {}
    for item in items:
        if item == "" and isinstance(scope, str):
            continue  # tolerate repeated spaces in a string; an empty list item is an error
        if type(item) is not str or _SCOPE_TOKEN.fullmatch(item) is None:
            raise InvalidClaims("scope values must be RFC 6749 scope tokens (no spaces, quotes)")
        seen[item] = None
    return " ".join(seen)


class Issuer:
    """Mint tokens signed by ``keyset.active``.

    ``issuer`` is the ``iss`` value (the public URL). ``access_ttl`` is the default access
    token lifetime; ``max_ttl`` may override the per-kind maxima (``access``, ``service``,
    ``one_time``) up to the hard ceilings in ``dojang.tokens.kinds``.
    """

    def __init__(
        self,
        keyset: KeySet,
        *,
        issuer: str,
        clock: Clock = SYSTEM_CLOCK,
        access_ttl: int = 60,
        max_ttl: Mapping[str, int] | None = None,
    ) -> None:
        problems: list[str] = []
        if not isinstance(issuer, str) or not issuer:
            problems.append("issuer: must be a non-empty string (the public URL)")
        limits: dict[Kind, int] = dict(DEFAULT_MAX_TTL)
        for name, value in (max_ttl or {}).items():
            if name not in HARD_MAX_TTL:
                problems.append(f"max_ttl: unknown token kind {name!r}; use {sorted(HARD_MAX_TTL)}")
                continue
            ceiling = HARD_MAX_TTL[name]  # type: ignore[index]
            if type(value) is not int or not 1 <= value <= ceiling:
                problems.append(f"max_ttl[{name!r}]: must be whole seconds in 1..{ceiling}")
                continue
            limits[name] = value  # type: ignore[index]
        if type(access_ttl) is not int or not 1 <= access_ttl <= limits["access"]:
            problems.append(f"access_ttl: must be whole seconds in 1..{limits['access']}")
        if problems:
            raise ConfigError(problems)
        self.keyset = keyset
        self.issuer = issuer
        self.access_ttl = access_ttl
        self.max_ttl: Mapping[Kind, int] = limits
        self._clock = clock
        self._headers: dict[tuple[str, str, str], bytes] = {}

    def __repr__(self) -> str:
        return f"Issuer(issuer={self.issuer!r})"

    # -- token kinds ----------------------------------------------------------------------

    def access_token(
        self,
        *,
        sub: str,
        audience: str,
        scope: str | Iterable[str] = "",
        sid: str | None,
        ttl: int | None = None,
        client_id: str | None = None,
        act: Mapping[str, Any] | None = None,
    ) -> str:
        """Mint a user access token (``typ: at+jwt``) bound to session ``sid``.

        Claims: ``iss, sub, aud, exp, iat, jti`` always; ``sid``, ``scope`` (when non-empty),
        ``client_id`` and ``act`` (RFC 8693 §4.1, token exchange) when given.
        """
        claims = self._base(sub, audience, self._ttl("access", ttl))
        if sid is not None:
            claims["sid"] = _identifier("sid", sid)
        if client_id is not None:
            claims["client_id"] = _identifier("client_id", client_id)
            if sid is None and client_id == sub:
                # That shape is a service token (kinds.token_kind); refuse the ambiguity.
                raise InvalidClaims(
                    "a user access token without sid must not have sub == client_id"
                )
        scope_text = normalize_scope(scope)
        if scope_text:
            claims["scope"] = scope_text
        if act is not None:
            claims["act"] = _actor(act)
        return self._sign(claims, ACCESS_TYP)

    def service_token(
        self,
        *,
        client_id: str,
        audience: str,
        scope: str | Iterable[str],
        ttl: int | None = None,
    ) -> str:
        """Mint a ``client_credentials`` access token: ``sub == client_id``, no ``sid``."""
        client_id = _identifier("client_id", client_id)
        claims = self._base(client_id, audience, self._ttl("service", ttl))
        claims["client_id"] = client_id
        scope_text = normalize_scope(scope)
        if scope_text:
            claims["scope"] = scope_text
        return self._sign(claims, ACCESS_TYP)

    def one_time_token(
        self,
        *,
        sub: str,
        purpose: str,
        ttl: int,
        audience: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> str:
        """Mint a one-time token (``typ: ott+jwt``) for ``purpose``; redeem with OneTimeTokens.

        ``aud`` defaults to the issuer itself (the token comes back to us). ``data`` is a small
        JSON object carried as the ``data`` claim; keep personal data out of it.
        """
        claims = self._base(
            sub, audience if audience is not None else self.issuer, self._ttl("one_time", ttl)
        )
        claims["purpose"] = _identifier("purpose", purpose)
        if data is not None:
            if not isinstance(data, Mapping):
                raise InvalidClaims("data must be a mapping")
            claims["data"] = dict(data)
        return self._sign(claims, ONE_TIME_TYP)

    # -- shared steps ---------------------------------------------------------------------

    def _ttl(self, kind: Kind, ttl: int | None) -> int:
        if ttl is None:
            if kind == "one_time":
                raise InvalidClaims("one-time tokens need an explicit ttl")
            ttl = min(self.access_ttl, self.max_ttl[kind])
        if type(ttl) is not int or ttl < 1:
            raise InvalidClaims("ttl must be a positive whole number of seconds")
        limit = self.max_ttl[kind]
        if ttl > limit:
            raise LifetimeTooLong(f"ttl {ttl}s exceeds the {kind} token maximum of {limit}s")
        return ttl

    def _base(self, sub: str, audience: str, ttl: int) -> dict[str, Any]:
        iat = int(self._clock.now())
        return {
            "iss": self.issuer,
            "sub": _identifier("sub", sub),
            "aud": _identifier("audience", audience),
            "exp": iat + ttl,
            "iat": iat,
            "jti": _new_jti(),
        }

    def _sign(self, claims: dict[str, Any], typ: str) -> str:
        key = self.keyset.active
        cache_key = (key.kid, key.alg, typ)
        header = self._headers.get(cache_key)
        if header is None:
            # Same bytes as dojang.jose.sign_compact: exactly {"alg","kid","typ"}.
            raw = json.dumps({"alg": key.alg, "kid": key.kid, "typ": typ}, separators=(",", ":"))
            header = self._headers[cache_key] = _b64(raw.encode("utf-8"))
        try:
            body = _encode_claims(claims).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise InvalidClaims("claims must be JSON-serializable (no NaN/Infinity)") from exc
        signing_input = header + b"." + _b64(body)
        token = signing_input + b"." + _b64(key.sign(signing_input))
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenTooLarge(f"token would exceed {MAX_TOKEN_BYTES} bytes; trim data/scope")
        return token.decode("ascii")


def _actor(act: Mapping[str, Any]) -> dict[str, Any]:
    # RFC 8693 §4.1: act is a JSON object naming the acting party by sub (nesting allowed).
    if not isinstance(act, Mapping):
        raise InvalidClaims("act must be a mapping with a sub")
    _identifier("act.sub", act.get("sub"))
    return dict(act)
