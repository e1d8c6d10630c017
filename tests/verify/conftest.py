"""Fixtures for verifier tests: keys, an issuer and a real loopback JWKS server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dojang.clock import FrozenClock
from dojang.jose import KeySet
from dojang.tokens import Issuer

ISS = "https://auth.example"
AUD = "orders-api"


@dataclass
class JwksServer:
    """A loopback JWKS endpoint whose answer the test controls; counts requests."""

    url: str = ""
    document: object = field(default_factory=lambda: {"keys": []})
    status: int = 200
    location: str | None = None
    raw: bytes | None = None
    hits: int = 0
    gate: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)

    def body(self) -> bytes:
        return self.raw if self.raw is not None else json.dumps(self.document).encode()


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    state = JwksServer()
    state.gate.set()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits += 1
            state.arrived.set()
            state.gate.wait(5)
            body = state.body()
            self.send_response(state.status)
            if state.location:
                self.send_header("location", state.location)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
    try:
        yield state
    finally:
        state.gate.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def keyset() -> KeySet:
    return KeySet.generate("EdDSA")


@pytest.fixture
def issuer(keyset: KeySet, clock: FrozenClock) -> Issuer:
    return Issuer(keyset, issuer=ISS, clock=clock)
