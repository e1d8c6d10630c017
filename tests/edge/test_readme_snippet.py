"""README's "protect your API in five lines", run as written against a live ``dojang serve``.

The snippet is cut out of ``README.md`` (and must be identical in the orders API's README), its
``http://127.0.0.1:8000`` pointed at this run's dojang, and executed: the resulting FastAPI app
is called in-process with real tokens minted by that dojang. So the snippet a reader copies
verifies signatures against the live JWKS, enforces its scope, and follows the live revocation
feed — or this test fails.
"""

from __future__ import annotations

import re
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from dojang import Verifier

from .harness import REPO, REVOCATION_BOUND_S, Dojang, StartError, free_port, start_dojang

README_URL = "http://127.0.0.1:8000"
HEADING = "protect your api in five lines"


def snippet(readme: Path) -> str:
    """The first ``python`` block after the "protect your API in five lines" phrase."""
    text = readme.read_text()
    start = text.lower().index(HEADING)
    found = re.search(r"^( *)```python\n(.*?)^\1```", text[start:], re.DOTALL | re.MULTILINE)
    assert found is not None, f"no python block after {HEADING!r} in {readme}"
    return textwrap.dedent(found.group(2))


@pytest.fixture(scope="module")
def dojang(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dojang]:
    """``dojang serve --demo`` with the ``orders-api`` audience (``orders:read orders:write``)."""
    port = free_port()
    try:
        server = start_dojang(tmp_path_factory.mktemp("readme"), port, f"http://127.0.0.1:{port}")
    except StartError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.proc.stop()


@pytest.fixture
async def session(dojang: Dojang) -> AsyncIterator[httpx.AsyncClient]:
    """A logged-in client of the live dojang (its cookie jar holds the session)."""
    async with httpx.AsyncClient(base_url=dojang.url, trust_env=False, timeout=10.0) as client:
        login = await client.post(
            "/api/v1/session", json={"username": dojang.username, "password": dojang.password}
        )
        assert login.status_code == 201, login.text
        client.headers["x-csrf-token"] = login.json()["csrf_token"]
        yield client


async def _token(session: httpx.AsyncClient, scope: str) -> str:
    minted = await session.post("/api/v1/tokens", json={"audience": "orders-api", "scope": scope})
    assert minted.status_code == 200, minted.text
    token: str = minted.json()["access_token"]
    return token


def test_both_readmes_show_the_same_snippet() -> None:
    """The orders API's README repeats the top-level snippet word for word."""
    top = snippet(REPO / "README.md")
    example = snippet(REPO / "examples" / "orders_api" / "README.md")
    assert top == example
    assert "revocations=" in top and 'require("orders:read")' in top


async def test_readme_snippet_protects_an_api_against_a_live_dojang(
    dojang: Dojang, session: httpx.AsyncClient
) -> None:
    """Real token → 200; none → 401; wrong scope → 403; after logout → 401 ``revoked_token``."""
    code = snippet(REPO / "README.md")
    assert code.count(README_URL) == 3  # issuer, JWKS, revocation feed: all pointed here
    namespace: dict[str, Any] = {}
    exec(compile(code.replace(README_URL, dojang.url), "README.md", "exec"), namespace)
    app, verifier = namespace["app"], namespace["verifier"]
    assert isinstance(app, FastAPI) and isinstance(verifier, Verifier)
    try:
        read = await _token(session, "orders:read")
        write_only = await _token(session, "orders:write")
        me = (await session.get("/api/v1/session")).json()["user"]["id"]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
            ok = await api.get("/orders", headers={"authorization": f"Bearer {read}"})
            assert ok.status_code == 200, ok.text
            assert ok.json() == {"user": me}

            anonymous = await api.get("/orders")
            assert anonymous.status_code == 401
            assert anonymous.headers["www-authenticate"].startswith("Bearer")

            wrong = await api.get("/orders", headers={"authorization": f"Bearer {write_only}"})
            assert wrong.status_code == 403
            assert wrong.json()["error"] == "insufficient_scope"

            # The snippet's verifier follows the feed: the logout reaches it, not only exp.
            assert (await session.delete("/api/v1/session")).status_code == 204
            since = time.perf_counter()
            while True:
                answer = await api.get("/orders", headers={"authorization": f"Bearer {read}"})
                elapsed = time.perf_counter() - since
                if answer.status_code != 200 or elapsed > REVOCATION_BOUND_S:
                    break
        assert answer.status_code == 401, f"still accepted after {elapsed * 1000:.0f} ms"
        assert elapsed < REVOCATION_BOUND_S, f"refused after {elapsed * 1000:.0f} ms"
        assert answer.json()["error"] == "revoked_token"
    finally:
        verifier.close()
