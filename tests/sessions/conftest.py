"""The ``store`` fixture: every session store backend behind one contract suite.

A new backend plugs in by adding one param here and one branch in ``store``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from dojang.sessions.backends import MemorySessionStore, SqlSessionStore
from dojang.sessions.store import SessionStore
from dojang.storage import Database

STORE_PARAMS = [
    "memory",
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=STORE_PARAMS)
async def store(
    request: pytest.FixtureRequest, make_db: Callable[[str], Awaitable[Database]]
) -> SessionStore:
    """A fresh, empty session store of each kind."""
    kind: str = request.param
    if kind == "memory":
        return MemorySessionStore()
    return SqlSessionStore(await make_db(kind))
