"""Operations endpoints, OpenAPI and the security headers on every response."""

from __future__ import annotations

from .conftest import Env


async def test_healthz_and_readyz(env: Env) -> None:
    assert (await env.client.get("/healthz")).json() == {"status": "ok"}
    ready = await env.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "sessions": "ok"}


async def test_readyz_fails_when_the_database_is_gone(env: Env) -> None:
    await env.services.db.dispose()
    db_file = env.settings.data_dir / "dojang.db"
    db_file.unlink()
    db_file.mkdir()  # a directory where the database file was: every open fails
    ready = await env.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"


async def test_openapi_documents_the_api(env: Env) -> None:
    spec = (await env.client.get("/openapi.json")).json()
    for path in ("/api/v1/session", "/api/v1/sessions", "/api/v1/sessions/{sid}", "/healthz"):
        assert path in spec["paths"], path
    assert "/login" not in spec["paths"]


async def test_security_headers_everywhere(env: Env) -> None:
    for path in (
        "/login",
        "/healthz",
        "/api/v1/session",
        "/auth/check",
        "/nope",
        "/static/dojang.css",
    ):
        resp = await env.client.get(path)
        assert resp.headers["x-content-type-options"] == "nosniff", path
        assert "frame-ancestors 'none'" in resp.headers["content-security-policy"], path
        assert resp.headers["referrer-policy"] == "same-origin", path
        assert "strict-transport-security" not in resp.headers  # http development


async def test_hsts_on_https(https_env: Env) -> None:
    resp = await https_env.client.get("/healthz")
    assert "max-age=" in resp.headers["strict-transport-security"]
