"""ASGI middleware: verify ``Authorization: Bearer`` on every HTTP request.

A plain ASGI class (like ``starlette.middleware.sessions``): it handles ``http`` scopes and passes
``lifespan`` and ``websocket`` scopes through untouched (authenticate websockets in the endpoint).
On success the claims land in ``scope["state"]["dojang_claims"]`` (``request.state`` in
Starlette/FastAPI); on failure it answers itself with the shared RFC 6750 mapping.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

from dojang.errors import InvalidToken
from dojang.verify.errors_http import AuthFailure, bearer_token, failure_for, missing_token
from dojang.verify.verifier import Verifier

__all__ = ["CLAIMS_KEY", "JWTMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CLAIMS_KEY = "dojang_claims"


class JWTMiddleware:
    """Require a valid bearer token on HTTP requests except ``exempt_paths`` (exact matches).

    Exempt paths are compared exactly, not by prefix: prefix rules are easy to get wrong with
    unnormalized paths (``/public/../admin``).
    """

    def __init__(self, app: ASGIApp, verifier: Verifier, *, exempt_paths: Collection[str] = ()):
        self.app = app
        self.verifier = verifier
        self.exempt_paths = frozenset(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        authorization: str | None = None
        for name, value in scope.get("headers", ()):
            if name.lower() == b"authorization":
                if authorization is not None:  # two Authorization headers: ambiguous, refuse
                    authorization = ""
                    break
                authorization = value.decode("latin-1")
        token = bearer_token(authorization)
        if token is None:
            await _reject(send, missing_token())
            return
        try:
            claims = await self.verifier.averify(token)
        except InvalidToken as exc:
            await _reject(send, failure_for(exc))
            return
        scope.setdefault("state", {})[CLAIMS_KEY] = claims
        await self.app(scope, receive, send)


async def _reject(send: Send, failure: AuthFailure) -> None:
    body = failure.body()
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in failure.headers()]
    headers.append((b"content-length", str(len(body)).encode("ascii")))
    await send({"type": "http.response.start", "status": failure.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
