"""The one mapping from verification outcomes to HTTP, shared by the ASGI, WSGI and FastAPI
adapters (RFC 6750 §3 for ``WWW-Authenticate``; dojang's uniform ``{"error", "detail"}`` body).

* no credentials → 401, ``WWW-Authenticate: Bearer`` without an error code (RFC 6750 §3.1);
* any InvalidToken → 401, ``Bearer error="invalid_token", error_description="…"``;
* KeysUnavailable → 503: the token may be fine, we cannot check it now (fail closed, retry);
* missing scope → 403, ``Bearer error="insufficient_scope", scope="…"``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Final

from dojang.errors import InvalidToken, KeysUnavailable

__all__ = [
    "AuthFailure",
    "bearer_token",
    "failure_for",
    "has_scope",
    "insufficient_scope",
    "missing_token",
]

REALM: Final = "dojang"
# RFC 6750 §3: error_description and scope values are limited to these characters.
_UNSAFE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """A rejection ready to be written by any adapter."""

    status: int
    code: str
    detail: str
    www_authenticate: str | None

    def body(self) -> bytes:
        """The uniform JSON body ``{"error": code, "detail": text}``."""
        return json.dumps({"error": self.code, "detail": self.detail}).encode("utf-8")

    def headers(self) -> list[tuple[str, str]]:
        """Response headers (content type, cache control, WWW-Authenticate when present)."""
        headers = [("content-type", "application/json"), ("cache-control", "no-store")]
        if self.www_authenticate is not None:
            headers.append(("www-authenticate", self.www_authenticate))
        return headers

    @property
    def reason(self) -> str:
        """The HTTP reason phrase for WSGI status lines."""
        return {401: "Unauthorized", 403: "Forbidden", 503: "Service Unavailable"}[self.status]


def _quoted(text: str) -> str:
    return _UNSAFE.sub("", text)[:200]


def missing_token() -> AuthFailure:
    """No (usable) ``Authorization: Bearer`` credential in the request."""
    return AuthFailure(
        401, "missing_token", "a bearer token is required", f'Bearer realm="{REALM}"'
    )


def failure_for(exc: InvalidToken) -> AuthFailure:
    """Map a verification error to its HTTP answer (the message never contains the token)."""
    if isinstance(exc, KeysUnavailable):
        return AuthFailure(503, exc.code, exc.message, None)
    return AuthFailure(
        401,
        exc.code,
        exc.message,
        f'Bearer realm="{REALM}", error="invalid_token", '
        f'error_description="{_quoted(exc.message)}"',
    )


def insufficient_scope(required: str) -> AuthFailure:
    """The token is valid but lacks a scope the endpoint requires."""
    scope = _quoted(required)
    return AuthFailure(
        403,
        "insufficient_scope",
        f"this endpoint requires scope {scope!r}",
        f'Bearer realm="{REALM}", error="insufficient_scope", scope="{scope}"',
    )


def bearer_token(authorization: str | None) -> str | None:
    """Extract the token from an ``Authorization`` header value (RFC 6750 §2.1), else None.

    The scheme is case-insensitive; exactly one space-free credential must follow it.
    """
    if not authorization:
        return None
    scheme, _, credential = authorization.partition(" ")
    credential = credential.strip(" ")
    if scheme.lower() != "bearer" or not credential or " " in credential:
        return None
    return credential


def has_scope(claims: dict[str, object], required: str | None) -> bool:
    """True if every space-delimited scope in ``required`` is in the token's ``scope``."""
    if not required:
        return True
    granted = claims.get("scope")
    if not isinstance(granted, str):
        return False
    have = set(granted.split(" "))
    return all(item in have for item in required.split())
