"""Token endpoints: ``POST /api/v1/tokens`` for sessions, the OAuth 2.0 endpoints for services,
and the discovery documents (JWKS, RFC 8414 metadata)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dojang.oidc import client_auth
from dojang.oidc import grants as oidc_grants
from dojang.server import oauth
from dojang.server.bodies import read_form, read_json
from dojang.server.context import (
    audit,
    check_csrf_token,
    check_same_origin,
    current_session,
    services,
)
from dojang.server.oauth import OAuthError
from dojang.server.responses import HTTPError, json_ok

router = APIRouter(tags=["tokens"])
FORM_LIMIT = 16 * 1024
CLIENT_CREDENTIALS = "client_credentials"

JWKS_MAX_AGE = 300
"""Seconds a cache may keep ``/.well-known/jwks.json``; ``dojang keys rotate`` refuses to
promote a next key published for less than this (a cache could still lack it)."""


class TokenRequest(BaseModel):
    """Body of ``POST /api/v1/tokens``."""

    model_config = ConfigDict(extra="forbid")
    audience: str = Field(min_length=1, max_length=128)
    scope: str = Field(default="", max_length=2048)


class TokenResponse(BaseModel):
    """An access token for the caller's session."""

    access_token: str
    token_type: str
    expires_in: int
    scope: str | None = None


def oauth_error(exc: OAuthError) -> JSONResponse:
    """RFC 6749 §5.2 error JSON (plus our uniform ``detail``), never cached."""
    return JSONResponse(
        {"error": exc.code, "error_description": exc.description, "detail": exc.description},
        status_code=exc.status,
        headers={"cache-control": "no-store", "pragma": "no-cache", **exc.headers},
    )


@router.post(
    "/api/v1/tokens",
    response_model=TokenResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": TokenRequest.model_json_schema()}},
        }
    },
)
async def mint_for_session(request: Request) -> Response:
    """Session cookie + ``X-CSRF-Token`` → a short-lived access token for one audience."""
    check_same_origin(request)
    _, session = await current_session(request)
    check_csrf_token(session, request.headers.get("x-csrf-token"))
    body = await read_json(request, TokenRequest, 8192)
    svc = services(request)
    audience = await svc.clients.get_audience(body.audience)
    if audience is None:
        raise HTTPError(400, "invalid_target", f"unknown audience {body.audience[:128]!r}")
    requested = set(body.scope.split())
    if not requested <= audience.scopes:
        extra = " ".join(sorted(requested - audience.scopes))[:200]
        raise HTTPError(400, "invalid_scope", f"audience does not grant: {extra}")
    scope = " ".join(sorted(requested))
    token = svc.issuer.access_token(
        sub=session.user_id,
        audience=audience.name,
        scope=scope,
        sid=session.sid,
        client_id=oauth.SESSION_CLIENT_ID,
    )
    await audit(
        request,
        "token.minted",
        actor=session.user_id,
        subject=session.user_id,
        sid=session.sid,
        kind="access",
        client=oauth.SESSION_CLIENT_ID,
        audience=audience.name,
        scope=scope,
    )
    out: dict[str, Any] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": svc.issuer.access_ttl,
    }
    if scope:
        out["scope"] = scope
    return json_ok(out)


async def _oauth_form(request: Request) -> dict[str, str]:
    try:
        return await read_form(request, FORM_LIMIT)
    except HTTPError as exc:
        # RFC 6749 §5.2 answers malformed requests with 400; only an oversized body keeps 413.
        raise OAuthError("invalid_request", exc.detail, 413 if exc.status == 413 else 400) from None


@router.post("/oauth2/token")
async def token_endpoint(request: Request) -> Response:
    """RFC 6749 token endpoint: ``client_credentials``, RFC 8693 token exchange, and the OIDC
    grants ``authorization_code`` and ``refresh_token``."""
    svc = services(request)
    try:
        form = await _oauth_form(request)
        grant = form.get("grant_type")
        if not grant:
            raise OAuthError("invalid_request", "grant_type is required")
        if grant in oidc_grants.GRANTS:
            # Before client authentication: public OIDC clients have no secret (PKCE instead),
            # and the OIDC grant code authenticates confidential ones itself.
            body = await oidc_grants.token_request(svc, request.headers.get("authorization"), form)
            return JSONResponse(body, headers={"cache-control": "no-store", "pragma": "no-cache"})
        if grant not in (CLIENT_CREDENTIALS, oauth.TOKEN_EXCHANGE):
            raise OAuthError("unsupported_grant_type", f"grant_type {grant[:64]!r} not supported")
        client = await oauth.authenticate_client(svc, request.headers.get("authorization"), form)
        if grant == CLIENT_CREDENTIALS:
            body, audience = await oauth.client_credentials(svc, client, form)
            await audit(
                request,
                "token.minted",
                actor=client.client_id,
                subject=client.client_id,
                kind="service",
                client=client.client_id,
                audience=audience,
                scope=body.get("scope", ""),
            )
        else:
            # ``subject``: the verified claims of the exchanged token (whose it was, for
            # the record; never the token itself).
            body, subject = await oauth.token_exchange(svc, client, form)
            sub, sid = subject.get("sub"), subject.get("sid")
            await audit(
                request,
                "token.exchanged",
                actor=client.client_id,
                subject=sub if isinstance(sub, str) else None,
                sid=sid if isinstance(sid, str) else None,
                client=client.client_id,
                subject_client=subject.get("client_id"),
                audience=form.get("audience"),
                scope=body.get("scope", ""),
            )
    except OAuthError as exc:
        if exc.code == "invalid_client":
            await audit(request, "client.auth_failure", outcome="failure")
        return oauth_error(exc)
    return JSONResponse(body, headers={"cache-control": "no-store", "pragma": "no-cache"})


@router.post("/oauth2/introspect")
async def introspection_endpoint(request: Request) -> Response:
    """RFC 7662 introspection for authenticated clients."""
    svc = services(request)
    try:
        form = await _oauth_form(request)
        client = await oauth.authenticate_client(svc, request.headers.get("authorization"), form)
        token = form.get("token")
        if not token:
            raise OAuthError("invalid_request", "token is required")
    except OAuthError as exc:
        return oauth_error(exc)
    return json_ok(await oauth.introspect(svc, client, token))


@router.post("/oauth2/revoke")
async def revocation_endpoint(request: Request) -> Response:
    """RFC 7009 revocation: always 200 for an authenticated client (§2.2)."""
    svc = services(request)
    try:
        form = await _oauth_form(request)
        client = await oauth.authenticate_client(svc, request.headers.get("authorization"), form)
        token = form.get("token")
        if not token:
            raise OAuthError("invalid_request", "token is required")
        hint = form.get("token_type_hint")
        if hint not in (None, "access_token", "refresh_token"):
            raise OAuthError("unsupported_token_type", f"token_type_hint {hint[:32]!r}")
    except OAuthError as exc:
        return oauth_error(exc)
    await oauth.revoke(svc, client, token)
    await audit(request, "token.revocation_requested", actor=client.client_id)
    return Response(status_code=200, headers={"cache-control": "no-store"})


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> Response:
    """The public signing keys (next, active and still-needed retired ones)."""
    svc = services(request)
    # Five minutes: `dojang keys rotate` waits at least this long after publishing a next key
    # before it signs, so every verifier has seen a key before the first token it signs.
    # Retired keys past their keep-until time are left out at once, purged from the file or not.
    return JSONResponse(
        svc.keyset.public_jwks(now=svc.clock.now()),
        headers={"cache-control": f"public, max-age={JWKS_MAX_AGE}"},
    )


@router.get("/.well-known/oauth-authorization-server")
async def metadata(request: Request) -> Response:
    """RFC 8414 authorization server metadata."""
    base = services(request).settings.issuer
    return JSONResponse(
        {
            "issuer": base,
            "token_endpoint": f"{base}/oauth2/token",
            "jwks_uri": f"{base}/.well-known/jwks.json",
            "revocation_endpoint": f"{base}/oauth2/revoke",
            "introspection_endpoint": f"{base}/oauth2/introspect",
            "grant_types_supported": ["client_credentials", oauth.TOKEN_EXCHANGE],
            # private_key_jwt: OIDC clients registered for it (dojang.oidc.client_auth).
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ],
            "revocation_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
            ],
            "introspection_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
            ],
            "response_types_supported": [],
            "token_endpoint_auth_signing_alg_values_supported": list(
                client_auth.SIGNING_ALGORITHMS
            ),
        },
        headers={"cache-control": "public, max-age=3600"},
    )
