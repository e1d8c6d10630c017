"""Compact JWS: every rejection path of decode_segments / verify_compact, and sign_compact."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from dojang.errors import (
    AlgorithmNotAllowed,
    BadSignature,
    InvalidClaims,
    InvalidToken,
    MalformedToken,
    TokenTooLarge,
    UnknownKey,
    UnsupportedHeader,
)
from dojang.jose import MAX_TOKEN_BYTES, Key, KeySet, decode_segments, sign_compact, verify_compact
from dojang.jose._b64 import b64url_decode, b64url_encode
from dojang.jose.algorithms import P256_N

ED = Key.generate("EdDSA", kid="ed-1")
EC = Key.generate("ES256", kid="ec-1")
ED_SET = KeySet.generate("EdDSA", now=0.0)
ALL = ["EdDSA", "ES256", "RS256"]


def _forge(header: object, payload: bytes = b'{"sub":"a"}', key: Key = ED) -> str:
    """Build a correctly signed token around an arbitrary header (bypassing sign_compact)."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    signing_input = f"{b64url_encode(raw)}.{b64url_encode(payload)}"
    return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode()))}"


# --- happy paths ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [ED, EC], ids=["EdDSA", "ES256"])
def test_sign_then_verify(key: Key) -> None:
    token = sign_compact({"sub": "u1", "n": 1, "s": "é"}, key, typ="at+jwt")
    header, payload = verify_compact(token, key, [key.alg])
    assert header == {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}
    assert json.loads(payload) == {"sub": "u1", "n": 1, "s": "é"}


def test_header_and_payload_are_compact_json() -> None:
    token = sign_compact({"a": 1, "b": [1, 2]}, ED, typ="JWT")
    head, body, _ = token.split(".")
    assert b64url_decode(head) == b'{"alg":"EdDSA","kid":"ed-1","typ":"JWT"}'
    assert b64url_decode(body) == b'{"a":1,"b":[1,2]}'


def test_bytes_payload_and_bytes_token() -> None:
    token = sign_compact(b"raw bytes", ED, typ="x")
    assert verify_compact(token.encode(), ED, ["EdDSA"])[1] == b"raw bytes"


def test_empty_payload_is_allowed() -> None:
    assert verify_compact(sign_compact(b"", ED, typ="x"), ED, ["EdDSA"])[1] == b""


def test_verify_with_keyset_and_jwk_dict() -> None:
    token = sign_compact({"a": 1}, ED_SET.active, typ="x")
    assert verify_compact(token, ED_SET, ["EdDSA"])[1] == b'{"a":1}'
    assert verify_compact(token, ED_SET.active.public_jwk(), ["EdDSA"])[1] == b'{"a":1}'


def test_header_without_kid_verifies_with_a_single_key() -> None:
    assert verify_compact(_forge({"alg": "EdDSA"}), ED, ["EdDSA"])[0] == {"alg": "EdDSA"}


def test_decode_segments_returns_parts() -> None:
    token = sign_compact({"a": 1}, ED, typ="x")
    header, payload, signature, signing_input = decode_segments(token)
    assert header["kid"] == "ed-1"
    assert payload == b'{"a":1}'
    assert ED.verify(signature, signing_input)
    assert signing_input == token.rsplit(".", 1)[0].encode()


def test_returned_header_is_a_private_copy() -> None:
    token = sign_compact({"a": 1}, ED, typ="x")
    decode_segments(token)[0]["alg"] = "none"
    assert decode_segments(token)[0]["alg"] == "EdDSA"


def test_sign_refuses_oversized_tokens_and_nan() -> None:
    with pytest.raises(TokenTooLarge):
        sign_compact({"a": "x" * MAX_TOKEN_BYTES}, ED, typ="x")
    with pytest.raises(InvalidClaims):
        sign_compact({"a": float("nan")}, ED, typ="x")
    with pytest.raises(InvalidClaims):
        sign_compact({"a": {1, 2}}, ED, typ="x")


# --- size and segments ----------------------------------------------------------------------


@pytest.mark.parametrize("token", ["a" * (MAX_TOKEN_BYTES + 1), b"." * (MAX_TOKEN_BYTES + 1)])
def test_too_large_before_any_decoding(token: str | bytes) -> None:
    with pytest.raises(TokenTooLarge):
        verify_compact(token, ED, ALL)


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b", "a.b.c.d", "a.b.c.", ".a.b.c"],
)
def test_segment_count(token: str) -> None:
    with pytest.raises(MalformedToken, match="three segments"):
        decode_segments(token)


def test_empty_header_or_signature() -> None:
    good = sign_compact({"a": 1}, ED, typ="x")
    head, body, sig = good.split(".")
    for token in (f".{body}.{sig}", f"{head}.{body}."):
        with pytest.raises(MalformedToken, match="empty"):
            decode_segments(token)


def test_non_ascii_and_wrong_type() -> None:
    with pytest.raises(MalformedToken):
        decode_segments("é.a.b".encode())
    with pytest.raises(MalformedToken):
        decode_segments("ab\u00e9.a.b")
    with pytest.raises(MalformedToken):
        decode_segments(12345)  # type: ignore[arg-type]


@pytest.mark.parametrize("part", [0, 1, 2])
@pytest.mark.parametrize("mutation", ["pad", "plus", "space", "noncanonical"])
def test_base64_strictness_in_every_segment(part: int, mutation: str) -> None:
    parts = sign_compact({"ab": 1}, ED, typ="x").split(".")
    segment = parts[part]
    if mutation == "pad":
        segment += "=" * (-len(segment) % 4 or 4)
    elif mutation == "plus":
        segment = segment[:-1] + "+"
    elif mutation == "space":
        segment = segment[:2] + " " + segment[2:]
    else:
        # flip the lowest (unused) bit of the last symbol: same bytes, different spelling
        assert len(segment) % 4 in (2, 3)
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        segment = segment[:-1] + alphabet[alphabet.index(segment[-1]) ^ 1]
    parts[part] = segment
    with pytest.raises(MalformedToken):
        verify_compact(".".join(parts), ED, ALL)


# --- header ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [b"[]", b'"alg"', b'{"alg":"EdDSA","alg":"EdDSA"}', b'{"alg":"EdDSA"', b"\xff", b'{"a":NaN}'],
)
def test_header_must_be_strict_json_object(header: bytes) -> None:
    with pytest.raises(MalformedToken):
        verify_compact(_forge(header), ED, ALL)


@pytest.mark.parametrize(
    "param",
    ["jwk", "jku", "x5u", "x5c", "x5t", "crit", "b64", "zip", "cty", "enc", "Alg", "nonce"],
)
def test_unsupported_header_parameters(param: str) -> None:
    """Key injection (RFC 8725 §3.10: jwk/jku/x5u), crit/b64 (RFC 7797), zip bombs."""
    with pytest.raises(UnsupportedHeader):
        verify_compact(_forge({"alg": "EdDSA", "kid": "ed-1", param: "x"}), ED, ALL)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_in_any_case(alg: str) -> None:
    """CVE-2015-9235: unsecured tokens must never verify."""
    token = _forge({"alg": alg, "kid": "ed-1"}).rsplit(".", 1)[0] + ".AA"
    with pytest.raises(AlgorithmNotAllowed):
        verify_compact(token, ED, ALL)


@pytest.mark.parametrize("header", [{"kid": "ed-1"}, {"alg": 1}, {"alg": ["EdDSA"]}, {"alg": ""}])
def test_alg_missing_or_not_a_string(header: dict[str, object]) -> None:
    with pytest.raises(MalformedToken):
        verify_compact(_forge(header), ED, ALL)


@pytest.mark.parametrize(
    ("header", "error"),
    [
        ({"alg": "EdDSA", "kid": 1}, MalformedToken),
        ({"alg": "EdDSA", "kid": "k" * 257}, MalformedToken),
        ({"alg": "EdDSA", "kid": ""}, UnknownKey),
        ({"alg": "EdDSA", "kid": "  "}, UnknownKey),
        ({"alg": "EdDSA", "typ": ""}, MalformedToken),
        ({"alg": "EdDSA", "typ": None}, MalformedToken),
        ({"alg": "EdDSA", "typ": "t" * 257}, MalformedToken),
    ],
)
def test_kid_and_typ_shape(header: dict[str, object], error: type[InvalidToken]) -> None:
    with pytest.raises(error):
        verify_compact(_forge(header), ED, ALL)


# --- algorithm and key choice -----------------------------------------------------------------


def test_alg_not_in_allow_list() -> None:
    with pytest.raises(AlgorithmNotAllowed):
        verify_compact(sign_compact({"a": 1}, ED, typ="x"), ED, ["ES256"])


def test_allow_list_given_as_a_string_is_not_a_substring_match() -> None:
    token = _forge({"alg": "EdDSA"})
    assert verify_compact(token, ED, "EdDSA")[0]["alg"] == "EdDSA"


def test_header_alg_must_equal_key_alg() -> None:
    """Algorithm confusion (RFC 8725 §2.1): the header cannot pick another algorithm."""
    token = _forge({"alg": "ES256", "kid": "ed-1"})
    with pytest.raises(AlgorithmNotAllowed):
        verify_compact(token, ED, ALL)
    with pytest.raises(AlgorithmNotAllowed):
        verify_compact(_forge({"alg": "HS256"}), ED, ALL)


def test_keyset_requires_known_kid() -> None:
    with pytest.raises(UnknownKey):
        verify_compact(_forge({"alg": "EdDSA"}, key=ED_SET.active), ED_SET, ALL)
    with pytest.raises(UnknownKey):
        verify_compact(_forge({"alg": "EdDSA", "kid": "nope"}), ED_SET, ALL)


def test_single_key_kid_must_match() -> None:
    with pytest.raises(UnknownKey):
        verify_compact(_forge({"alg": "EdDSA", "kid": "other"}), ED, ALL)
    with pytest.raises(UnknownKey):
        verify_compact(_forge({"alg": "EdDSA", "kid": "other"}), ED.public_jwk(), ALL)


def test_hostile_jwk_dict_is_rejected() -> None:
    with pytest.raises(AlgorithmNotAllowed):
        verify_compact(_forge({"alg": "EdDSA"}), {"kty": "oct", "k": "AAAA"}, ALL)


# --- signatures ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [ED, EC], ids=["EdDSA", "ES256"])
def test_tampered_payload_or_signature(key: Key) -> None:
    head, body, sig = sign_compact({"sub": "alice"}, key, typ="x").split(".")
    evil = b64url_encode(b'{"sub":"mallory"}')
    with pytest.raises(BadSignature):
        verify_compact(f"{head}.{evil}.{sig}", key, ALL)
    raw = bytearray(b64url_decode(sig))
    raw[5] ^= 1
    with pytest.raises(BadSignature):
        verify_compact(f"{head}.{body}.{b64url_encode(bytes(raw))}", key, ALL)


def test_wrong_key_same_alg() -> None:
    token = sign_compact({"a": 1}, Key.generate(kid="ed-1"), typ="x")
    with pytest.raises(BadSignature):
        verify_compact(token, ED, ALL)


def test_es256_der_signature_rejected() -> None:
    """RFC 7518 §3.4 mandates raw R||S; DER must not be accepted as an alternative spelling."""
    head, body, sig = sign_compact({"a": 1}, EC, typ="x").split(".")
    raw = b64url_decode(sig)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    with pytest.raises(BadSignature):
        verify_compact(f"{head}.{body}.{b64url_encode(der)}", EC, ALL)


def test_es256_zero_signature_rejected() -> None:
    """CVE-2022-21449 ("psychic signatures"): r = s = 0 must never verify."""
    head, body, _ = sign_compact({"a": 1}, EC, typ="x").split(".")
    with pytest.raises(BadSignature):
        verify_compact(f"{head}.{body}.{b64url_encode(bytes(64))}", EC, ALL)


def test_es256_high_s_still_verifies_and_signing_emits_low_s() -> None:
    message = b"m"
    for _ in range(16):
        sig = EC.sign(message)
        assert int.from_bytes(sig[32:], "big") <= P256_N // 2
        high = sig[:32] + (P256_N - int.from_bytes(sig[32:], "big")).to_bytes(32, "big")
        assert EC.verify(high, message)


def test_header_cache_is_bounded() -> None:
    """Hostile tokens with ever-new headers must not grow memory without bound."""
    from dojang.jose import jws

    for i in range(jws._HEADER_CACHE_SIZE + 10):
        decode_segments(_forge({"alg": "EdDSA", "typ": f"t{i}"}))
    assert 0 < len(jws._HEADER_CACHE) <= jws._HEADER_CACHE_SIZE
