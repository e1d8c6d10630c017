"""OpenID Connect provider endpoints: authorize (+ consent), userinfo, RP-initiated logout,
discovery, and an interim token route for the OIDC grants.

The browser always signs in through dojang's own session (``/login?next=…``); the code flow
only ever hands a client what that session allows, bound to its ``sid``.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from dojang.errors import InvalidToken
from dojang.oidc import client_auth, grants
from dojang.oidc.logout import on_sessions_ended
from dojang.oidc.request import (
    MAX_QUERY,
    AuthorizationRequest,
    AuthorizeError,
    parse,
    redirect_with,
)
from dojang.oidc.store import CodeRecord
from dojang.oidc.tokens import parse_id_token_hint
from dojang.server import oauth
from dojang.server.bodies import read_form
from dojang.server.context import (
    audit,
    check_csrf_token,
    check_same_origin,
    current_session,
    optional_session,
    services,
    session_cookie,
)
from dojang.server.pages import render
from dojang.server.redirects import MAX_NEXT_LENGTH
from dojang.server.responses import HTTPError
from dojang.sessions.model import Session

router = APIRouter(tags=["openid-connect"])

FORM_LIMIT = 16 * 1024
# Interim path of the OIDC grants until /oauth2/token dispatches to dojang.oidc.grants.
AUTHORIZE_PATH = "/oauth2/authorize"
LOGOUT_PATH = "/oauth2/logout"
SCOPE_TEXT = {
    "openid": "Your dojang account id (to sign you in)",
    "profile": "Your username",
}


# --- helpers ----------------------------------------------------------------------------------


def _error_page(status: int, detail: str) -> Response:
    return render("error.html", status=status, title="Request refused", detail=detail, user=None)


def _to_client(
    request: Request, url: str, *, via_form: bool, headers: list[tuple[str, str]] | None = None
) -> Response:
    """Send the browser to a (verified) client URL.

    After one of our own forms (login, consent, logout), CSP ``form-action 'self'`` forbids a
    cross-origin redirect, so those get a page that refreshes to the client instead.
    """
    own_page = request.headers.get("sec-fetch-site") == "same-origin"
    if via_form or own_page:
        response: Response = render(
            "consent.html",
            mode="continue",
            target=url,
            user=None,
            headers={"refresh": f"0;url={url}"},
        )
    else:
        response = RedirectResponse(url, status_code=302, headers={"cache-control": "no-store"})
    for name, value in headers or []:
        response.headers.append(name, value)
    return response


def _authorize_failed(request: Request, exc: AuthorizeError, *, via_form: bool) -> Response:
    if exc.redirect_uri is None:
        # Never redirect to an unverified URI (RFC 6749 §4.1.2.1, §10.15 open redirector).
        return _error_page(400, f"{exc.code}: {exc.description}")
    params = {"error": exc.code, "error_description": exc.description}
    if exc.state is not None:
        params["state"] = exc.state
    params["iss"] = services(request).settings.issuer  # RFC 9207 mix-up defence
    return _to_client(request, redirect_with(exc.redirect_uri, params), via_form=via_form)


def _login_next(req: AuthorizationRequest) -> str:
    # prompt and max_age are dropped: the login that follows satisfies them, and auth_time in
    # the ID token tells the client the truth either way (OIDC Core §3.1.2.1).
    target = (
        AUTHORIZE_PATH
        + "?"
        + "&".join(f"{k}={quote(v, safe='')}" for k, v in req.to_params(drop_prompt=True).items())
    )
    if len(target) > MAX_NEXT_LENGTH:
        raise req.error("invalid_request", "authorization request too long")
    return target


def _login_form(request: Request, next_path: str) -> Response:
    """The login form over a live session (prompt=login, max_age): a fresh authentication."""
    svc = services(request)
    token = secrets.token_urlsafe(32)
    return render(
        "login.html",
        error=None,
        username="",
        next=next_path,
        login_csrf=token,
        registration=False,
        user=None,
        headers={"set-cookie": svc.cookies.login_csrf_cookie(token)},
    )


async def _issue(
    request: Request, req: AuthorizationRequest, session: Session, via_form: bool
) -> Response:
    svc = services(request)
    now = svc.clock.now()
    code = await grants.issue_code(
        svc,
        CodeRecord(
            client_id=req.client.client_id,
            user_id=session.user_id,
            sid=session.sid,
            redirect_uri=req.redirect_uri,
            scope=" ".join(req.scope),
            nonce=req.nonce,
            code_challenge=req.code_challenge,
            auth_time=session.auth_time,
            amr=session.methods,
            expires_at=now + grants.CODE_TTL,
            used_at=None,
            family_id=None,
            access_jti=None,
            access_exp=None,
        ),
    )
    params = {"code": code}
    if req.state is not None:
        params["state"] = req.state
    params["iss"] = svc.settings.issuer
    await audit(
        request,
        "oidc.code_issued",
        actor=session.user_id,
        subject=session.user_id,
        sid=session.sid,
        client_id=req.client.client_id,
    )
    return _to_client(request, redirect_with(req.redirect_uri, params), via_form=via_form)


async def _authorize(request: Request, req: AuthorizationRequest) -> Response:
    svc = services(request)
    found = await optional_session(request)
    if found is None:
        if "none" in req.prompt:
            raise req.error("login_required", "no session")
        return RedirectResponse(
            "/login?next=" + quote(_login_next(req), safe=""),
            status_code=303,
            headers={"cache-control": "no-store"},
        )
    _, session = found
    too_old = req.max_age is not None and svc.clock.now() - session.auth_time > req.max_age
    if "login" in req.prompt or too_old:
        if "none" in req.prompt:
            raise req.error("login_required", "a fresh login is required")
        return _login_form(request, _login_next(req))
    if not req.client.first_party:
        granted = await grants.store(svc).consented_scopes(session.user_id, req.client.client_id)
        if "consent" in req.prompt or not set(req.scope) <= granted:
            if "none" in req.prompt:
                raise req.error("consent_required", "the user has not allowed this client")
            user = await svc.accounts.get(session.user_id)
            return render(
                "consent.html",
                mode="consent",
                client_name=req.client.name,
                username=user.username if user else "",
                scopes=req.scope,
                scope_text=SCOPE_TEXT,
                redirect_host=urlsplit(req.redirect_uri).netloc or req.redirect_uri,
                params=req.to_params(drop_prompt=True),
                csrf_token=session.csrf_secret,
                user=None,
            )
    return await _issue(request, req, session, via_form=False)


# --- authorization endpoint -------------------------------------------------------------------


@router.get(AUTHORIZE_PATH, include_in_schema=False)
async def authorize(request: Request) -> Response:
    """OIDC Core §3.1.2: the authorization endpoint (code flow, PKCE S256 required)."""
    svc = services(request)
    if len(request.url.query) > MAX_QUERY:
        return _error_page(400, "invalid_request: authorization request too large")
    try:
        req = await parse(svc, request.query_params.multi_items())
        return await _authorize(request, req)
    except AuthorizeError as exc:
        return _authorize_failed(request, exc, via_form=False)


@router.post(AUTHORIZE_PATH, include_in_schema=False)
async def authorize_decision(request: Request) -> Response:
    """The consent form's answer (CSRF-checked against the session)."""
    check_same_origin(request)
    form = await read_form(request, FORM_LIMIT)
    _, session = await current_session(request)
    check_csrf_token(session, form.pop("csrf_token", None))
    decision = form.pop("decision", "")
    svc = services(request)
    try:
        req = await parse(svc, list(form.items()))
        if decision != "allow":
            raise req.error("access_denied", "the user denied the request")
        await grants.store(svc).grant_consent(session.user_id, req.client.client_id, req.scope)
        await audit(
            request,
            "oidc.consent_granted",
            actor=session.user_id,
            subject=session.user_id,
            client_id=req.client.client_id,
            scope=" ".join(req.scope),
        )
        return await _issue(request, req, session, via_form=True)
    except AuthorizeError as exc:
        return _authorize_failed(request, exc, via_form=True)


# --- token (interim route) and userinfo -------------------------------------------------------


def _bearer_error(status: int, code: str, detail: str) -> Response:
    # RFC 6750 §3: the error travels in WWW-Authenticate.
    return JSONResponse(
        {"error": code, "error_description": detail, "detail": detail},
        status_code=status,
        headers={"www-authenticate": f'Bearer error="{code}"', "cache-control": "no-store"},
    )


@router.api_route(grants.USERINFO_PATH, methods=["GET", "POST"], include_in_schema=False)
async def userinfo(request: Request) -> Response:
    """OIDC Core §5.3: claims about the user, for an access token minted by a code grant."""
    svc = services(request)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return JSONResponse(
            {"error": "invalid_request", "detail": "Bearer token required"},
            status_code=401,
            headers={"www-authenticate": 'Bearer realm="dojang"', "cache-control": "no-store"},
        )
    try:
        claims = await oauth.verify_own_access_token(
            svc, token.strip(), grants.userinfo_audience(svc)
        )
    except InvalidToken as exc:
        return _bearer_error(401, "invalid_token", exc.message)
    scopes = str(claims.get("scope", "")).split()
    if "sid" not in claims or "openid" not in scopes:
        return _bearer_error(403, "insufficient_scope", "token lacks the openid scope")
    sub = str(claims["sub"])
    out: dict[str, Any] = {"sub": sub}
    if "profile" in scopes:
        user = await svc.accounts.get(sub)
        if user is None or user.disabled:
            return _bearer_error(401, "invalid_token", "the user no longer exists")
        out["preferred_username"] = user.username
    return JSONResponse(out, headers={"cache-control": "no-store"})


# --- RP-initiated logout ----------------------------------------------------------------------


async def _logout_target(
    request: Request, params: dict[str, str]
) -> tuple[str | None, str | None, dict[str, Any] | None]:
    """Check ``post_logout_redirect_uri`` (exact match) → (uri, client name, hint claims)."""
    svc = services(request)
    hint: dict[str, Any] | None = None
    raw_hint = params.get("id_token_hint")
    if raw_hint:
        try:
            hint = parse_id_token_hint(svc.keyset, raw_hint, issuer=svc.settings.issuer)
        except InvalidToken:
            raise HTTPError(400, "invalid_request", "id_token_hint is not valid") from None
    client_id = params.get("client_id")
    if hint is not None:
        if client_id and client_id != hint["aud"]:
            raise HTTPError(400, "invalid_request", "client_id does not match id_token_hint")
        client_id = str(hint["aud"])
    client = await svc.clients.get_oidc_client(client_id) if client_id else None
    uri = params.get("post_logout_redirect_uri")
    if uri:
        if client is None or uri not in client.post_logout_redirect_uris:
            raise HTTPError(400, "invalid_request", "post_logout_redirect_uri is not registered")
        state = params.get("state")
        if state is not None:
            uri = redirect_with(uri, {"state": state[:256]})
    return uri, (client.name if client else None), hint


async def _logout(request: Request, params: dict[str, str], *, confirmed: bool) -> Response:
    svc = services(request)
    uri, client_name, hint = await _logout_target(request, params)
    found = await optional_session(request)
    if found is not None:
        cookie, session = found
        # The RP proves it holds an ID token of *this* session: no confirmation needed.
        # Otherwise ask, so a cross-site link cannot log people out (logout CSRF).
        matches = hint is not None and hint.get("sid") == session.sid
        if not (confirmed or matches):
            return render(
                "consent.html",
                mode="logout",
                client_name=client_name,
                params={k: v for k, v in params.items() if k != "csrf_token"},
                csrf_token=session.csrf_secret,
                user=None,
            )
        await svc.sessions.destroy(cookie)
        await on_sessions_ended(svc, [session])
        await audit(
            request,
            "logout",
            actor=session.user_id,
            subject=session.user_id,
            sid=session.sid,
            via="rp-initiated",
        )
    clear = [("set-cookie", svc.cookies.clear_session_cookie())]
    if uri is not None:
        return _to_client(request, uri, via_form=confirmed, headers=clear)
    response = render("consent.html", mode="signed_out", user=None)
    response.headers.append("set-cookie", clear[0][1])
    return response


def _single_params(items: list[tuple[str, str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in items:
        if key in params or len(value) > 4096:
            raise HTTPError(400, "invalid_request", f"parameter {key[:40]!r} repeated or too long")
        params[key] = value
    return params


@router.get(LOGOUT_PATH, include_in_schema=False)
async def end_session(request: Request) -> Response:
    """RP-Initiated Logout 1.0 §2: the end_session_endpoint."""
    if len(request.url.query) > 8192:
        raise HTTPError(400, "invalid_request", "logout request too large")
    return await _logout(
        request, _single_params(request.query_params.multi_items()), confirmed=False
    )


@router.post(LOGOUT_PATH, include_in_schema=False)
async def end_session_confirmed(request: Request) -> Response:
    """The logout confirmation form (CSRF-checked against the session)."""
    check_same_origin(request)
    form = await read_form(request, FORM_LIMIT)
    if session_cookie(request) is not None:
        found = await optional_session(request)
        if found is not None:
            check_csrf_token(found[1], form.get("csrf_token"))
    form.pop("csrf_token", None)
    return await _logout(request, form, confirmed=True)


# --- discovery --------------------------------------------------------------------------------


@router.get("/.well-known/openid-configuration", include_in_schema=False)
async def openid_configuration(request: Request) -> Response:
    """OpenID Connect Discovery 1.0 §3 provider metadata."""
    base = services(request).settings.issuer
    return JSONResponse(
        {
            "issuer": base,
            "authorization_endpoint": base + AUTHORIZE_PATH,
            "token_endpoint": base + "/oauth2/token",
            "userinfo_endpoint": base + grants.USERINFO_PATH,
            "jwks_uri": base + "/.well-known/jwks.json",
            "end_session_endpoint": base + LOGOUT_PATH,
            "revocation_endpoint": base + "/oauth2/revoke",
            "scopes_supported": ["openid", "profile"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["EdDSA", "ES256"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
                "none",
            ],
            # The algorithms registered client keys can be bound to (for private_key_jwt).
            "token_endpoint_auth_signing_alg_values_supported": list(
                client_auth.SIGNING_ALGORITHMS
            ),
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": [
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "acr",
                "amr",
                "sid",
                "azp",
                "preferred_username",
            ],
            "prompt_values_supported": ["none", "login", "consent"],
            "authorization_response_iss_parameter_supported": True,
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
        },
        headers={"cache-control": "public, max-age=3600"},
    )
