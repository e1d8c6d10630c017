"""ASGI, WSGI and FastAPI adapters: one mapping, RFC 6750 headers, uniform JSON bodies."""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from flask import Flask, request
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dojang.clock import FrozenClock
from dojang.errors import KeysUnavailable
from dojang.jose import KeySet
from dojang.tokens import Issuer
from dojang.verify import Verifier, asgi, wsgi
from dojang.verify import fastapi as dojang_fastapi
from dojang.verify.errors_http import bearer_token, failure_for
from tests.verify.conftest import AUD, ISS


@pytest.fixture
def verifier(keyset: KeySet, clock: FrozenClock) -> Verifier:
    return Verifier(issuer=ISS, audience=AUD, jwks=keyset.public_jwks(), clock=clock)


@pytest.fixture
def token(issuer: Issuer) -> str:
    return issuer.access_token(sub="u1", audience=AUD, sid="s1", scope="orders:read")


def _check_401(resp: httpx.Response | Any, code: str, error: str | None) -> None:
    assert resp.status_code == 401
    body = json.loads(resp.get_data() if hasattr(resp, "get_data") else resp.content)
    assert set(body) == {"error", "detail"} and body["error"] == code
    challenge = resp.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    if error is None:
        assert "error=" not in challenge
    else:
        assert f'error="{error}"' in challenge and "error_description=" in challenge


# -- ASGI ----------------------------------------------------------------------------------


def _starlette(verifier: Verifier) -> Any:
    async def me(req: Request) -> JSONResponse:
        return JSONResponse({"sub": req.state.dojang_claims["sub"]})

    async def health(req: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/me", me), Route("/healthz", health)])
    return asgi.JWTMiddleware(app, verifier, exempt_paths={"/healthz"})


async def test_asgi_accepts_valid_token(verifier: Verifier, token: str) -> None:
    transport = httpx.ASGITransport(app=_starlette(verifier))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        resp = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert resp.json() == {"sub": "u1"}
        assert (await client.get("/healthz")).json() == {"ok": True}


async def test_asgi_rejections(verifier: Verifier, token: str) -> None:
    transport = httpx.ASGITransport(app=_starlette(verifier))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        _check_401(await client.get("/me"), "missing_token", None)
        _check_401(
            await client.get("/me", headers={"Authorization": f"Basic {token}"}),
            "missing_token",
            None,
        )
        _check_401(
            await client.get("/me", headers={"Authorization": "Bearer " + token[:-4] + "AAAA"}),
            "bad_signature",
            "invalid_token",
        )
        two = [("authorization", f"Bearer {token}"), ("authorization", f"Bearer {token}")]
        _check_401(await client.get("/me", headers=two), "missing_token", None)


async def test_asgi_passes_non_http_scopes(verifier: Verifier) -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    mw = asgi.JWTMiddleware(app, verifier)

    async def nothing() -> dict[str, Any]:
        return {}

    async def discard(message: Any) -> None:
        return None

    await mw({"type": "lifespan"}, nothing, discard)
    await mw({"type": "websocket", "path": "/ws", "headers": []}, nothing, discard)
    assert seen == ["lifespan", "websocket"]


# -- WSGI / Flask --------------------------------------------------------------------------


def _flask(verifier: Verifier) -> Flask:
    app = Flask(__name__)

    @app.get("/me")
    def me() -> dict[str, Any]:
        return {"sub": request.environ["dojang.claims"]["sub"]}

    app.wsgi_app = wsgi.JWTMiddleware(app.wsgi_app, verifier)  # type: ignore[method-assign]
    return app


def test_wsgi_flask(verifier: Verifier, token: str, clock: FrozenClock) -> None:
    client = _flask(verifier).test_client()
    assert client.get("/me", headers={"Authorization": f"Bearer {token}"}).get_json() == {
        "sub": "u1"
    }
    _check_401(client.get("/me"), "missing_token", None)
    clock.advance(3600)
    _check_401(
        client.get("/me", headers={"Authorization": f"Bearer {token}"}),
        "expired_token",
        "invalid_token",
    )


# -- FastAPI -------------------------------------------------------------------------------


ReadClaims = Annotated[dict[str, Any], Depends(dojang_fastapi.require("orders:read"))]
AdminClaims = Annotated[dict[str, Any], Depends(dojang_fastapi.require("orders:admin"))]


def _fastapi(verifier: Verifier) -> FastAPI:
    app = FastAPI()
    dojang_fastapi.install(app, verifier)

    @app.get("/orders")
    async def orders(claims: ReadClaims) -> Any:
        return {"sub": claims["sub"]}

    @app.get("/admin")
    async def admin(claims: AdminClaims) -> Any:
        return {"sub": claims["sub"]}

    return app


async def test_fastapi_dependency(verifier: Verifier, token: str) -> None:
    transport = httpx.ASGITransport(app=_fastapi(verifier))
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/orders", headers=auth)).json() == {"sub": "u1"}
        _check_401(await client.get("/orders"), "missing_token", None)
        _check_401(
            await client.get("/orders", headers={"Authorization": "Bearer x.y.z"}),
            "malformed_token",
            "invalid_token",
        )
        resp = await client.get("/admin", headers=auth)
        assert resp.status_code == 403
        assert resp.json()["error"] == "insufficient_scope"
        assert 'error="insufficient_scope"' in resp.headers["www-authenticate"]
        assert 'scope="orders:admin"' in resp.headers["www-authenticate"]


async def test_fastapi_require_without_install_answers_the_uniform_body(
    verifier: Verifier, token: str
) -> None:
    """require(verifier=…) on an app that never called install(): same answers as with it."""
    bare = FastAPI()
    read = dojang_fastapi.require("orders:read", verifier=verifier)
    admin = dojang_fastapi.require("orders:admin", verifier=verifier)

    @bare.get("/orders")
    # Default-value form: with postponed annotations FastAPI cannot see local names.
    async def orders(claims: dict[str, Any] = Depends(read)) -> Any:  # noqa: B008
        return {"sub": claims["sub"]}

    @bare.get("/admin")
    async def admin_route(claims: dict[str, Any] = Depends(admin)) -> Any:  # noqa: B008
        return {"sub": claims["sub"]}

    requests: list[tuple[str, dict[str, str]]] = [
        ("/orders", {}),  # the very first rejection of the bare app, too
        ("/orders", {"Authorization": "Bearer x.y.z"}),
        ("/orders", {"Authorization": "Bearer " + token[:-4] + "AAAA"}),
        ("/admin", {"Authorization": f"Bearer {token}"}),
    ]
    bare_transport = httpx.ASGITransport(app=bare)
    installed_transport = httpx.ASGITransport(app=_fastapi(verifier))
    async with (
        httpx.AsyncClient(transport=bare_transport, base_url="http://t") as plain,
        httpx.AsyncClient(transport=installed_transport, base_url="http://t") as installed,
    ):
        for url, headers in requests:
            got, want = (
                await plain.get(url, headers=headers),
                await installed.get(url, headers=headers),
            )
            assert got.status_code == want.status_code and got.status_code in (401, 403)
            assert got.content == want.content
            assert set(got.json()) == {"error", "detail"}
            for name in ("www-authenticate", "cache-control", "content-type"):
                assert got.headers[name] == want.headers[name], name
        _check_401(await plain.get("/orders"), "missing_token", None)
        ok = await plain.get("/orders", headers={"Authorization": f"Bearer {token}"})
        assert ok.json() == {"sub": "u1"}


# -- shared mapping ------------------------------------------------------------------------


def test_keys_unavailable_is_503() -> None:
    failure = failure_for(KeysUnavailable("no keys"))
    assert failure.status == 503 and failure.www_authenticate is None


def test_description_is_header_safe() -> None:
    from dojang.errors import MalformedToken

    failure = failure_for(MalformedToken('bad "quote"\r\nX-Injected: 1\\'))
    assert failure.www_authenticate is not None
    assert "\r" not in failure.www_authenticate and "\n" not in failure.www_authenticate
    assert "\\" not in failure.www_authenticate and "bad quote" in failure.www_authenticate


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("Bearer  abc ", "abc"),
        ("Bearer", None),
        ("Bearer a b", None),
        ("Basic abc", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token_parsing(value: str | None, expected: str | None) -> None:
    assert bearer_token(value) == expected
