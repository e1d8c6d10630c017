"""The audit trail: who did what, never a secret."""

from __future__ import annotations

import json
import logging

import pytest

from dojang.audit import session_ref

from .conftest import PASSWORD, Env


async def test_login_logout_and_failures_are_audited(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dojang.audit")
    await env.login(password="wrong password!")
    login = (await env.login()).json()
    await env.client.delete("/api/v1/session", headers={"x-csrf-token": login["csrf_token"]})
    records = list(reversed(await env.services.audit.search()))
    actions = [(r.action, r.outcome) for r in records]
    assert actions == [
        ("login.failure", "failure"),
        ("login.success", "success"),
        ("logout", "success"),
    ]
    success = records[1]
    assert success.actor == login["user"]["id"] and success.client_ip == "127.0.0.1"
    assert success.session_ref == session_ref(login["sid"])
    assert records[2].session_ref == success.session_ref
    # Nothing secret anywhere: not in the table, not in the log lines.
    dumped = json.dumps([r.__repr__() for r in records]) + caplog.text
    for secret in (
        PASSWORD,
        "wrong password!",
        login["csrf_token"],
        login["sid"],
        env.client.cookies.get("dojang_session") or "\x00",
    ):
        assert secret not in dumped
    lines = [json.loads(r.message) for r in caplog.records if r.name == "dojang.audit"]
    assert [line["action"] for line in lines] == ["login.failure", "login.success", "logout"]


async def test_revoking_another_session_names_who_ended_whose(env: Env) -> None:
    me = (await env.login()).json()
    async with env.new_client() as phone:
        other = (await env.login(phone)).json()
    await env.client.delete(
        f"/api/v1/sessions/{other['sid']}", headers={"x-csrf-token": me["csrf_token"]}
    )
    (rec,) = await env.services.audit.search(action="session.revoked")
    assert rec.actor == me["user"]["id"] and rec.subject == me["user"]["id"]
    assert rec.session_ref == session_ref(other["sid"])


async def test_throttled_logins_are_audited(env: Env) -> None:
    for _ in range(8):
        await env.login(password="wrong password!")
    throttled = await env.services.audit.search(action="login.throttled")
    assert throttled and all(r.outcome == "denied" for r in throttled)


async def test_audit_refuses_secret_looking_detail(env: Env) -> None:
    with pytest.raises(ValueError, match="never audit secrets"):
        await env.services.audit.record("test", client_secret="x")


async def test_search_filters(env: Env) -> None:
    await env.services.audit.record("client.added", actor="cli:root", subject="svc_1")
    env.clock.advance(10)
    await env.services.audit.record("client.removed", actor="cli:root", subject="svc_1")
    await env.services.audit.record("audience.added", actor="cli:other", subject="a")
    assert [r.action for r in await env.services.audit.search(action="client")] == [
        "client.removed",
        "client.added",
    ]
    assert len(await env.services.audit.search(actor="cli:other")) == 1
    assert len(await env.services.audit.search(since=env.clock.now() - 1)) == 2
    assert len(await env.services.audit.search(subject="svc_1", limit=1)) == 1
