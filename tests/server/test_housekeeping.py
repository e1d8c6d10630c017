"""Housekeeping purges what has expired, keeps what is live, and survives a failing store."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import func, select

from dojang.errors import StoreUnavailable
from dojang.oidc.store import CodeRecord, OIDCStore, RefreshRecord
from dojang.server.housekeeping import CODE_GRACE, DELIVERY_KEEP, purge_once
from dojang.storage.oidc_tables import (
    client_sessions_table,
    codes_table,
    logout_deliveries_table,
    refresh_tokens_table,
)
from dojang.storage.sessions_tables import sessions_table
from dojang.tokens.backends.sql import SqlReplayStore

from .conftest import Env

DAY = 86400.0


async def _count(env: Env, table: Any) -> int:
    async with env.services.db.connection() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


def _code(expires_at: float) -> CodeRecord:
    return CodeRecord(
        "rp", "u", "s", "https://rp/cb", "openid", None, "c" * 43, 1.0, ("pwd",),
        expires_at, None, None, None, None,
    )  # fmt: skip


def _refresh(expires_at: float) -> RefreshRecord:
    return RefreshRecord("f", "rp", "u", "s", "openid", 1.0, ("pwd",), expires_at, None, False)


async def test_expired_state_is_purged_and_live_state_kept(env: Env) -> None:
    svc = env.services
    oidc = OIDCStore(svc.db, svc.clock)
    now = env.clock.now()
    # Expired (or soon to be) ...
    await env.login()
    await svc.clients.revoke_jti("old-jti", now + 60)
    await SqlReplayStore(svc.db, clock=svc.clock).redeem("old-once", now + 60)
    await oidc.save_code("old-code", _code(now + 60))
    await oidc.save_refresh("old-refresh", _refresh(now + 60))
    await oidc.add_client_session("old-sid", "rp", "u")
    (delivery,) = await oidc.enqueue([("rp", "old-sid", "u", "https://rp/bc")])
    await oidc.finish_attempt(delivery, state="delivered", attempts=1, next_at=now, error=None)
    (pending,) = await oidc.enqueue([("rp", "old-sid", "u", "https://rp/bc")])

    # ... a long time later, with fresh state beside it.
    env.clock.advance(svc.settings.session_remember_me_lifetime + DELIVERY_KEEP + DAY)
    later = env.clock.now()
    async with env.new_client() as other:
        await env.login(other)
    await svc.clients.revoke_jti("new-jti", later + 60)
    await oidc.save_code("new-code", _code(later + 60))
    await oidc.save_refresh("new-refresh", _refresh(later + 60))
    await oidc.add_client_session("new-sid", "rp", "u")

    removed = await purge_once(svc)

    assert removed["sessions"] == 1 and await _count(env, sessions_table) == 1
    assert removed["revoked_jtis"] == 1 and await svc.clients.is_jti_revoked("new-jti")
    assert removed["used_jtis"] == 1
    assert removed["authorization_codes"] == 1 and await oidc.get_code("new-code") is not None
    assert removed["refresh_tokens"] == 1 and await oidc.get_refresh("new-refresh") is not None
    assert removed["client_sessions"] == 1 and await _count(env, client_sessions_table) == 1
    # Finished deliveries go; a pending one is never purged, however old.
    assert removed["backchannel_deliveries"] == 1
    assert [d.id for d in await oidc.deliveries()] == [pending]
    assert await _count(env, codes_table) == 1
    assert await _count(env, refresh_tokens_table) == 1
    assert await _count(env, logout_deliveries_table) == 1
    # A second round has nothing left to do.
    assert not any((await purge_once(svc)).values())


async def test_recently_expired_codes_are_kept_for_replay_detection(env: Env) -> None:
    oidc = OIDCStore(env.services.db, env.services.clock)
    await oidc.save_code("c", _code(env.clock.now() + 60))
    env.clock.advance(60 + CODE_GRACE / 2)
    assert (await purge_once(env.services))["authorization_codes"] == 0
    env.clock.advance(CODE_GRACE)
    assert (await purge_once(env.services))["authorization_codes"] == 1


async def test_one_failing_purge_does_not_stop_the_others(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    svc = env.services
    await svc.clients.revoke_jti("j", env.clock.now() + 1)
    env.clock.advance(10)

    async def down() -> int:
        raise StoreUnavailable("account store did not answer: OSError")

    monkeypatch.setattr(svc.clients, "purge_revoked", down)
    with caplog.at_level(logging.WARNING, logger="dojang.housekeeping"):
        removed = await purge_once(svc)
    assert "revoked_jtis" not in removed and "sessions" in removed
    assert "revoked_jtis not purged" in caplog.text
