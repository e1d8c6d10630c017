"""FastAPI dependency: ``Depends(require("orders:read"))`` returns the verified claims.

The verifier is passed to ``require(verifier=…)`` or found at ``app.state.dojang_verifier``.
``install(app, verifier)`` stores the verifier and registers the handler that writes the shared
RFC 6750 answer with dojang's uniform ``{"error", "detail"}`` body. A dependency used without
``install`` answers the same way: on its first rejection it registers that handler with the
application's exception middleware, so no request ever gets FastAPI's ``{"detail"}`` shape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response

from dojang.errors import ConfigError, InvalidToken
from dojang.verify.claims import SUBJECT_KINDS, SubjectKind, check_subject_kind
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
# Where Starlette's ExceptionMiddleware publishes its live handler table for the request; the
# routing layer looks handlers up in it when an endpoint or a dependency raises.
_HANDLERS_SCOPE_KEY = "starlette.exception_handlers"


class BearerAuthError(HTTPException):
    """Raised by the dependency; rendered with the shared mapping (see ``install``)."""

    def __init__(self, failure: AuthFailure) -> None:
        headers = dict(failure.headers())
        headers.pop("content-type")
        super().__init__(status_code=failure.status, detail=failure.detail, headers=headers)
        self.failure = failure


async def _render(_request: Request, exc: Exception) -> Response:
    failure = exc.failure if isinstance(exc, BearerAuthError) else None
    if failure is None:  # pragma: no cover - only BearerAuthError is registered
        raise exc
    return Response(failure.body(), failure.status, headers=dict(failure.headers()))


def install(app: FastAPI, verifier: Verifier | None = None) -> None:
    """Register the error handler, and ``verifier`` as the app-wide default if given."""
    if verifier is not None:
        setattr(app.state, STATE_KEY, verifier)
    app.add_exception_handler(BearerAuthError, _render)


def _reject(request: Request, failure: AuthFailure) -> BearerAuthError:
    """The error to raise, with the uniform renderer registered even if ``install`` was not."""
    live = request.scope.get(_HANDLERS_SCOPE_KEY)
    if isinstance(live, tuple) and live and isinstance(live[0], MutableMapping):
        # Without this, FastAPI's default HTTPException handler would answer {"detail": …}:
        # a second body shape for the same failure. setdefault keeps an app's own handler.
        live[0].setdefault(BearerAuthError, _render)
    return BearerAuthError(failure)


def require(
    scope: str | None = None,
    *,
    verifier: Verifier | None = None,
    subject_kind: SubjectKind | None = None,
) -> Callable[[Request], Awaitable[dict[str, Any]]]:
    """Return a dependency that verifies the bearer token and checks ``scope`` (all listed).

    ``subject_kind="user"`` accepts only tokens bound to a user's session (``sid``),
    ``"service"`` only ``client_credentials`` tokens; the other kind gets a 401
    (``wrong_subject_kind``). See ``dojang.verify.claims.check_subject_kind``.
    """
    if subject_kind is not None and subject_kind not in SUBJECT_KINDS:
        raise ConfigError(f"subject_kind: must be 'user', 'service' or None, got {subject_kind!r}")

    async def dependency(request: Request) -> dict[str, Any]:
        chosen = verifier or getattr(request.app.state, STATE_KEY, None)
        if not isinstance(chosen, Verifier):
            raise ConfigError("no Verifier: pass require(verifier=...) or call install(app, v)")
        token = bearer_token(request.headers.get("authorization"))
        if token is None or len(request.headers.getlist("authorization")) > 1:
            raise _reject(request, missing_token())
        try:
            claims = await chosen.averify(token)
            check_subject_kind(claims, subject_kind)
        except InvalidToken as exc:
            raise _reject(request, failure_for(exc)) from None
        if not has_scope(claims, scope):
            raise _reject(request, insufficient_scope(scope or ""))
        return claims

    return dependency
