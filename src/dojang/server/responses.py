"""One uniform JSON error body, and the mapping from dojang's typed errors to HTTP.

The core raises typed errors; only this module decides their status codes (STYLE.md: map
errors at the edge).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse

from dojang import errors

if TYPE_CHECKING:
    from dojang.server.metrics import Metrics

# Status per error class; the most specific class listed wins (looked up along the MRO).
_STATUS: dict[type[errors.DojangError], int] = {
    errors.InvalidToken: 401,
    errors.SessionNotFound: 401,
    errors.InvalidCredentials: 401,
    errors.Throttled: 429,
    errors.SessionDataTooLarge: 413,
    errors.UserExists: 409,
    errors.UserNotFound: 404,
    errors.WeakPassword: 400,
    errors.AuthError: 400,
    errors.SessionError: 400,
    errors.StoreUnavailable: 503,
    errors.ConfigError: 500,
}


class HTTPError(Exception):
    """An error raised by a route that already knows its status and code."""

    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}


def error_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The one error body: ``{"error": code, "detail": text}`` with ``Cache-Control: no-store``."""
    hdrs = {"cache-control": "no-store"}
    if headers:
        hdrs.update(headers)
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=hdrs)


def status_for(exc: errors.DojangError) -> int:
    """HTTP status for a typed dojang error."""
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 400


def dojang_error_response(exc: errors.DojangError, metrics: Metrics | None = None) -> JSONResponse:
    """Render a typed dojang error; 429s carry ``Retry-After``.

    With ``metrics``, every store outage answered here (503) is counted in
    ``dojang_store_errors_total``: this is the one place they become responses.
    """
    if metrics is not None and isinstance(exc, errors.StoreUnavailable):
        metrics.count_store_error(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, errors.Throttled):
        headers["retry-after"] = str(max(1, int(exc.retry_after + 0.999)))
    return error_response(status_for(exc), exc.code, exc.message, headers)


def json_ok(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON success response that caches nowhere (everything here is per-user state)."""
    hdrs = {"cache-control": "no-store"}
    if headers:
        hdrs.update(headers)
    return JSONResponse(data, status_code=status, headers=hdrs)
