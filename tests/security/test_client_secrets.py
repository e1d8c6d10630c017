"""Service client credentials at rest and after removal (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import select

from dojang.accounts.clients import ClientRegistry, InvalidClient
from dojang.clock import FrozenClock
from dojang.storage import Database
from dojang.storage.oauth_tables import clients_table


@pytest.fixture
async def registry(db: Database, clock: FrozenClock) -> ClientRegistry:
    reg = ClientRegistry(db, clock=clock)
    await reg.add_audience("orders-api", "orders:read")
    return reg


async def _dump_clients(db: Database) -> list[dict[str, object]]:
    async with db.engine.connect() as conn:
        rows = (await conn.execute(select(clients_table))).mappings().all()
    return [dict(row) for row in rows]


async def test_client_secret_is_stored_only_as_a_hash(
    db: Database, registry: ClientRegistry
) -> None:
    """Credential theft from a database dump: the clients row holds no usable secret."""
    client, secret = await registry.add_client("reporter", grants={"orders-api": "orders:read"})
    rows = await _dump_clients(db)
    assert [r["client_id"] for r in rows] == [client.client_id]
    dump = json.dumps(rows, default=str)
    raw = secret.encode()
    for spelling in (secret, secret[:12], secret[-12:], raw.hex(), base64.b64encode(raw).decode()):
        assert spelling not in dump
    stored = str(rows[0]["secret_hash"])
    assert stored and stored != secret
    # Pass-the-hash: what the database holds does not authenticate anybody.
    with pytest.raises(InvalidClient):
        await registry.authenticate(client.client_id, stored)
    assert (await registry.authenticate(client.client_id, secret)).client_id == client.client_id


async def test_removed_client_secret_stops_working_at_once(
    db: Database, registry: ClientRegistry
) -> None:
    """A leaked secret of a removed client (removed by name or by id) authenticates nobody."""
    by_name, by_name_secret = await registry.add_client("a", grants={"orders-api": "orders:read"})
    by_id, by_id_secret = await registry.add_client("b", grants={"orders-api": "orders:read"})
    kept, kept_secret = await registry.add_client("c", grants={"orders-api": "orders:read"})
    assert await registry.remove_client("a") is True
    assert await registry.remove_client(by_id.client_id) is True
    for client, secret in ((by_name, by_name_secret), (by_id, by_id_secret)):
        with pytest.raises(InvalidClient):
            await registry.authenticate(client.client_id, secret)
        assert await registry.get_client(client.client_id) is None
    assert [r["client_id"] for r in await _dump_clients(db)] == [kept.client_id]
    assert (await registry.authenticate(kept.client_id, kept_secret)).name == "c"
    # Removing again, or something that never existed, reports that nothing was removed.
    assert await registry.remove_client("a") is False
    assert await registry.remove_client("svc_nobody") is False
    # The name is free again, with a new id and a new secret.
    again, again_secret = await registry.add_client("a", grants={"orders-api": "orders:read"})
    assert again.client_id != by_name.client_id and again_secret != by_name_secret
    with pytest.raises(InvalidClient):
        await registry.authenticate(again.client_id, by_name_secret)
