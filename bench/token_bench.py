"""``token``: ``POST /oauth2/token`` throughput for ``client_credentials`` and ``refresh_token``.

Issue target: at least 10x Keycloak's published sizing anchor (about 120 such requests per
second per vCPU) per core, i.e. >= 1,200 requests/s from one dojang worker (one core).

Setup: a real ``dojang serve --demo`` (one worker, fresh SQLite data dir, JSON logs written to
a file as in production) on a free loopback port; a service client with one audience, and a
confidential first-party OIDC client whose refresh tokens come from real code+PKCE flows.
Load: C keep-alive connections, each a loop of one request at a time, written with raw
asyncio streams so the generator costs little of the two CPUs it shares with the server.
For ``refresh_token`` every connection owns one token family and always sends the newest
token (rotation), so reuse detection never fires. Every response is checked (200 and, for
refresh, a new refresh token); anything else counts as an error. Bounded: fixed duration,
loopback only.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

DOJANG = str(Path(sys.executable).with_name("dojang"))
REDIRECT = "http://127.0.0.1:9/cb"
HOST = "127.0.0.1"
KEYCLOAK_PER_VCPU = 120.0
TARGET_PER_CORE = 10 * KEYCLOAK_PER_VCPU
CONNECTIONS = 16
SECONDS = 6.0
ROUNDS = 3


def _port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _cli(*args: str, env: dict[str, str]) -> str:
    out = subprocess.run([DOJANG, *args], capture_output=True, text=True, env=env, check=True)
    return out.stdout


class Conn:
    """One HTTP/1.1 keep-alive connection speaking just enough to POST forms."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, authorization: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nhost: {HOST}:{self.port}\r\n"
            f"authorization: {authorization}\r\n"
            "content-type: application/x-www-form-urlencoded\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        payload = await self.reader.readexactly(length)
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


async def _refresh_token(base: str, password: str, cid: str, secret: str) -> str:
    """One code+PKCE flow (first-party client: no consent) → a refresh token."""
    async with httpx.AsyncClient(base_url=base, trust_env=False) as c:
        r = await c.post("/api/v1/session", json={"username": "demo", "password": password})
        r.raise_for_status()
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        r = await c.get(
            "/oauth2/authorize",
            params={
                "client_id": cid,
                "redirect_uri": REDIRECT,
                "response_type": "code",
                "scope": "openid",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
        if "location" not in r.headers:
            raise RuntimeError(f"authorize answered {r.status_code}: {r.text[:300]}")
        code = parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
        t = await c.post(
            "/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            },
            auth=(cid, secret),
        )
        t.raise_for_status()
        token: str = t.json()["refresh_token"]
        return token


Step = Callable[[], Awaitable[bool]]


async def _drive(steps: list[Step], seconds: float) -> dict[str, Any]:
    """Run every step in its own loop for ``seconds``; requests/s and latency percentiles."""
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def loop(step: Step) -> None:
        nonlocal errors
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            ok = await step()
            latencies.append(time.perf_counter() - t0)
            errors += 0 if ok else 1

    start = time.perf_counter()
    await asyncio.gather(*(loop(s) for s in steps))
    elapsed = time.perf_counter() - start
    latencies.sort()
    n = len(latencies)
    return {
        "requests": n,
        "errors": errors,
        "seconds": elapsed,
        "requests_per_s": (n - errors) / elapsed,
        "p50_ms": latencies[n // 2] * 1000 if n else None,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else None,
    }


async def _bench(port: int, creds: Mapping[str, str], rounds: int) -> dict[str, list[Any]]:
    base = f"http://{HOST}:{port}"
    out: dict[str, list[Any]] = {"client_credentials": [], "refresh_token": []}
    cc_auth = _basic(creds["svc_id"], creds["svc_secret"])
    rp_auth = _basic(creds["rp_id"], creds["rp_secret"])
    cc_body = b"grant_type=client_credentials"
    for _ in range(rounds):
        conns = [Conn(port) for _ in range(CONNECTIONS)]

        def cc_step(conn: Conn) -> Step:
            async def step() -> bool:
                status, payload = await conn.post("/oauth2/token", cc_body, cc_auth)
                return status == 200 and b'"access_token"' in payload

            return step

        out["client_credentials"].append(await _drive([cc_step(c) for c in conns], SECONDS))
        tokens = [
            await _refresh_token(base, creds["password"], creds["rp_id"], creds["rp_secret"])
            for _ in conns
        ]

        def rt_step(i: int, conn: Conn, tokens: list[str] = tokens) -> Step:
            async def step() -> bool:
                body = urlencode({"grant_type": "refresh_token", "refresh_token": tokens[i]})
                status, payload = await conn.post("/oauth2/token", body.encode(), rp_auth)
                if status != 200:
                    return False
                tokens[i] = json.loads(payload)["refresh_token"]  # rotation: the newest
                return True

            return step

        out["refresh_token"].append(
            await _drive([rt_step(i, c) for i, c in enumerate(conns)], SECONDS)
        )
        for c in conns:
            c.close()
    return out


def _start(data: Path, port: int, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    log_path = data / "server.log"
    log = log_path.open("wb")
    # Logs go to a file, not a pipe nobody reads: a full pipe would stall the server.
    server = subprocess.Popen(
        [DOJANG, "serve", "--demo", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    log.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        m = re.search(r"demo password:\s*(\S+)", text)
        if m and "Uvicorn running" in text:  # bound, not just announced
            return server, m.group(1)
        if server.poll() is not None:
            raise RuntimeError(f"dojang serve exited: {text[-2000:]}")
        time.sleep(0.1)
    server.kill()
    raise RuntimeError("dojang serve did not start within 60 s")


def run(rounds: int = ROUNDS) -> dict[str, Any]:
    """Start a server, register clients, run each grant ``rounds`` times, stop the server."""
    from bench._common import machine_info

    data = Path(tempfile.mkdtemp(prefix="dojang-bench-token-"))
    port = _port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOJANG_")}
    env["DOJANG_DATA_DIR"] = str(data / "data")
    env["DOJANG_PUBLIC_URL"] = f"http://{HOST}:{port}"
    try:
        _cli("audiences", "add", "bench-api", "--scopes", "read", env=env)
        out = _cli("clients", "add", "bench-svc", "--grant", "bench-api=read", env=env)
        svc_id, svc_secret = re.findall(r"client_(?:id|secret): (\S+)", out)
        out = _cli(
            "clients",
            "add",
            "bench-rp",
            "--type",
            "confidential",
            "--first-party",
            "--redirect-uri",
            REDIRECT,
            env=env,
        )
        rp_id, rp_secret = re.findall(r"client_(?:id|secret): (\S+)", out)
        server, password = _start(data, port, env)
        try:
            creds = {
                "svc_id": svc_id,
                "svc_secret": svc_secret,
                "rp_id": rp_id,
                "rp_secret": rp_secret,
                "password": password,
            }
            raw = asyncio.run(_bench(port, creds, rounds))
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
    finally:
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(data, ignore_errors=True)
    grants: dict[str, Any] = {}
    summary = []
    problems = []
    for grant, runs in raw.items():
        rps = statistics.median(r["requests_per_s"] for r in runs)
        grants[grant] = {
            "rounds": runs,
            "median_requests_per_s": rps,
            "median_p50_ms": statistics.median(r["p50_ms"] for r in runs),
            "median_p99_ms": statistics.median(r["p99_ms"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
        }
        if grants[grant]["errors"]:
            problems.append(f"{grant}: {grants[grant]['errors']} failed requests")
        summary.append(
            {
                "metric": f"/oauth2/token {grant} req/s (1 worker) / {TARGET_PER_CORE:,.0f}",
                "value": rps / TARGET_PER_CORE,
                "paired": rps / KEYCLOAK_PER_VCPU / 10,
                "target": ">= 1.0 (10x Keycloak's ~120 req/s per vCPU, per core)",
                "ok": rps >= TARGET_PER_CORE and not grants[grant]["errors"],
            }
        )
        print(
            f"  {grant:18s} {rps:8,.0f} req/s (median of {len(runs)}), "
            f"p50 {grants[grant]['median_p50_ms']:.2f} ms, errors {grants[grant]['errors']}",
            flush=True,
        )
    return {
        "benchmark": "token",
        "machine": machine_info(),
        "setup": {
            "connections": CONNECTIONS,
            "seconds_per_round": SECONDS,
            "rounds": rounds,
            "workers": 1,
            "store": "SQLite (embedded default)",
        },
        "grants": grants,
        "summary": summary,
        "problems": problems,
    }


def to_markdown(data: Mapping[str, Any]) -> str:
    """Tables for ``bench/results/token.md``."""
    from bench._common import fmt, machine_md, md_table

    rows = []
    for grant, g in data["grants"].items():
        rows.append(
            [
                grant,
                fmt(g["median_requests_per_s"], 0),
                " / ".join(fmt(r["requests_per_s"], 0) for r in g["rounds"]),
                fmt(g["median_p50_ms"]),
                fmt(g["median_p99_ms"]),
                str(g["errors"]),
                fmt(g["median_requests_per_s"] / KEYCLOAK_PER_VCPU, 1) + "x",
            ]
        )
    s = data["setup"]
    return "\n".join(
        [
            "# token: POST /oauth2/token throughput",
            "",
            f"One `dojang serve --demo` worker on SQLite; {s['connections']} keep-alive "
            f"connections from a raw-asyncio load generator on the same 2 CPUs; "
            f"{s['rounds']} rounds of {s['seconds_per_round']:.0f} s per grant. "
            "`refresh_token` rotates on every request (each connection sends its newest "
            "token). Anchor: Keycloak's sizing guide, ~120 client-credentials/refresh "
            "requests per second per vCPU; the target is 10x that per core.",
            "",
            machine_md(data["machine"]),
            "",
            md_table(
                ["grant", "req/s (median)", "rounds", "p50 ms", "p99 ms", "errors", "vs 120/vCPU"],
                rows,
            ),
        ]
    )


if __name__ == "__main__":
    result = run(rounds=int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS)
    print(to_markdown(result))
