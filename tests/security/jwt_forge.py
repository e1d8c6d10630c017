"""Hand-rolled token forging for attack tests: no library tidies the bytes we mean to send."""

from __future__ import annotations

import base64
import json
from typing import Any

from dojang.jose import Key

ISSUER = "https://auth.example"
AUDIENCE = "orders-api"
NOW = 1_800_000_000.0


def b64(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    """Decode unpadded base64url."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def segment(part: dict[str, Any] | str | bytes) -> str:
    """A dict is compact JSON, str is raw JSON text, bytes are used as-is."""
    if isinstance(part, dict):
        part = json.dumps(part, separators=(",", ":"))
    if isinstance(part, str):
        part = part.encode("utf-8")
    return b64(part)


def claims(**overrides: Any) -> dict[str, Any]:
    """A valid access-token claim set at NOW; ``key=None`` removes a claim."""
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "user-1",
        "aud": AUDIENCE,
        "exp": int(NOW) + 60,
        "iat": int(NOW),
        "jti": "jti-1",
        "sid": "sid-1",
        "scope": "orders:read",
        "client_id": "web",
    }
    for name, value in overrides.items():
        if value is _DROP:
            base.pop(name, None)
        else:
            base[name] = value
    return base


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


_DROP: Any = _Drop()
DROP: Any = _DROP


def header(key: Key, **overrides: Any) -> dict[str, Any]:
    """The header dojang would emit for ``key``; ``name=DROP`` removes a member."""
    base: dict[str, Any] = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}
    for name, value in overrides.items():
        if value is _DROP:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def forge(
    head: dict[str, Any] | str | bytes,
    payload: dict[str, Any] | str | bytes,
    key: Key | None = None,
    *,
    signature: bytes | None = None,
) -> str:
    """Build a compact JWS; signed with ``key`` unless an explicit ``signature`` is given."""
    signing_input = f"{segment(head)}.{segment(payload)}"
    if signature is None:
        signature = key.sign(signing_input.encode("ascii")) if key is not None else b""
    return f"{signing_input}.{b64(signature)}"
