"""Key: generation, strict JWK import, export without private members, immutability."""

from __future__ import annotations

import math
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwcrypto import jwk as jwcrypto_jwk  # type: ignore[import-untyped]

from dojang.errors import (
    AlgorithmNotAllowed,
    InvalidToken,
    KeyFileError,
    MalformedToken,
    UnknownKey,
)
from dojang.jose import Key
from dojang.jose._b64 import b64url_decode, b64url_encode
from dojang.jose.algorithms import ED25519_L, P256_N

ED = Key.generate("EdDSA")
EC = Key.generate("ES256")
RSA_PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_NAMES = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def _int_b64(value: int) -> str:
    return b64url_encode(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _rsa_jwk(n: int, e: int = 65537, **extra: Any) -> dict[str, Any]:
    return {"kty": "RSA", "kid": "r1", "alg": "RS256", "n": _int_b64(n), "e": _int_b64(e), **extra}


RSA_JWK = _rsa_jwk(RSA_PRIVATE.public_key().public_numbers().n)


@pytest.mark.parametrize("key", [ED, EC], ids=["EdDSA", "ES256"])
def test_private_and_public_round_trip(key: Key) -> None:
    private = Key.from_jwk(key.private_jwk())
    public = Key.from_jwk(key.public_jwk())
    assert (private.kid, private.alg, private.is_private) == (key.kid, key.alg, True)
    assert (public.kid, public.alg, public.is_private) == (key.kid, key.alg, False)
    assert public.verify(private.sign(b"m"), b"m")
    assert public.public_jwk() == key.public_jwk()


@pytest.mark.parametrize("key", [ED, EC], ids=["EdDSA", "ES256"])
def test_public_jwk_has_no_private_members(key: Key) -> None:
    jwk = key.public_jwk()
    assert not PRIVATE_NAMES & jwk.keys()
    assert jwk["use"] == "sig" and jwk["alg"] == key.alg and jwk["kid"] == key.kid
    assert "d" in key.private_jwk()


@pytest.mark.parametrize("key", [ED, EC], ids=["EdDSA", "ES256"])
def test_default_kid_is_rfc7638_thumbprint(key: Key) -> None:
    """Cross-checked against jwcrypto's independent RFC 7638 implementation."""
    theirs = jwcrypto_jwk.JWK(**key.public_jwk()).thumbprint()
    assert key.kid == key.thumbprint() == theirs


def test_rsa_public_import_and_verify() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    key = Key.from_jwk(RSA_JWK)
    assert (key.alg, key.is_private) == ("RS256", False)
    signature = RSA_PRIVATE.sign(b"m", padding.PKCS1v15(), hashes.SHA256())
    assert key.verify(signature, b"m")
    assert not key.verify(signature[:-1], b"m")
    assert not key.verify(signature, b"n")
    assert key.public_jwk()["n"] == RSA_JWK["n"]
    assert key.thumbprint() == jwcrypto_jwk.JWK(**RSA_JWK).thumbprint()
    with pytest.raises(AlgorithmNotAllowed):
        key.sign(b"m")
    with pytest.raises(KeyFileError):
        key.private_jwk()


def test_alg_inferred_only_for_ed25519_and_p256() -> None:
    ed = {k: v for k, v in ED.public_jwk().items() if k != "alg"}
    ec = {k: v for k, v in EC.public_jwk().items() if k != "alg"}
    assert Key.from_jwk(ed).alg == "EdDSA"
    assert Key.from_jwk(ec).alg == "ES256"
    with pytest.raises(AlgorithmNotAllowed):
        Key.from_jwk({k: v for k, v in RSA_JWK.items() if k != "alg"})


def test_generate_rejects_unsupported_algorithms() -> None:
    for alg in ("RS256", "HS256", "none"):
        with pytest.raises(AlgorithmNotAllowed):
            Key.generate(alg)


def test_key_is_immutable_and_repr_has_no_material() -> None:
    with pytest.raises(AttributeError):
        ED.alg = "ES256"
    with pytest.raises(AttributeError):
        del ED.kid
    text = repr(ED)
    assert ED.kid in text
    assert ED.private_jwk()["d"] not in text and ED.public_jwk()["x"] not in text


def test_public_key_cannot_sign_or_export_private() -> None:
    public = Key.from_jwk(ED.public_jwk())
    with pytest.raises(AlgorithmNotAllowed):
        public.sign(b"m")
    with pytest.raises(KeyFileError):
        public.private_jwk()


def _roca_like_modulus() -> int:
    """A 2048-bit odd number with the ROCA fingerprint (n ≡ 65537^k mod every small prime)."""
    primes = [3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79]
    primes += [83, 89, 97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167]
    m = math.prod(primes)
    n = (1 << 2047) // m * m + pow(65537, 12, m)
    return n if n % 2 else n + m  # m is odd, so this flips parity without changing residues


def _mutate(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    result = {**base, **changes}
    return {k: v for k, v in result.items() if v is not None}


ED_PUB = ED.public_jwk()
EC_PUB = EC.public_jwk()
OTHER_ED = Key.generate("EdDSA")
OTHER_EC = Key.generate("ES256")


@pytest.mark.parametrize(
    ("jwk", "error"),
    [
        ("not a mapping", MalformedToken),
        ({"kty": "oct", "k": "AAAA", "kid": "s", "alg": "HS256"}, AlgorithmNotAllowed),
        (_mutate(ED_PUB, kty=None), AlgorithmNotAllowed),
        (_mutate(ED_PUB, kty="XYZ"), AlgorithmNotAllowed),
        (_mutate(ED_PUB, kty=1), AlgorithmNotAllowed),
        (_mutate(ED_PUB, crv="X25519"), AlgorithmNotAllowed),
        (_mutate(ED_PUB, crv="Ed448"), AlgorithmNotAllowed),
        (_mutate(EC_PUB, crv="P-384"), AlgorithmNotAllowed),
        (_mutate(EC_PUB, crv=None), AlgorithmNotAllowed),
        (_mutate(EC_PUB, alg="EdDSA"), AlgorithmNotAllowed),
        (_mutate(EC_PUB, alg="ES384"), AlgorithmNotAllowed),
        (_mutate(ED_PUB, alg="ES256"), AlgorithmNotAllowed),
        (_mutate(ED_PUB, alg="Ed25519"), AlgorithmNotAllowed),
        (_mutate(ED_PUB, alg=7), MalformedToken),
        (_mutate(ED_PUB, kid=None), UnknownKey),
        (_mutate(ED_PUB, kid=""), UnknownKey),
        (_mutate(ED_PUB, kid=" "), UnknownKey),
        (_mutate(ED_PUB, kid=3), UnknownKey),
        (_mutate(ED_PUB, kid="k" * 257), UnknownKey),
        (_mutate(ED_PUB, use="enc"), AlgorithmNotAllowed),
        (_mutate(ED_PUB, key_ops=["encrypt"]), AlgorithmNotAllowed),
        (_mutate(ED_PUB, key_ops=["sign"]), AlgorithmNotAllowed),
        (_mutate(ED_PUB, key_ops="verify"), MalformedToken),
        (_mutate(ED_PUB, key_ops=["verify", "verify"]), MalformedToken),
        (_mutate(ED_PUB, key_ops=[]), MalformedToken),
        (_mutate(ED_PUB, x=None), MalformedToken),
        (_mutate(ED_PUB, x=ED_PUB["x"][:-2]), MalformedToken),
        (_mutate(ED_PUB, x=ED_PUB["x"] + "="), MalformedToken),
        (_mutate(ED_PUB, x=b64url_encode(bytes(33))), MalformedToken),
        (_mutate(ED_PUB, x="A" * 5000), MalformedToken),
        (_mutate(EC_PUB, y=b64url_encode(bytes(32))), MalformedToken),
        (_mutate(EC_PUB, y=b64url_encode(b"\x00" + b64url_decode(EC_PUB["y"]))), MalformedToken),
        (_mutate(ED.private_jwk(), d=OTHER_ED.private_jwk()["d"]), MalformedToken),
        (_mutate(EC.private_jwk(), d=OTHER_EC.private_jwk()["d"]), MalformedToken),
        (_mutate(EC.private_jwk(), d=b64url_encode(P256_N.to_bytes(32, "big"))), MalformedToken),
        (_mutate(RSA_JWK, d="AQAB"), AlgorithmNotAllowed),
        (_mutate(RSA_JWK, p="AQAB"), AlgorithmNotAllowed),
        (_mutate(RSA_JWK, alg="RS384"), AlgorithmNotAllowed),
        (_mutate(RSA_JWK, alg="PS256"), AlgorithmNotAllowed),
        (_mutate(RSA_JWK, n=None), MalformedToken),
        (_mutate(RSA_JWK, n="AA" + RSA_JWK["n"]), MalformedToken),
        (_mutate(RSA_JWK, n="A" * 4000), MalformedToken),
        (_rsa_jwk(rsa.generate_private_key(65537, 1024).public_key().public_numbers().n), None),
        (_rsa_jwk(RSA_PRIVATE.public_key().public_numbers().n, e=1), MalformedToken),
        (_rsa_jwk(RSA_PRIVATE.public_key().public_numbers().n, e=65536), MalformedToken),
        (_rsa_jwk(RSA_PRIVATE.public_key().public_numbers().n + 1), MalformedToken),
        (_rsa_jwk(_roca_like_modulus()), AlgorithmNotAllowed),
    ],
)
def test_from_jwk_rejections(jwk: Any, error: type[InvalidToken] | None) -> None:
    with pytest.raises(error or AlgorithmNotAllowed):
        Key.from_jwk(jwk)


def test_off_curve_point_rejected() -> None:
    """Invalid-curve attack: a point not on P-256 must never become a key."""
    x = b64url_decode(EC_PUB["x"])
    y = int.from_bytes(b64url_decode(EC_PUB["y"]), "big")
    bad = _mutate(EC_PUB, y=b64url_encode(((y + 1) % (2**256)).to_bytes(32, "big")))
    assert b64url_decode(bad["x"]) == x
    with pytest.raises(MalformedToken, match="not on P-256"):
        Key.from_jwk(bad)


def test_unknown_members_are_ignored() -> None:
    assert Key.from_jwk({**ED_PUB, "x5t": "abc", "ext": True}).kid == ED.kid


def test_verify_never_raises_on_garbage() -> None:
    for key in (ED, EC):
        for signature in (b"", b"\x00", bytes(63), bytes(65), b"\xff" * 64, bytes(64), b"x" * 1000):
            assert key.verify(signature, b"m") is False


def test_ed25519_non_canonical_s_rejected() -> None:
    """RFC 8032 §5.1.7 / §8.4: S >= L is a malleated signature and must not verify."""
    signature = ED.sign(b"m")
    s = int.from_bytes(signature[32:], "little")
    malleated = signature[:32] + (s + ED25519_L).to_bytes(32, "little")
    assert ED.verify(signature, b"m")
    assert not ED.verify(malleated, b"m")


def test_es256_out_of_range_scalars_rejected() -> None:
    signature = EC.sign(b"m")
    r, s = signature[:32], int.from_bytes(signature[32:], "big")
    for bad_s in (0, P256_N, s + P256_N):
        if bad_s < 2**256:
            assert not EC.verify(r + bad_s.to_bytes(32, "big"), b"m")
    assert not EC.verify(bytes(32) + signature[32:], b"m")
