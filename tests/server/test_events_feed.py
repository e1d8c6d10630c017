"""``GET /events/revocations`` on a real loopback server: format, resume, reset, bounds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dojang.events.feed import FeedOptions
from tests.events.live import LiveServer, login_and_token, logout


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = LiveServer(tmp_path / "data")
    srv.api_state().event_feed = FeedOptions(heartbeat=0.2, max_streams=2)
    srv.start()
    srv.setup_users("alice", "bob")
    try:
        yield srv
    finally:
        srv.stop()


def _frames(client: httpx.Client, n: int, **kw: object) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    current: dict[str, str] = {}
    with client.stream("GET", "/events/revocations", timeout=5, **kw) as resp:  # type: ignore[arg-type]
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if not line:
                if current:
                    out.append(current)
                    current = {}
                if len(out) >= n:
                    break
                continue
            name, _, value = line.partition(": ")
            current[name] = value
    return out


def _revoke_two(server: LiveServer) -> None:
    for name in ("alice", "bob"):
        with httpx.Client(base_url=server.base_url) as c:
            csrf, _ = login_and_token(c, name)
            logout(c, csrf)


def test_events_then_heartbeat_and_resume(server: LiveServer) -> None:
    _revoke_two(server)
    with httpx.Client(base_url=server.base_url) as client:
        frames = _frames(client, 4)
        assert frames[0] == {"retry": "1000"}
        assert [f["event"] for f in frames[1:3]] == ["session.revoked", "session.revoked"]
        assert frames[1]["data"].count(".") == 2  # a compact JWS (the SET)
        assert frames[3]["event"] == "heartbeat" and frames[3]["id"] == frames[2]["id"]
        again = _frames(client, 3, headers={"last-event-id": frames[1]["id"]})
        assert again[1]["id"] == frames[2]["id"]  # resumes right after
        by_query = _frames(client, 2, params={"since": frames[1]["id"]})
        assert by_query[1]["id"] == frames[2]["id"]


def test_resume_point_beyond_the_log_gets_reset(server: LiveServer) -> None:
    with httpx.Client(base_url=server.base_url) as client:
        (frame,) = _frames(client, 1, headers={"last-event-id": "999"})
        assert frame["event"] == "reset" and '"snapshot": "/api/v1/revocations"' in frame["data"]


def test_bad_last_event_id(server: LiveServer) -> None:
    with httpx.Client(base_url=server.base_url) as client:
        resp = client.get("/events/revocations", headers={"last-event-id": "12abc"})
        assert resp.status_code == 400


def test_stream_cap(server: LiveServer) -> None:
    with (
        httpx.Client(base_url=server.base_url, timeout=5) as client,
        client.stream("GET", "/events/revocations") as one,
        client.stream("GET", "/events/revocations") as two,
    ):
        assert one.status_code == two.status_code == 200
        third = client.get("/events/revocations")
        assert third.status_code == 503 and third.headers["retry-after"]


def test_snapshot_carries_the_signed_form(server: LiveServer) -> None:
    _revoke_two(server)
    body = httpx.get(f"{server.base_url}/api/v1/revocations").json()
    assert all(e["set"].count(".") == 2 for e in body["events"])
