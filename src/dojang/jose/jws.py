"""Strict JWS compact serialization (RFC 7515 §7.1) for the algorithms dojang allows.

The verifier's rules, in the order they are applied (RFC 8725 is the threat model):

1. size cap before any decoding (memory/CPU exhaustion);
2. exactly three dot-separated segments of canonical unpadded base64url;
3. the header is a strict UTF-8 JSON object with only ``alg``, ``kid`` and ``typ``: ``jwk``,
   ``jku``, ``x5u``, ``x5c`` (key injection, RFC 8725 §3.10), ``crit``, ``b64`` (RFC 7797),
   ``zip`` and everything else are refused;
4. ``alg`` must be in the caller's allow-list AND equal the key's bound alg (§3.1); ``none`` never;
5. the signature is checked with the key chosen by ``kid``, never by trying every key.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping

from dojang.errors import (
    AlgorithmNotAllowed,
    BadSignature,
    InvalidClaims,
    MalformedToken,
    TokenTooLarge,
    UnknownKey,
    UnsupportedHeader,
)
from dojang.jose._b64 import b64url, decode_standard, to_standard
from dojang.jose._json import parse_json_object
from dojang.jose.jwk import MAX_KID_LENGTH, Key
from dojang.jose.keyset import KeySet

__all__ = [
    "MAX_TOKEN_BYTES",
    "decode_header",
    "decode_segments",
    "decode_standard",
    "sign_compact",
    "split_compact",
    "verify_compact",
]

MAX_TOKEN_BYTES = 8192
MAX_TYP_LENGTH = 256
_ALLOWED_HEADER = frozenset({"alg", "kid", "typ"})

# An issuer's tokens share a handful of distinct headers, so verified-well-formed headers are
# cached by their exact base64url text (as translated by ``to_standard``): the hot path then
# skips base64 and JSON for them. The cache is bounded and simply cleared when full, so hostile
# headers cannot grow it.
_HEADER_CACHE: dict[bytes, dict[str, object]] = {}
_HEADER_CACHE_SIZE = 256


# Signing: json.dumps with non-default options builds a new encoder on every call, so the two
# encoders are built once; the header segment for each (kid, alg, typ) is encoded once.
_encode_header = json.JSONEncoder(separators=(",", ":")).encode
_encode_payload = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode
_SIGNED_HEADERS: dict[tuple[str, str, str], bytes] = {}


def _check_header(header: dict[str, object]) -> None:
    extra = header.keys() - _ALLOWED_HEADER
    if extra:
        # Name only the first parameter, truncated: the header is attacker-controlled text.
        name = sorted(extra)[0]
        raise UnsupportedHeader(f"header parameter {name!r:.40} is not accepted")
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise MalformedToken("header 'alg' is missing or not a string")
    if alg.lower() == "none":
        # RFC 8725 §3.1 / CVE-2015-9235: unsecured JWS is never acceptable.
        raise AlgorithmNotAllowed("alg 'none' is never allowed")
    if "kid" in header:
        kid = header["kid"]
        if not isinstance(kid, str) or len(kid) > MAX_KID_LENGTH:
            raise MalformedToken("header 'kid' must be a string of at most 256 characters")
        if not kid.strip():
            raise UnknownKey("header 'kid' is blank")
    if "typ" in header:
        typ = header["typ"]
        if not isinstance(typ, str) or not typ or len(typ) > MAX_TYP_LENGTH:
            raise MalformedToken("header 'typ' must be a non-empty string of at most 256 chars")


def split_compact(token: str | bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """Check a compact JWS's size and shape; return its segments ready for decoding.

    Returns ``(header, payload, signature, signing_input)``: the three segments passed through
    ``dojang.jose._b64.to_standard`` (decode them with ``decode_standard``) and the untouched
    ASCII signing input. Raises TokenTooLarge or MalformedToken.
    """
    if isinstance(token, str):
        # The cap comes first: nothing below may spend work proportional to hostile input.
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenTooLarge(f"token longer than {MAX_TOKEN_BYTES} bytes")
        try:
            data = token.encode("ascii")
        except UnicodeEncodeError:
            raise MalformedToken("token is not ASCII") from None
    elif isinstance(token, bytes):
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenTooLarge(f"token longer than {MAX_TOKEN_BYTES} bytes")
        if not token.isascii():
            raise MalformedToken("token is not ASCII")
        data = token
    else:
        raise MalformedToken("token must be str or bytes")
    # One to_standard pass for the whole token; "." survives it, so splitting afterwards gives
    # the same segments as splitting first.
    parts = to_standard(data).split(b".")
    if len(parts) != 3:
        raise MalformedToken("token must have exactly three segments")
    header, payload, signature = parts
    if not header or not signature:
        raise MalformedToken("header and signature segments must not be empty")
    return header, payload, signature, data[: len(header) + 1 + len(payload)]


def decode_header(segment: bytes) -> dict[str, object]:
    """Decode and check a header segment from ``split_compact``; the result is shared.

    Raises MalformedToken, UnsupportedHeader, AlgorithmNotAllowed (``alg: none``) or UnknownKey
    (blank ``kid``). The returned dict is the cache's own: callers must not modify it.
    """
    cached = _HEADER_CACHE.get(segment)
    if cached is None:
        cached = parse_json_object(decode_standard(segment, "header"), "header")
        _check_header(cached)
        if len(_HEADER_CACHE) >= _HEADER_CACHE_SIZE:
            _HEADER_CACHE.clear()
        _HEADER_CACHE[segment] = cached
    return cached


def decode_segments(token: str | bytes) -> tuple[dict[str, object], bytes, bytes, bytes]:
    """Strictly parse a compact JWS without checking the signature.

    Returns ``(header, payload_bytes, signature, signing_input)``. Raises TokenTooLarge,
    MalformedToken, UnsupportedHeader, AlgorithmNotAllowed (``alg: none``) or UnknownKey
    (blank ``kid``).
    """
    header_b64, payload_b64, signature_b64, signing_input = split_compact(token)
    header = dict(decode_header(header_b64))  # callers own their copy; the cache keeps its own
    payload = decode_standard(payload_b64, "payload")
    signature = decode_standard(signature_b64, "signature")
    return header, payload, signature, signing_input


def sign_compact(payload: Mapping[str, object] | bytes, key: Key, *, typ: str) -> str:
    """Sign ``payload`` with ``key`` and return the compact JWS.

    The header is exactly ``{"alg": key.alg, "kid": key.kid, "typ": typ}``; a mapping payload is
    serialized as compact JSON; InvalidClaims if it is not JSON (NaN, sets, objects).
    """
    cache_key = (key.kid, key.alg, typ)
    header = _SIGNED_HEADERS.get(cache_key)
    if header is None:
        header = b64url(_encode_header({"alg": key.alg, "kid": key.kid, "typ": typ}).encode())
        if len(_SIGNED_HEADERS) >= _HEADER_CACHE_SIZE:
            _SIGNED_HEADERS.clear()
        _SIGNED_HEADERS[cache_key] = header
    if isinstance(payload, bytes):
        body = payload
    else:
        try:
            body = _encode_payload(dict(payload)).encode("utf-8")
        except (TypeError, ValueError) as exc:  # NaN, sets, objects: not a JSON claim set
            raise InvalidClaims(f"payload is not serializable as JSON: {exc}") from None
    signing_input = header + b"." + b64url(body)
    token = signing_input + b"." + b64url(key.sign(signing_input))
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenTooLarge(f"signed token longer than {MAX_TOKEN_BYTES} bytes")
    return token.decode("ascii")


def verify_compact(
    token: str | bytes,
    key: Mapping[str, object] | Key | KeySet,
    algorithms: Collection[str],
) -> tuple[dict[str, object], bytes]:
    """Verify a compact JWS and return ``(header, payload_bytes)``.

    ``key`` is a Key, a KeySet (the header must carry a ``kid`` naming one of its keys) or a
    JWK mapping (imported strictly on every call). The header ``alg`` must be in
    ``algorithms`` and equal the key's bound alg. Raises an InvalidToken subclass otherwise.
    """
    if isinstance(algorithms, str):  # "EdDSA" would otherwise allow every substring
        algorithms = (algorithms,)
    header, payload, signature, signing_input = decode_segments(token)
    alg = header["alg"]
    kid = header.get("kid")
    if isinstance(key, KeySet):
        if kid is None:
            raise UnknownKey("header has no 'kid' and the key set has no default")
        chosen = key.get(str(kid))
    elif isinstance(key, Key):
        chosen = key
        if kid is not None and kid != key.kid:
            raise UnknownKey("header 'kid' does not name the given key")
    else:
        chosen = Key.from_jwk(key)
        if kid is not None and kid != chosen.kid:
            raise UnknownKey("header 'kid' does not name the given key")
    # RFC 8725 §3.1: the key decides the algorithm; the header may only agree with it.
    if alg != chosen.alg or alg not in algorithms:
        raise AlgorithmNotAllowed(f"alg {alg!r:.20} is not allowed for this key")
    if not chosen.verify(signature, signing_input):
        raise BadSignature("signature does not verify")
    return header, payload
