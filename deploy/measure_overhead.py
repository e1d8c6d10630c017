"""Latency that nginx ``auth_request`` + dojang add in front of an API, measured with ``wrk``.

Run by hand from the repository root (not a test; one run, numbers printed)::

    .venv/bin/python deploy/measure_overhead.py [--duration 10] [--connections 1] [--rounds 3]

It starts, on free loopback ports: ``dojang serve --demo`` (public URL = nginx), the example
orders API (uvicorn, one worker), and nginx with the shipped ``deploy/nginx/dojang.conf``. Then
the same load generator (``wrk --latency``, one thread) measures, in this order:

1. ``direct``  — ``GET /orders`` on the API with a valid bearer token (the baseline);
2. ``check``   — ``GET /auth/check?aud=orders-api&scope=orders:read`` on dojang directly;
3. ``edge``    — ``GET /orders`` through nginx with the session cookie: auth subrequest to
   dojang (token cached per session), headers copied, then the API.

Added latency = edge - direct, at p50 and p99. With one connection there is no queueing, so the
numbers are per-request service times; everything shares this machine's CPUs with wrk.

With ``--rounds N`` the three runs are repeated N times on the same stack, every other round in
reverse order (edge, check, direct), so a drift in machine load lands on both paths alike; the
summary is the median over rounds of each round's edge - direct. A p99 is the slowest 1% of a
run's requests: on a shared machine it is set by scheduling hiccups as much as by the
code, so compare it across rounds before believing a difference.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.edge.harness import (  # noqa: E402 - needs the repository root on sys.path
    AUDIENCE,
    Proc,
    free_port,
    start_dojang,
    start_nginx,
    start_orders_api,
)

WRK = shutil.which("wrk") or "/usr/bin/wrk"
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_RATE = re.compile(r"Requests/sec:\s*([\d.]+)")


@dataclass
class Result:
    """One wrk run: percentiles in milliseconds and throughput."""

    name: str
    percentiles: dict[int, float]
    rps: float

    def line(self) -> str:
        p = self.percentiles
        return (
            f"{self.name:<8} p50 {p[50]:7.3f} ms   p90 {p[90]:7.3f} ms   p99 {p[99]:7.3f} ms"
            f"   {self.rps:9.0f} req/s"
        )


def wrk(name: str, url: str, headers: dict[str, str], duration: int, connections: int) -> Result:
    """Run wrk once against ``url`` and parse its latency distribution."""
    command = [WRK, "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for key, value in headers.items():
        command += ["-H", f"{key}: {value}"]
    done = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [*command, url], capture_output=True, text=True, timeout=duration + 60, check=True
    )
    if "Non-2xx" in done.stdout:
        raise SystemExit(f"{name}: wrk saw non-2xx answers:\n{done.stdout}")
    percentiles = {int(p): float(v) * _UNITS[u] for p, v, u in _PERCENTILE.findall(done.stdout)}
    rate = _RATE.search(done.stdout)
    if len(percentiles) != 4 or rate is None:
        raise SystemExit(f"{name}: cannot parse wrk output:\n{done.stdout}")
    return Result(name, percentiles, float(rate.group(1)))


def measure(duration: int = 10, connections: int = 1) -> dict[str, Result]:
    """Start the stack on loopback, run wrk once on each of the three paths, stop everything."""
    return measure_rounds(duration, connections, rounds=1)[0]


def measure_rounds(
    duration: int = 10, connections: int = 1, rounds: int = 3
) -> list[dict[str, Result]]:
    """Like ``measure``, ``rounds`` times on one stack, alternating the order of the paths.

    Returns one ``{path: Result}`` per round, in the order the round ran them.
    """
    if not Path(WRK).exists():
        raise SystemExit("wrk not found (apt-get install wrk)")
    started: list[Proc] = []
    with tempfile.TemporaryDirectory(prefix="dojang-measure-") as tmpdir:
        tmp = Path(tmpdir)
        nginx_port, dojang_port, api_port = free_port(), free_port(), free_port()
        public_url = f"http://127.0.0.1:{nginx_port}"
        try:
            # Long-lived tokens so the baseline's token never expires mid-run.
            ttl = {"DOJANG_ACCESS_TOKEN_TTL": "900"}
            dojang = start_dojang(tmp, dojang_port, public_url, **ttl)
            started.append(dojang.proc)
            api = start_orders_api(api_port, public_url, f"{dojang.url}/.well-known/jwks.json")
            started.append(api)
            nginx = start_nginx(
                tmp / "nginx",
                nginx_port,
                dojang=f"127.0.0.1:{dojang_port}",
                app=f"127.0.0.1:{api_port}",
            )
            started.append(nginx.proc)
            with httpx.Client(base_url=public_url, trust_env=False) as client:
                login = client.post(
                    "/api/v1/session",
                    json={"username": dojang.username, "password": dojang.password},
                )
                login.raise_for_status()
                cookie = f"dojang_session={login.cookies['dojang_session']}"
                check = f"/auth/check?aud={AUDIENCE}&scope=orders:read"
                minted = client.get(check, headers={"cookie": cookie})
                minted.raise_for_status()
                bearer = minted.headers["authorization"]
            runs = [
                ("direct", f"http://127.0.0.1:{api_port}/orders", {"authorization": bearer}),
                ("check", f"{dojang.url}{check}", {"cookie": cookie}),
                ("edge", f"{public_url}/orders", {"cookie": cookie}),
            ]
            for name, url, headers in runs:  # warm-up: JWKS fetch, connection pools, caches
                wrk(name, url, headers, 2, connections)
            measured: list[dict[str, Result]] = []
            for i in range(rounds):
                # Alternate: whatever else the machine does drifts over time, and a fixed order
                # would always charge the drift to the path that runs last.
                order = runs if i % 2 == 0 else runs[::-1]
                measured.append(
                    {
                        name: wrk(name, url, headers, duration, connections)
                        for name, url, headers in order
                    }
                )
            return measured
        finally:
            for proc in reversed(started):
                proc.stop()


def added(rounds: list[dict[str, Result]], percentile: int) -> list[float]:
    """Per round: edge minus direct at ``percentile``, in milliseconds."""
    return [r["edge"].percentiles[percentile] - r["direct"].percentiles[percentile] for r in rounds]


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=1, help="wrk connections")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, order alternating")
    args = parser.parse_args()
    rounds = measure_rounds(args.duration, args.connections, args.rounds)
    print(f"wrk -t1 -c{args.connections} -d{args.duration}s, loopback, {os.cpu_count()} CPUs")
    for i, results in enumerate(rounds, 1):
        print(f"round {i}: {' -> '.join(results)}")
        for result in results.values():
            print("  " + result.line())
    for percentile in (50, 99):
        diffs = added(rounds, percentile)
        verdict = "" if min(diffs) > 0 else "   (within noise: some rounds saw the edge faster)"
        print(
            f"added by nginx auth_request + dojang, p{percentile}: median "
            f"{statistics.median(diffs):+.3f} ms over {len(diffs)} rounds "
            f"(range {min(diffs):+.3f} .. {max(diffs):+.3f}){verdict}"
        )


if __name__ == "__main__":
    main()
