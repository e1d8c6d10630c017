"""The OIDC grants at the token endpoint: ``authorization_code`` (RFC 6749 §4.1.3 with PKCE,
RFC 7636 §4.5) and ``refresh_token`` (RFC 6749 §6) with rotation and reuse detection.

Everything a grant hands out is bound to the dojang session that authorised it: the access
token and ID token carry its ``sid``, refresh tokens die with it, and a replayed refresh token
ends that session (OAuth 2.0 Security BCP §4.14.2).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

from dojang.accounts.clients import OIDCClient
from dojang.events import Event
from dojang.jose import decode_segments, parse_json_object
from dojang.oidc import client_auth, pkce
from dojang.oidc.ids import hash_secret, new_id, new_secret
from dojang.oidc.logout import on_sessions_ended
from dojang.oidc.store import CodeRecord, OIDCStore, RefreshRecord
from dojang.oidc.tokens import id_token
from dojang.server import oauth
from dojang.server.oauth import OAuthError
from dojang.sessions.model import Session

log = logging.getLogger("dojang.security")

AUTHORIZATION_CODE: Final = "authorization_code"
REFRESH_TOKEN: Final = "refresh_token"  # noqa: S105 - a grant type name
GRANTS: Final = frozenset({AUTHORIZATION_CODE, REFRESH_TOKEN})
CODE_TTL: Final = 60  # RFC 6749 §4.1.2: short-lived, "maximum of 10 minutes RECOMMENDED"
USERINFO_PATH: Final = "/oauth2/userinfo"

if TYPE_CHECKING:
    from dojang.server.services import Services


def userinfo_audience(svc: Services) -> str:
    """The ``aud`` of access tokens for the UserInfo endpoint: its URL, which can never be a
    registered audience name (those have no ``/``)."""
    return svc.settings.issuer + USERINFO_PATH


def store(svc: Services) -> OIDCStore:
    """The OIDC store of this server."""
    return svc.oidc


async def authenticate(
    svc: Services, authorization: str | None, form: dict[str, str]
) -> OIDCClient:
    """Identify the client at the token endpoint (RFC 6749 §2.3, §3.2.1).

    Confidential clients authenticate with their registered method: their secret
    (``client_secret_basic``, or ``_post``) or a JWT signed with one of their registered keys
    (``private_key_jwt``, see ``client_auth``); public clients send only ``client_id`` and prove
    possession of the code with PKCE. Exactly one method per request.
    """
    if client_auth.is_assertion_request(form):
        if authorization or "client_secret" in form:
            raise OAuthError("invalid_request", "use one client authentication method, not two")
        return await client_auth.authenticate_assertion(svc, form)
    if authorization or "client_secret" in form:
        client = await oauth.authenticate_client(svc, authorization, form)
        found = await svc.clients.get_oidc_client(client.client_id)
        if found is None or found.is_public:
            raise OAuthError("unauthorized_client", "client is not registered for this grant")
        if not found.uses_secret:
            # Unreachable while such clients store an unmatchable secret hash; kept so the
            # registered method decides even if a secret hash ever were set by other means.
            raise OAuthError(
                "invalid_client",
                "client authentication failed",
                401,
                {"www-authenticate": 'Basic realm="dojang"'},
            )
        return found
    found = await svc.clients.get_oidc_client(form.get("client_id", ""))
    if found is None or not found.is_public:
        raise OAuthError(
            "invalid_client",
            "client authentication required",
            401,
            {"www-authenticate": 'Basic realm="dojang"'},
        )
    return found


async def token_request(
    svc: Services, authorization: str | None, form: dict[str, str]
) -> dict[str, Any]:
    """The whole token request for an OIDC grant: authenticate, then ``handle_grant``."""
    client = await authenticate(svc, authorization, form)
    return await handle_grant(svc, client, form)


async def handle_grant(svc: Services, client: OIDCClient, form: dict[str, str]) -> dict[str, Any]:
    """Run ``authorization_code`` or ``refresh_token`` for an authenticated client."""
    grant = form.get("grant_type")
    if grant == AUTHORIZATION_CODE:
        return await _authorization_code(svc, client, form)
    if grant == REFRESH_TOKEN:
        return await _refresh(svc, client, form)
    raise OAuthError("unsupported_grant_type", "grant_type not supported here")


async def issue_code(svc: Services, record: CodeRecord) -> str:
    """Store a new single-use code (hashed) and remember that the client holds the session."""
    code = new_secret()
    db = store(svc)
    await db.save_code(hash_secret(code), record)
    await db.add_client_session(record.sid, record.client_id, record.user_id)
    return code


async def _live_session(svc: Services, sid: str) -> Session | None:
    session = await svc.sessions.store.get_by_sid(sid)
    if session is None or session.is_expired(svc.clock.now()):
        return None
    return session


async def _revoke_access(svc: Services, jti: str | None, exp: float | None) -> None:
    if jti is None or exp is None or exp <= svc.clock.now():
        return
    await svc.clients.revoke_jti(jti, exp)
    svc.revocations.add_jti(jti, exp)
    await svc.events.append([Event("token.revoked", {"jti": jti}, exp, svc.clock.now())])


async def _authorization_code(
    svc: Services, client: OIDCClient, form: dict[str, str]
) -> dict[str, Any]:
    code = form.get("code")
    if not code or len(code) > 128:
        raise OAuthError("invalid_request", "code is required")
    db = store(svc)
    code_hash = hash_secret(code)
    record = await db.get_code(code_hash)
    # RFC 6749 §5.2: anything wrong with the code itself is invalid_grant, one message for all.
    if record is None or record.client_id != client.client_id:
        raise OAuthError("invalid_grant", "authorization code is invalid")
    if record.used_at is not None:
        # RFC 6749 §4.1.2: a code used twice revokes what it produced. Possibly an attacker
        # with a stolen code racing the client; neither gets to keep the tokens.
        log.warning("authorization code replayed by client %s", client.client_id)
        if record.family_id is not None:
            await db.revoke_family(record.family_id)
        await _revoke_access(svc, record.access_jti, record.access_exp)
        raise OAuthError("invalid_grant", "authorization code is invalid")
    if record.expires_at <= svc.clock.now():
        raise OAuthError("invalid_grant", "authorization code is invalid")
    # Any redemption attempt burns the code, so a wrong verifier cannot be retried.
    if not await db.consume_code(code_hash):
        raise OAuthError("invalid_grant", "authorization code is invalid")
    if form.get("redirect_uri") != record.redirect_uri:  # RFC 6749 §4.1.3
        raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
    if not pkce.verify(form.get("code_verifier"), record.code_challenge):  # RFC 7636 §4.6
        raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
    session = await _live_session(svc, record.sid)
    if session is None:
        raise OAuthError("invalid_grant", "the session that authorised this code has ended")
    family_id = new_id()
    body = await _mint(
        svc,
        client,
        session=session,
        scope=record.scope,
        family_id=family_id,
        auth_time=record.auth_time,
        amr=record.amr,
        nonce=record.nonce,
    )
    # Remembered so a replayed code can revoke what it produced (RFC 6749 §4.1.2).
    claims = parse_json_object(decode_segments(body["access_token"])[1])
    jti, exp = claims.get("jti"), claims.get("exp")
    await db.record_products(
        code_hash,
        family_id=family_id,
        access_jti=str(jti),
        access_exp=float(exp)
        if isinstance(exp, int | float)
        else svc.clock.now() + svc.issuer.access_ttl,
    )
    await svc.audit.record(
        "oidc.code_redeemed", actor=client.client_id, subject=session.user_id, sid=session.sid
    )
    return body


async def _refresh(svc: Services, client: OIDCClient, form: dict[str, str]) -> dict[str, Any]:
    token = form.get("refresh_token")
    if not token or len(token) > 128:
        raise OAuthError("invalid_request", "refresh_token is required")
    db = store(svc)
    token_hash = hash_secret(token)
    record = await db.get_refresh(token_hash)
    if record is None or record.client_id != client.client_id or record.revoked:
        raise OAuthError("invalid_grant", "refresh token is invalid")
    if record.rotated_at is not None:
        await _reuse_detected(svc, db, record)
        raise OAuthError("invalid_grant", "refresh token is invalid")
    session = await _live_session(svc, record.sid)
    if session is None or record.expires_at <= svc.clock.now():
        await db.revoke_family(record.family_id)
        raise OAuthError("invalid_grant", "the session behind this refresh token has ended")
    scope = record.scope
    if "scope" in form:
        # RFC 6749 §6: a narrower scope may be requested, never a wider one.
        asked = form["scope"].split()
        if not set(asked) <= set(record.scope.split()) or "openid" not in asked:
            raise OAuthError("invalid_scope", "scope exceeds what was granted")
        scope = " ".join(dict.fromkeys(asked))
    # Committed with the rotation itself (one transaction), logged once it has been.
    refreshed = svc.audit.prepare(
        "oidc.refreshed", actor=client.client_id, subject=session.user_id, sid=session.sid
    )
    try:
        body = await _mint(
            svc,
            client,
            session=session,
            scope=scope,
            family_id=record.family_id,
            auth_time=record.auth_time,
            amr=record.amr,
            nonce=None,  # OIDC Core §12.2: a refreshed ID token carries no nonce
            rotates=token_hash,
            audit_row=refreshed.row,
        )
    except _AlreadyUsed:
        # A concurrent request redeemed the same token first: one of the two is a replay.
        await _reuse_detected(svc, db, record)
        raise OAuthError("invalid_grant", "refresh token is invalid") from None
    svc.audit.announce(refreshed)
    return body


class _AlreadyUsed(Exception):
    """The refresh token being rotated was used (or revoked) since it was read."""


async def _reuse_detected(svc: Services, db: OIDCStore, record: RefreshRecord) -> None:
    """A rotated refresh token came back: the family and its dojang session end now."""
    log.warning("refresh token reuse for client %s; ending session", record.client_id)
    await db.revoke_family(record.family_id)
    session = await svc.sessions.store.get_by_sid(record.sid)
    if await svc.sessions.revoke(record.sid) and session is not None:
        await on_sessions_ended(svc, [session])
    await svc.audit.record(
        "oidc.refresh_reuse", actor=record.client_id, subject=record.user_id, sid=record.sid
    )


async def _mint(
    svc: Services,
    client: OIDCClient,
    *,
    session: Session,
    scope: str,
    family_id: str,
    auth_time: float,
    amr: tuple[str, ...],
    nonce: str | None,
    rotates: str | None = None,
    audit_row: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Access token + ID token + a new refresh token of ``family_id``: the token response.

    ``rotates``: the hash of the refresh token this one replaces. Retiring it and storing the
    successor is one transaction, so exactly one of two concurrent uses wins (the other
    raises ``_AlreadyUsed``) and a retired token never lacks its successor.
    """
    now = svc.clock.now()
    ttl = svc.issuer.access_ttl
    access = svc.issuer.access_token(
        sub=session.user_id,
        audience=userinfo_audience(svc),
        scope=scope,
        sid=session.sid,
        ttl=ttl,
        client_id=client.client_id,
    )
    refresh = new_secret()
    successor = RefreshRecord(
        family_id=family_id,
        client_id=client.client_id,
        user_id=session.user_id,
        sid=session.sid,
        scope=scope,
        auth_time=auth_time,
        amr=amr,
        # Bounded by the dojang session: never outlives its absolute expiry.
        expires_at=session.absolute_expires_at,
        rotated_at=None,
        revoked=False,
    )
    if rotates is None:
        await store(svc).save_refresh(hash_secret(refresh), successor)
    elif not await store(svc).rotate_refresh(
        rotates, hash_secret(refresh), successor, audit_row=audit_row
    ):
        raise _AlreadyUsed()
    body: dict[str, Any] = {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl,
        "refresh_token": refresh,
        "scope": scope,
        "id_token": id_token(
            svc.keyset,
            issuer=svc.settings.issuer,
            client_id=client.client_id,
            sub=session.user_id,
            sid=session.sid,
            auth_time=auth_time,
            amr=amr,
            now=now,
            nonce=nonce,
        ),
    }
    return body
