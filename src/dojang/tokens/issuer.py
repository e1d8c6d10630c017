"""``Issuer``: mints access, service and one-time tokens with the active key.

Claim sets are fixed per kind (RFC 9068 §2.2 for access tokens) and carry no personal data:
``sub`` is an opaque user or client id, never a name or an email address. Lifetimes are
checked against per-kind maxima at issue time, so a misconfigured caller gets an error instead
of a long-lived bearer credential.

Issuance is on the hot path of ``/auth/check`` and the token endpoint, so scope strings
already checked are remembered, ``jti`` values come from a buffer of ``os.urandom`` bytes, and
access and service tokens format their flat claim set directly; signing is
``dojang.jose.sign_compact``, which encodes each header segment once.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from json.encoder import encode_basestring
from typing import Any, Final

from dojang.clock import SYSTEM_CLOCK, Clock
from dojang.errors import ConfigError, InvalidClaims, LifetimeTooLong
from dojang.jose import KeySet, sign_compact
from dojang.jose._b64 import b64url_encode
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
_quote = encode_basestring  # a str as JSON, exactly as the encoder writes it (no ensure_ascii)


def _claims_json(claims: dict[str, Any]) -> str:
    try:
        return _ENCODE(claims)
    except (TypeError, ValueError) as exc:
        raise InvalidClaims("claims must be JSON-serializable (no NaN/Infinity)") from exc


class _JtiSource:
    """Token ids: 16 bytes from ``os.urandom`` each (128 bits), base64url, 22 characters.

    The bytes are drawn 4 KiB at a time, so minting a token costs no system call of its own;
    they are the same CSPRNG output ``secrets.token_urlsafe(16)`` would give. A jti is a
    unique name, not a secret, and every byte is used once. A forked child starts with an
    empty buffer, so parent and child never hand out the same ids. ``take`` gives the next.
    """

    _BATCH = 256

    def __init__(self) -> None:
        self.ids: list[str] = []
        os.register_at_fork(after_in_child=self.ids.clear)

    def refill(self) -> str:
        """Draw a new batch and return one id from it."""
        # Each id is the base64url of its own 16 bytes (16 bytes are 21⅓ characters: 22, the
        # last one's low bits zero), so ids share no bits. One encoder call does the batch:
        # every 16 bytes get two zero bytes appended (18 bytes encode to exactly 24
        # characters), and the first 22 characters of each 24 are that id.
        raw = os.urandom(16 * self._BATCH)
        spaced = bytearray(18 * self._BATCH)
        for i in range(16):
            spaced[i::18] = raw[i::16]
        text = b64url_encode(bytes(spaced))
        self.ids.extend([text[i : i + 22] for i in range(0, len(text), 24)])
        return self.ids.pop()

    def take(self) -> str:
        """The next unused id."""
        try:
            return self.ids.pop()
        except IndexError:
            return self.refill()


_new_jti = _JtiSource().take


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
        self._iss_member = '{"iss":' + _quote(issuer)

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
        ttl = self._ttl("access", ttl)
        if sid is None and client_id is not None and client_id == sub:
            # That shape is a service token (kinds.token_kind); refuse the ambiguity.
            raise InvalidClaims("a user access token without sid must not have sub == client_id")
        body = self._access_json(sub, audience, ttl, sid, client_id, scope)
        if act is not None:
            # RFC 8693 §4.1 (token exchange): the last member, so the order stays json's.
            body = f'{body[:-1]},"act":{_claims_json(_actor(act))}}}'
        return self._sign(body, ACCESS_TYP)

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
        ttl = self._ttl("service", ttl)
        return self._sign(
            self._access_json(client_id, audience, ttl, None, client_id, scope), ACCESS_TYP
        )

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
        return self._sign(_claims_json(claims), ONE_TIME_TYP)

    # -- shared steps ---------------------------------------------------------------------

    def _ttl(self, kind: Kind, ttl: int | None) -> int:
        if ttl is None:
            if kind == "one_time":
                raise InvalidClaims("one-time tokens need an explicit ttl")
            # Both were checked at construction: whole seconds, within the kind's maximum.
            return min(self.access_ttl, self.max_ttl[kind])
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

    def _access_json(
        self,
        sub: str,
        audience: str,
        ttl: int,
        sid: str | None,
        client_id: str | None,
        scope: str | Iterable[str],
    ) -> str:
        """The JSON of ``_base`` + ``sid``, ``client_id``, ``scope``, written in one go.

        Access and service tokens are minted on every ``/auth/check`` miss and token request,
        so their flat claim set is formatted directly instead of built as a dict and walked:
        the same members in the same order, every string through the escaper ``json`` uses,
        so the bytes are ``json``'s for the same dict (tests/tokens/test_issuer.py compares
        them).
        """
        _identifier("sub", sub)
        _identifier("audience", audience)
        if sid is not None:
            _identifier("sid", sid)
        if client_id is not None:
            _identifier("client_id", client_id)
        jti = _new_jti()
        iat = int(self._clock.now())
        # jti is base64url: nothing in it needs escaping.
        body = (
            f'{self._iss_member},"sub":{_quote(sub)},"aud":{_quote(audience)},'
            f'"exp":{iat + ttl},"iat":{iat},"jti":"{jti}"'
        )
        if sid is not None:
            body += ',"sid":' + _quote(sid)
        if client_id is not None:
            body += ',"client_id":' + _quote(client_id)
        scope_text = normalize_scope(scope)
        if scope_text:
            body += ',"scope":' + _quote(scope_text)
        return body + "}"

    def _sign(self, body: str, typ: str) -> str:
        try:
            payload = body.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: not Unicode text, so not JSON
            raise InvalidClaims("claims must be valid Unicode (no lone surrogates)") from None
        return sign_compact(payload, self.keyset.active, typ=typ)


def _actor(act: Mapping[str, Any]) -> dict[str, Any]:
    # RFC 8693 §4.1: act is a JSON object naming the acting party by sub (nesting allowed).
    if not isinstance(act, Mapping):
        raise InvalidClaims("act must be a mapping with a sub")
    _identifier("act.sub", act.get("sub"))
    return dict(act)
