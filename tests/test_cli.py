"""The command line: init, users, sessions, keys, and clear errors for bad config."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from typer.testing import CliRunner

from dojang.cli import app

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
    result = runner.invoke(app, ["keys", "rotate"], env=env)
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
