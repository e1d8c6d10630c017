"""Token endpoints: session tokens, client_credentials, token exchange, introspection,
revocation, JWKS, metadata and ``/auth/check?aud=``."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import httpx
import pytest

from dojang.errors import InvalidToken, RevokedToken, StoreUnavailable
from dojang.jose import KeySet
from dojang.verify import DenyList, Verifier

from .conftest import Env

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
AT = "urn:ietf:params:oauth:token-type:access_token"


@dataclass
class Clients:
    orders_id: str
    orders_secret: str
    reporter_id: str
    reporter_secret: str


@pytest.fixture
async def clients(env: Env) -> Clients:
    reg = env.services.clients
    # payments:* on orders-api: scopes a user can put in an orders-api token to let the orders
    # service act on them downstream (token exchange only ever narrows what the token holds).
    await reg.add_audience("orders-api", "orders:read orders:write payments:charge payments:refund")
    await reg.add_audience("payments-api", "payments:charge payments:refund")
    orders, orders_secret = await reg.add_client(
        "orders-service", grants={"payments-api": "payments:charge"}, serves="orders-api"
    )
    reporter, reporter_secret = await reg.add_client(
        "reporter", grants={"orders-api": "orders:read"}
    )
    return Clients(orders.client_id, orders_secret, reporter.client_id, reporter_secret)


def _verifier(env: Env, audience: str) -> Verifier:
    return Verifier(
        issuer=env.settings.issuer,
        audience=audience,
        jwks=env.services.keyset.public_jwks(),
        clock=env.clock,
    )


def _basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{client_id}:{secret}".encode()
    return {"authorization": "Basic " + base64.b64encode(raw).decode()}


async def _session_token(env: Env, audience: str = "orders-api", scope: str = "orders:read") -> str:
    csrf = (await env.login()).json()["csrf_token"]
    resp = await env.client.post(
        "/api/v1/tokens",
        json={"audience": audience, "scope": scope},
        headers={"x-csrf-token": csrf},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 60
    return str(body["access_token"])


async def test_session_token_verifies_and_is_bound_to_the_session(
    env: Env, clients: Clients
) -> None:
    token = await _session_token(env)
    claims = _verifier(env, "orders-api").verify(token)
    session = (await env.client.get("/api/v1/session")).json()
    assert claims["sid"] == session["sid"] and claims["sub"] == session["user"]["id"]
    assert claims["scope"] == "orders:read" and claims["exp"] - claims["iat"] == 60
    assert "username" not in claims and "alice" not in str(claims)  # no personal data


async def test_session_token_needs_csrf_and_registered_audience(env: Env, clients: Clients) -> None:
    csrf = (await env.login()).json()["csrf_token"]
    no_csrf = await env.client.post("/api/v1/tokens", json={"audience": "orders-api"})
    assert no_csrf.status_code == 403
    unknown = await env.client.post(
        "/api/v1/tokens", json={"audience": "nope"}, headers={"x-csrf-token": csrf}
    )
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_target"
    scope = await env.client.post(
        "/api/v1/tokens",
        json={"audience": "orders-api", "scope": "orders:admin"},
        headers={"x-csrf-token": csrf},
    )
    assert scope.status_code == 400 and scope.json()["error"] == "invalid_scope"
    env.client.cookies.clear()
    anon = await env.client.post(
        "/api/v1/tokens", json={"audience": "orders-api"}, headers={"x-csrf-token": csrf}
    )
    assert anon.status_code == 401


async def test_client_credentials_basic_and_post(env: Env, clients: Clients) -> None:
    basic = await env.client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers=_basic(clients.reporter_id, clients.reporter_secret),
    )
    assert basic.status_code == 200, basic.text
    claims = _verifier(env, "orders-api").verify(basic.json()["access_token"])
    assert claims["sub"] == claims["client_id"] == clients.reporter_id and "sid" not in claims
    assert basic.headers["cache-control"] == "no-store"
    post = await env.client.post(
        "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": clients.reporter_id,
            "client_secret": clients.reporter_secret,
            "scope": "orders:read",
        },
    )
    assert post.status_code == 200 and post.json()["scope"] == "orders:read"


@pytest.mark.parametrize(
    ("data", "auth", "status", "error"),
    [
        ({"grant_type": "client_credentials"}, None, 401, "invalid_client"),
        (
            {"grant_type": "client_credentials", "client_id": "svc_x", "client_secret": "y"},
            None,
            401,
            "invalid_client",
        ),
        ({"grant_type": "password"}, "ok", 400, "unsupported_grant_type"),
        ({}, "ok", 400, "invalid_request"),
        ({"grant_type": "client_credentials", "scope": "orders:write"}, "ok", 400, "invalid_scope"),
        (
            {"grant_type": "client_credentials", "audience": "payments-api"},
            "ok",
            400,
            "invalid_target",
        ),
        (
            {"grant_type": "client_credentials", "client_secret": "dup"},
            "ok",
            400,
            "invalid_request",
        ),
        ({"grant_type": "client_credentials"}, "wrong", 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, "garbage", 401, "invalid_client"),
    ],
)
async def test_token_endpoint_errors(
    env: Env, clients: Clients, data: dict[str, str], auth: str | None, status: int, error: str
) -> None:
    headers = {}
    if auth == "ok":
        headers = _basic(clients.reporter_id, clients.reporter_secret)
    elif auth == "wrong":
        headers = _basic(clients.reporter_id, clients.reporter_secret + "x")
    elif auth == "garbage":
        headers = {"authorization": "Basic !!!not-base64"}
    resp = await env.client.post("/oauth2/token", data=data, headers=headers)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"] == error
    assert "access_token" not in resp.json()


async def test_token_endpoint_refuses_json_and_oversized_bodies(env: Env, clients: Clients) -> None:
    js = await env.client.post(
        "/oauth2/token",
        json={"grant_type": "client_credentials"},
        headers=_basic(clients.reporter_id, clients.reporter_secret),
    )
    assert js.status_code == 400 and js.json()["error"] == "invalid_request"
    big = await env.client.post(
        "/oauth2/token",
        data={"grant_type": "x" * 50_000},
        headers=_basic(clients.reporter_id, clients.reporter_secret),
    )
    assert big.status_code == 413


async def test_token_exchange_narrows_to_the_downstream_audience(
    env: Env, clients: Clients
) -> None:
    user_token = await _session_token(env, scope="orders:read payments:charge")
    resp = await _exchange(env, clients, user_token, scope="payments:charge")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["issued_token_type"] == AT
    original = _verifier(env, "orders-api").verify(user_token)
    exchanged = _verifier(env, "payments-api").verify(body["access_token"])
    assert exchanged["sub"] == original["sub"] and exchanged["sid"] == original["sid"]
    assert exchanged["act"] == {"sub": clients.orders_id}
    assert exchanged["client_id"] == clients.orders_id
    assert exchanged["scope"] == body["scope"] == "payments:charge"
    assert exchanged["exp"] <= original["exp"]
    wider = await _exchange(env, clients, user_token, scope="payments:refund")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"


async def _exchange(env: Env, clients: Clients, subject: str, **extra: str) -> httpx.Response:
    """orders-service exchanges ``subject`` for a payments-api token."""
    data = {
        "grant_type": EXCHANGE,
        "subject_token": subject,
        "subject_token_type": AT,
        "audience": "payments-api",
        **extra,
    }
    return await env.client.post(
        "/oauth2/token", data=data, headers=_basic(clients.orders_id, clients.orders_secret)
    )


async def test_token_exchange_never_widens_the_subject_scope(env: Env, clients: Clients) -> None:
    """Exchange narrows: the new scope must be in the client's grant AND in the subject token."""
    read_only = await _session_token(env, scope="orders:read")
    # An orders:read token does not become payments:charge, asked for or by default.
    asked = await _exchange(env, clients, read_only, scope="payments:charge")
    assert asked.status_code == 400 and asked.json()["error"] == "invalid_scope"
    assert "not granted by the subject_token: payments:charge" in asked.json()["error_description"]
    default = await _exchange(env, clients, read_only)
    assert default.status_code == 400 and default.json()["error"] == "invalid_scope"
    # A scope the token holds but the client's grant lacks is refused too.
    both = await _session_token(env, scope="payments:charge payments:refund")
    refund = await _exchange(env, clients, both, scope="payments:refund")
    assert refund.status_code == 400 and refund.json()["error"] == "invalid_scope"
    assert "not allowed for this client" in refund.json()["error_description"]
    # Without a scope parameter the token gets exactly what both allow.
    narrowed = await _exchange(env, clients, both)
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["scope"] == "payments:charge"
    claims = _verifier(env, "payments-api").verify(narrowed.json()["access_token"])
    assert claims["scope"] == "payments:charge"
    # An empty scope parameter would delegate nothing: refused rather than a scope-less token.
    empty = await _exchange(env, clients, both, scope="")
    assert empty.status_code == 400 and empty.json()["error"] == "invalid_scope"


async def test_token_exchange_subject_must_be_addressed_to_the_client(
    env: Env, clients: Clients
) -> None:
    """A client exchanges only tokens sent to the API it serves, never its own service token."""
    payments_token = await _session_token(env, audience="payments-api", scope="payments:charge")
    elsewhere = await _exchange(env, clients, payments_token, scope="payments:charge")
    assert elsewhere.status_code == 400 and elsewhere.json()["error"] == "invalid_grant"
    # A service token for orders-api (reporter's) holds orders:read only: nothing to delegate.
    service = (
        await env.client.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            headers=_basic(clients.reporter_id, clients.reporter_secret),
        )
    ).json()["access_token"]
    narrowed = await _exchange(env, clients, service, scope="payments:charge")
    assert narrowed.status_code == 400 and narrowed.json()["error"] == "invalid_scope"
    # A client serving orders-api that exchanges its own service token is refused cleanly.
    reg = env.services.clients
    selfish, secret = await reg.add_client(
        "selfish", grants={"orders-api": "payments:charge"}, serves="orders-api"
    )
    own = (
        await env.client.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            headers=_basic(selfish.client_id, secret),
        )
    ).json()["access_token"]
    resp = await env.client.post(
        "/oauth2/token",
        data={
            "grant_type": EXCHANGE,
            "subject_token": own,
            "subject_token_type": AT,
            "audience": "orders-api",
        },
        headers=_basic(selfish.client_id, secret),
    )
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"
    assert "own service token" in resp.json()["error_description"]


async def test_token_exchange_refusals(env: Env, clients: Clients) -> None:
    user_token = await _session_token(env)
    base = {"grant_type": EXCHANGE, "subject_token_type": AT, "audience": "payments-api"}
    orders = _basic(clients.orders_id, clients.orders_secret)
    # A client that does not serve the token's audience cannot exchange it.
    other = await env.client.post(
        "/oauth2/token",
        data={**base, "subject_token": user_token},
        headers=_basic(clients.reporter_id, clients.reporter_secret),
    )
    assert other.json()["error"] == "unauthorized_client"
    forged = await env.client.post(
        "/oauth2/token", data={**base, "subject_token": user_token[:-4] + "AAAA"}, headers=orders
    )
    assert forged.status_code == 400 and forged.json()["error"] == "invalid_grant"
    wrong_type = await env.client.post(
        "/oauth2/token",
        data={**base, "subject_token": user_token, "subject_token_type": "urn:x"},
        headers=orders,
    )
    assert wrong_type.json()["error"] == "invalid_request"
    # Ending the session kills exchange of its tokens at once.
    csrf = (await env.client.get("/api/v1/session")).json()["csrf_token"]
    await env.client.delete("/api/v1/session", headers={"x-csrf-token": csrf})
    dead = await env.client.post(
        "/oauth2/token", data={**base, "subject_token": user_token}, headers=orders
    )
    assert dead.json()["error"] == "invalid_grant"
    assert "revoked" in dead.json()["error_description"]


async def test_introspection_reflects_session_end(env: Env, clients: Clients) -> None:
    token = await _session_token(env)
    auth = _basic(clients.orders_id, clients.orders_secret)
    live = (await env.client.post("/oauth2/introspect", data={"token": token}, headers=auth)).json()
    assert live["active"] is True and live["aud"] == "orders-api"
    # A client that neither serves nor owns the token learns nothing.
    nosy = await env.client.post(
        "/oauth2/introspect",
        data={"token": token},
        headers=_basic(clients.reporter_id, clients.reporter_secret),
    )
    assert nosy.json() == {"active": False}
    csrf = (await env.client.get("/api/v1/session")).json()["csrf_token"]
    await env.client.delete("/api/v1/session", headers={"x-csrf-token": csrf})
    dead = await env.client.post("/oauth2/introspect", data={"token": token}, headers=auth)
    assert dead.json() == {"active": False}
    # ... and this server's own verifier refuses it too.
    with pytest.raises(RevokedToken):
        env.services.verifier_for("orders-api").verify(token)
    garbage = await env.client.post("/oauth2/introspect", data={"token": "x.y.z"}, headers=auth)
    assert garbage.json() == {"active": False}
    unauth = await env.client.post("/oauth2/introspect", data={"token": token})
    assert unauth.status_code == 401


async def test_session_end_seen_by_a_worker_that_did_not_end_it(env: Env, clients: Clients) -> None:
    """Another worker has no in-memory deny entry: the store check alone must refuse."""
    token = await _session_token(env)
    auth = _basic(clients.orders_id, clients.orders_secret)
    csrf = (await env.client.get("/api/v1/session")).json()["csrf_token"]
    await env.client.delete("/api/v1/session", headers={"x-csrf-token": csrf})
    env.services.revocations = DenyList(clock=env.clock)  # a fresh worker's empty view
    env.services._verifiers.clear()
    dead = await env.client.post("/oauth2/introspect", data={"token": token}, headers=auth)
    assert dead.json() == {"active": False}


async def test_revocation_kills_one_token(env: Env, clients: Clients) -> None:
    auth = _basic(clients.reporter_id, clients.reporter_secret)
    token = (
        await env.client.post(
            "/oauth2/token", data={"grant_type": "client_credentials"}, headers=auth
        )
    ).json()["access_token"]
    resp = await env.client.post("/oauth2/revoke", data={"token": token}, headers=auth)
    assert resp.status_code == 200
    again = await env.client.post("/oauth2/revoke", data={"token": token}, headers=auth)
    assert again.status_code == 200  # idempotent
    invalid = await env.client.post("/oauth2/revoke", data={"token": "nonsense"}, headers=auth)
    assert invalid.status_code == 200  # RFC 7009 §2.2
    hint = await env.client.post(
        "/oauth2/revoke", data={"token": token, "token_type_hint": "bogus"}, headers=auth
    )
    assert hint.json()["error"] == "unsupported_token_type"
    with pytest.raises(InvalidToken):
        env.services.verifier_for("orders-api").verify(token)
    assert await env.services.clients.is_jti_revoked(_jti(token))


def _jti(token: str) -> str:
    from dojang.jose import decode_segments, parse_json_object

    return str(parse_json_object(decode_segments(token)[1])["jti"])


async def test_jwks_and_metadata(env: Env) -> None:
    jwks = await env.client.get("/.well-known/jwks.json")
    assert jwks.headers["cache-control"] == "public, max-age=300"
    keys = jwks.json()["keys"]
    assert keys and all("d" not in k for k in keys)
    assert KeySet.from_jwks(jwks.json()).rejected == []
    meta = (await env.client.get("/.well-known/oauth-authorization-server")).json()
    assert meta["issuer"] == env.settings.issuer
    assert meta["jwks_uri"] == f"{env.settings.issuer}/.well-known/jwks.json"
    assert "client_credentials" in meta["grant_types_supported"]


async def test_forward_auth_mints_cached_token_for_audience(env: Env, clients: Clients) -> None:
    await env.login()
    first = await env.client.get("/auth/check?aud=orders-api&scope=orders:read")
    assert first.status_code == 200
    token = first.headers["authorization"].removeprefix("Bearer ")
    claims = _verifier(env, "orders-api").verify(token)
    assert claims["sid"] == first.headers["x-dojang-session"]
    second = await env.client.get("/auth/check?aud=orders-api&scope=orders:read")
    assert second.headers["authorization"] == first.headers["authorization"]  # cached
    env.clock.advance(55)  # within the refresh margin: a new token
    third = await env.client.get("/auth/check?aud=orders-api&scope=orders:read")
    assert third.headers["authorization"] != first.headers["authorization"]
    plain = await env.client.get("/auth/check")
    assert "authorization" not in plain.headers


@pytest.mark.parametrize(
    "query",
    ["aud=nope", "aud=orders-api&scope=orders:admin", "aud=orders-api&aud=payments-api", "aud=%FF"],
)
async def test_forward_auth_bad_audience_query(env: Env, clients: Clients, query: str) -> None:
    await env.login()
    resp = await env.client.get(f"/auth/check?{query}")
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_request"
    assert "authorization" not in resp.headers


async def test_revocation_snapshot_lists_ended_sessions(env: Env) -> None:
    empty = (await env.client.get("/api/v1/revocations")).json()
    assert empty == {"events": [], "last_id": 0, "more": False}
    csrf = (await env.login()).json()["csrf_token"]
    sid = (await env.client.get("/api/v1/session")).json()["sid"]
    await env.client.delete("/api/v1/session", headers={"x-csrf-token": csrf})
    snap = (await env.client.get("/api/v1/revocations")).json()
    assert [(e["kind"], e["sid"]) for e in snap["events"]] == [("session.revoked", sid)]
    assert snap["events"][0]["exp"] > env.clock.now()
    after = (await env.client.get(f"/api/v1/revocations?since={snap['last_id']}")).json()
    assert after["events"] == []
    # Events are forgotten once no token they cover can still be alive.
    env.clock.advance(3600)
    assert (await env.client.get("/api/v1/revocations")).json()["events"] == []
    bad = await env.client.get("/api/v1/revocations?since=-1")
    assert bad.status_code == 400


async def test_password_change_revokes_user_everywhere(env: Env, clients: Clients) -> None:
    token = await _session_token(env)
    await env.services.accounts.set_password("alice", "another long password")
    assert (await env.client.get("/api/v1/session")).status_code == 401
    with pytest.raises(RevokedToken):
        env.services.verifier_for("orders-api").verify(token)
    kinds = [e["kind"] for e in (await env.client.get("/api/v1/revocations")).json()["events"]]
    assert "user.sessions_revoked" in kinds and "session.revoked" in kinds


async def test_token_endpoint_lean_path_keeps_headers_and_error_mapping(
    env: Env, clients: Clients, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """POST /oauth2/token skips FastAPI's stack; its answers must not change because of it."""
    ok = await env.client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers=_basic(clients.reporter_id, clients.reporter_secret),
    )
    refused = await env.client.post("/oauth2/token", data={"grant_type": "client_credentials"})
    assert ok.status_code == 200 and refused.status_code == 401
    for resp in (ok, refused):
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
        assert resp.headers["cache-control"] == "no-store"  # the route's own, not replaced
        assert resp.headers.get_list("x-frame-options") == ["DENY"]  # never duplicated

    async def answer_when_authenticate_raises(error: Exception) -> httpx.Response:
        async def raising(*_a: object, **_k: object) -> None:
            raise error

        monkeypatch.setattr(env.services.clients, "authenticate", raising)
        return await env.client.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            headers=_basic(clients.reporter_id, clients.reporter_secret),
        )

    outage = await answer_when_authenticate_raises(
        StoreUnavailable("account store did not answer: OSError")
    )
    assert outage.status_code == 503 and outage.json()["error"] == "store_unavailable"
    assert outage.headers["x-content-type-options"] == "nosniff"
    crashed = await answer_when_authenticate_raises(KeyError("surprise"))
    assert crashed.status_code == 500 and crashed.json()["error"] == "internal_error"
    assert "surprise" not in crashed.text and "Traceback" not in crashed.text
    assert "unhandled error on POST /oauth2/token" in caplog.text
    # Other methods still reach FastAPI's router.
    assert (await env.client.get("/oauth2/token")).status_code == 405
