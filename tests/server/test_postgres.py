"""The same server code on PostgreSQL: Alembic migrations, login, forward auth, logout."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from dojang.clock import FrozenClock
from dojang.config import load_settings
from dojang.server import create_app
from dojang.server.services import build_services
from dojang.storage import Database
from dojang.storage.migrate import current_revision

from ..conftest import POSTGRES_URL, _unreachable
from .conftest import FAST_HASHER, PASSWORD

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A brand-new, empty PostgreSQL database, dropped afterwards."""
    name = f"dojang_{secrets.token_hex(6)}"
    admin = Database(POSTGRES_URL)
    try:
        async with admin.engine.connect() as conn:
            await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(
                text(f"CREATE DATABASE {name}")
            )
    except Exception as exc:
        await admin.dispose()
        _unreachable(type(exc).__name__)
    base = POSTGRES_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        async with admin.engine.connect() as conn:
            await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(
                text(f"DROP DATABASE {name} WITH (FORCE)")
            )
        await admin.dispose()


async def test_server_runs_on_postgresql(tmp_path: Path, clock: FrozenClock, pg_url: str) -> None:
    settings = load_settings({"data_dir": tmp_path / "data"}, env={"DOJANG_DATABASE_URL": pg_url})
    services = await build_services(settings, clock=clock, hasher=FAST_HASHER)
    try:
        assert await current_revision(services.db) is not None  # migrated by Alembic
        await services.accounts.create_user("alice", PASSWORD)
        app = create_app(settings, services=services)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=settings.public_url) as c:
            login = await c.post(
                "/api/v1/session", json={"username": "alice", "password": PASSWORD}
            )
            assert login.status_code == 201
            check = await c.get("/auth/check")
            assert check.status_code == 200
            assert check.headers["x-dojang-session"] == login.json()["sid"]
            assert (await c.get("/readyz")).status_code == 200
            out = await c.delete(
                "/api/v1/session", headers={"x-csrf-token": login.json()["csrf_token"]}
            )
            assert out.status_code == 204
            assert (await c.get("/auth/check")).status_code == 401
            snap = (await c.get("/api/v1/revocations")).json()
            assert [e["kind"] for e in snap["events"]] == ["session.revoked"]
    finally:
        await services.close()
    # Running the migrations again is a no-op.
    again = await build_services(settings, clock=clock, hasher=FAST_HASHER)
    assert await again.accounts.get_by_username("alice") is not None
    await again.close()
