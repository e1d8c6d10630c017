"""``IndexedSelect``: the synchronous SQLite path and the async path return the same rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import bindparam, select

from dojang.accounts.clients import ClientRegistry
from dojang.storage.db import Database
from dojang.storage.oidc_tables import oidc_clients_table
from dojang.storage.sqlite_read import IndexedSelect, SqliteReader
from tests.conftest import MakeDb

BY_ID = IndexedSelect(
    select(oidc_clients_table).where(oidc_clients_table.c.client_id == bindparam("client_id"))
)


async def _client(db: Database, *, first_party: bool) -> str:
    client, _ = await ClientRegistry(db).add_oidc_client(
        f"rp-{first_party}",
        client_type="confidential",
        redirect_uris=["https://rp.example/cb"],
        first_party=first_party,
    )
    return client.client_id


def test_the_sqlite_text_is_compiled_from_the_statement() -> None:
    assert BY_ID.sqlite_sql.startswith("SELECT oidc_clients.client_id,")
    assert BY_ID.sqlite_sql.endswith("WHERE oidc_clients.client_id = ?")


async def test_fast_and_async_paths_return_identical_rows(make_db: MakeDb) -> None:
    db = await make_db("sqlite")
    assert db.reader is not None
    ids = [await _client(db, first_party=True), await _client(db, first_party=False)]
    for client_id in ids:
        fast = await BY_ID.one(db, "test", client_id=client_id)
        reader, db.reader = db.reader, None  # force the SQLAlchemy path
        slow = await BY_ID.one(db, "test", client_id=client_id)
        db.reader = reader
        assert fast == slow and fast is not None
        assert type(fast.first_party) is bool  # SQLite stores 0/1; both paths give a bool
    assert await BY_ID.one(db, "test", client_id="no-such-client") is None


@pytest.mark.postgres
async def test_postgres_has_no_fast_path_and_answers_the_same(make_db: MakeDb) -> None:
    db = await make_db("postgresql")
    assert db.reader is None
    client_id = await _client(db, first_party=True)
    row = await BY_ID.one(db, "test", client_id=client_id)
    assert row is not None and row.client_id == client_id and row.first_party is True


async def test_fast_path_sees_other_connections_writes_at_once(make_db: MakeDb) -> None:
    db = await make_db("sqlite")
    client_id = await _client(db, first_party=False)
    assert await BY_ID.one(db, "test", client_id=client_id) is not None
    assert db.reader is not None
    other = sqlite3.connect(db.url.split("///", 1)[1])  # e.g. `dojang clients remove`
    with other:
        other.execute("DELETE FROM oidc_clients")
    other.close()
    assert await BY_ID.one(db, "test", client_id=client_id) is None


async def test_a_broken_fast_path_falls_back_to_the_async_path(
    make_db: MakeDb, tmp_path: Path
) -> None:
    db = await make_db("sqlite")
    client_id = await _client(db, first_party=True)
    db.reader = SqliteReader(tmp_path / "missing" / "dojang.db")  # cannot be opened
    row = await BY_ID.one(db, "test", client_id=client_id)
    assert row is not None and row.client_id == client_id
