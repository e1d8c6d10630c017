"""Token endpoint throughput: ``client_credentials`` and ``refresh_token`` (with rotation).

Starts a real ``dojang serve --demo`` on a free loopback port (fresh data dir, one worker),
registers a service client and an OIDC client, then drives each grant with C concurrent
connections for D seconds (bounded) and prints requests/s. Anchor for comparison: Keycloak is
commonly quoted at ~120 token requests/s per vCPU.

    python bench/oidc_bench.py [--seconds 5] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

DOJANG = str(Path(sys.executable).with_name("dojang"))
REDIRECT = "http://127.0.0.1:9/cb"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str, env: dict[str, str]) -> str:
    out = subprocess.run([DOJANG, *args], capture_output=True, text=True, env=env, check=True)
    return out.stdout


async def _refresh_token(base: str, user: str, password: str, cid: str, secret: str) -> str:
    """One code flow (first-party client, so no consent) → a refresh token."""
    async with httpx.AsyncClient(base_url=base, trust_env=False) as c:
        await c.post("/api/v1/session", json={"username": user, "password": password})
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
        token: str = t.json()["refresh_token"]
        return token


async def _run(name: str, seconds: float, workers: list[object]) -> None:
    done = 0
    errors = 0
    stop = time.perf_counter() + seconds

    async def loop(step: object) -> None:
        nonlocal done, errors
        while time.perf_counter() < stop:
            ok = await step()  # type: ignore[operator]
            done += 1
            errors += 0 if ok else 1

    start = time.perf_counter()
    await asyncio.gather(*(loop(w) for w in workers))
    elapsed = time.perf_counter() - start
    print(
        f"{name:20s} {done / elapsed:8.0f} req/s  ({done} requests, {errors} errors, "
        f"{len(workers)} connections, {elapsed:.1f} s)"
    )


async def bench(base: str, seconds: float, concurrency: int, creds: dict[str, str]) -> None:
    """Drive both grants against a running server."""
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, trust_env=False, limits=limits) as http:

        def cc_step() -> object:
            async def step() -> bool:
                r = await http.post(
                    "/oauth2/token",
                    data={"grant_type": "client_credentials"},
                    auth=(creds["svc_id"], creds["svc_secret"]),
                )
                return r.status_code == 200

            return step

        await _run("client_credentials", seconds, [cc_step() for _ in range(concurrency)])

        tokens = [
            await _refresh_token(
                base, creds["user"], creds["password"], creds["rp_id"], creds["rp_secret"]
            )
            for _ in range(concurrency)
        ]

        def rt_step(i: int) -> object:
            async def step() -> bool:
                r = await http.post(
                    "/oauth2/token",
                    data={"grant_type": "refresh_token", "refresh_token": tokens[i]},
                    auth=(creds["rp_id"], creds["rp_secret"]),
                )
                if r.status_code != 200:
                    return False
                tokens[i] = r.json()["refresh_token"]  # rotation: always the newest
                return True

            return step

        await _run("refresh_token", seconds, [rt_step(i) for i in range(concurrency)])


def main() -> None:
    """Start a server, register clients, run the benchmark, stop the server."""
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--concurrency", type=int, default=16)
    a = p.parse_args()
    seconds = min(max(a.seconds, 1.0), 60.0)  # bounded
    concurrency = min(max(a.concurrency, 1), 64)
    data = Path(tempfile.mkdtemp(prefix="dojang-bench-"))
    port = _port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOJANG_")}
    env["DOJANG_DATA_DIR"] = str(data)
    env["DOJANG_PUBLIC_URL"] = base
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
    server = subprocess.Popen(
        [DOJANG, "serve", "--demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        password = ""
        deadline = time.monotonic() + 30
        for line in server.stdout:
            if m := re.match(r"demo password:\s*(\S+)", line.strip()):
                password = m.group(1)
            if "listening" in line or time.monotonic() > deadline:
                break
        creds = {
            "svc_id": svc_id,
            "svc_secret": svc_secret,
            "rp_id": rp_id,
            "rp_secret": rp_secret,
            "user": "demo",
            "password": password,
        }
        print(
            f"dojang {base}, 1 worker, {os.cpu_count()} CPUs visible (load generator shares them);"
            " anchor: Keycloak ~120 req/s per vCPU"
        )
        asyncio.run(bench(base, seconds, concurrency, creds))
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
