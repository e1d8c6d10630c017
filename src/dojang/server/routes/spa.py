"""The single-page-app example (``examples/spa``), served at ``/spa/`` in demo mode only.

The page logs in with the session cookie, mints an access token with ``POST /api/v1/tokens``
and calls a business API on *another* origin with ``Authorization: Bearer``. Which API, which
audience and which scope come from the query string (``/spa/?api=http://127.0.0.1:9000&
audience=orders-api&scope=orders:read``), are validated here and handed to the script in a
``<meta>`` tag: dojang's pages allow no inline script, and neither does this one.

The page needs its own Content-Security-Policy: dojang's (``default-src 'none'``) forbids the
script and the cross-origin ``fetch``. The policy below is set on ``/spa/`` only (the security
headers middleware keeps a route's own CSP) and allows exactly ``script-src 'self'`` and
``connect-src 'self' <api origin>``.

The API origin may only be a loopback origin: the page sends freshly minted bearer tokens to
it, so a link such as ``/spa/?api=https://evil.example`` must not turn dojang's own page into a
token exfiltrator. Demo mode is a loopback development feature; a deployed SPA is served by its
own origin with its API origin fixed in its own configuration.
"""

from __future__ import annotations

import functools
import html
import re
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from dojang.server.responses import HTTPError

router = APIRouter(tags=["demo"], include_in_schema=False)

# src/dojang/server/routes/spa.py → the repository root holds examples/spa.
SPA_DIR: Final = Path(__file__).resolve().parents[4] / "examples" / "spa"
DEFAULT_API: Final = "http://127.0.0.1:9000"
DEFAULT_AUDIENCE: Final = "orders-api"
DEFAULT_SCOPE: Final = "orders:read orders:write"
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
# Audience names and scope tokens as dojang registers them (RFC 6749 §3.3 scope-token subset).
_NAME: Final = re.compile(r"[A-Za-z0-9._:/-]{1,128}")
_ASSETS: Final = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


def page_csp(api_origin: str) -> str:
    """The SPA page's policy: own script and styles, ``fetch`` to dojang and the API only."""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        f"connect-src 'self' {api_origin}; form-action 'none'; frame-ancestors 'none'; "
        "base-uri 'none'"
    )


def loopback_origin(value: str) -> str:
    """Return ``value`` as a normalised ``http(s)://loopback[:port]`` origin or raise 400."""
    parts = urlsplit(value.strip())
    try:
        port = parts.port
    except ValueError:
        port = -1
    ok = (
        parts.scheme in ("http", "https")
        and parts.hostname in _LOOPBACK_HOSTS
        and port != -1
        and parts.path in ("", "/")
        and not parts.query
        and not parts.fragment
        and not parts.username
        and not parts.password
    )
    if not ok:
        raise HTTPError(
            400,
            "invalid_request",
            "api: expected a loopback origin such as http://127.0.0.1:9000",
        )
    host = f"[{parts.hostname}]" if parts.hostname == "::1" else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def _names(value: str, what: str, *, many: bool) -> str:
    words = value.split()
    if not words or (not many and len(words) > 1) or not all(_NAME.fullmatch(w) for w in words):
        raise HTTPError(400, "invalid_request", f"{what}: letters, digits and ._:/- only")
    return " ".join(words)


@functools.cache
def _read(name: str) -> str:
    # Read once per process: the files are part of the checkout, not user content.
    return (SPA_DIR / name).read_text(encoding="utf-8")


def _load(name: str) -> str:
    try:
        return _read(name)
    except OSError:
        raise HTTPError(
            404, "not_found", "the SPA example is served from a source checkout only"
        ) from None


@router.get("/spa/")
async def spa_page(request: Request) -> Response:
    """The SPA's HTML, configured by ``?api=&audience=&scope=`` (validated, then escaped)."""
    q = request.query_params
    api = loopback_origin(q.get("api", DEFAULT_API))
    audience = _names(q.get("audience", DEFAULT_AUDIENCE), "audience", many=False)
    scope = _names(q.get("scope", DEFAULT_SCOPE), "scope", many=True)
    text = (
        _load("index.html")
        .replace("{{api}}", html.escape(api))
        .replace("{{audience}}", html.escape(audience))
        .replace("{{scope}}", html.escape(scope))
    )
    return Response(
        text,
        media_type="text/html; charset=utf-8",
        headers={"content-security-policy": page_csp(api), "cache-control": "no-store"},
    )


@router.get("/spa/{name}")
async def spa_asset(name: str) -> Response:
    """The page's script and stylesheet (a fixed list: no path from the request is opened)."""
    media = _ASSETS.get(name)
    if media is None:
        raise HTTPError(404, "not_found", "no such file")
    return Response(_load(name), media_type=media, headers={"cache-control": "no-cache"})
