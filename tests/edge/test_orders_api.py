"""The example orders API in-process, with tokens from a local ``Issuer``.

No processes here: the API is driven through ``httpx.ASGITransport`` with a ``Verifier`` over
an in-memory JWKS, so each rule of the API (scopes, own orders only, bad tokens, readiness) is
checked quickly and on its own. The README snippet runs against a live dojang in
``test_readme_snippet.py``; the revocation feed end to end in ``test_nginx_journey.py`` and
``test_spa.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from examples.orders_api.app import Settings, create_app

from dojang import DenyList, Issuer, KeySet, Verifier

from .harness import free_port

ISSUER = "http://127.0.0.1:8000"


@pytest.fixture
def keyset() -> KeySet:
    return KeySet.generate("EdDSA")


@pytest.fixture
def issuer(keyset: KeySet) -> Issuer:
    return Issuer(keyset, issuer=ISSUER)


@pytest.fixture
async def api(keyset: KeySet) -> AsyncIterator[httpx.AsyncClient]:
    verifier = Verifier(issuer=ISSUER, audience="orders-api", jwks=keyset.public_jwks())
    app = create_app(Settings(), verifier=verifier)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://orders") as client:
        yield client


def _bearer(issuer: Issuer, sub: str, scope: str, audience: str = "orders-api") -> dict[str, str]:
    token = issuer.access_token(sub=sub, audience=audience, scope=scope, sid=f"sid-{sub}")
    return {"authorization": f"Bearer {token}"}


async def test_orders_need_the_read_scope(api: httpx.AsyncClient, issuer: Issuer) -> None:
    """No token → 401; a valid token without ``orders:read`` → 403; with it → the list."""
    assert (await api.get("/orders")).status_code == 401
    denied = await api.get("/orders", headers=_bearer(issuer, "u1", "orders:write"))
    assert denied.status_code == 403
    assert denied.json()["error"] == "insufficient_scope"
    ok = await api.get("/orders", headers=_bearer(issuer, "u1", "orders:read"))
    assert ok.status_code == 200
    assert ok.json() == {"user": "u1", "orders": []}


async def test_each_user_sees_only_their_own_orders(api: httpx.AsyncClient, issuer: Issuer) -> None:
    """``POST /orders`` needs ``orders:write``; the owner is the token's ``sub``, nothing else."""
    new = {"item": "tea", "quantity": 2}
    assert (
        await api.post("/orders", json=new, headers=_bearer(issuer, "u1", "orders:read"))
    ).status_code == 403
    made = await api.post("/orders", json=new, headers=_bearer(issuer, "u1", "orders:write"))
    assert made.status_code == 201
    assert made.json() == {"id": 1, "owner": "u1", "item": "tea", "quantity": 2}
    mine = await api.get("/orders", headers=_bearer(issuer, "u1", "orders:read"))
    theirs = await api.get("/orders", headers=_bearer(issuer, "u2", "orders:read"))
    assert [o["item"] for o in mine.json()["orders"]] == ["tea"]
    assert theirs.json()["orders"] == []


async def test_whoami_reports_sub_and_sid(api: httpx.AsyncClient, issuer: Issuer) -> None:
    response = await api.get("/whoami", headers=_bearer(issuer, "u1", "orders:read"))
    assert response.status_code == 200
    assert response.json()["sub"] == "u1"
    assert response.json()["sid"] == "sid-u1"


async def test_tokens_for_another_audience_or_forged_are_refused(
    api: httpx.AsyncClient, issuer: Issuer
) -> None:
    """A token minted for another API (confused deputy) or a forged one is ``invalid_token``."""
    other = await api.get("/orders", headers=_bearer(issuer, "u1", "orders:read", "billing"))
    assert other.status_code == 401
    assert "invalid_token" in other.headers["www-authenticate"]
    forged = await api.get("/orders", headers={"authorization": "Bearer forged"})
    assert forged.status_code == 401


def test_settings_from_env() -> None:
    settings = Settings.from_env(
        {"DOJANG_ISSUER": "https://auth.example/", "ORDERS_AUDIENCE": "orders-v2"}
    )
    assert settings.issuer == "https://auth.example"
    assert settings.jwks_url == "https://auth.example/.well-known/jwks.json"
    assert settings.audience == "orders-v2"
    # The revocation feed is on by default: a logout must reach this API, not wait for exp.
    assert settings.revocations == "https://auth.example/events/revocations"
    assert Settings().revocations == Settings.from_env({}).revocations
    assert Settings.from_env({}).revocations == "http://127.0.0.1:8000/events/revocations"


def test_revocation_feed_follows_the_jwks_origin_and_can_be_overridden_or_disabled() -> None:
    """Behind a proxy the API reaches dojang directly: the feed sits beside the JWKS it uses."""
    internal = {
        "DOJANG_ISSUER": "https://app.example",
        "DOJANG_JWKS_URL": "http://10.0.0.7:8000/.well-known/jwks.json",
    }
    assert Settings.from_env(internal).revocations == "http://10.0.0.7:8000/events/revocations"
    # A JWKS somewhere else entirely (a CDN copy): the feed comes from the issuer.
    cdn = {"DOJANG_ISSUER": "https://auth.example", "DOJANG_JWKS_URL": "https://cdn.example/k"}
    assert Settings.from_env(cdn).revocations == "https://auth.example/events/revocations"
    redis = "redis://10.0.0.9:6379/0?stream=dojang:events"
    assert Settings.from_env({**internal, "DOJANG_REVOCATIONS": redis}).revocations == redis
    assert Settings.from_env({**internal, "DOJANG_REVOCATIONS": ""}).revocations == (
        "http://10.0.0.7:8000/events/revocations"
    )
    for off in ("none", "NONE", " none "):
        assert Settings.from_env({**internal, "DOJANG_REVOCATIONS": off}).revocations is None


async def test_healthz_reports_how_revocations_are_checked(keyset: KeySet) -> None:
    """Ready at once with a local view; ``none`` is visible, never silently the same as a feed."""
    for view, mode in ((None, "none"), (DenyList(), "local")):
        verifier = Verifier(
            issuer=ISSUER, audience="orders-api", jwks=keyset.public_jwks(), revocations=view
        )
        app = create_app(Settings(), verifier=verifier)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://orders"
        ) as client:
            response = await client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "revocations": mode}


async def test_an_unreachable_feed_is_not_ready_and_refuses_valid_tokens(
    keyset: KeySet, issuer: Issuer
) -> None:
    """Fail closed: until the feed is in sync, no token is accepted and readiness says 503."""
    dead = f"http://127.0.0.1:{free_port()}/events/revocations"
    verifier = Verifier(
        issuer=ISSUER,
        audience="orders-api",
        jwks=keyset.public_jwks(),
        revocations=dead,
        http_timeout=0.2,
    )
    try:
        app = create_app(Settings(), verifier=verifier)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://orders"
        ) as client:
            health = await client.get("/healthz")
            refused = await client.get("/orders", headers=_bearer(issuer, "u1", "orders:read"))
    finally:
        verifier.close()
    assert health.status_code == 503
    assert health.json()["revocations"] == "feed"
    assert refused.status_code == 401
    assert refused.json()["error"] == "revocations_unavailable"
