"""Assemble the ASGI application.

Layers, outermost first: security headers → body/route dispatch (``/auth/check`` goes straight
to its lean handler) → FastAPI (pages, JSON API, OpenAPI) with one uniform error mapping.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from dojang.config import Settings
from dojang.errors import DojangError
from dojang.server.background import background_tasks
from dojang.server.forward_auth import ForwardAuth
from dojang.server.headers import SecurityHeadersMiddleware, security_headers
from dojang.server.pages import STATIC, render
from dojang.server.responses import HTTPError, dojang_error_response, error_response
from dojang.server.routes import api_sessions, events, oidc, ops, pages, revocations, spa, tokens
from dojang.server.services import Services, build_services
from dojang.server.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("dojang.server")

_MACHINE_PREFIXES = ("/api/", "/oauth2/", "/auth/", "/.well-known/", "/events/", "/openapi")


def _wants_page(request: Request) -> bool:
    """Browsers navigating our pages get an HTML error page; everything else gets JSON."""
    if request.url.path.startswith(_MACHINE_PREFIXES):
        return False
    return "text/html" in request.headers.get("accept", "")


def _error(
    request: Request, status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    if _wants_page(request):
        titles = {
            401: "Please log in",
            403: "Request refused",
            404: "Not found",
            413: "Too large",
            429: "Slow down",
        }
        return render(
            "error.html",
            status=status,
            headers=headers,
            title=titles.get(status, "Something went wrong"),
            detail=detail,
            user=None,
        )
    return error_response(status, code, detail, headers)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPError)
    return _error(request, exc.status, exc.code, exc.detail, exc.headers)


async def _on_dojang_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DojangError)
    svc = getattr(request.app.state, "services", None)
    rendered = dojang_error_response(exc, svc.metrics if svc is not None else None)
    if _wants_page(request):
        return _error(request, rendered.status_code, exc.code, exc.message)
    return rendered


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return _error(request, 400, "invalid_request", f"{where}: {first.get('msg', 'invalid')}")


async def _on_starlette_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    return _error(
        request,
        exc.status_code,
        codes.get(exc.status_code, "http_error"),
        str(exc.detail),
        dict(exc.headers or {}),
    )


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # Never a traceback to the client; the log gets it (without request bodies).
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal error")


def _install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPError, _on_http_error)
    app.add_exception_handler(DojangError, _on_dojang_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_starlette_http)
    app.add_exception_handler(Exception, _on_unexpected)


Endpoint = Callable[[Request], Awaitable[Response]]

# Machine endpoints whose handler takes a Request and returns a Response, served without
# FastAPI's routing and middleware stack (about a fifth of a token request's CPU time). They
# stay registered with FastAPI too, for the OpenAPI document and for other methods (405).
LEAN_POST_ROUTES: dict[str, Endpoint] = {"/oauth2/token": tokens.token_endpoint}


class LeanRoute:
    """Serve one lean endpoint: same errors as the FastAPI handlers, same security headers."""

    def __init__(self, endpoint: Endpoint, api: FastAPI, headers: list[tuple[bytes, bytes]]):
        self.endpoint = endpoint
        self.api = api
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self.api  # Request.app → services
        request = Request(scope, receive)
        # The very handlers FastAPI uses for every other route, so answers cannot differ.
        try:
            response = await self.endpoint(request)
        except HTTPError as exc:
            response = await _on_http_error(request, exc)
        except DojangError as exc:
            response = await _on_dojang_error(request, exc)
        except Exception as exc:
            # Fails closed: logged with its traceback, answered 500 with a JSON error and
            # nothing of the exception (the same as FastAPI's catch-all handler above).
            response = await _on_unexpected(request, exc)
        names = {name.lower() for name, _ in response.raw_headers}
        response.raw_headers.extend(h for h in self.headers if h[0] not in names)
        await response(scope, receive, send)


class DojangApp:
    """The outer ASGI callable: lean paths for ``/auth/check`` and the token endpoint,
    FastAPI for the rest."""

    def __init__(
        self,
        app: ASGIApp,
        forward_auth: ForwardAuth,
        api: FastAPI,
        lean_post: dict[str, LeanRoute] | None = None,
    ) -> None:
        self.app = app
        self.forward_auth = forward_auth
        self.api = api
        self.lean_post = lean_post or {}

    @property
    def state(self) -> Any:
        """The FastAPI app's state (tests reach ``services`` through it)."""
        return self.api.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path == "/auth/check":
                await self.forward_auth(scope, receive, send)
                return
            lean = self.lean_post.get(path)
            if lean is not None and scope["method"] == "POST":
                await lean(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(settings: Settings, *, services: Services | None = None) -> DojangApp:
    """Build the application. With ``services`` given (tests), the lifespan does not own them."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services is not None:
            app.state.services = services
            yield
            return
        built = await build_services(settings)
        app.state.services = built
        # Everything allocated so far lives as long as the process: move it out of the
        # collector's way, so cyclic GC passes during requests scan only request garbage.
        gc.freeze()
        try:
            async with background_tasks(built):
                yield
        finally:
            await built.close()

    api = FastAPI(
        title="dojang",
        version="0.1.0",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        description="Session-first authentication server: sessions for people, "
        "short-lived JWTs for services.",
    )
    if services is not None:
        api.state.services = services
    _install_error_handlers(api)
    api.include_router(pages.router)
    api.include_router(api_sessions.router)
    api.include_router(ops.router)
    api.include_router(tokens.router)
    api.include_router(revocations.router)
    api.include_router(events.router)
    api.include_router(oidc.router)
    if settings.demo:  # the examples/spa page, with its own CSP (see routes/spa.py)
        api.include_router(spa.router)
    api.mount("/static", StaticFiles(directory=STATIC), name="static")

    def get_services() -> Services:
        svc: Services = api.state.services
        return svc

    # The forward-auth handler sets the same security headers itself, from a pre-built list,
    # so the hottest path skips the per-response header-merging wrapper.
    headers = security_headers(https=settings.is_https)
    return DojangApp(
        SecurityHeadersMiddleware(api, https=settings.is_https),
        ForwardAuth(get_services, extra_headers=headers),
        api,
        {path: LeanRoute(endpoint, api, headers) for path, endpoint in LEAN_POST_ROUTES.items()},
    )
