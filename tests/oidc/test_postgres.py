"""The OIDC provider on PostgreSQL (a fresh database migrated by Alembic): code + PKCE with
consent, refresh rotation and reuse detection under concurrency, userinfo, service tokens,
back-channel bookkeeping and housekeeping. The SQLite runs cover every refusal; this proves
the same SQL (async reads, group-committed rotations and audit records) on the other engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dojang.clock import FrozenClock
from dojang.server.housekeeping import purge_once
from tests.oidc.conftest import RP, Pkce, add_rp, get_code, redeem, refresh
from tests.server.conftest import Env, make_env
from tests.server.test_postgres import pg_url  # noqa: F401 - fixture

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg_env(
    tmp_path: Path,
    clock: FrozenClock,
    pg_url: str,  # noqa: F811 - the fixture imported above
) -> AsyncIterator[Env]:
    async for env in make_env(tmp_path, clock, database_url=pg_url):
        yield env


async def test_code_flow_refresh_and_reuse_on_postgres(pg_env: Env) -> None:
    env = pg_env
    assert env.services.db.reader is None  # no SQLite fast path: the async SQL answers
    rp: RP = await add_rp(env, backchannel="https://rp.example/bc")
    await env.login()
    pkce = Pkce()
    code, _ = await get_code(env, rp, pkce)  # consent page, then the code
    first = (await redeem(env, rp, code, pkce)).json()
    assert {"access_token", "id_token", "refresh_token"} <= first.keys()
    info = await env.new_client().get(
        "/oauth2/userinfo", headers={"authorization": f"Bearer {first['access_token']}"}
    )
    assert info.status_code == 200 and info.json()["sub"]
    # Ten simultaneous uses of one refresh token: exactly one wins, the rest are reuse.
    answers = await asyncio.gather(*(refresh(env, rp, first["refresh_token"]) for _ in range(10)))
    assert [a.status_code for a in answers].count(200) == 1
    # Reuse ended the family and the dojang session (and queued the back-channel logout).
    (winner,) = [a.json() for a in answers if a.status_code == 200]
    assert (await refresh(env, rp, winner["refresh_token"])).status_code == 400
    assert (await env.client.get("/api/v1/session")).status_code == 401
    await env.services.settle()
    actions = {r.action for r in await env.services.audit.search(limit=100)}
    assert {"login.success", "oidc.code_redeemed", "oidc.refreshed", "oidc.refresh_reuse"} <= (
        actions
    )


async def test_service_tokens_and_housekeeping_on_postgres(pg_env: Env) -> None:
    env = pg_env
    reg = env.services.clients
    await reg.add_audience("orders-api", "orders:read")
    client, secret = await reg.add_client("reporter", grants={"orders-api": "orders:read"})
    answers = await asyncio.gather(
        *(
            env.new_client().post(
                "/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(client.client_id, secret),
            )
            for _ in range(20)
        )
    )
    assert all(a.status_code == 200 for a in answers)
    minted = await env.services.audit.search(action="token.minted", limit=100)
    assert len(minted) == 20 and len({r.id for r in minted}) == 20
    await env.login()
    env.clock.advance(env.services.settings.session_remember_me_lifetime + 1)
    removed = await purge_once(env.services)
    assert removed["sessions"] == 1
    assert not any((await purge_once(env.services)).values())
