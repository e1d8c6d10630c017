"""The orders API: a business service that trusts nothing but dojang access tokens.

It never sees a password or a session cookie. Each request carries
``Authorization: Bearer <access token>`` — minted by dojang for the audience ``orders-api``,
put there by the edge proxy (nginx ``auth_request``, Traefik ForwardAuth, Envoy ext_authz) or by
a client that called dojang itself — and the embedded ``Verifier`` checks it locally: signature
against dojang's JWKS, issuer, audience, type, lifetime, and revocations: it follows dojang's
signed revocation feed (server-sent events), so a token whose session was logged out is refused
within milliseconds instead of living until its ``exp``.

Configuration (environment, read once at start-up by ``Settings.from_env``):

* ``DOJANG_ISSUER`` — dojang's public URL (the tokens' ``iss``), default ``http://127.0.0.1:8000``;
* ``DOJANG_JWKS_URL`` — default ``<issuer>/.well-known/jwks.json``;
* ``ORDERS_AUDIENCE`` — this API's audience, default ``orders-api``;
* ``DOJANG_REVOCATIONS`` — the revocation feed, passed to ``Verifier(revocations=…)``. Default:
  ``/events/revocations`` beside the JWKS (on the same dojang origin as ``DOJANG_JWKS_URL``, which
  may be dojang's internal address rather than the public issuer). ``none`` turns it off
  explicitly: tokens are then accepted until they expire, whatever happens to their session;
* ``ORDERS_HOST`` / ``ORDERS_PORT`` — bind address for ``python -m examples.orders_api``;
* ``ORDERS_CORS_ORIGIN`` — optional: the one browser origin (``scheme://host[:port]``) allowed
  to call this API from JavaScript (a single-page app, see ``examples/spa``). Only the
  ``Authorization`` and ``Content-Type`` request headers, no credentials: the token is the
  credential, never a cookie.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from dojang import Verifier
from dojang.errors import InvalidToken
from dojang.verify.fastapi import install, require

__all__ = ["Order", "OrderIn", "Settings", "app", "create_app"]

Claims = dict[str, Any]

DEFAULT_ISSUER = "http://127.0.0.1:8000"
DEFAULT_AUDIENCE = "orders-api"
JWKS_PATH = "/.well-known/jwks.json"
FEED_PATH = "/events/revocations"
# `DOJANG_REVOCATIONS=none`: the one spelling that switches the feed off (nothing implicit).
NO_FEED = "none"

_log = logging.getLogger("orders_api")


@dataclass(frozen=True, slots=True)
class Settings:
    """Where the tokens come from and who they must be for."""

    issuer: str = DEFAULT_ISSUER
    jwks_url: str = f"{DEFAULT_ISSUER}{JWKS_PATH}"
    audience: str = DEFAULT_AUDIENCE
    revocations: str | None = f"{DEFAULT_ISSUER}{FEED_PATH}"
    host: str = "127.0.0.1"
    port: int = 9000
    cors_origin: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the ``DOJANG_*`` / ``ORDERS_*`` variables (``os.environ`` by default)."""
        env = os.environ if env is None else env
        issuer = env.get("DOJANG_ISSUER", DEFAULT_ISSUER).rstrip("/")
        jwks_url = env.get("DOJANG_JWKS_URL") or f"{issuer}{JWKS_PATH}"
        return cls(
            issuer=issuer,
            jwks_url=jwks_url,
            audience=env.get("ORDERS_AUDIENCE", DEFAULT_AUDIENCE),
            revocations=_revocations(env.get("DOJANG_REVOCATIONS"), issuer, jwks_url),
            host=env.get("ORDERS_HOST", "127.0.0.1"),
            port=int(env.get("ORDERS_PORT", "9000")),
            cors_origin=_origin(env.get("ORDERS_CORS_ORIGIN") or None),
        )

    def verifier(self) -> Verifier:
        """The verifier for this API (JWKS fetched lazily, cached, refreshed on unknown kid).

        With a feed it subscribes at once (a daemon thread) and waits briefly for the first
        sync; until then it refuses every token (``revocations_unavailable``): fail closed.
        """
        if self.revocations is None:
            _log.warning(
                "DOJANG_REVOCATIONS=none: tokens stay valid until exp after their session ends"
            )
        return Verifier(
            issuer=self.issuer,
            audience=self.audience,
            jwks=self.jwks_url,
            revocations=self.revocations,
        )


def _revocations(value: str | None, issuer: str, jwks_url: str) -> str | None:
    """``DOJANG_REVOCATIONS``: unset → the feed beside the JWKS; ``none`` → off; else as given."""
    if value is None or not value.strip():
        # The JWKS URL is where this API reaches dojang (behind a proxy it may be dojang's
        # internal address while the issuer is the proxy's public URL); the feed is served
        # by the same dojang, so it lives beside it.
        base = jwks_url[: -len(JWKS_PATH)] if jwks_url.endswith(JWKS_PATH) else issuer
        return f"{base}{FEED_PATH}"
    if value.strip().lower() == NO_FEED:
        return None
    return value.strip()


def _origin(value: str | None) -> str | None:
    """Validate ``ORDERS_CORS_ORIGIN``: exactly one ``http(s)://host[:port]`` origin."""
    if value is None:
        return None
    value = value.rstrip("/")
    parts = urlsplit(value)
    # A wildcard or a list would hand every site the ability to script calls with a token it
    # got hold of; one explicit origin, compared exactly by the browser, is the whole policy.
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or "*" in value
        or "," in value
    ):
        raise ValueError(
            f"ORDERS_CORS_ORIGIN: expected one origin such as https://app.example, got {value!r}"
        )
    return value


class OrderIn(BaseModel):
    """A new order."""

    item: str = Field(min_length=1, max_length=100)
    quantity: int = Field(default=1, ge=1, le=1000)


class Order(OrderIn):
    """A stored order; ``owner`` is the token's ``sub``."""

    id: int
    owner: str


class _Orders:
    """In-memory orders, per owner (a stand-in for the service's real database)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._by_owner: dict[str, list[Order]] = {}

    def list(self, owner: str) -> list[Order]:
        with self._lock:
            return list(self._by_owner.get(owner, []))

    def add(self, owner: str, new: OrderIn) -> Order:
        with self._lock:
            order = Order(id=next(self._ids), owner=owner, **new.model_dump())
            self._by_owner.setdefault(owner, []).append(order)
            return order


def create_app(settings: Settings | None = None, *, verifier: Verifier | None = None) -> FastAPI:
    """Build the API; ``verifier`` overrides the one made from ``settings`` (tests).

    Without ``verifier``, the app builds its own in its lifespan and closes it on shutdown:
    following the feed means a thread and a connection to dojang, which belong to the running
    server, not to importing this module.
    """
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if verifier is not None:
            yield
            return
        # Off the event loop: the constructor waits (briefly) for the feed's first sync.
        own = await asyncio.to_thread(settings.verifier)
        app.state.dojang_verifier = own  # where dojang.verify.fastapi.require looks
        try:
            yield
        finally:
            await asyncio.to_thread(own.close)

    app = FastAPI(title="orders-api", docs_url=None, redoc_url=None, lifespan=lifespan)
    install(app, verifier)
    if settings.cors_origin is not None:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[settings.cors_origin],
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            # Bearer tokens only: no cookies cross to this API, so no Allow-Credentials.
            allow_credentials=False,
            max_age=600,
        )
    orders = _Orders()

    @app.get("/healthz")
    async def healthz(request: Request) -> JSONResponse:
        """Readiness: 200 once the verifier exists and, if it follows the feed, is in sync.

        503 otherwise, so a load balancer (and the tests) wait until this API can both
        accept valid tokens and refuse revoked ones.
        """
        current = getattr(request.app.state, "dojang_verifier", None)
        if not isinstance(current, Verifier):
            return JSONResponse({"status": "starting"}, status_code=503)
        if current.subscription is None:
            mode = "none" if current.revocations is None else "local"
            return JSONResponse({"status": "ok", "revocations": mode})
        try:
            current.subscription.check()
        except InvalidToken as exc:
            return JSONResponse(
                {"status": "unavailable", "revocations": "feed", "detail": exc.message},
                status_code=503,
            )
        return JSONResponse({"status": "ok", "revocations": "feed"})

    @app.get("/orders")
    async def list_orders(claims: Annotated[Claims, Depends(require("orders:read"))]) -> Any:
        """The caller's own orders."""
        return {"user": claims["sub"], "orders": orders.list(claims["sub"])}

    @app.post("/orders", status_code=201)
    async def create_order(
        new: OrderIn, claims: Annotated[Claims, Depends(require("orders:write"))]
    ) -> Order:
        """Place an order for the caller."""
        return orders.add(claims["sub"], new)

    @app.get("/whoami")
    async def whoami(claims: Annotated[Claims, Depends(require())]) -> dict[str, Any]:
        """Who the token says is calling, and from which dojang session."""
        return {
            "sub": claims["sub"],
            "sid": claims.get("sid"),
            "scope": claims.get("scope", ""),
            "client_id": claims.get("client_id"),
        }

    return app


app = create_app()
