"""``Key``: one asymmetric key bound to exactly one JWS algorithm, with strict JWK import/export.

RFC 8725 §3.1 / §3.2: the algorithm comes from the key, never from the token alone, so each Key
carries one ``alg`` and refuses to verify anything else. JWK import (RFC 7517, RFC 7518 §6,
RFC 8037 §2) is deliberately narrow: Ed25519 and P-256 (public or private) and RSA public keys of
at least 2048 bits. Anything else, or anything odd, raises a typed InvalidToken subclass.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, NoReturn

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from dojang.errors import AlgorithmNotAllowed, KeyFileError, MalformedToken, UnknownKey
from dojang.jose._b64 import b64url_decode, b64url_encode
from dojang.jose._roca import is_roca_modulus
from dojang.jose.algorithms import (
    ALGORITHMS,
    PrivateKey,
    PublicKey,
    Signer,
    Verifier,
    make_signer,
    make_verifier,
)

__all__ = ["MAX_KID_LENGTH", "PRIVATE_MEMBERS", "Key"]

MAX_KID_LENGTH = 256
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 16384  # bound the cost of importing a hostile JWKS

# Every JWK member that carries secret material (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_RSA_PRIVATE = PRIVATE_MEMBERS - {"k"}
_KEY_OPS = frozenset({"sign", "verify"})


def _malformed(message: str) -> NoReturn:
    raise MalformedToken(f"JWK: {message}")


def _member(jwk: Mapping[str, object], name: str) -> str:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        _malformed(f"member {name!r} is missing or not a non-empty string")
    return value


def _fixed_bytes(jwk: Mapping[str, object], name: str, size: int) -> bytes:
    text = _member(jwk, name)
    if len(text) > 4 * size:  # bound work before decoding
        _malformed(f"member {name!r} has the wrong length")
    raw = b64url_decode(text, f"JWK member {name!r}")
    # RFC 7518 §6.2.1.2 / RFC 8037 §2: coordinates and keys have the full, fixed length.
    if len(raw) != size:
        _malformed(f"member {name!r} must be {size} bytes")
    return raw


def _unsigned(jwk: Mapping[str, object], name: str, max_bytes: int) -> int:
    text = _member(jwk, name)
    if len(text) > (max_bytes * 4 + 2) // 3:
        _malformed(f"member {name!r} is too large")
    raw = b64url_decode(text, f"JWK member {name!r}")
    # RFC 7518 §6.3.1: minimal big-endian octets, no leading zero octet.
    if raw[0] == 0:
        _malformed(f"member {name!r} has a leading zero octet")
    return int.from_bytes(raw, "big")


def _check_usage(jwk: Mapping[str, object]) -> None:
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise AlgorithmNotAllowed("JWK: key 'use' is not 'sig'")
    ops = jwk.get("key_ops")
    if ops is not None:
        if (
            not isinstance(ops, list)
            or not ops
            or not all(isinstance(op, str) for op in ops)
            or len(set(ops)) != len(ops)
        ):
            _malformed("'key_ops' must be a list of distinct strings")
        if not set(ops) <= _KEY_OPS or "verify" not in ops:
            raise AlgorithmNotAllowed("JWK: 'key_ops' does not allow verify")


def _check_kid(kid: object) -> str:
    if not isinstance(kid, str) or not kid.strip():
        raise UnknownKey("JWK: 'kid' is missing or blank")
    if len(kid) > MAX_KID_LENGTH:
        raise UnknownKey(f"JWK: 'kid' longer than {MAX_KID_LENGTH} characters")
    return kid


def _bound_alg(jwk: Mapping[str, object], expected: str, inferable: bool) -> str:
    alg = jwk.get("alg")
    if alg is None and inferable:
        return expected
    if alg != expected:
        raise AlgorithmNotAllowed(f"JWK: key type requires alg {expected}")
    return expected


def _import_okp(jwk: Mapping[str, object]) -> tuple[str, PublicKey, PrivateKey | None]:
    if jwk.get("crv") != "Ed25519":
        raise AlgorithmNotAllowed("JWK: OKP curve must be Ed25519")
    alg = _bound_alg(jwk, "EdDSA", inferable=True)
    x = _fixed_bytes(jwk, "x", 32)
    public = ed25519.Ed25519PublicKey.from_public_bytes(x)
    if "d" not in jwk:
        return alg, public, None
    private = ed25519.Ed25519PrivateKey.from_private_bytes(_fixed_bytes(jwk, "d", 32))
    if not hmac.compare_digest(private.public_key().public_bytes_raw(), x):
        _malformed("private key 'd' does not match public key 'x'")
    return alg, public, private


def _import_ec(jwk: Mapping[str, object]) -> tuple[str, PublicKey, PrivateKey | None]:
    if jwk.get("crv") != "P-256":
        raise AlgorithmNotAllowed("JWK: EC curve must be P-256")
    alg = _bound_alg(jwk, "ES256", inferable=True)
    x = int.from_bytes(_fixed_bytes(jwk, "x", 32), "big")
    y = int.from_bytes(_fixed_bytes(jwk, "y", 32), "big")
    numbers = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1())
    try:
        # Invalid-curve attacks: cryptography refuses points that are not on P-256.
        public = numbers.public_key()
    except ValueError:
        _malformed("EC point is not on P-256")
    if "d" not in jwk:
        return alg, public, None
    d = int.from_bytes(_fixed_bytes(jwk, "d", 32), "big")
    try:
        private = ec.EllipticCurvePrivateNumbers(d, numbers).private_key()
    except ValueError:
        _malformed("private key 'd' does not match public key 'x'/'y'")
    return alg, public, private


def _import_rsa(jwk: Mapping[str, object]) -> tuple[str, PublicKey, PrivateKey | None]:
    if _RSA_PRIVATE & jwk.keys():
        raise AlgorithmNotAllowed("JWK: RSA private keys are not accepted (RS256 is verify-only)")
    alg = _bound_alg(jwk, "RS256", inferable=False)
    n = _unsigned(jwk, "n", MAX_RSA_BITS // 8)
    e = _unsigned(jwk, "e", 8)
    if n.bit_length() < MIN_RSA_BITS:
        raise AlgorithmNotAllowed(f"JWK: RSA modulus shorter than {MIN_RSA_BITS} bits")
    # e = 1 makes "signatures" trivially forgeable; even e or e >= n are not RSA keys.
    if e < 3 or e % 2 == 0 or n % 2 == 0 or e >= n:
        _malformed("RSA public exponent or modulus is invalid")
    if is_roca_modulus(n):
        raise AlgorithmNotAllowed("JWK: RSA modulus is ROCA-vulnerable (CVE-2017-15361)")
    try:
        public = rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError:
        _malformed("RSA public key is invalid")
    return alg, public, None


_IMPORTERS = {"OKP": _import_okp, "EC": _import_ec, "RSA": _import_rsa}


class Key:
    """An immutable signing or verification key bound to one algorithm.

    ``repr`` shows only kid, alg and whether the key is private; key material never appears in
    reprs, logs or error messages.

    ``sign(signing_input) -> bytes`` gives 64 bytes for EdDSA and a 64-byte low-S R||S for
    ES256; on a public-only key it raises AlgorithmNotAllowed. ``verify(signature,
    signing_input) -> bool`` never raises for a bad signature: wrong lengths, DER-encoded ECDSA
    and out-of-range scalars all give False. Both are the primitives of
    ``dojang.jose.algorithms`` bound to this key, held as attributes rather than wrapped in
    methods because they run once per token.
    """

    __slots__ = (
        "_private",
        "_public",
        "_public_jwk",
        "alg",
        "is_private",
        "kid",
        "sign",
        "verify",
    )

    kid: str
    alg: str
    is_private: bool
    _public: PublicKey
    _private: PrivateKey | None
    sign: Signer
    verify: Verifier
    _public_jwk: dict[str, str]

    def __init__(self, kid: str, alg: str, public: PublicKey, private: PrivateKey | None) -> None:
        """Bind ``public`` (and optionally ``private``) to ``alg``; prefer the classmethods."""
        if alg not in ALGORITHMS:
            raise AlgorithmNotAllowed(f"unsupported algorithm {alg!r:.40}")
        if isinstance(public, ec.EllipticCurvePublicKey) and not isinstance(
            public.curve, ec.SECP256R1
        ):
            raise AlgorithmNotAllowed("ES256 keys must be on P-256")
        verifier = make_verifier(alg, public)
        signer = make_signer(alg, private) if private is not None else None
        init = object.__setattr__
        init(self, "kid", _check_kid(kid))
        init(self, "alg", alg)
        init(self, "is_private", private is not None)
        init(self, "_public", public)
        init(self, "_private", private)
        # The bound primitives themselves, not methods wrapping them: they run once per token.
        init(self, "verify", verifier)
        init(self, "sign", signer if signer is not None else _cannot_sign(kid, alg))
        init(self, "_public_jwk", _public_members(public))

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Key is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("Key is immutable")

    def __repr__(self) -> str:
        return f"Key(kid={self.kid!r}, alg={self.alg!r}, is_private={self.is_private})"

    # --- construction --------------------------------------------------------------------

    @classmethod
    def generate(cls, alg: str = "EdDSA", kid: str | None = None) -> Key:
        """Generate a fresh private key for ``alg`` (EdDSA or ES256).

        ``kid`` defaults to the RFC 7638 thumbprint of the public key.
        """
        private: PrivateKey
        if alg == "EdDSA":
            private = ed25519.Ed25519PrivateKey.generate()
        elif alg == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        else:
            raise AlgorithmNotAllowed(f"dojang cannot generate signing keys for {alg!r:.40}")
        public = private.public_key()
        return cls(kid or _thumbprint(_public_members(public)), alg, public, private)

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, object]) -> Key:
        """Import a JWK strictly; raise MalformedToken, AlgorithmNotAllowed or UnknownKey.

        Requires ``kid``; requires ``alg`` except for Ed25519 (EdDSA) and P-256 (ES256) keys,
        where it is inferred. ``use`` must be ``sig`` and ``key_ops`` must allow ``verify``
        when present. RSA keys must be public, at least 2048 bits and free of the ROCA flaw.
        """
        if not isinstance(jwk, Mapping):
            _malformed("not a JSON object")
        kty = jwk.get("kty")
        if kty == "oct":
            # RFC 8725 §3.2: a shared secret would let every verifier forge tokens.
            raise AlgorithmNotAllowed("JWK: symmetric 'oct' keys are never accepted")
        importer = _IMPORTERS.get(kty) if isinstance(kty, str) else None
        if importer is None:
            raise AlgorithmNotAllowed("JWK: unsupported or missing 'kty'")
        alg = jwk.get("alg")
        if alg is not None and not isinstance(alg, str):
            _malformed("'alg' is not a string")
        kid = _check_kid(jwk.get("kid"))
        _check_usage(jwk)
        alg, public, private = importer(jwk)
        return cls(kid, alg, public, private)

    # --- export ---------------------------------------------------------------------------

    def thumbprint(self) -> str:
        """Return the RFC 7638 SHA-256 thumbprint of the public key (base64url)."""
        return _thumbprint(self._public_jwk)

    def public_jwk(self) -> dict[str, str]:
        """Return the public JWK, built from the public key object (never from private data)."""
        return {**self._public_jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def private_jwk(self) -> dict[str, str]:
        """Return the private JWK (for the key file only); KeyFileError if not private."""
        private = self._private
        if isinstance(private, ed25519.Ed25519PrivateKey):
            d = private.private_bytes_raw()
        elif isinstance(private, ec.EllipticCurvePrivateKey):
            d = private.private_numbers().private_value.to_bytes(32, "big")
        else:
            raise KeyFileError(f"key {self.kid!r} has no private part")
        return {**self.public_jwk(), "d": b64url_encode(d)}


def _cannot_sign(kid: str, alg: str) -> Signer:
    def sign(signing_input: bytes) -> bytes:
        raise AlgorithmNotAllowed(f"key {kid!r} cannot sign ({alg}, public only)")

    return sign


def _public_members(public: PublicKey) -> dict[str, str]:
    """Required public JWK members, lexicographically ordered as RFC 7638 §3.2 needs."""
    if isinstance(public, ed25519.Ed25519PublicKey):
        return {"crv": "Ed25519", "kty": "OKP", "x": b64url_encode(public.public_bytes_raw())}
    if isinstance(public, ec.EllipticCurvePublicKey):
        numbers = public.public_numbers()
        return {
            "crv": "P-256",
            "kty": "EC",
            "x": b64url_encode(numbers.x.to_bytes(32, "big")),
            "y": b64url_encode(numbers.y.to_bytes(32, "big")),
        }
    numbers_rsa = public.public_numbers()
    return {
        "e": b64url_encode(_minimal_bytes(numbers_rsa.e)),
        "kty": "RSA",
        "n": b64url_encode(_minimal_bytes(numbers_rsa.n)),
    }


def _minimal_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _thumbprint(members: dict[str, Any]) -> str:
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return b64url_encode(hashlib.sha256(canonical).digest())
