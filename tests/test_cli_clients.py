"""``dojang clients remove``: by name or id, the secret stops working, the audit trail says so."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from dojang.accounts.clients import ClientRegistry, InvalidClient
from dojang.cli import app
from dojang.storage import Database
from tests.test_cli import _env, runner


def _add(env: dict[str, str], name: str) -> tuple[str, str]:
    added = runner.invoke(
        app, ["clients", "add", name, "--grant", "orders-api=orders:read"], env=env
    )
    assert added.exit_code == 0, added.output
    client_id = added.output.split("client_id: ")[1].split()[0]
    secret = added.output.split("client_secret: ")[1].split()[0]
    return client_id, secret


async def _authenticates(data_dir: Path, client_id: str, secret: str) -> bool:
    db = Database(f"sqlite:///{data_dir / 'dojang.db'}")
    try:
        await ClientRegistry(db).authenticate(client_id, secret)
    except InvalidClient:
        return False
    finally:
        await db.dispose()
    return True


def test_clients_remove_by_name_and_by_id(tmp_path: Path) -> None:
    env = _env(tmp_path)
    audience = ["audiences", "add", "orders-api", "--scopes", "orders:read"]
    assert runner.invoke(app, audience, env=env).exit_code == 0
    a_id, a_secret = _add(env, "alpha")
    b_id, b_secret = _add(env, "bravo")
    c_id, c_secret = _add(env, "charlie")
    data_dir = tmp_path / "data"
    assert asyncio.run(_authenticates(data_dir, a_id, a_secret))

    by_name = runner.invoke(app, ["clients", "remove", "alpha"], env=env)
    assert by_name.exit_code == 0 and "removed client alpha" in by_name.output
    by_id = runner.invoke(app, ["clients", "remove", b_id], env=env)
    assert by_id.exit_code == 0, by_id.output

    listed = runner.invoke(app, ["clients", "list"], env=env).output
    assert "alpha" not in listed and "bravo" not in listed and "charlie" in listed
    assert not asyncio.run(_authenticates(data_dir, a_id, a_secret))
    assert not asyncio.run(_authenticates(data_dir, b_id, b_secret))
    assert asyncio.run(_authenticates(data_dir, c_id, c_secret))

    tail = runner.invoke(app, ["audit", "tail", "--json"], env=env)
    removed = [
        record["subject"]
        for record in map(json.loads, tail.output.splitlines())
        if record["action"] == "client.removed"
    ]
    assert removed == ["alpha", b_id]
    assert a_secret not in tail.output and b_secret not in tail.output


@pytest.mark.parametrize("target", ["nobody", "svc_doesnotexist"])
def test_clients_remove_unknown_is_a_clear_error(tmp_path: Path, target: str) -> None:
    env = _env(tmp_path)
    assert runner.invoke(app, ["init"], env=env).exit_code == 0
    result = runner.invoke(app, ["clients", "remove", target], env=env)
    assert result.exit_code == 1
    assert f"no client {target!r}" in result.output
    assert "Traceback" not in result.output
    tail = runner.invoke(app, ["audit", "tail", "--json"], env=env).output
    assert "client.removed" not in tail
