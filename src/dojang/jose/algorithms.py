"""Signature primitives per JWS algorithm (RFC 7518 §3, RFC 8037 §3.1), from ``cryptography``.

Each public key gets one verifier closure, built once when the Key is created, so the hot path
does no object construction beyond what ``cryptography`` itself needs. Verifiers return False
for every bad signature and never raise: a signature is attacker-controlled input.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from dojang.errors import AlgorithmNotAllowed

__all__ = [
    "ALGORITHMS",
    "ED25519_L",
    "P256_N",
    "SIGNING_ALGORITHMS",
    "Signer",
    "Verifier",
    "make_signer",
    "make_verifier",
]

ALGORITHMS: frozenset[str] = frozenset({"EdDSA", "ES256", "RS256"})
SIGNING_ALGORITHMS: frozenset[str] = frozenset({"EdDSA", "ES256"})  # RS256 is verify-only

# Order of the Ed25519 base point (RFC 8032 §5.1).
ED25519_L = 2**252 + 27742317777372353535851937790883648493
# Order of the P-256 base point (SEC 2 §2.4.2).
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_P256_HALF_N = P256_N // 2

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()

Verifier = Callable[[bytes, bytes], bool]
Signer = Callable[[bytes], bytes]

PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def _ed25519_verifier(public: ed25519.Ed25519PublicKey) -> Verifier:
    check = public.verify

    def verify(signature: bytes, message: bytes) -> bool:
        # RFC 8032 §5.1.7: reject S >= L (malleability). S < 2**252 < L whenever the top byte is
        # below 0x10, so the integer conversion only runs for suspicious signatures.
        if len(signature) != 64:
            return False
        if signature[63] >= 0x10 and int.from_bytes(signature[32:], "little") >= ED25519_L:
            return False
        try:
            check(signature, message)
        except InvalidSignature:
            return False
        return True

    return verify


def _es256_verifier(public: ec.EllipticCurvePublicKey) -> Verifier:
    check = public.verify

    def verify(signature: bytes, message: bytes) -> bool:
        # RFC 7518 §3.4: exactly 64 bytes R||S. DER or short forms are refused, and so are
        # r, s outside [1, n-1] (CVE-2022-21449 "psychic signatures" accepted r = s = 0).
        if len(signature) != 64:
            return False
        r = int.from_bytes(signature[:32], "big")
        s = int.from_bytes(signature[32:], "big")
        if not (0 < r < P256_N and 0 < s < P256_N):
            return False
        try:
            check(encode_dss_signature(r, s), message, _ECDSA_SHA256)
        except InvalidSignature:
            return False
        return True

    return verify


def _rs256_verifier(public: rsa.RSAPublicKey) -> Verifier:
    check = public.verify
    size = (public.key_size + 7) // 8

    def verify(signature: bytes, message: bytes) -> bool:
        # RFC 8017 §8.2.2 step 1: the signature is exactly k octets.
        if len(signature) != size:
            return False
        try:
            check(signature, message, _PKCS1V15, _SHA256)
        except InvalidSignature:
            return False
        return True

    return verify


def make_verifier(alg: str, public: PublicKey) -> Verifier:
    """Return the verify function for ``alg`` bound to ``public`` (types already checked)."""
    if alg == "EdDSA" and isinstance(public, ed25519.Ed25519PublicKey):
        return _ed25519_verifier(public)
    if alg == "ES256" and isinstance(public, ec.EllipticCurvePublicKey):
        return _es256_verifier(public)
    if alg == "RS256" and isinstance(public, rsa.RSAPublicKey):
        return _rs256_verifier(public)
    raise AlgorithmNotAllowed(f"key type does not match alg {alg}")


def _es256_signer(private: ec.EllipticCurvePrivateKey) -> Signer:
    # One closure with its names bound as locals: this runs for every ES256 token minted.
    sign, ecdsa, half_n, n = private.sign, _ECDSA_SHA256, _P256_HALF_N, P256_N

    def es256_sign(message: bytes) -> bytes:
        r, s = decode_dss_signature(sign(message, ecdsa))
        # Emit low-S only, so the signature is unique for verifiers that insist on it (BIP
        # 62-style malleability hardening); (r, n - s) verifies exactly as (r, s) does.
        if s > half_n:
            s = n - s
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return es256_sign


def make_signer(alg: str, private: PrivateKey) -> Signer:
    """Return the sign function for ``alg`` bound to ``private``."""
    if alg == "EdDSA" and isinstance(private, ed25519.Ed25519PrivateKey):
        return private.sign
    if alg == "ES256" and isinstance(private, ec.EllipticCurvePrivateKey):
        return _es256_signer(private)
    raise AlgorithmNotAllowed(f"dojang cannot sign with {alg}")
