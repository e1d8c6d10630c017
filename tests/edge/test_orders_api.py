"""The example orders API in-process, with tokens from a local ``Issuer``, and the README snippet.

No processes here: the API is driven through ``httpx.ASGITransport`` with a ``Verifier`` over
an in-memory JWKS, so each rule of the API (scopes, own orders only, bad tokens) is checked
quickly and on its own.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from examples.orders_api.app import Settings, create_app
from fastapi import FastAPI

from dojang import Issuer, KeySet, Verifier

from .harness import REPO

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
    assert settings.revocations is None


def test_readme_five_line_snippet_runs() -> None:
    """The "protect your API in five lines" snippet in the example's README builds an app."""
    readme = (REPO / "examples" / "orders_api" / "README.md").read_text()
    [snippet] = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    namespace: dict[str, object] = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    app = namespace["app"]
    assert isinstance(app, FastAPI)
    assert "/orders" in {getattr(route, "path", None) for route in app.routes}
