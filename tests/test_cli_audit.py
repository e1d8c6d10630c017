"""Operator actions from the command line leave audit records: who ended whose session, which
client was removed, and never a secret."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from dojang.audit import session_ref
from dojang.cli import _operator, app
from dojang.config import load_settings
from dojang.server.services import build_services
from dojang.storage.audit_tables import audit_table
from tests.test_cli import _env, runner


def _tail(env: dict[str, str]) -> list[dict[str, Any]]:
    result = runner.invoke(app, ["audit", "tail", "--json"], env=env)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


async def _log_in(data_dir: Path, username: str) -> tuple[str, str]:
    """Start a session for ``username`` as the server would; return (user id, sid)."""
    svc = await build_services(load_settings({"data_dir": data_dir}, env={}))
    try:
        user = await svc.accounts.get_by_username(username)
        assert user is not None
        _, session = await svc.sessions.create(user.id, ip="192.0.2.10")
        return user.id, session.sid
    finally:
        await svc.close()


async def _stored_rows(data_dir: Path) -> str:
    """Every column of every audit row, as text."""
    svc = await build_services(load_settings({"data_dir": data_dir}, env={}))
    try:
        async with svc.db.connection() as conn:
            return "\n".join(repr(tuple(r)) for r in (await conn.execute(select(audit_table))))
    finally:
        await svc.close()


def test_sessions_revoke_records_who_ended_whose_session(tmp_path: Path) -> None:
    env = _env(tmp_path)
    added = runner.invoke(
        app, ["users", "add", "gina", "--password-stdin"], input="a long enough password\n", env=env
    )
    assert added.exit_code == 0, added.output
    user_id, sid = asyncio.run(_log_in(tmp_path / "data", "gina"))

    ended = runner.invoke(app, ["sessions", "revoke", sid], env=env)
    assert ended.exit_code == 0, ended.output
    record = _tail(env)[-1]
    assert record["action"] == "session.revoked" and record["outcome"] == "success"
    assert record["actor"] == _operator() and record["subject"] == user_id
    assert record["session_ref"] == session_ref(sid)  # linked to the session, hashed
    assert record["detail"] == {"via": "cli"}
    assert sid not in json.dumps(record)
    # The session is gone: revoking it again fails and records nothing.
    again = runner.invoke(app, ["sessions", "revoke", sid], env=env)
    assert again.exit_code == 1 and "no live session" in again.output
    assert [r["action"] for r in _tail(env)].count("session.revoked") == 1


def test_clients_remove_is_recorded_and_no_secret_is(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert (
        runner.invoke(app, ["audiences", "add", "orders-api", "--scopes", "a"], env=env).exit_code
        == 0
    )
    added = runner.invoke(app, ["clients", "add", "reporter", "--grant", "orders-api=a"], env=env)
    assert added.exit_code == 0, added.output
    secret = added.output.split("client_secret: ")[1].split()[0]

    removed = runner.invoke(app, ["clients", "remove", "reporter"], env=env)
    assert removed.exit_code == 0, removed.output
    records = _tail(env)
    assert [r["action"] for r in records] == ["audience.added", "client.added", "client.removed"]
    assert records[-1]["actor"] == _operator() and records[-1]["subject"] == "reporter"
    missing = runner.invoke(app, ["clients", "remove", "reporter"], env=env)
    assert missing.exit_code == 1
    assert len(_tail(env)) == 3  # a failed removal records nothing

    searched = runner.invoke(app, ["audit", "search", "--action", "client", "--json"], env=env)
    assert secret not in searched.output and secret not in removed.output
    assert secret not in asyncio.run(_stored_rows(tmp_path / "data"))
