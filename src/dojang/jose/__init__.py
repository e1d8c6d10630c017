"""Strict JOSE for dojang: compact JWS, JWK import/export and rotating key sets.

Primitives come from ``cryptography`` only. Algorithms: EdDSA (Ed25519, the default) and ES256
sign and verify; RS256 verifies only, for interop. The key's bound ``alg`` always decides.
"""

from __future__ import annotations

from dojang.jose._json import parse_json_object
from dojang.jose.algorithms import ALGORITHMS
from dojang.jose.jwk import Key
from dojang.jose.jws import MAX_TOKEN_BYTES, decode_segments, sign_compact, verify_compact
from dojang.jose.keyset import KeySet

__all__ = [
    "ALGORITHMS",
    "MAX_TOKEN_BYTES",
    "Key",
    "KeySet",
    "decode_segments",
    "parse_json_object",
    "sign_compact",
    "verify_compact",
]
