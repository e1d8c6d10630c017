"""Remote JWKS against endpoints that hang or drip bytes: one overall deadline per fetch.

Per-phase HTTP timeouts restart with every byte received, so a server that drips a byte more
often than the read timeout would hold a verification forever. These servers are real loopback
sockets speaking just enough HTTP/1.1 to be believable.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from dojang.clock import FrozenClock
from dojang.errors import KeysUnavailable, UnknownKey
from dojang.jose import Key, KeySet
from dojang.tokens import Issuer
from dojang.verify import Verifier
from dojang.verify.jwks import REFRESH_AFTER
from tests.security.jwt_forge import claims, forge, header
from tests.verify.conftest import AUD, ISS

TIMEOUT = 0.5  # the Verifier's http_timeout: per phase AND for the whole fetch
DRIP_EVERY = 0.05  # far more often than TIMEOUT, so no per-read timeout ever fires
DRIP_FOR = 8.0  # how long a drip lasts: without a deadline the fetch would take this long
# What "within the timeout" may cost on a loaded 2-CPU machine: thread start, loop start,
# scheduling. Still far below DRIP_FOR, so a missing deadline cannot pass.
SLACK = 1.0


@dataclass
class SlowServer:
    """A loopback HTTP endpoint that answers each connection per ``plan`` (last one repeats)."""

    plan: list[str]
    body: bytes = b""
    url: str = ""
    connections: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def behaviour(self) -> str:
        self.connections += 1
        return self.plan[min(self.connections, len(self.plan)) - 1]


def _read_request(conn: socket.socket) -> bool:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = conn.recv(4096)
        if not chunk:
            return False
        data += chunk
    return True


def _drip(conn: socket.socket, state: SlowServer, data: Callable[[int], bytes]) -> None:
    deadline = time.monotonic() + DRIP_FOR
    n = 0
    while time.monotonic() < deadline and not state.stop.wait(DRIP_EVERY):
        conn.sendall(data(n))
        n += 1


def _answer(conn: socket.socket, state: SlowServer, behaviour: str) -> None:
    with conn:
        try:
            if not _read_request(conn):
                return
            if behaviour == "good":
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\nconnection: close\r\n\r\n"
                    % len(state.body)
                    + state.body
                )
            elif behaviour == "hang":  # accepts, reads the request, never answers
                state.stop.wait(DRIP_FOR)
            elif behaviour == "drip_headers":  # slowloris in reverse: an endless header line
                conn.sendall(b"HTTP/1.1 200 OK\r\nx-pad: ")
                _drip(conn, state, lambda _n: b"a")
            elif behaviour == "drip_body":  # headers at once, then a body that never ends
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"connection: close\r\n\r\n"
                )
                _drip(conn, state, lambda n: b'{"keys":[' if n == 0 else b" ")
        except OSError:
            return  # the client gave up and closed: exactly what we want it to do


@pytest.fixture
def slow_server() -> Iterator[Callable[..., SlowServer]]:
    listeners: list[tuple[socket.socket, SlowServer, threading.Thread]] = []
    workers: list[threading.Thread] = []

    def start(*plan: str, body: bytes = b"") -> SlowServer:
        state = SlowServer(list(plan), body)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.settimeout(0.05)
        state.url = f"http://127.0.0.1:{sock.getsockname()[1]}/.well-known/jwks.json"

        def accept_loop() -> None:
            while not state.stop.is_set():
                try:
                    conn, _ = sock.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                conn.settimeout(None)
                worker = threading.Thread(
                    target=_answer, args=(conn, state, state.behaviour()), daemon=True
                )
                workers.append(worker)
                worker.start()

        thread = threading.Thread(target=accept_loop, daemon=True)
        thread.start()
        listeners.append((sock, state, thread))
        return state

    try:
        yield start
    finally:
        for sock, state, thread in listeners:
            state.stop.set()
            thread.join()
            sock.close()
        for worker in workers:
            worker.join()


def _verifier(url: str, clock: FrozenClock) -> Verifier:
    return Verifier(issuer=ISS, audience=AUD, jwks=url, clock=clock, http_timeout=TIMEOUT)


def _token(issuer: Issuer) -> str:
    return issuer.access_token(sub="u1", audience=AUD, sid="s1")


@pytest.mark.parametrize("behaviour", ["hang", "drip_headers", "drip_body"])
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_slow_endpoint_fails_closed_within_the_timeout(
    slow_server: Callable[..., SlowServer],
    issuer: Issuer,
    clock: FrozenClock,
    behaviour: str,
    mode: str,
) -> None:
    """Slow JWKS endpoint (hang, slowloris headers, dripping body): KeysUnavailable in time."""
    server = slow_server(behaviour)
    verifier = _verifier(server.url, clock)
    token = _token(issuer)
    started = time.monotonic()
    with pytest.raises(KeysUnavailable):
        if mode == "sync":
            verifier.verify(token)
        else:
            await verifier.averify(token)
    elapsed = time.monotonic() - started
    assert elapsed < TIMEOUT + SLACK, f"took {elapsed:.2f}s"
    assert server.connections == 1


@pytest.mark.parametrize("behaviour", ["hang", "drip_body"])
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_slow_refresh_keeps_the_last_good_keys(
    slow_server: Callable[..., SlowServer],
    keyset: KeySet,
    issuer: Issuer,
    clock: FrozenClock,
    behaviour: str,
    mode: str,
) -> None:
    """A JWKS endpoint that turns slow after a good fetch: refreshes give up at the deadline,
    the last good keys keep verifying, and an unknown kid is refused in time."""
    server = slow_server("good", behaviour, body=json.dumps(keyset.public_jwks()).encode())
    verifier = _verifier(server.url, clock)

    async def verify(token: str) -> dict[str, object]:
        return verifier.verify(token) if mode == "sync" else await verifier.averify(token)

    assert (await verify(_token(issuer)))["sub"] == "u1"
    clock.advance(REFRESH_AFTER + 1)  # cached keys are due for a refresh, still within max_stale
    started = time.monotonic()
    assert (await verify(_token(issuer)))["sub"] == "u1"
    assert time.monotonic() - started < TIMEOUT + SLACK
    assert server.connections == 2

    clock.advance(31)  # past the cooldown: an unknown kid may trigger one more (slow) fetch
    stranger = Key.generate("EdDSA")
    started = time.monotonic()
    with pytest.raises(UnknownKey):
        await verify(forge(header(stranger), claims(), stranger))
    assert time.monotonic() - started < TIMEOUT + SLACK
    assert server.connections == 3
    assert (await verify(_token(issuer)))["sub"] == "u1"
