"""Property tests: sign/verify round trips, codec canonicality, no unexpected exceptions."""

from __future__ import annotations

import warnings

import jwt as pyjwt
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jws as joserfc_jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import KeySet as JoseRfcKeySet

from dojang.errors import InvalidToken, MalformedToken
from dojang.jose import Key, KeySet, decode_segments, sign_compact, verify_compact
from dojang.jose._b64 import b64url_decode, b64url_encode

KEYS = {"EdDSA": Key.generate("EdDSA"), "ES256": Key.generate("ES256")}
KEYSET = KeySet.generate(now=0.0)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3)
    ),
    max_leaves=8,
)
claims = st.dictionaries(st.text(max_size=10), json_values, max_size=6)


@settings(max_examples=60, deadline=None)
@given(claims, st.sampled_from(sorted(KEYS)))
def test_sign_verify_round_trip(payload: dict[str, object], alg: str) -> None:
    key = KEYS[alg]
    token = sign_compact(payload, key, typ="at+jwt")
    header, body = verify_compact(token, key, [alg])
    assert header == {"alg": alg, "kid": key.kid, "typ": "at+jwt"}
    assert decode_segments(token)[1] == body


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300), st.data())
def test_any_single_character_change_is_rejected(payload: bytes, data: st.DataObject) -> None:
    token = sign_compact(payload, KEYSET.active, typ="x")
    index = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.characters(codec="ascii").filter(lambda c: c != token[index]))
    mutated = token[:index] + replacement + token[index + 1 :]
    try:
        verify_compact(mutated, KEYSET, ["EdDSA"])
    except InvalidToken:
        return
    raise AssertionError("a mutated token verified")


@given(st.binary(max_size=200))
def test_b64_round_trip(data: bytes) -> None:
    assert b64url_decode(b64url_encode(data)) == data


@given(st.text(max_size=40))
def test_b64_decode_accepts_only_the_canonical_spelling(text: str) -> None:
    try:
        decoded = b64url_decode(text)
    except MalformedToken:
        return
    assert b64url_encode(decoded) == text


@settings(max_examples=200)
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_garbage_only_ever_raises_invalid_token(token: str | bytes) -> None:
    try:
        verify_compact(token, KEYSET, ["EdDSA", "ES256"])
    except InvalidToken:
        return
    raise AssertionError("garbage verified")


def test_interop_pyjwt_and_joserfc_verify_dojang_tokens() -> None:
    for alg, key in KEYS.items():
        token = sign_compact({"sub": "u1"}, key, typ="JWT")
        peer_key = pyjwt.PyJWK(key.public_jwk()).key
        assert pyjwt.decode(token, peer_key, algorithms=[alg]) == {"sub": "u1"}
        joserfc_keys = JoseRfcKeySet.import_key_set({"keys": [dict(key.public_jwk())]})
        with warnings.catch_warnings():
            # joserfc flags "EdDSA" as deprecated by RFC 9864 (in favour of "Ed25519").
            warnings.simplefilter("ignore", SecurityWarning)
            verified = joserfc_jws.deserialize_compact(token, joserfc_keys, algorithms=[alg])
        assert verified.payload == b'{"sub":"u1"}'


def test_interop_dojang_verifies_pyjwt_tokens() -> None:
    for alg, key in KEYS.items():
        private = pyjwt.PyJWK(key.private_jwk()).key
        token = pyjwt.encode({"sub": "u1"}, private, algorithm=alg, headers={"kid": key.kid})
        header, body = verify_compact(token, key.public_jwk(), [alg])
        assert header["alg"] == alg and body == b'{"sub":"u1"}'
