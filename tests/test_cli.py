"""The command line: init, users, sessions, keys, and clear errors for bad config."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from typer.testing import CliRunner

from dojang.cli import app
from dojang.config import load_settings
from dojang.errors import InvalidCredentials, SessionNotFound
from dojang.server.services import Services, build_services

T = TypeVar("T")

runner = CliRunner()
FAST = {
    "DOJANG_ARGON2_TIME_COST": "1",
    "DOJANG_ARGON2_MEMORY_COST": "8",
    "DOJANG_ARGON2_PARALLELISM": "1",
}


def _env(tmp_path: Path) -> dict[str, str]:
    return {"DOJANG_DATA_DIR": str(tmp_path / "data"), **FAST}


def test_init_creates_database_and_private_keys(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init"], env=_env(tmp_path))
    assert result.exit_code == 0, result.output
    keys = tmp_path / "data" / "keys.json"
    assert stat.S_IMODE(os.stat(keys).st_mode) == 0o600
    assert (tmp_path / "data" / "dojang.db").exists()
    listed = runner.invoke(app, ["keys", "list"], env=_env(tmp_path))
    assert listed.exit_code == 0 and "active" in listed.output


def test_users_lifecycle_reads_password_from_stdin(tmp_path: Path) -> None:
    env = _env(tmp_path)
    added = runner.invoke(
        app, ["users", "add", "erin", "--password-stdin"], input="a long enough password\n", env=env
    )
    assert added.exit_code == 0, added.output
    assert "a long enough password" not in added.output
    dup = runner.invoke(
        app, ["users", "add", "erin", "--password-stdin"], input="a long enough password\n", env=env
    )
    assert dup.exit_code == 1 and "error" in dup.output.lower()
    weak = runner.invoke(
        app, ["users", "add", "frank", "--password-stdin"], input="short\n", env=env
    )
    assert weak.exit_code == 1
    listed = runner.invoke(app, ["users", "list"], env=env)
    assert "erin" in listed.output and "frank" not in listed.output
    disabled = runner.invoke(app, ["users", "disable", "erin"], env=env)
    assert disabled.exit_code == 0 and "ended 0 session" in disabled.output
    assert "disabled" in runner.invoke(app, ["users", "list"], env=env).output


def test_bad_config_is_a_clear_message_not_a_traceback(tmp_path: Path) -> None:
    env = {**_env(tmp_path), "DOJANG_PORT": "seventy"}
    result = runner.invoke(app, ["init"], env=env)
    assert result.exit_code == 2
    assert "DOJANG_PORT" in result.output
    assert "Traceback" not in result.output


def test_corrupt_key_file_stops_with_the_file_named(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert runner.invoke(app, ["init"], env=env).exit_code == 0
    keys = tmp_path / "data" / "keys.json"
    keys.write_text("{not json")
    result = runner.invoke(app, ["init"], env=env)
    assert result.exit_code == 1
    assert "keys.json" in result.output
    assert "Traceback" not in result.output


def test_key_rotation_keeps_old_key_published(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert runner.invoke(app, ["init"], env=env).exit_code == 0
    keys = tmp_path / "data" / "keys.json"
    before = json.loads(keys.read_text())
    # Right after init the next key is brand new: caches may not know it, so --force.
    result = runner.invoke(app, ["keys", "rotate", "--force"], env=env)
    assert result.exit_code == 0, result.output
    listed = runner.invoke(app, ["keys", "list"], env=env).output
    assert "retired" in listed and "active" in listed and "next" in listed
    assert keys.read_text() != json.dumps(before)


def test_audit_trail_records_cli_changes(tmp_path: Path) -> None:
    env = _env(tmp_path)
    runner.invoke(
        app, ["users", "add", "gina", "--password-stdin"], input="a long enough password\n", env=env
    )
    assert (
        runner.invoke(
            app, ["audiences", "add", "orders-api", "--scopes", "orders:read orders:write"], env=env
        ).exit_code
        == 0
    )
    added = runner.invoke(
        app, ["clients", "add", "reporter", "--grant", "orders-api=orders:read"], env=env
    )
    assert added.exit_code == 0, added.output
    secret = added.output.split("client_secret: ")[1].split()[0]
    listed = runner.invoke(app, ["clients", "list"], env=env).output
    assert "reporter" in listed and secret not in listed
    bad = runner.invoke(app, ["clients", "add", "x", "--grant", "nope=a"], env=env)
    assert bad.exit_code == 1 and "unknown audience" in bad.output
    tail = runner.invoke(app, ["audit", "tail", "--json"], env=env)
    assert tail.exit_code == 0
    actions = [json.loads(line)["action"] for line in tail.output.splitlines()]
    assert actions == ["user.created", "audience.added", "client.added"]
    assert secret not in tail.output
    found = runner.invoke(app, ["audit", "search", "--action", "client", "--json"], env=env)
    assert [json.loads(x)["action"] for x in found.output.splitlines()] == ["client.added"]


def _services_run(tmp_path: Path, fn: Callable[[Services], Awaitable[T]]) -> T:
    """Run ``fn`` against the services of the CLI's data directory (what a server would see)."""

    async def go() -> T:
        svc = await build_services(load_settings(env=_env(tmp_path)))
        try:
            return await fn(svc)
        finally:
            await svc.close()

    return asyncio.run(go())


def _add_user(tmp_path: Path, name: str, password: str = "a long enough password") -> None:
    added = runner.invoke(
        app, ["users", "add", name, "--password-stdin"], input=password + "\n", env=_env(tmp_path)
    )
    assert added.exit_code == 0, added.output


async def _user_id(svc: Services, name: str) -> str:
    user = await svc.accounts.get_by_username(name)
    assert user is not None
    return user.id


def _start_sessions(tmp_path: Path, name: str, count: int) -> list[str]:
    """Start ``count`` sessions for ``name`` (as logins would); return their cookie values."""

    async def go(svc: Services) -> list[str]:
        user_id = await _user_id(svc, name)
        cookies = []
        for i in range(count):
            cookie, _ = await svc.sessions.create(user_id, user_agent=f"device-{i}", ip="10.0.0.1")
            cookies.append(cookie)
        return cookies

    return _services_run(tmp_path, go)


def _live_sids(tmp_path: Path, name: str) -> set[str]:
    async def go(svc: Services) -> set[str]:
        return {s.sid for s in await svc.sessions.list_for_user(await _user_id(svc, name))}

    return _services_run(tmp_path, go)


def _can_log_in(tmp_path: Path, name: str, password: str) -> bool:
    async def go(svc: Services) -> bool:
        try:
            await svc.accounts.authenticate(name, password, ip=None)
        except InvalidCredentials:
            return False
        return True

    return _services_run(tmp_path, go)


def test_set_password_from_stdin_ends_every_session_of_that_user(tmp_path: Path) -> None:
    env = _env(tmp_path)
    _add_user(tmp_path, "erin", "the old password")
    _add_user(tmp_path, "frank")
    _start_sessions(tmp_path, "erin", 2)
    _start_sessions(tmp_path, "frank", 1)
    frank_before = _live_sids(tmp_path, "frank")
    changed = runner.invoke(
        app,
        ["users", "set-password", "erin", "--password-stdin"],
        input="the new password\n",
        env=env,
    )
    assert changed.exit_code == 0, changed.output
    assert "ended 2 session(s)" in changed.output
    assert "the new password" not in changed.output
    assert _live_sids(tmp_path, "erin") == set()
    assert _live_sids(tmp_path, "frank") == frank_before  # only that user's sessions end
    assert not _can_log_in(tmp_path, "erin", "the old password")
    assert _can_log_in(tmp_path, "erin", "the new password")
    weak = runner.invoke(
        app, ["users", "set-password", "erin", "--password-stdin"], input="short\n", env=env
    )
    assert weak.exit_code == 1 and "Traceback" not in weak.output
    assert _can_log_in(tmp_path, "erin", "the new password")
    unknown = runner.invoke(
        app, ["users", "set-password", "nobody", "--password-stdin"], input="x" * 12 + "\n", env=env
    )
    assert unknown.exit_code == 1


def test_sessions_list_shows_the_users_live_sessions(tmp_path: Path) -> None:
    env = {**_env(tmp_path), "COLUMNS": "200"}  # wide enough that no sid is folded
    _add_user(tmp_path, "erin")
    _add_user(tmp_path, "frank")
    _start_sessions(tmp_path, "erin", 2)
    _start_sessions(tmp_path, "frank", 1)
    listed = runner.invoke(app, ["sessions", "list", "erin"], env=env)
    assert listed.exit_code == 0, listed.output
    for sid in _live_sids(tmp_path, "erin"):
        assert sid in listed.output
    for sid in _live_sids(tmp_path, "frank"):
        assert sid not in listed.output
    assert "device-0" in listed.output and "10.0.0.1" in listed.output
    missing = runner.invoke(app, ["sessions", "list", "nobody"], env=env)
    assert missing.exit_code == 1 and "no user" in missing.output


def test_sessions_revoke_ends_that_session_only(tmp_path: Path) -> None:
    env = _env(tmp_path)
    _add_user(tmp_path, "erin")
    cookies = _start_sessions(tmp_path, "erin", 2)
    sids = sorted(_live_sids(tmp_path, "erin"))
    revoked = runner.invoke(app, ["sessions", "revoke", sids[0]], env=env)
    assert revoked.exit_code == 0, revoked.output
    assert _live_sids(tmp_path, "erin") == {sids[1]}

    async def alive(svc: Services) -> list[bool]:
        answers = []
        for cookie in cookies:
            try:
                await svc.sessions.load(cookie)
            except SessionNotFound:
                answers.append(False)
            else:
                answers.append(True)
        return answers

    assert sorted(_services_run(tmp_path, alive)) == [False, True]  # the cookie itself is dead
    again = runner.invoke(app, ["sessions", "revoke", sids[0]], env=env)
    assert again.exit_code == 1 and "no live session" in again.output
    garbage = runner.invoke(app, ["sessions", "revoke", "../../etc"], env=env)
    assert garbage.exit_code == 1 and "Traceback" not in garbage.output
    assert _live_sids(tmp_path, "erin") == {sids[1]}
