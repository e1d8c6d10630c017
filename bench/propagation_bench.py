"""Revocation propagation: ``DELETE /api/v1/session`` returning → subscribed Verifier refusing.

Not a timed test: run ``python bench/propagation_bench.py [N]`` from the repository root. It
starts a real dojang server on a loopback port (uvicorn in a thread, the real ``create_app``),
subscribes a ``Verifier`` over SSE and, when Redis is reachable, another straight to the Redis
Stream, then for N sessions measures the time from the logout response to the first
``RevokedToken`` from the subscribed verifier (polled in a tight loop on this thread).
"""

from __future__ import annotations

import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.events.live import REDIS_URL, LiveServer, login_and_token, logout

from dojang.errors import RevokedToken
from dojang.verify import Verifier


def _until_revoked(verifier: Verifier, token: str, timeout: float = 5.0) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            verifier.verify(token)
        except RevokedToken:
            return time.perf_counter()
    raise TimeoutError("revocation did not arrive")


def measure(server: LiveServer, revocations: str, n: int) -> list[float]:
    """Propagation delays in milliseconds for ``n`` logouts."""
    with (
        Verifier(
            issuer=server.settings.issuer,
            audience="orders-api",
            jwks=f"{server.base_url}/.well-known/jwks.json",
            revocations=revocations,
        ) as verifier,
        httpx.Client(base_url=server.base_url) as client,
    ):
        delays = []
        for _ in range(n):
            csrf, token = login_and_token(client, "bench")
            verifier.verify(token)
            logout(client, csrf)
            done = time.perf_counter()
            delays.append((_until_revoked(verifier, token) - done) * 1000)
            client.cookies.clear()
        return delays


def _summary(name: str, ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=100)
    return f"{name:6} n={len(ms)} p50={q[49]:.2f} ms p99={q[98]:.2f} ms max={max(ms):.2f} ms"


def main(n: int = 200) -> None:
    """Run both transports (Redis only when reachable) and print p50/p99."""
    import redis

    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp) / "sse").start()
        server.setup_users("bench")
        try:
            print(_summary("SSE", measure(server, f"{server.base_url}/events/revocations", n)))
        finally:
            server.stop()
        try:
            redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
        except (redis.RedisError, OSError):
            print("redis  skipped: not reachable at", REDIS_URL)
            return
        stream = f"dojang-bench:{secrets.token_hex(4)}"
        url = f"{REDIS_URL}?stream={stream}"
        server = LiveServer(Path(tmp) / "redis", event_bus=url).start()
        server.setup_users("bench")
        try:
            print(_summary("Redis", measure(server, url, n)))
        finally:
            server.stop()
            redis.Redis.from_url(REDIS_URL).delete(stream)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
