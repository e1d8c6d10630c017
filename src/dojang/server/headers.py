"""Security headers on every response, as a plain ASGI middleware.

The header block is computed once at start-up; adding it to a response is one list extend.
"""

from __future__ import annotations

from dojang.server.types import ASGIApp, Message, Receive, Scope, Send

# No inline script anywhere: the pages use a stylesheet and plain forms only.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def security_headers(*, https: bool) -> list[tuple[bytes, bytes]]:
    """Return the raw header pairs every response carries."""
    headers = [
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        # Not "no-referrer": with it Chromium sends "Origin: null" on our own form POSTs, which
        # the CSRF origin check must refuse. "same-origin" still leaks nothing cross-site.
        (b"referrer-policy", b"same-origin"),
        (b"x-frame-options", b"DENY"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"cross-origin-resource-policy", b"same-origin"),
    ]
    if https:
        # RFC 6797: only meaningful (and only honoured) over https.
        headers.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))
    return headers


class SecurityHeadersMiddleware:
    """Append the security headers to every HTTP response start message."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.headers = security_headers(https=https)
        self._names = {name for name, _ in self.headers}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                existing = list(message.get("headers", ()))
                # A route may set a stricter value (e.g. Cache-Control); never duplicate ours.
                present = {name.lower() for name, _ in existing}
                existing.extend(h for h in self.headers if h[0] not in present)
                message["headers"] = existing
            await send(message)

        await self.app(scope, receive, send_with_headers)
