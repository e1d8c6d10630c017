"""Random opaque credentials and their storage hashes."""

from __future__ import annotations

import hashlib
import secrets


def new_secret() -> str:
    """256 random bits, base64url (43 characters): codes and refresh tokens."""
    return secrets.token_urlsafe(32)


def new_id() -> str:
    """128 random bits, base64url: family ids."""
    return secrets.token_urlsafe(16)


def hash_secret(value: str) -> str:
    """SHA-256 hex of a credential; the stored form (the value itself is never stored)."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
