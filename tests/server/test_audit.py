"""The audit trail: who did what, never a secret."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import select

from dojang.audit import session_ref
from dojang.logs import JsonFormatter
from dojang.storage.audit_tables import audit_table

from .conftest import PASSWORD, Env
from .test_tokens import Clients, _basic, _exchange, _session_token
from .test_tokens import clients as clients  # the fixture, for this module's tests


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


async def test_token_mints_and_exchanges_name_actor_subject_and_client(
    env: Env, clients: Clients, caplog: pytest.LogCaptureFixture
) -> None:
    """Each token issued is audited with who asked, for whom and through which client, and
    neither the tokens nor the client secrets appear in a stored row or any log line."""
    # The loggers `dojang serve` writes as JSON lines (dojang.logs), at their most verbose:
    # application logs must not leak a token either.
    caplog.set_level(logging.DEBUG, logger="dojang")
    user_token = await _session_token(env, scope="orders:read payments:charge")
    session = (await env.client.get("/api/v1/session")).json()
    user, sid = session["user"]["id"], session["sid"]
    service = await env.client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "audience": "orders-api"},
        headers=_basic(clients.reporter_id, clients.reporter_secret),
    )
    exchanged = await _exchange(env, clients, user_token)
    assert service.status_code == exchanged.status_code == 200, (service.text, exchanged.text)

    (api, svc_mint) = reversed(await env.services.audit.search(action="token.minted"))
    assert (api.actor, api.subject, api.session_ref) == (user, user, session_ref(sid))
    assert api.detail == {
        "kind": "access",
        "client": "dojang-session",
        "audience": "orders-api",
        "scope": "orders:read payments:charge",
    }
    assert api.client_ip == "127.0.0.1" and api.user_agent
    assert (svc_mint.actor, svc_mint.subject) == (clients.reporter_id, clients.reporter_id)
    assert svc_mint.session_ref is None
    assert svc_mint.detail == {
        "kind": "service",
        "client": clients.reporter_id,
        "audience": "orders-api",
        "scope": "orders:read",
    }
    (exchange,) = await env.services.audit.search(action="token.exchanged")
    # The acting client is the actor; the person whose token it was is the subject, and the
    # session it came from is linked (hashed) like every other record of that session.
    assert (exchange.actor, exchange.subject) == (clients.orders_id, user)
    assert exchange.session_ref == session_ref(sid)
    assert exchange.detail == {
        "client": clients.orders_id,
        "subject_client": "dojang-session",
        "audience": "payments-api",
        "scope": "payments:charge",
    }

    secrets = {
        "user token": user_token,
        "service token": service.json()["access_token"],
        "exchanged token": exchanged.json()["access_token"],
        "reporter secret": clients.reporter_secret,
        "orders secret": clients.orders_secret,
        "session cookie": env.client.cookies["dojang_session"],
        "csrf token": session["csrf_token"],
    }
    for name in ("user token", "service token", "exchanged token"):
        # A token's signature alone would be as bad as the token (and is never a substring
        # of anything else by chance).
        secrets[f"{name} signature"] = secrets[name].rsplit(".", 1)[1]
    async with env.services.db.connection() as conn:
        rows = (await conn.execute(select(audit_table))).all()
    assert len(rows) >= 4  # login, three token records
    stored = "\n".join(repr(tuple(row)) for row in rows)
    formatter = JsonFormatter()
    logged = "\n".join(
        formatter.format(record)
        for record in caplog.records
        if record.name.partition(".")[0] in ("dojang", "uvicorn")
    )
    audit_lines = [
        json.loads(formatter.format(r))["audit"] for r in caplog.records if r.name == "dojang.audit"
    ]
    assert [line["action"] for line in audit_lines][-3:] == [
        "token.minted",
        "token.minted",
        "token.exchanged",
    ]
    assert audit_lines[-1]["subject"] == user and audit_lines[-1]["actor"] == clients.orders_id
    for name, secret in secrets.items():
        assert secret not in stored, f"{name} stored in audit_log"
        assert secret not in logged, f"{name} in a log line"
