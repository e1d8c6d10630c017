"""The session cookie, exactly as DESIGN.md specifies it.

``HttpOnly``, ``SameSite=Lax``, ``Path=/``; ``Secure`` plus the ``__Host-`` prefix whenever the
public URL is https (the prefix makes browsers refuse a cookie set by a sibling subdomain or
over plain http, which closes cookie-injection fixation). The plain name is used only for
http development on loopback.
"""

from __future__ import annotations

from dataclasses import dataclass

LOGIN_CSRF_COOKIE = "dojang_login_csrf"


@dataclass(frozen=True, slots=True)
class CookiePolicy:
    """How dojang names and flags its cookies for one deployment."""

    https: bool

    @property
    def session_name(self) -> str:
        """Name of the session cookie."""
        return "__Host-dojang_session" if self.https else "dojang_session"

    @property
    def login_csrf_name(self) -> str:
        """Name of the pre-session login-CSRF cookie (double submit)."""
        return ("__Host-" if self.https else "") + LOGIN_CSRF_COOKIE

    @property
    def session_name_bytes(self) -> bytes:
        """The session cookie name as bytes (for raw ASGI header parsing)."""
        return b"__Host-dojang_session" if self.https else b"dojang_session"

    def _flags(self, same_site: str) -> str:
        flags = f"; Path=/; HttpOnly; SameSite={same_site}"
        if self.https:
            flags += "; Secure"
        return flags

    def session_cookie(self, value: str, max_age: int | None = None) -> str:
        """``Set-Cookie`` value for a new session; ``max_age`` only for remember-me sessions."""
        header = f"{self.session_name}={value}{self._flags('Lax')}"
        if max_age is not None:
            header += f"; Max-Age={max(0, int(max_age))}"
        return header

    def clear_session_cookie(self) -> str:
        """``Set-Cookie`` value that deletes the session cookie."""
        return f"{self.session_name}={self._flags('Lax')}; Max-Age=0"

    def login_csrf_cookie(self, value: str) -> str:
        """``Set-Cookie`` value for the login-CSRF token (Strict: never sent cross-site)."""
        return f"{self.login_csrf_name}={value}{self._flags('Strict')}; Max-Age=3600"

    def clear_login_csrf_cookie(self) -> str:
        """``Set-Cookie`` value that deletes the login-CSRF cookie.

        Same attributes as when it was set: browsers ignore a ``__Host-`` cookie (the https
        name) that lacks ``Secure``, so a bare ``name=; Max-Age=0`` would leave it in place.
        """
        return f"{self.login_csrf_name}={self._flags('Strict')}; Max-Age=0"


def read_cookie(header: str | None, name: str) -> str | None:
    """Return the first cookie called ``name`` from a ``Cookie`` header, or None.

    A hand-rolled split (not ``http.cookies``) because it is on the hottest path and must
    never raise on hostile input: anything odd simply yields None or a value the session
    layer rejects as malformed.
    """
    if not header or len(header) > 8192:
        return None
    prefix = name + "="
    for part in header.split(";"):
        part = part.strip()
        if part.startswith(prefix):
            return part[len(prefix) :]
    return None
