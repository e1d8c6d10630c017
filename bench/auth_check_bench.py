"""``auth_check``: ``GET /auth/check`` on a real ``dojang serve`` vs an empty-route ceiling.

A real dojang process (SQLite in a temporary data dir, one worker) and the ceiling app
(``bench/ceiling_app.py``: Starlette on uvicorn with the same settings) are loaded in turn by
``wrk`` with the same session cookie; rounds alternate which server goes first. Every load
target is 127.0.0.1 and every run is bounded by wrk's ``-d`` plus a subprocess timeout. Both
servers and wrk share the same machine, which is recorded with the results.

Issue target: dojang at >= 60% of the ceiling's requests/s.
"""

from __future__ import annotations

import os
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from bench._common import fmt, machine_info, machine_md, md_table

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
USERNAME = "benchuser"
TARGET_RATIO = 0.60
ARGON2_ENV = {
    "DOJANG_ARGON2_TIME_COST": "1",
    "DOJANG_ARGON2_MEMORY_COST": "1024",
    "DOJANG_ARGON2_PARALLELISM": "1",
}


@dataclass(frozen=True)
class Variant:
    """One wrk configuration, run ``rounds`` times against each server."""

    name: str
    threads: int
    connections: int
    duration_s: int
    rounds: int


VARIANTS = (
    Variant("t1-c32", threads=1, connections=32, duration_s=10, rounds=3),
    Variant("t1-c4", threads=1, connections=4, duration_s=5, rounds=3),
)
WARMUP_S = 2


class WrkMissing(RuntimeError):
    """``wrk`` is not installed."""


class BenchFailed(RuntimeError):
    """The benchmark ran but its results cannot be trusted (errors, non-2xx answers)."""


@dataclass
class WrkRun:
    """The parsed output of one ``wrk`` run plus CPU accounting."""

    target: str
    requests_per_s: float
    requests: int
    duration_s: float
    latency_ms: dict[str, float]
    non_2xx: int
    socket_errors: dict[str, int]
    server_cpu_pct: float | None
    wrk_cpu_pct: float | None
    loadavg_1m_before: float
    raw: str = field(repr=False)


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(output: str) -> dict[str, Any]:
    """Pull requests/s, totals, latency percentiles and error counts out of wrk's text."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    if rps is None or total is None:
        raise BenchFailed(f"could not parse wrk output:\n{output}")
    latency = {
        f"p{m.group(1)}": float(m.group(2)) * _UNITS_MS[m.group(3)]
        for m in re.finditer(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
    }
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    socket_errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, errors.groups()), strict=True))
        if errors
        else {}
    )
    return {
        "requests_per_s": float(rps.group(1)),
        "requests": int(total.group(1)),
        "duration_s": float(total.group(2)) * _UNITS_MS[total.group(3)] / 1000,
        "latency_ms": latency,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": socket_errors,
    }


def _cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` from /proc (None off Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(wrk: str, variant: Variant, url: str, cookie: str, target: str, pid: int) -> WrkRun:
    """Run wrk once (bounded by ``-d`` and a hard timeout) and parse it."""
    cmd = [
        wrk,
        f"-t{variant.threads}",
        f"-c{variant.connections}",
        f"-d{variant.duration_s}s",
        "--latency",
        "-H",
        f"Cookie: {cookie}",
        url,
    ]
    load = os.getloadavg()[0]
    cpu_before = _cpu_seconds(pid)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = variant.duration_s + 20
    try:
        out_bytes, _ = proc.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise BenchFailed(f"wrk did not finish within {deadline}s") from None
    wall = time.perf_counter() - started
    cpu_after = _cpu_seconds(pid)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (
        children_after.ru_utime
        + children_after.ru_stime
        - children_before.ru_utime
        - children_before.ru_stime
    )
    output = out_bytes.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise BenchFailed(f"wrk exited {proc.returncode}:\n{output}")
    parsed = parse_wrk(output)
    server_cpu = (
        100 * (cpu_after - cpu_before) / wall
        if cpu_before is not None and cpu_after is not None
        else None
    )
    return WrkRun(
        target=target,
        server_cpu_pct=server_cpu,
        wrk_cpu_pct=100 * wrk_cpu / wall,
        loadavg_1m_before=load,
        raw=output,
        **parsed,
    )


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    """A currently free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, *, timeout_s: float, proc: subprocess.Popen[bytes]) -> None:
    """Poll ``url`` until it answers (any status) or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchFailed(f"server exited with {proc.returncode} before answering {url}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise BenchFailed(f"{url} did not answer within {timeout_s}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process we started (its own group), then SIGKILL after 10 s."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@dataclass
class Servers:
    dojang: subprocess.Popen[bytes]
    ceiling: subprocess.Popen[bytes]
    dojang_url: str
    ceiling_url: str
    cookie: str
    set_cookie: str
    logs: list[IO[bytes]]


def start_servers(tmp: Path) -> Servers:
    """Create the user, start dojang and the ceiling, log in; the caller stops them."""
    dojang_bin = str(BIN / "dojang")
    data_dir = tmp / "data"
    env = {**os.environ, **ARGON2_ENV}
    for name in ("DOJANG_CONFIG", "DOJANG_DATABASE_URL", "DOJANG_SESSION_STORE", "DOJANG_WORKERS"):
        env.pop(name, None)  # the embedded default, whatever the caller's shell says
    password = secrets.token_urlsafe(18)
    added = subprocess.run(
        [dojang_bin, "users", "add", USERNAME, "--password-stdin", "--data-dir", str(data_dir)],
        input=(password + "\n").encode(),
        env=env,
        check=False,
        capture_output=True,
        timeout=120,
    )
    if added.returncode != 0:
        output = (added.stdout + added.stderr).decode("utf-8", "replace").strip()
        raise BenchFailed(f"`dojang users add` exited {added.returncode}: {output[-2000:]}")
    port, ceiling_port = free_port(), free_port()
    base = f"http://{HOST}:{port}"
    logs: list[IO[bytes]] = [open(tmp / "dojang.log", "wb"), open(tmp / "ceiling.log", "wb")]  # noqa: SIM115
    dojang = subprocess.Popen(
        [
            dojang_bin,
            "serve",
            "--host",
            HOST,
            "--port",
            str(port),
            "--public-url",
            base,
            "--data-dir",
            str(data_dir),
            "--workers",
            "1",
        ],
        env=env,
        stdout=logs[0],
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    ceiling = subprocess.Popen(
        [sys.executable, "-m", "bench.ceiling_app", "--port", str(ceiling_port)],
        cwd=REPO,
        stdout=logs[1],
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    servers = Servers(
        dojang,
        ceiling,
        f"{base}/auth/check",
        f"http://{HOST}:{ceiling_port}/auth/check",
        "",
        "",
        logs,
    )
    try:
        wait_http(f"{base}/healthz", timeout_s=60, proc=dojang)
        wait_http(servers.ceiling_url, timeout_s=30, proc=ceiling)
        login = httpx.post(
            f"{base}/api/v1/session",
            json={"username": USERNAME, "password": password},
            timeout=30,
        )
        if login.status_code != 201 or "dojang_session" not in login.cookies:
            raise BenchFailed(f"login failed: {login.status_code} {login.text[:200]}")
        servers.cookie = f"dojang_session={login.cookies['dojang_session']}"
        servers.set_cookie = login.headers["set-cookie"]
        for url in (servers.dojang_url, servers.ceiling_url):
            answer = httpx.get(url, headers={"Cookie": servers.cookie}, timeout=10)
            if answer.status_code != 200:
                raise BenchFailed(f"{url} answered {answer.status_code} before the load")
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def stop_servers(servers: Servers) -> None:
    for proc in (servers.dojang, servers.ceiling):
        stop(proc)
    for log in servers.logs:
        log.close()


# --- the benchmark --------------------------------------------------------------------------


def _median(runs: list[WrkRun], key: str) -> float:
    if key == "requests_per_s":
        return statistics.median(r.requests_per_s for r in runs)
    return statistics.median(r.latency_ms[key] for r in runs)


def run_variant(wrk: str, servers: Servers, variant: Variant) -> dict[str, Any]:
    targets = {
        "dojang": (servers.dojang_url, servers.dojang.pid),
        "ceiling": (servers.ceiling_url, servers.ceiling.pid),
    }
    runs: dict[str, list[WrkRun]] = {"dojang": [], "ceiling": []}
    for i in range(variant.rounds):
        order = ["dojang", "ceiling"] if i % 2 == 0 else ["ceiling", "dojang"]
        for target in order:
            url, pid = targets[target]
            result = run_wrk(wrk, variant, url, servers.cookie, target, pid)
            print(
                f"  {variant.name} round {i + 1} {target:8s} {result.requests_per_s:10,.0f} req/s"
                f"  p50 {result.latency_ms.get('p50', float('nan')):.2f} ms"
                f"  p99 {result.latency_ms.get('p99', float('nan')):.2f} ms",
                flush=True,
            )
            runs[target].append(result)
    problems = []
    for target, results in runs.items():
        for r in results:
            if r.non_2xx:
                problems.append(f"{variant.name}: {target} answered {r.non_2xx} non-2xx/3xx")
            if any(r.socket_errors.values()):
                problems.append(f"{variant.name}: {target} socket errors {r.socket_errors}")
    summary = {
        target: {
            "requests_per_s": _median(results, "requests_per_s"),
            "p50_ms": _median(results, "p50"),
            "p99_ms": _median(results, "p99"),
            "server_cpu_pct": statistics.median(
                r.server_cpu_pct for r in results if r.server_cpu_pct is not None
            )
            if all(r.server_cpu_pct is not None for r in results)
            else None,
            "wrk_cpu_pct": statistics.median(
                r.wrk_cpu_pct for r in results if r.wrk_cpu_pct is not None
            ),
        }
        for target, results in runs.items()
    }
    paired = statistics.median(
        d.requests_per_s / c.requests_per_s
        for d, c in zip(runs["dojang"], runs["ceiling"], strict=True)
    )
    return {
        "variant": asdict(variant),
        "wrk_command": (
            f"wrk -t{variant.threads} -c{variant.connections} -d{variant.duration_s}s --latency "
            "-H 'Cookie: dojang_session=<43 chars>' <url>"
        ),
        "median": summary,
        "ratio_rps": _median(runs["dojang"], "requests_per_s")
        / _median(runs["ceiling"], "requests_per_s"),
        "ratio_rps_paired": paired,
        "runs": {t: [asdict(r) for r in rs] for t, rs in runs.items()},
        "problems": problems,
    }


def run() -> dict[str, Any]:
    """Run every variant; raises WrkMissing when wrk is not installed."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise WrkMissing("wrk is not installed; install it with `apt-get install wrk`")
    wrk_version = subprocess.run(
        [wrk, "--version"], capture_output=True, text=True, timeout=10, check=False
    ).stdout.splitlines()
    tmp = Path(tempfile.mkdtemp(prefix="dojang-bench-"))
    try:
        servers = start_servers(tmp)
        try:
            for url in (servers.dojang_url, servers.ceiling_url):
                warm = Variant("warmup", 1, 32, WARMUP_S, 1)
                pid = servers.dojang.pid if url == servers.dojang_url else servers.ceiling.pid
                run_wrk(wrk, warm, url, servers.cookie, "warmup", pid)
            variants = [run_variant(wrk, servers, v) for v in VARIANTS]
            after = httpx.get(servers.dojang_url, headers={"Cookie": servers.cookie}, timeout=10)
            if after.status_code != 200:
                raise BenchFailed(f"session no longer valid after the load: {after.status_code}")
        finally:
            stop_servers(servers)
        dojang_log = (tmp / "dojang.log").read_text(errors="replace")[-4000:]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    main = variants[0]
    problems = [p for v in variants for p in v["problems"]]
    return {
        "benchmark": "auth_check",
        "machine": machine_info(),
        "setup": {
            "note": (
                "dojang, the ceiling app and wrk all run on this one machine "
                f"({os.cpu_count()} CPUs): wrk's thread competes with the server for CPU, "
                "so absolute numbers understate a dedicated server; the ratio is the metric."
            ),
            "wrk": wrk_version[0] if wrk_version else wrk,
            "dojang": "dojang serve --workers 1 (uvicorn auto loop/http: uvloop + httptools), "
            "SQLite session store in a temporary data dir, argon2 cost lowered for the login",
            "ceiling": "bench/ceiling_app.py: Starlette empty 200 on uvicorn loop=uvloop "
            "http=httptools, 1 worker, access log off, no server header",
            "set_cookie_bytes": len(f"Set-Cookie: {servers.set_cookie}"),
            "cookie_header_bytes": len(f"Cookie: {servers.cookie}"),
        },
        "variants": variants,
        "summary": [
            {
                "metric": f"/auth/check {main['variant']['name']}: dojang / ceiling req/s",
                "value": main["ratio_rps"],
                "paired": main["ratio_rps_paired"],
                "target": f">= {TARGET_RATIO}",
                "ok": main["ratio_rps"] >= TARGET_RATIO and not problems,
            }
        ],
        "problems": problems,
        "failed": bool(problems),
        "dojang_log_tail": dojang_log,
    }


def to_markdown(data: Mapping[str, Any]) -> str:
    """Readable tables for ``bench/results/auth_check.md``."""
    parts = [
        "# auth_check: GET /auth/check vs an empty-route ceiling",
        "",
        data["setup"]["note"],
        "",
        f"- dojang: {data['setup']['dojang']}",
        f"- ceiling: {data['setup']['ceiling']}",
        f"- load: {data['setup']['wrk']}, rounds alternate which server goes first; medians.",
        "",
        machine_md(data["machine"]),
    ]
    for v in data["variants"]:
        rows = []
        for target in ("dojang", "ceiling"):
            m = v["median"][target]
            runs = ", ".join(f"{r['requests_per_s']:,.0f}" for r in v["runs"][target])
            rows.append(
                [
                    target,
                    fmt(m["requests_per_s"], 0),
                    fmt(m["p50_ms"]),
                    fmt(m["p99_ms"]),
                    fmt(m["server_cpu_pct"], 0) + "%",
                    fmt(m["wrk_cpu_pct"], 0) + "%",
                    runs,
                ]
            )
        parts += [
            "",
            f"## {v['variant']['name']}: `{v['wrk_command']}`",
            "",
            md_table(
                [
                    "server",
                    "req/s (median)",
                    "p50 ms",
                    "p99 ms",
                    "server CPU",
                    "wrk CPU",
                    "req/s per round",
                ],
                rows,
            ),
            "",
            f"dojang / ceiling: **{v['ratio_rps']:.3f}x** (paired rounds: "
            f"{v['ratio_rps_paired']:.3f}x)",
        ]
    parts += ["", "## vs target", "", md_table(*summary_table(data))]
    if data["problems"]:
        parts += ["", "## problems", ""] + [f"- {p}" for p in data["problems"]]
    return "\n".join(parts)


def summary_table(data: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the target table (shared with bench/results/README.md)."""
    return (
        ["metric", "median ratio", "paired ratio", "target", "met"],
        [
            [
                s["metric"],
                fmt(s["value"], 3) + "x",
                fmt(s["paired"], 3) + "x",
                s["target"],
                "yes" if s["ok"] else "**NO**",
            ]
            for s in data["summary"]
        ],
    )
