"""WSGI middleware: verify ``Authorization: Bearer`` and put the claims in
``environ["dojang.claims"]`` (Flask: ``request.environ["dojang.claims"]``)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any

from dojang.errors import InvalidToken
from dojang.verify.errors_http import bearer_token, failure_for, missing_token
from dojang.verify.verifier import Verifier

__all__ = ["CLAIMS_KEY", "JWTMiddleware"]

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

CLAIMS_KEY = "dojang.claims"


class JWTMiddleware:
    """Require a valid bearer token on every request except ``exempt_paths`` (exact matches)."""

    def __init__(
        self, app: WSGIApp, verifier: Verifier, *, exempt_paths: Collection[str] = ()
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.exempt_paths = frozenset(exempt_paths)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in self.exempt_paths:
            return self.app(environ, start_response)
        token = bearer_token(environ.get("HTTP_AUTHORIZATION"))
        if token is None:
            failure = missing_token()
        else:
            try:
                environ[CLAIMS_KEY] = self.verifier.verify(token)
            except InvalidToken as exc:
                failure = failure_for(exc)
            else:
                return self.app(environ, start_response)
        body = failure.body()
        headers = [*failure.headers(), ("content-length", str(len(body)))]
        start_response(f"{failure.status} {failure.reason}", headers)
        return [body]
