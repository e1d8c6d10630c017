"""Push revocation straight from the Redis Stream (real Redis, random stream name per test)."""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from dojang.errors import RevokedToken
from dojang.events.model import Event
from dojang.events.secevent import event_uri, sign_event
from dojang.jose import KeySet, sign_compact
from dojang.verify import Verifier
from dojang.verify.subscription import RedisSubscription
from tests.events.live import LiveServer, login_and_token, logout, redis_or_skip, wait_until

USERS = ("r0", "r1", "r2", "r3")


@pytest.fixture
def stream_url() -> Iterator[str]:
    base = redis_or_skip()
    stream = f"dojang-test:{secrets.token_hex(6)}"
    yield f"{base}?stream={stream}"
    redis.Redis.from_url(base).delete(stream)


@pytest.fixture
def server(tmp_path: Path, stream_url: str) -> Iterator[LiveServer]:
    srv = LiveServer(tmp_path / "data", event_bus=stream_url).start()
    srv.setup_users(*USERS)
    try:
        yield srv
    finally:
        srv.stop()


def _verifier(server: LiveServer, stream_url: str) -> Verifier:
    return Verifier(
        issuer=server.settings.issuer,
        audience="orders-api",
        jwks=server.services.keyset.public_jwks(),
        revocations=stream_url,
    )


def _revoked(verifier: Verifier, token: str) -> bool:
    try:
        verifier.verify(token)
    except RevokedToken:
        return True
    return False


_open: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def _sessions(server: LiveServer, n: int) -> list[tuple[httpx.Client, str, str]]:
    out = []
    for name in USERS[:n]:
        client = httpx.Client(base_url=server.base_url)
        _open.append(client)
        out.append((client, *login_and_token(client, name)))
    return out


def test_stream_consumer_resumes_from_its_last_id(server: LiveServer, stream_url: str) -> None:
    """The subscriber's connection is killed mid-stream; it resumes from its last id."""
    sessions = _sessions(server, 4)
    with _verifier(server, stream_url) as verifier:
        sub = verifier.subscription
        assert isinstance(sub, RedisSubscription)
        logout(*sessions[0][:2])
        wait_until(lambda: _revoked(verifier, sessions[0][2]), what="first revocation")
        admin = redis.Redis.from_url(stream_url.split("?")[0], decode_responses=True)
        mine = [c["id"] for c in admin.client_list() if c.get("name") == sub.client_name]
        assert len(mine) == 1
        assert admin.client_kill_filter(_id=mine[0]) == 1  # only our subscriber's link
        for client, csrf, _ in sessions[1:]:
            logout(client, csrf)
        for _, _, token in sessions:
            wait_until(functools.partial(_revoked, verifier, token), what="revocation after kill")
        assert sub.resyncs == 1  # resumed by stream id, no full resync
        assert sub.last_id != "0-0"


def _forgeries(genuine: KeySet, issuer: str) -> dict[str, str]:
    event = Event("session.revoked", {"sid": "forged-sid"}, 4_000_000_000.0, 1_800_000_000.0)
    other = KeySet.generate("EdDSA")
    claims = {
        "iss": issuer,
        "iat": 1_800_000_000,
        "jti": "x",
        "events": {event_uri("session.revoked"): {"sid": "forged-sid", "exp": 4e9}},
    }
    key = genuine.active
    return {
        "other key": sign_event(event, other.active, issuer=issuer),
        "wrong typ": sign_compact(claims, key, typ="JWT"),
        "wrong iss": sign_event(event, key, issuer="https://evil.example"),
        "unsigned": "eyJhbGciOiJub25lIiwidHlwIjoic2VjZXZlbnQrand0In0."
        + sign_event(event, key, issuer=issuer).split(".")[1]
        + ".",
        "garbage": "not a token",
    }


def test_forged_events_in_the_stream_are_ignored_and_logged(
    server: LiveServer, stream_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Someone who can write to Redis cannot forge a revocation (SETs are verified)."""
    caplog.set_level(logging.WARNING, logger="dojang.security")
    ((client, csrf, token),) = _sessions(server, 1)
    stream = stream_url.split("stream=")[1]
    admin = redis.Redis.from_url(stream_url.split("?")[0])
    with _verifier(server, stream_url) as verifier:
        sub = verifier.subscription
        assert sub is not None
        forged = _forgeries(server.services.keyset, server.settings.issuer)
        for value in forged.values():
            admin.xadd(stream, {"set": value, "kind": "session.revoked", "exp": "4e9"})
        admin.xadd(stream, {"nothing": "here"})
        logout(client, csrf)  # the genuine event comes after the forgeries
        wait_until(lambda: _revoked(verifier, token), what="genuine revocation")
        assert sub.rejected == len(forged)
        assert not sub.deny.is_revoked({"sid": "forged-sid"})
    messages = [r.getMessage() for r in caplog.records if r.name == "dojang.security"]
    assert sum("ignored" in m for m in messages) >= len(forged) + 1
    assert not any(v in m for v in forged.values() for m in messages if len(v) > 20)
    # The server's own snapshot skips them too.
    snapshot = httpx.get(f"{server.base_url}/api/v1/revocations").json()
    assert [e["kind"] for e in snapshot["events"]] == ["session.revoked"]
    assert "forged-sid" not in str(snapshot)


def test_new_subscriber_resyncs_from_the_whole_stream(server: LiveServer, stream_url: str) -> None:
    """A verifier started after the revocations still refuses the revoked tokens."""
    sessions = _sessions(server, 2)
    logout(*sessions[0][:2])
    with _verifier(server, stream_url) as verifier:
        assert verifier.subscription is not None and verifier.subscription.in_sync
        assert _revoked(verifier, sessions[0][2])
        assert verifier.verify(sessions[1][2])
