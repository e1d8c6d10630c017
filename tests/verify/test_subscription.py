"""Push revocation over SSE against a real loopback dojang server (real clock, real sockets).

Every test here stops a token that a lost or unapplied revocation would let through.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dojang.clock import SYSTEM_CLOCK, FrozenClock
from dojang.errors import RevokedToken
from dojang.events.feed import FeedOptions
from dojang.jose import KeySet
from dojang.verify import Verifier
from dojang.verify.jwks import StaticKeys
from dojang.verify.subscription import RevocationsUnavailable, SseSubscription
from tests.events.live import LiveServer, login_and_token, logout, wait_until
from tests.events.proxy import TcpProxy

USERS = tuple(f"u{i}" for i in range(6))


def _start(data_dir: Path, port: int = 0) -> LiveServer:
    server = LiveServer(data_dir, port=port)
    server.api_state().event_feed = FeedOptions(heartbeat=0.2)
    return server.start()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = _start(tmp_path / "data")
    srv.setup_users(*USERS)
    try:
        yield srv
    finally:
        srv.stop()


def _verifier(server: LiveServer, feed_base: str, **kw: object) -> Verifier:
    return Verifier(
        issuer=server.settings.issuer,
        audience="orders-api",
        jwks=f"{server.base_url}/.well-known/jwks.json",
        revocations=f"{feed_base}/events/revocations",
        **kw,  # type: ignore[arg-type]
    )


def _sessions(base_url: str, n: int) -> list[tuple[httpx.Client, str, str]]:
    out = []
    for name in USERS[:n]:
        client = httpx.Client(base_url=base_url)
        csrf, token = login_and_token(client, name)
        out.append((client, csrf, token))
    return out


def _revoked(verifier: Verifier, token: str) -> bool:
    try:
        verifier.verify(token)
    except RevokedToken:
        return True
    return False


def test_first_sync_then_push(server: LiveServer) -> None:
    """A token whose session ended is refused by a subscribed verifier within moments."""
    (client, csrf, token), (c2, _, other) = _sessions(server.base_url, 2)
    with _verifier(server, server.base_url) as verifier:
        assert isinstance(verifier.subscription, SseSubscription)
        assert verifier.subscription.in_sync
        assert verifier.verify(token)["sub"]
        logout(client, csrf)
        wait_until(lambda: _revoked(verifier, token), what="revocation pushed over SSE")
        assert verifier.verify(other)  # only that session
        assert verifier.subscription.resyncs == 1
    client.close()
    c2.close()


def test_sse_resume_with_last_event_id_after_the_connection_is_cut(server: LiveServer) -> None:
    """Revocations published while the feed connection is down arrive after reconnect."""
    proxy = TcpProxy(server.port).resume()
    sessions = _sessions(server.base_url, 6)
    with _verifier(server, f"http://127.0.0.1:{proxy.port}") as verifier:
        sub = verifier.subscription
        assert sub is not None
        client, csrf, token = sessions[0]
        logout(client, csrf)
        wait_until(lambda: _revoked(verifier, token), what="first revocation")
        proxy.cut()
        for client, csrf, _ in sessions[1:]:
            logout(client, csrf)  # published while the subscriber cannot hear
        proxy.resume()
        for _, _, token in sessions:
            wait_until(functools.partial(_revoked, verifier, token), what="revocation after resume")
        # Recovered by resuming with Last-Event-ID, not by a full resync.
        assert sub.resyncs == 1
        assert proxy.connections >= 2
    for client, _, _ in sessions:
        client.close()


def test_server_restart_on_the_same_data_dir_loses_nothing(tmp_path: Path) -> None:
    """Restart with revocations right before and right after: every one is applied."""
    data = tmp_path / "data"
    first = _start(data)
    first.setup_users(*USERS)
    port = first.port
    sessions = _sessions(first.base_url, 4)
    verifier = _verifier(first, first.base_url)
    try:
        logout(sessions[0][0], sessions[0][1])
        logout(sessions[1][0], sessions[1][1])
        first.stop()
        second = _start(data, port=port)
        try:
            logout(sessions[2][0], sessions[2][1])  # the cookie survives: SQL session store
            for _, _, token in sessions[:3]:
                wait_until(
                    functools.partial(_revoked, verifier, token), what="revocation across restart"
                )
            assert verifier.verify(sessions[3][2])
        finally:
            second.stop()
    finally:
        verifier.close()
        for client, _, _ in sessions:
            client.close()


def test_replaced_log_sends_reset_and_the_subscriber_resyncs(tmp_path: Path) -> None:
    """A server whose log is behind the subscriber (restored/replaced) forces a full resync."""
    first = _start(tmp_path / "a")
    first.setup_users(*USERS)
    port = first.port
    sessions = _sessions(first.base_url, 2)
    verifier = _verifier(first, first.base_url)
    try:
        sub = verifier.subscription
        assert sub is not None
        logout(sessions[0][0], sessions[0][1])
        wait_until(lambda: _revoked(verifier, sessions[0][2]), what="first revocation")
        first.stop()
        # Same keys, empty event log: the subscriber's position is now beyond the log.
        (tmp_path / "b").mkdir()
        shutil.copy(first.settings.keys_path, tmp_path / "b" / first.settings.keys_path.name)
        second = _start(tmp_path / "b", port=port)
        try:
            second.setup_users("v0")
            wait_until(lambda: sub.resyncs >= 2, what="resync after reset")
            client = httpx.Client(base_url=second.base_url)
            csrf, token = login_and_token(client, "v0")
            logout(client, csrf)
            wait_until(lambda: _revoked(verifier, token), what="revocation after resync")
            client.close()
        finally:
            second.stop()
    finally:
        verifier.close()
        for client, _, _ in sessions:
            client.close()


def test_out_of_touch_fails_closed_then_recovers(tmp_path: Path) -> None:
    """No contact for longer than max_stale → every token refused; contact back → accepted."""
    data = tmp_path / "data"
    server = _start(data)
    server.setup_users(*USERS)
    port = server.port
    clock = FrozenClock(SYSTEM_CLOCK.now())
    ((client, _, token),) = _sessions(server.base_url, 1)
    verifier = _verifier(server, server.base_url, clock=clock, revocations_max_stale=30)
    try:
        assert verifier.verify(token)
        server.stop()
        clock.advance(31)
        with pytest.raises(RevocationsUnavailable):
            verifier.verify(token)
        restarted = _start(data, port=port)
        try:
            wait_until(lambda: _accepts(verifier, token), what="recovery after contact")
        finally:
            restarted.stop()
    finally:
        verifier.close()
        client.close()


def _accepts(verifier: Verifier, token: str) -> bool:
    try:
        verifier.verify(token)
    except RevocationsUnavailable:
        return False
    return True


async def test_averify_uses_the_same_subscription(server: LiveServer) -> None:
    """The async path reads the same deny list the background thread feeds."""
    ((client, csrf, token),) = _sessions(server.base_url, 1)
    with _verifier(server, server.base_url) as verifier:
        assert await verifier.averify(token)
        logout(client, csrf)
        wait_until(lambda: _revoked(verifier, token), what="revocation")
        with pytest.raises(RevokedToken):
            await verifier.averify(token)
    client.close()


def test_unsynced_subscription_refuses() -> None:
    """Before its first full resync a subscription answers nothing (fail closed, not open)."""
    sub = SseSubscription(
        "http://127.0.0.1:9/events/revocations",
        keys=StaticKeys(KeySet.generate()),
        issuer="https://auth.example",
        algorithms=("EdDSA",),
        clock=SYSTEM_CLOCK,
    )
    with pytest.raises(RevocationsUnavailable):
        sub.is_revoked({"sid": "x"})
