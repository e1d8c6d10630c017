"""PKCE (RFC 7636), S256 only: dojang refuses ``plain`` for every client."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Final

# RFC 7636 §4.1: code_verifier = 43*128 unreserved characters.
_VERIFIER: Final = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
# §4.2: BASE64URL(SHA256(verifier)) is always 43 characters without padding.
_CHALLENGE: Final = re.compile(r"^[A-Za-z0-9_-]{43}$")


def is_valid_challenge(challenge: str) -> bool:
    """Whether ``challenge`` has the shape of an S256 code challenge."""
    return bool(_CHALLENGE.match(challenge))


def s256(verifier: str) -> str:
    """``BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))`` (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify(verifier: str | None, challenge: str) -> bool:
    """RFC 7636 §4.6: recompute the challenge from the verifier, compare in constant time."""
    if verifier is None or not _VERIFIER.match(verifier):
        return False
    return hmac.compare_digest(s256(verifier).encode(), challenge.encode())
