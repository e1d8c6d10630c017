"""OAuth 2.0 pieces of the server: client authentication, grants, introspection, revocation.

RFC 6749 (client_credentials, error codes), RFC 8693 (token exchange), RFC 7009 (revocation),
RFC 7662 (introspection). Routes in ``routes/oauth.py`` only translate HTTP to these calls.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote_plus

from dojang.accounts.clients import Client, InvalidClient
from dojang.errors import InvalidToken, RevokedToken
from dojang.events import Event
from dojang.jose import decode_segments, parse_json_object
from dojang.server.services import Services
from dojang.tokens import normalize_scope

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - a URN
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a URN
SESSION_CLIENT_ID = "dojang-session"


class OAuthError(Exception):
    """An RFC 6749 §5.2 error: ``code`` is the spec's error code."""

    def __init__(
        self, code: str, description: str, status: int = 400, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.status = status
        self.headers = headers or {}


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        raise OAuthError(
            "invalid_client",
            "unsupported Authorization scheme",
            401,
            {"www-authenticate": 'Basic realm="dojang"'},
        )
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError(
            "invalid_client",
            "malformed Basic credentials",
            401,
            {"www-authenticate": 'Basic realm="dojang"'},
        ) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError(
            "invalid_client",
            "malformed Basic credentials",
            401,
            {"www-authenticate": 'Basic realm="dojang"'},
        )
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote_plus(client_id), unquote_plus(secret)


async def authenticate_client(
    svc: Services, authorization: str | None, form: dict[str, str]
) -> Client:
    """``client_secret_basic`` or ``client_secret_post`` — exactly one of them."""
    in_body = "client_secret" in form
    if authorization and in_body:
        raise OAuthError("invalid_request", "use one client authentication method, not two")
    if authorization:
        client_id, secret = _basic_credentials(authorization)
        if "client_id" in form and form["client_id"] != client_id:
            raise OAuthError("invalid_request", "client_id does not match the credentials")
    elif in_body:
        client_id, secret = form.get("client_id", ""), form["client_secret"]
    else:
        raise OAuthError(
            "invalid_client",
            "client authentication required",
            401,
            {"www-authenticate": 'Basic realm="dojang"'},
        )
    try:
        return await svc.clients.authenticate(client_id, secret)
    except InvalidClient:
        raise OAuthError(
            "invalid_client",
            "client authentication failed",
            401,
            {"www-authenticate": 'Basic realm="dojang"'},
        ) from None


def _parse_scope(requested: str) -> set[str]:
    try:
        return set(normalize_scope(requested).split())
    except InvalidToken:
        raise OAuthError("invalid_scope", "malformed scope") from None


def _require_within(scopes: set[str], allowed: frozenset[str], refusal: str) -> None:
    if not scopes <= allowed:
        extra = " ".join(sorted(scopes - allowed))[:200]
        raise OAuthError("invalid_scope", f"{refusal}: {extra}")


def _requested_scope(requested: str | None, allowed: frozenset[str]) -> str:
    if requested is None:
        return normalize_scope(sorted(allowed))
    scopes = _parse_scope(requested)
    _require_within(scopes, allowed, "scope not allowed")
    return normalize_scope(sorted(scopes))


def _token_response(token: str, ttl: int, scope: str) -> dict[str, Any]:
    body: dict[str, Any] = {"access_token": token, "token_type": "Bearer", "expires_in": ttl}
    if scope:
        body["scope"] = scope
    return body


async def client_credentials(
    svc: Services, client: Client, form: dict[str, str]
) -> tuple[dict[str, Any], str]:
    """RFC 6749 §4.4: a service token for one of the client's audiences.

    Returns the token response and the audience chosen (for the audit record).
    """
    audience = form.get("audience") or form.get("resource")
    if audience is None:
        if len(client.grants) != 1:
            raise OAuthError("invalid_request", "name the audience (one of the client's)")
        audience = next(iter(client.grants))
    if audience not in client.grants:
        raise OAuthError("invalid_target", f"client may not get tokens for {audience[:128]!r}")
    scope = _requested_scope(form.get("scope"), client.grants[audience])
    ttl = svc.issuer.access_ttl
    token = svc.issuer.service_token(client_id=client.client_id, audience=audience, scope=scope)
    return _token_response(token, ttl, scope), audience


async def verify_own_access_token(
    svc: Services, token: str, audience: str | None = None
) -> dict[str, Any]:
    """Fully verify an access token we issued, including session liveness and revocation.

    The audience is taken from the (unverified) payload only to pick the verifier; the
    verifier then checks it exactly, with signature, ``iss``, ``typ`` and lifetimes.
    """
    if audience is None:
        _, payload, _, _ = decode_segments(token)
        aud = parse_json_object(payload).get("aud")
        if not isinstance(aud, str) or await svc.clients.get_audience(aud) is None:
            raise InvalidToken("token is not for a registered audience")
        audience = aud
    claims = svc.verifier_for(audience).verify(token)
    sid = claims.get("sid")
    if isinstance(sid, str):
        # Ending a session kills its tokens here at once, even ones minted by another worker.
        session = await svc.sessions.store.get_by_sid(sid)
        if session is None or session.is_expired(svc.clock.now()):
            raise RevokedToken("the session that minted this token has ended")
    jti = claims.get("jti")
    if isinstance(jti, str) and await svc.clients.is_jti_revoked(jti):
        raise RevokedToken("token was revoked")
    return claims


def _actor(client_id: str, prior: object) -> dict[str, Any]:
    if isinstance(prior, dict) and prior.get("sub") == client_id:
        return dict(prior)  # this client already is the current actor: no duplicate link
    act: dict[str, Any] = {"sub": client_id}
    if isinstance(prior, dict):
        act["act"] = prior  # RFC 8693 §4.1: the chain of delegation, newest outermost
    return act


def _exchanged_scope(requested: str | None, granted: frozenset[str], subject: object) -> str:
    """The scope of an exchanged token: within the client's grant AND the subject token's scope.

    Without a ``scope`` parameter the result is everything both allow. It may never be empty:
    an exchange must delegate something the subject token actually carries.
    """
    held = frozenset(subject.split()) if isinstance(subject, str) else frozenset()
    if requested is None:
        scopes = set(granted & held)
    else:
        scopes = _parse_scope(requested)
        _require_within(scopes, granted, "scope not allowed for this client")
        # Exchange narrows, never widens: what the user did not put in the subject token
        # (an orders:read token) cannot appear in the new one (payments:charge).
        _require_within(scopes, held, "scope not granted by the subject_token")
    if not scopes:
        raise OAuthError(
            "invalid_scope", "the subject_token grants no scope this client may use there"
        )
    return normalize_scope(sorted(scopes))


async def token_exchange(
    svc: Services, client: Client, form: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """RFC 8693: a service that received a user's token gets one for a downstream API.

    Exchange only ever narrows (docs/token-exchange.md):

    1. the client must run an API (``serves``, else ``unauthorized_client``) and the subject
       token must be a live access token addressed to exactly that API (``invalid_grant``
       otherwise): a client can only exchange tokens that were sent to it;
    2. the new ``audience`` must be one the client is granted (``invalid_target``);
    3. the new scope lies within the client's grant for that audience *and* within the
       subject token's own ``scope`` (``invalid_scope``), and is not empty;
    4. the new token keeps ``sub`` and ``sid`` (ending the session kills it too), names the
       client in ``act`` (RFC 8693 §4.1) and never outlives the subject token.

    Returns the token response and the subject token's verified claims (for the audit
    record, so nobody decodes the token a second time).
    """
    if client.serves is None:
        raise OAuthError("unauthorized_client", "client is not registered as serving an API")
    subject = form.get("subject_token")
    if not subject:
        raise OAuthError("invalid_request", "subject_token is required")
    if form.get("subject_token_type") != ACCESS_TOKEN_TYPE:
        raise OAuthError("invalid_request", f"subject_token_type must be {ACCESS_TOKEN_TYPE}")
    if form.get("requested_token_type", ACCESS_TOKEN_TYPE) != ACCESS_TOKEN_TYPE:
        raise OAuthError("invalid_request", "only access tokens can be requested")
    if "actor_token" in form:
        raise OAuthError("invalid_request", "actor_token is not supported")
    audience = form.get("audience")
    if not audience:
        raise OAuthError("invalid_request", "audience is required")
    if audience not in client.grants:
        raise OAuthError("invalid_target", f"client may not get tokens for {audience[:128]!r}")
    try:
        claims = await verify_own_access_token(svc, subject, client.serves)
    except InvalidToken as exc:
        raise OAuthError("invalid_grant", f"subject_token rejected: {exc.message}") from None
    scope = _exchanged_scope(form.get("scope"), client.grants[audience], claims.get("scope"))
    remaining = int(float(claims["exp"]) - svc.clock.now())
    ttl = min(svc.issuer.access_ttl, remaining)
    if ttl < 1:
        raise OAuthError("invalid_grant", "subject_token is about to expire")
    sid = claims.get("sid")
    sub = str(claims["sub"])
    if not isinstance(sid, str) and sub == client.client_id:
        # The client's own service token: acting for itself is client_credentials, not
        # delegation (and the result would be indistinguishable from a service token).
        raise OAuthError("invalid_grant", "a client cannot exchange its own service token")
    try:
        token = svc.issuer.access_token(
            sub=sub,
            audience=audience,
            scope=scope,
            sid=sid if isinstance(sid, str) else None,
            ttl=ttl,
            client_id=client.client_id,
            act=_actor(client.client_id, claims.get("act")),
        )
    except InvalidToken as exc:  # e.g. a delegation chain grown past the token size cap
        raise OAuthError(
            "invalid_grant", f"cannot issue the exchanged token: {exc.message}"
        ) from None
    body = _token_response(token, ttl, scope)
    body["issued_token_type"] = ACCESS_TOKEN_TYPE
    return body, claims


async def introspect(svc: Services, client: Client, token: str) -> dict[str, Any]:
    """RFC 7662: active tokens addressed to this client's API (or minted for it) only."""
    try:
        claims = await verify_own_access_token(svc, token)
    except InvalidToken:
        return {"active": False}
    if claims.get("aud") != client.serves and claims.get("client_id") != client.client_id:
        return {"active": False}  # no oracle for other parties' tokens
    keep = ("sub", "aud", "iss", "exp", "iat", "nbf", "jti", "scope", "client_id", "sid", "act")
    return {"active": True, "token_type": "Bearer", **{k: claims[k] for k in keep if k in claims}}


async def revoke(svc: Services, client: Client, token: str) -> None:
    """RFC 7009: revoke one of this client's access tokens; silently ignore anything else."""
    try:
        claims = await verify_own_access_token(svc, token)
    except InvalidToken:
        return  # §2.2: invalid tokens do not cause an error response
    if claims.get("client_id") != client.client_id and claims.get("aud") != client.serves:
        return
    jti, exp = claims.get("jti"), claims.get("exp")
    if isinstance(jti, str) and isinstance(exp, int | float):
        await svc.clients.revoke_jti(jti, float(exp))
        svc.revocations.add_jti(jti, float(exp))
        await svc.publish([Event("token.revoked", {"jti": jti}, float(exp), svc.clock.now())])
