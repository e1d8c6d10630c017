"""``GET /auth/check``: forward auth for nginx ``auth_request``, Traefik and Envoy.

This is the hottest path in the product, so it is a plain ASGI handler that sits in front of
the framework router: it reads one cookie from the raw headers, loads the session through the
``SessionManager`` (whose writes are throttled) and answers with pre-encoded headers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from time import perf_counter
from urllib.parse import parse_qs, quote

from dojang.errors import SessionNotFound, StoreUnavailable
from dojang.server.oauth import SESSION_CLIENT_ID
from dojang.server.redirects import safe_next
from dojang.server.services import Services
from dojang.server.types import Receive, Scope, Send

log = logging.getLogger("dojang.security")

_NO_STORE = (b"cache-control", b"no-store")
_JSON = (b"content-type", b"application/json")
_BODY_401 = b'{"error":"unauthenticated","detail":"no live session"}'
_BODY_503 = b'{"error":"store_unavailable","detail":"session store did not answer"}'
_MAX_COOKIE_HEADER = 8192


class _BadQuery(Exception):
    def __init__(self, detail: bytes) -> None:
        super().__init__(detail.decode())
        self.detail = detail


class ForwardAuth:
    """The ``/auth/check`` handler; ``get_services`` returns the running process's services."""

    def __init__(
        self,
        get_services: Callable[[], Services],
        *,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self._get_services = get_services
        # Security headers go on every answer that has a body (a proxy may pass a 401/400/302
        # on to the browser). The empty 200 is read only by the proxy and never rendered, so it
        # carries just what the proxy needs: on the hottest path every header costs.
        self._extra = list(extra_headers or [])

    def _cookie(self, scope: Scope, name: bytes) -> str | None:
        prefix = name + b"="
        seen = 0
        for key, value in scope["headers"]:
            if key == b"cookie":
                # The cap counts every Cookie header together: several smaller headers must
                # not add up to more than one oversized header may carry.
                seen += len(value)
                if seen > _MAX_COOKIE_HEADER:
                    return None
                for part in value.split(b";"):
                    part = part.strip()
                    if part.startswith(prefix):
                        raw: bytes = part[len(prefix) :]
                        try:
                            return raw.decode("ascii")
                        except UnicodeDecodeError:
                            return None
        return None

    @staticmethod
    def _wants_html(scope: Scope) -> bool:
        for key, value in scope["headers"]:
            if key == b"accept":
                return b"text/html" in value
        return False

    @staticmethod
    def _original_path(scope: Scope) -> str | None:
        for key, value in scope["headers"]:
            if key in (b"x-original-uri", b"x-forwarded-uri"):
                raw: bytes = value
                try:
                    return raw.decode("ascii")
                except UnicodeDecodeError:
                    return None
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = perf_counter()
        svc = self._get_services()
        status = await self._handle(scope, send, svc)
        svc.metrics.forward_auth.record(status, perf_counter() - started)

    async def _handle(self, scope: Scope, send: Send, svc: Services) -> int:
        """Answer one check; return the status sent.

        Every method gets the same answer: Envoy's HTTP ext_authz sends the client's own method
        (a POST to the app is checked as ``POST /auth/check``), and the check changes nothing
        whatever the method (no body is read; a token it mints is only cached).
        """
        cookie = self._cookie(scope, svc.cookies.session_name_bytes)
        try:
            if cookie is None:
                raise SessionNotFound("no session cookie")
            # The synchronous peek answers most checks (a live session, no touch due) from
            # the SQLite file; load() answers the rest (other stores, expiry, sliding touch).
            who = svc.sessions.peek(cookie)
            if who is None:
                session = await svc.sessions.load(cookie)
                who = (session.user_id, session.sid)
        except SessionNotFound:
            return await self._unauthenticated(scope, send, svc)
        except StoreUnavailable:
            # Fail closed: a store that cannot answer never yields a 200.
            log.warning("auth check refused: session store unavailable")
            svc.metrics.store_errors.labels(store="sessions").inc()
            await _respond(
                send, 503, [_JSON, _NO_STORE, (b"retry-after", b"1")], _BODY_503, self._extra
            )
            return 503
        user_id, sid = who
        headers = [
            _NO_STORE,
            (b"x-dojang-subject", user_id.encode()),
            (b"x-dojang-session", sid.encode()),
            (b"content-length", b"0"),
        ]
        if scope["query_string"]:
            try:
                token = await self._token_for(svc, user_id, sid, scope["query_string"])
            except _BadQuery as exc:
                body = b'{"error":"invalid_request","detail":"' + exc.detail + b'"}'
                await _respond(send, 400, [_JSON, _NO_STORE], body, self._extra)
                return 400
            if token is not None:
                headers.append((b"authorization", b"Bearer " + token.encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return 200

    async def _token_for(self, svc: Services, user_id: str, sid: str, query: bytes) -> str | None:
        """``?aud=X[&scope=...]``: an access token for X, cached per session and audience."""
        try:
            params = parse_qs(query.decode("ascii"), strict_parsing=False, max_num_fields=8)
        except (UnicodeDecodeError, ValueError):
            raise _BadQuery(b"malformed query string") from None
        auds, scopes = params.get("aud", []), params.get("scope", [""])
        if not auds:
            return None
        if len(auds) > 1 or len(scopes) > 1:
            raise _BadQuery(b"give aud and scope at most once")
        audience = await svc.audience(auds[0])
        if audience is None:
            raise _BadQuery(b"aud is not a registered audience")
        requested = sorted(set(scopes[0].split()))
        if not set(requested) <= audience.scopes:
            raise _BadQuery(b"scope not granted by that audience")
        scope_text = " ".join(requested)
        now = svc.clock.now()
        cached = svc.forward_tokens.get(sid, audience.name, scope_text, now)
        if cached is not None:
            return cached
        token = svc.issuer.access_token(
            sub=user_id,
            audience=audience.name,
            scope=scope_text,
            sid=sid,
            client_id=SESSION_CLIENT_ID,
        )
        svc.forward_tokens.put(sid, audience.name, scope_text, token, now + svc.issuer.access_ttl)
        return token

    async def _unauthenticated(self, scope: Scope, send: Send, svc: Services) -> int:
        if svc.settings.auth_check_redirect and self._wants_html(scope):
            target = safe_next(self._original_path(scope), default="/")
            location = f"{svc.settings.issuer}/login?next={quote(target, safe='')}"
            await _respond(
                send, 302, [_NO_STORE, (b"location", location.encode())], b"", self._extra
            )
            return 302
        await _respond(
            send,
            401,
            [_JSON, _NO_STORE, (b"www-authenticate", b'Cookie realm="dojang"')],
            _BODY_401,
            self._extra,
        )
        return 401


async def _respond(
    send: Send,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [*headers, *(extra or ()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
