"""Subject-kind confusion: user and service access tokens share ``typ: at+jwt``, so an API that
must act only for a person (or only for a service) says so with ``subject_kind``; every token
here is validly signed, so each rejection proves the kind check, not the signature."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from dojang.clock import FrozenClock
from dojang.errors import ConfigError, InvalidClaims, WrongSubjectKind
from dojang.jose import Key, KeySet
from dojang.tokens import Issuer
from dojang.verify import Verifier
from dojang.verify import fastapi as dojang_fastapi
from tests.security.jwt_forge import AUDIENCE, DROP, ISSUER, claims, forge, header


def _verifier(keyset: KeySet, clock: FrozenClock, kind: Any) -> Verifier:
    return Verifier(
        issuer=ISSUER, audience=AUDIENCE, jwks=keyset.public_jwks(), clock=clock, subject_kind=kind
    )


async def test_service_token_where_a_user_token_is_required(
    issuer: Issuer, keyset: KeySet, clock: FrozenClock
) -> None:
    """Service-for-user substitution: a client_credentials token on a user-only API."""
    token = issuer.service_token(client_id="svc_reporter", audience=AUDIENCE, scope="orders:read")
    user_only = _verifier(keyset, clock, "user")
    with pytest.raises(WrongSubjectKind):
        user_only.verify(token)
    with pytest.raises(WrongSubjectKind):
        await user_only.averify(token)
    assert _verifier(keyset, clock, "service").verify(token)["sub"] == "svc_reporter"  # control


async def test_user_token_where_a_service_token_is_required(
    issuer: Issuer, keyset: KeySet, clock: FrozenClock
) -> None:
    """User-for-service substitution: a session-bound token on a service-only (internal) API."""
    token = issuer.access_token(sub="user-1", audience=AUDIENCE, sid="sid-1", scope="orders:read")
    service_only = _verifier(keyset, clock, "service")
    with pytest.raises(WrongSubjectKind):
        service_only.verify(token)
    with pytest.raises(WrongSubjectKind):
        await service_only.averify(token)
    assert _verifier(keyset, clock, "user").verify(token)["sid"] == "sid-1"  # control


def test_exchanged_token_on_a_service_only_api(
    issuer: Issuer, keyset: KeySet, clock: FrozenClock
) -> None:
    """Delegation laundering: a token a service got by exchange still acts for the user."""
    token = issuer.access_token(
        sub="user-1",
        audience=AUDIENCE,
        sid="sid-1",
        scope="orders:read",
        client_id="svc_orders",
        act={"sub": "svc_orders"},
    )
    with pytest.raises(WrongSubjectKind):
        _verifier(keyset, clock, "service").verify(token)
    assert _verifier(keyset, clock, "user").verify(token)["act"] == {"sub": "svc_orders"}


@pytest.mark.parametrize("sid", [None, "", 0, False, ["sid-1"]])
def test_null_or_empty_sid_is_not_a_service_token(
    keyset: KeySet, key: Key, clock: FrozenClock, sid: object
) -> None:
    """Kind spoofing through a present-but-empty `sid`: neither a user nor a service token."""
    token = forge(header(key), claims(sid=sid, sub="svc_x", client_id="svc_x"), key)
    with pytest.raises(InvalidClaims):
        _verifier(keyset, clock, "service").verify(token)


def test_service_shaped_forgery_on_a_user_only_api(
    keyset: KeySet, key: Key, clock: FrozenClock
) -> None:
    """A validly signed token with `sid` dropped (e.g. a service token re-scoped) on a user API."""
    token = forge(header(key), claims(sid=DROP), key)
    with pytest.raises(WrongSubjectKind):
        _verifier(keyset, clock, "user").verify(token)


async def test_fastapi_require_refuses_the_other_kind(
    issuer: Issuer, keyset: KeySet, clock: FrozenClock
) -> None:
    """Both substitutions through `require(subject_kind=…)`: 401 `wrong_subject_kind`."""
    verifier = Verifier(issuer=ISSUER, audience=AUDIENCE, jwks=keyset.public_jwks(), clock=clock)
    user_dep = dojang_fastapi.require("orders:read", verifier=verifier, subject_kind="user")
    service_dep = dojang_fastapi.require("orders:read", verifier=verifier, subject_kind="service")
    app = FastAPI()

    @app.get("/me")
    async def me(claims: dict[str, Any] = Depends(user_dep)) -> Any:  # noqa: B008
        return {"sub": claims["sub"]}

    @app.get("/internal")
    async def internal(claims: dict[str, Any] = Depends(service_dep)) -> Any:  # noqa: B008
        return {"sub": claims["sub"]}

    user = issuer.access_token(sub="user-1", audience=AUDIENCE, sid="sid-1", scope="orders:read")
    service = issuer.service_token(client_id="svc_r", audience=AUDIENCE, scope="orders:read")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for path, token in (("/me", service), ("/internal", user)):
            resp = await client.get(path, headers={"Authorization": f"Bearer {token}"})
            assert resp.status_code == 401
            assert resp.json()["error"] == "wrong_subject_kind"
            assert 'error="invalid_token"' in resp.headers["www-authenticate"]
        for path, token, sub in (("/me", user, "user-1"), ("/internal", service, "svc_r")):
            resp = await client.get(path, headers={"Authorization": f"Bearer {token}"})
            assert resp.json() == {"sub": sub}


def test_unknown_subject_kind_is_a_config_error(keyset: KeySet) -> None:
    """A typo in the option must not silently accept every kind."""
    with pytest.raises(ConfigError, match="subject_kind"):
        Verifier(issuer=ISSUER, audience=AUDIENCE, jwks=keyset.public_jwks(), subject_kind="usr")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="subject_kind"):
        dojang_fastapi.require(subject_kind="Service")  # type: ignore[arg-type]
