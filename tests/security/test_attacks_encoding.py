"""Attacks on the serialization: segment counts, base64 spellings, hostile JSON, huge tokens."""

from __future__ import annotations

import json
import time

import pytest

from dojang.errors import InvalidToken, MalformedToken, TokenTooLarge
from dojang.jose import Key
from dojang.verify import Verifier
from tests.security.jwt_forge import DROP, b64, claims, forge, header, segment


@pytest.mark.parametrize("count", [1, 2, 4, 5])
def test_wrong_segment_counts(verifier: Verifier, key: Key, count: int) -> None:
    """Compact-serialization confusion: 2 (unsigned), 4/5 (JWE-shaped) segments are refused."""
    good = forge(header(key), claims(), key)
    parts = good.split(".")
    extra = [parts[2]] * max(0, count - 3)
    token = ".".join((parts + extra)[:count])
    with pytest.raises(MalformedToken):
        verifier.verify(token)


def test_json_serialization_is_refused(verifier: Verifier, key: Key) -> None:
    """JWS JSON serialization (general and flattened) smuggles unprotected headers; refused."""
    h, p, s = forge(header(key), claims(), key).split(".")
    flattened = json.dumps({"protected": h, "payload": p, "signature": s, "header": {"kid": "x"}})
    general = json.dumps({"payload": p, "signatures": [{"protected": h, "signature": s}]})
    for text in (flattened, general):
        with pytest.raises(MalformedToken):
            verifier.verify(text)


@pytest.mark.parametrize("where", [0, 1, 2])
def test_padded_base64(verifier: Verifier, key: Key, where: int) -> None:
    """Non-canonical base64url (`=` padding) gives one token many spellings; refused."""
    parts = forge(header(key), claims(), key).split(".")
    parts[where] += "=" * (-len(parts[where]) % 4 or 4)
    with pytest.raises(MalformedToken):
        verifier.verify(".".join(parts))


def test_standard_alphabet_base64(verifier: Verifier, key: Key) -> None:
    """`+` and `/` (standard base64) instead of `-` and `_` are a different, refused spelling."""
    for n in range(200):  # find a token whose text contains '-' or '_' to re-spell
        token = forge(header(key), claims(jti=f"j{n}"), key)
        if "-" in token or "_" in token:
            break
    else:
        pytest.fail("no token with - or _ found")
    respelled = token.replace("-", "+").replace("_", "/")
    with pytest.raises(MalformedToken):
        verifier.verify(respelled)


@pytest.mark.parametrize("junk", [" ", "\n", "\t", "Bearer "])
def test_whitespace_and_prefixes(verifier: Verifier, key: Key, junk: str) -> None:
    """Lenient decoders strip whitespace or a scheme; the verifier takes the exact token."""
    token = forge(header(key), claims(), key)
    for bad in (junk + token, token + junk, token[:10] + junk + token[10:]):
        with pytest.raises(InvalidToken):
            verifier.verify(bad)


def test_duplicate_payload_members(verifier: Verifier, key: Key) -> None:
    """Parser differential (RFC 7519 §4): `sub` twice, signed with our real key."""
    body = json.dumps(claims())[:-1] + ',"sub":"admin"}'
    with pytest.raises(MalformedToken):
        verifier.verify(forge(header(key), body, key))


@pytest.mark.parametrize("payload", ["[]", '"user-1"', "1", "null", "true", '[{"sub":"a"}]', ""])
def test_payload_not_an_object(verifier: Verifier, key: Key, payload: str) -> None:
    """A signed payload that is an array, string, number or null is not a claim set."""
    with pytest.raises(MalformedToken):
        verifier.verify(forge(header(key), payload, key))


def test_deeply_nested_payload(verifier: Verifier, key: Key) -> None:
    """Stack exhaustion through deep nesting inside a validly signed payload."""
    deep = "[" * 3000 + "]" * 3000
    body = json.dumps(claims())[:-1] + f',"x":{deep}}}'
    with pytest.raises(MalformedToken):
        verifier.verify(forge(header(key), body, key))


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_json_numbers(verifier: Verifier, key: Key, number: str) -> None:
    """NaN/Infinity are not JSON (RFC 8259 §6); a lax parser turns them into "never expires"."""
    body = json.dumps(claims(exp=DROP))[:-1] + f', "exp": {number}}}'
    with pytest.raises(MalformedToken):
        verifier.verify(forge(header(key), body, key))


def test_invalid_utf8_payload(verifier: Verifier, key: Key) -> None:
    """Invalid UTF-8 in the payload (overlong encodings) is refused, not replaced."""
    body = json.dumps(claims()).encode()[:-1] + b',"x":"\xc0\xaf"}'
    with pytest.raises(MalformedToken):
        verifier.verify(forge(header(key), body, key))


@pytest.mark.parametrize("size", [64 * 1024, 10 * 1024 * 1024])
def test_huge_tokens_rejected_cheaply(verifier: Verifier, key: Key, size: int) -> None:
    """Resource exhaustion: 64 KiB and 10 MiB tokens are refused before any decoding.

    A security property, not a performance target: the average CPU cost per rejection must
    stay far below a millisecond however large the input.
    """
    head = segment(header(key))
    token = head + "." + "A" * (size - len(head) - 4) + ".AA"
    iterations = 200
    start = time.process_time()
    for _ in range(iterations):
        with pytest.raises(TokenTooLarge):
            verifier.verify(token)
    average = (time.process_time() - start) / iterations
    assert average < 1e-3, f"rejecting a {size}-byte token took {average * 1e3:.3f} ms"


def test_non_string_tokens(verifier: Verifier, key: Key) -> None:
    """Type confusion: bytes, None, numbers or dicts passed as the token are refused cleanly."""
    token = forge(header(key), claims(), key)
    for bad in (token.encode(), None, 7, {"token": token}, [token]):
        with pytest.raises(MalformedToken):
            verifier.verify(bad)  # type: ignore[arg-type]


def test_valid_token_still_verifies_after_many_invalid(verifier: Verifier, key: Key) -> None:
    """Persistence: 50 rejected tokens leave no state behind that blocks (or unblocks) others."""
    good = forge(header(key), claims(), key)
    for n in range(50):
        bad = forge(header(key, alg="none"), claims(jti=f"x{n}"), None) if n % 2 else good[:-3]
        with pytest.raises(InvalidToken):
            verifier.verify(bad)
    assert verifier.verify(good)["jti"] == "jti-1"
    assert b64(b"") == ""
