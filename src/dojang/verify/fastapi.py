"""FastAPI dependency: ``Depends(require("orders:read"))`` returns the verified claims.

The verifier is passed to ``require(verifier=…)`` or found at ``app.state.dojang_verifier``.
Call ``install(app, verifier)`` once: it stores the verifier and registers the handler that
writes the shared RFC 6750 answer with dojang's uniform ``{"error", "detail"}`` body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response

from dojang.errors import ConfigError, InvalidToken
from dojang.verify.errors_http import (
    AuthFailure,
    bearer_token,
    failure_for,
    has_scope,
    insufficient_scope,
    missing_token,
)
from dojang.verify.verifier import Verifier

__all__ = ["BearerAuthError", "install", "require"]

STATE_KEY = "dojang_verifier"


class BearerAuthError(HTTPException):
    """Raised by the dependency; ``install`` renders it with the shared mapping."""

    def __init__(self, failure: AuthFailure) -> None:
        headers = dict(failure.headers())
        headers.pop("content-type")
        super().__init__(status_code=failure.status, detail=failure.detail, headers=headers)
        self.failure = failure


def install(app: FastAPI, verifier: Verifier | None = None) -> None:
    """Register the error handler, and ``verifier`` as the app-wide default if given."""
    if verifier is not None:
        setattr(app.state, STATE_KEY, verifier)

    async def handle(_request: Request, exc: Exception) -> Response:
        failure = exc.failure if isinstance(exc, BearerAuthError) else None
        if failure is None:  # pragma: no cover - only BearerAuthError is registered
            raise exc
        return Response(failure.body(), failure.status, headers=dict(failure.headers()))

    app.add_exception_handler(BearerAuthError, handle)


def require(
    scope: str | None = None, *, verifier: Verifier | None = None
) -> Callable[[Request], Awaitable[dict[str, Any]]]:
    """Return a dependency that verifies the bearer token and checks ``scope`` (all listed)."""

    async def dependency(request: Request) -> dict[str, Any]:
        chosen = verifier or getattr(request.app.state, STATE_KEY, None)
        if not isinstance(chosen, Verifier):
            raise ConfigError("no Verifier: pass require(verifier=...) or call install(app, v)")
        token = bearer_token(request.headers.get("authorization"))
        if token is None or len(request.headers.getlist("authorization")) > 1:
            raise BearerAuthError(missing_token())
        try:
            claims = await chosen.averify(token)
        except InvalidToken as exc:
            raise BearerAuthError(failure_for(exc)) from None
        if not has_scope(claims, scope):
            raise BearerAuthError(insufficient_scope(scope or ""))
        return claims

    return dependency
