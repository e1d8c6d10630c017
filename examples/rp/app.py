"""A tiny relying party (Starlette) that signs people in with dojang over OpenID Connect.

* Its own server-side session (an opaque cookie naming a record in memory), so the RP can end
  a session when dojang tells it to — a signed cookie session could not be ended remotely.
* Login: authorization code + PKCE (S256) through Authlib's OAuth 2.0 client, ``state`` and
  ``nonce`` checked, the ID token verified with dojang's JWKS (``typ: JWT``).
* ``POST /backchannel-logout``: verifies the logout token (``typ: logout+jwt``, events claim,
  ``sid``, no ``nonce``; Back-Channel Logout 1.0 §2.6) and ends every RP session of that sid.
* ``GET /logout``: ends the RP session and sends the browser to dojang's end_session_endpoint
  with ``id_token_hint`` and ``post_logout_redirect_uri``.

Run: ``RP_CLIENT_SECRET=… python -m examples.rp --issuer http://127.0.0.1:8000 --client-id …``
"""

from __future__ import annotations

import html
import secrets
import warnings
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.deprecate import AuthlibDeprecationWarning
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from dojang import Verifier
from dojang.clock import SYSTEM_CLOCK, Clock
from dojang.errors import InvalidToken

with warnings.catch_warnings():
    # Authlib 1.7+ prefers the httpx2 package and warns when it falls back to httpx.
    # (authlib.deprecate installs an "always" filter on import, hence imported first.)
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

COOKIE = "rp_session"
PENDING = "rp_pending"
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@dataclass
class RPConfig:
    """Where dojang is and who this RP is there."""

    issuer: str
    client_id: str
    client_secret: str
    base_url: str  # this RP's own origin, e.g. http://127.0.0.1:8001
    scope: str = "openid profile"

    @property
    def redirect_uri(self) -> str:
        """The callback registered at dojang."""
        return self.base_url + "/callback"


@dataclass
class RPState:
    """In-memory server-side sessions (a real RP would use its database or Redis)."""

    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending: dict[str, dict[str, str]] = field(default_factory=dict)
    logouts: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] | None = None
    jwks: dict[str, Any] | None = None

    def end_sid(self, sid: str) -> int:
        """End every RP session created from dojang session ``sid``."""
        doomed = [k for k, v in self.sessions.items() if v.get("sid") == sid]
        for key in doomed:
            del self.sessions[key]
        return len(doomed)


def create_rp(
    config: RPConfig,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Starlette:
    """Build the RP app. ``transport`` and ``clock`` let tests use an in-process dojang."""
    state = RPState()

    def oauth() -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            config.client_id,
            config.client_secret,
            scope=config.scope,
            redirect_uri=config.redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method name
            transport=transport,
            trust_env=False,
            # dojang access tokens live 60 s; Authlib's default 60 s leeway would call them
            # expired on arrival.
            leeway=5,
        )

    async def discover() -> dict[str, Any]:
        if state.metadata is None:
            async with httpx.AsyncClient(transport=transport, trust_env=False) as http:
                meta = (await http.get(config.issuer + "/.well-known/openid-configuration")).json()
                state.jwks = (await http.get(meta["jwks_uri"])).json()
            state.metadata = meta
        return state.metadata

    def verifier(typ: str) -> Verifier:
        assert state.jwks is not None
        return Verifier(
            issuer=config.issuer, audience=config.client_id, jwks=state.jwks, typ=typ, clock=clock
        )

    def current(request: Request) -> dict[str, Any] | None:
        key = request.cookies.get(COOKIE)
        return state.sessions.get(key) if key else None

    async def home(request: Request) -> Response:
        s = current(request)
        if s is None:
            body = (
                '<p id="status">Not signed in.</p>'
                '<p><a id="login" href="/login">Sign in with dojang</a></p>'
            )
        else:
            body = (
                '<p id="status">Signed in as '
                f'<strong id="who">{html.escape(s["username"])}</strong></p>'
                '<p><a id="logout" href="/logout">Log out</a></p>'
            )
        return HTMLResponse(f"<!doctype html><title>RP</title><h1>Example RP</h1>{body}")

    async def me(request: Request) -> Response:
        s = current(request)
        return JSONResponse(
            {"signed_in": s is not None, **({"sub": s["sub"], "sid": s["sid"]} if s else {})}
        )

    async def login(request: Request) -> Response:
        meta = await discover()
        verifier_value = secrets.token_urlsafe(48)
        nonce = secrets.token_urlsafe(16)
        async with oauth() as client:
            url, st = client.create_authorization_url(
                meta["authorization_endpoint"], code_verifier=verifier_value, nonce=nonce
            )
        key = secrets.token_urlsafe(16)
        state.pending[key] = {"state": st, "nonce": nonce, "verifier": verifier_value}
        response = RedirectResponse(url, status_code=302)
        response.set_cookie(PENDING, key, httponly=True, samesite="lax", max_age=600)
        return response

    async def callback(request: Request) -> Response:
        meta = await discover()
        pending = state.pending.pop(request.cookies.get(PENDING, ""), None)
        if pending is None or request.query_params.get("state") != pending["state"]:
            return HTMLResponse("state mismatch", status_code=400)
        if "error" in request.query_params:
            return HTMLResponse(
                f"error: {html.escape(request.query_params['error'])}", status_code=400
            )
        if request.query_params.get("iss") != config.issuer:  # RFC 9207
            return HTMLResponse("issuer mismatch", status_code=400)
        async with oauth() as client:
            token = await client.fetch_token(
                meta["token_endpoint"],
                code=request.query_params.get("code", ""),
                code_verifier=pending["verifier"],
            )
            info = (
                await client.get(
                    meta["userinfo_endpoint"],
                    headers={"authorization": f"Bearer {token['access_token']}"},
                )
            ).json()
        try:
            claims = verifier("JWT").verify(token["id_token"])
        except InvalidToken as exc:
            return HTMLResponse(f"bad ID token: {html.escape(str(exc))}", status_code=400)
        if claims.get("nonce") != pending["nonce"] or info.get("sub") != claims["sub"]:
            return HTMLResponse("nonce or subject mismatch", status_code=400)
        key = secrets.token_urlsafe(32)
        state.sessions[key] = {
            "sub": claims["sub"],
            "sid": claims["sid"],
            "username": info.get("preferred_username", claims["sub"]),
            "id_token": token["id_token"],
            "refresh_token": token.get("refresh_token"),
        }
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, key, httponly=True, samesite="lax")
        response.delete_cookie(PENDING)
        return response

    async def backchannel_logout(request: Request) -> Response:
        form = await request.form()
        token = form.get("logout_token")
        if not isinstance(token, str):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        await discover()
        try:
            claims = verifier("logout+jwt").verify(token)
        except InvalidToken as exc:
            return JSONResponse({"error": "invalid_request", "detail": str(exc)}, status_code=400)
        events = claims.get("events")
        # BCL 1.0 §2.6: the event member must be there, a nonce must not, sid or sub must.
        if not isinstance(events, dict) or BACKCHANNEL_EVENT not in events or "nonce" in claims:
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        sid = claims.get("sid")
        if not isinstance(sid, str):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        ended = state.end_sid(sid)
        state.logouts.append({"sid": sid, "sub": claims.get("sub"), "ended": ended})
        return Response(status_code=200, headers={"cache-control": "no-store"})

    async def logout(request: Request) -> Response:
        meta = await discover()
        key = request.cookies.get(COOKIE, "")
        s = state.sessions.pop(key, None)
        if s is None:
            return RedirectResponse("/", status_code=303)
        query = urlencode(
            {
                "id_token_hint": s["id_token"],
                "post_logout_redirect_uri": config.base_url + "/signed-out",
                "state": secrets.token_urlsafe(8),
            }
        )
        response = RedirectResponse(meta["end_session_endpoint"] + "?" + query, status_code=303)
        response.delete_cookie(COOKIE)
        return response

    async def signed_out(request: Request) -> Response:
        return HTMLResponse('<!doctype html><title>RP</title><p id="status">Signed out.</p>')

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/me", me),
            Route("/login", login),
            Route("/callback", callback),
            Route("/backchannel-logout", backchannel_logout, methods=["POST"]),
            Route("/logout", logout),
            Route("/signed-out", signed_out),
        ]
    )
    app.state.rp = state
    return app
