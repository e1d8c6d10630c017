"""Open-redirect defence for ``next``: same-origin relative paths only, otherwise ``/``."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

MAX_NEXT_LENGTH = 2048
DEFAULT_NEXT = "/account"


def _looks_safe(path: str) -> bool:
    if not path.startswith("/") or path.startswith("//"):
        return False
    # Browsers treat "\" like "/" ("/\evil.com" is protocol-relative) and strip tabs/newlines
    # inside URLs, so any of these could turn a path into another origin.
    if any(c in path for c in "\\\t\r\n") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return False
    parts = urlsplit(path)
    return not (parts.scheme or parts.netloc)


def safe_next(value: str | None, default: str = DEFAULT_NEXT) -> str:
    """Return ``value`` if it is a same-origin relative path, else ``default``.

    Decodes percent-escapes repeatedly and checks every layer, so encoded variants such as
    ``/%2F%2Fevil.com`` or ``%2F%5Cevil.com`` are refused too.
    """
    if not value or len(value) > MAX_NEXT_LENGTH:
        return default
    layer = value
    for _ in range(4):
        if not _looks_safe(layer):
            return default
        decoded = unquote(layer)
        if decoded == layer:
            return value
        layer = decoded
    return default  # still changing after four decodings: refuse rather than guess
