"""``scaleout``: Redis memory per session, /auth/check latency vs store size, dojang vs Django.

* Memory: a private ``redis-server`` (loopback, no persistence, default settings); N sessions
  written in pipelines exactly as ``RedisSessionStore.create`` lays them out, through the
  store's own helpers and bucket script (record, sid pointer bucket entry, user index bucket
  entry; two sessions per user, a real browser user agent, an IPv4 address); ``INFO memory``
  ``used_memory`` right after the fill minus before, divided by N. The pre-compaction layout
  (a hash per record, hex pointers and index members) is measured the same way beside it.
* Latency: one ``dojang serve`` (1 worker) on that Redis; ``wrk`` on ``/auth/check`` with a
  live cookie while the store holds 10k sessions, then again at 1M.
* Peer: ``bench/django_peer`` (Django ``SessionMiddleware`` + django-redis cache sessions on
  the same Redis, granian WSGI, 1 worker) vs dojang, same wrk settings, a valid session each.

Every server binds 127.0.0.1; every load is bounded (wrk ``-d`` plus a hard timeout; the fill
is a fixed count in fixed-size pipelines).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any, cast

import httpx
import redis
from tests.redis_harness import RedisServer

from bench._common import fmt, machine_info, machine_md, md_table
from bench.auth_check_bench import (
    ARGON2_ENV,
    BIN,
    HOST,
    REPO,
    BenchFailed,
    Variant,
    WrkMissing,
    free_port,
    run_wrk,
    stop,
    wait_http,
)
from dojang.sessions.backends import redis as rstore
from dojang.sessions.model import Session

UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)
PIPELINE = 2_000
MEMORY_SIZES = (100_000, 1_000_000)
LATENCY_SIZES = (10_000, 1_000_000)
TARGET_BYTES = 400
TARGET_SESSIONS = 1_000_000
TARGET_LATENCY_GROWTH = 1.10
TARGET_VS_DJANGO = 3.0
WRK = Variant("t1-c32", threads=1, connections=32, duration_s=8, rounds=3)
USERNAME = "benchuser"


def _session(i: int, now: float) -> Session:
    return Session(
        key_hash=hashlib.sha256(secrets.token_bytes(32)).digest(),
        sid=secrets.token_urlsafe(16),
        user_id=f"user-{i // 2:08d}",
        created_at=now,
        last_seen=now,
        auth_time=now,
        idle_timeout=1800,
        absolute_expires_at=now + 43200,
        csrf_secret=secrets.token_urlsafe(32),
        methods=("pwd",),
        ip=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
        user_agent=UA,
    )


def fill(client: redis.Redis, n: int, *, prefix: str = "dojang:", legacy: bool = False) -> None:
    """Write ``n`` sessions as ``RedisSessionStore.create`` does (``legacy``: the old hash layout).

    The current layout goes through the store's own key names, entry encodings, record packing
    and bucket script, so it cannot drift from the store: per session ``SET NX PXAT`` of the
    record, the sid pointer (bucket script, ``nx``) and the user index entry (bucket script,
    ``set``), pipelined. The legacy layout is spelled out here: it exists only in this bench.
    """
    store = rstore.RedisSessionStore.__new__(rstore.RedisSessionStore)
    store._prefix = prefix.encode()  # the key-name helpers need nothing else
    bucket_put = client.register_script(rstore._BUCKET_PUT)
    now = time.time()
    for start in range(0, n, PIPELINE):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(n, start + PIPELINE)):
            s = _session(i, now)
            if legacy:
                hexkey = s.key_hash.hex()
                record = f"{prefix}s:{hexkey}"
                fields = {
                    "s": s.sid, "u": s.user_id, "c": repr(now), "l": repr(now), "a": repr(now),
                    "i": "1800", "x": repr(now + 43200), "k": s.csrf_secret, "m": '["pwd"]',
                    "p": s.ip or "", "g": UA,
                }  # fmt: skip
                pipe.hset(record, mapping=cast(Any, fields))
                pipe.pexpireat(record, int((now + 1800) * 1000))
                pipe.set(f"{prefix}i:{s.sid}", hexkey, pxat=int((now + 43200) * 1000))
                pipe.zadd(f"{prefix}u:{s.user_id}", {hexkey: now + 43200})
                pipe.pexpireat(f"{prefix}u:{s.user_id}", int((now + 43200) * 1000))
                continue
            pipe.set(
                store._record(s.key_hash), rstore._pack(s), nx=True, pxat=rstore._ms(s.expires_at)
            )
            key, field, value = store._pointer_entry(s)
            bucket_put(keys=[key], args=[field, value, b"nx"], client=pipe)
            key, field, value = store._index_entry(s)
            bucket_put(keys=[key], args=[field, value, b"set"], client=pipe)
        pipe.execute()


def used_memory(client: redis.Redis) -> int:
    info: dict[str, Any] = client.info("memory")
    return int(info["used_memory"])


def measure_memory(tmp: Path) -> list[dict[str, Any]]:
    """Bytes per session for each size, compact (current) and legacy layouts."""
    rows = []
    for legacy in (False, True):
        for n in MEMORY_SIZES[:1] if legacy else MEMORY_SIZES:
            server = RedisServer(tmp)
            server.start()
            try:
                client = redis.Redis(host=HOST, port=server.port)
                before = used_memory(client)
                started = time.monotonic()
                fill(client, n, legacy=legacy)
                after = used_memory(client)
                keys = int(client.dbsize())
                client.close()
            finally:
                server.stop()
            per = (after - before) / n
            layout = "legacy hash" if legacy else "compact string"
            print(f"  memory {layout:15s} n={n:>9,}: {per:,.0f} B/session", flush=True)
            rows.append(
                {
                    "layout": layout,
                    "sessions": n,
                    "used_memory_delta": after - before,
                    "bytes_per_session": per,
                    "keys": keys,
                    "fill_s": round(time.monotonic() - started, 1),
                }
            )
    return rows


def _start_dojang(tmp: Path, redis_url: str, logs: list[IO[bytes]]) -> tuple[Any, str, str]:
    """A ``dojang serve`` on the Redis session store; returns (proc, check url, cookie)."""
    data_dir = tmp / "data"
    env = {**os.environ, **ARGON2_ENV, "DOJANG_SESSION_STORE": redis_url}
    for name in ("DOJANG_CONFIG", "DOJANG_DATABASE_URL", "DOJANG_WORKERS", "DOJANG_EVENT_BUS"):
        env.pop(name, None)
    password = secrets.token_urlsafe(18)
    subprocess.run(
        [
            str(BIN / "dojang"),
            "users",
            "add",
            USERNAME,
            "--password-stdin",
            "--data-dir",
            str(data_dir),
        ],
        input=(password + "\n").encode(),
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    base = f"http://{HOST}:{port}"
    log = open(tmp / "dojang.log", "wb")  # noqa: SIM115
    logs.append(log)
    proc = subprocess.Popen(
        [
            str(BIN / "dojang"),
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
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_http(f"{base}/healthz", timeout_s=60, proc=proc)
    login = httpx.post(
        f"{base}/api/v1/session", json={"username": USERNAME, "password": password}, timeout=30
    )
    if login.status_code != 201:
        raise BenchFailed(f"login failed: {login.status_code} {login.text[:200]}")
    return proc, f"{base}/auth/check", f"dojang_session={login.cookies['dojang_session']}"


def _wrk_rounds(wrk: str, url: str, cookie: str, pid: int, label: str) -> dict[str, Any]:
    ok = httpx.get(url, headers={"Cookie": cookie}, timeout=10)
    if ok.status_code != 200:
        raise BenchFailed(f"{label}: {url} answered {ok.status_code} before the load")
    run_wrk(wrk, Variant("warmup", 1, 32, 2, 1), url, cookie, "warmup", pid)
    runs = [run_wrk(wrk, WRK, url, cookie, label, pid) for _ in range(WRK.rounds)]
    for r in runs:
        print(
            f"  {label:22s} {r.requests_per_s:9,.0f} req/s  p50 {r.latency_ms['p50']:.2f} ms"
            f"  p99 {r.latency_ms['p99']:.2f} ms",
            flush=True,
        )
    rps = sorted(r.requests_per_s for r in runs)[len(runs) // 2]
    p50 = sorted(r.latency_ms["p50"] for r in runs)[len(runs) // 2]
    p99 = sorted(r.latency_ms["p99"] for r in runs)[len(runs) // 2]
    problems = [f"{label}: {r.non_2xx} non-2xx" for r in runs if r.non_2xx]
    problems += [
        f"{label}: socket errors {r.socket_errors}" for r in runs if any(r.socket_errors.values())
    ]
    return {
        "requests_per_s": rps,
        "p50_ms": p50,
        "p99_ms": p99,
        "runs": [{k: v for k, v in asdict(r).items() if k != "raw"} for r in runs],
        "problems": problems,
    }


def _start_django(tmp: Path, redis_url: str, logs: list[IO[bytes]]) -> tuple[Any, str, str]:
    """The Django peer on granian (1 worker); returns (proc, check url, cookie)."""
    granian = BIN / "granian"
    if not granian.exists():
        raise BenchFailed("granian is not installed (pip install django django-redis granian)")
    port = free_port()
    env = {**os.environ, "DJANGO_PEER_REDIS_URL": redis_url, "PYTHONPATH": str(REPO)}
    log = open(tmp / "django.log", "wb")  # noqa: SIM115
    logs.append(log)
    proc = subprocess.Popen(
        [
            str(granian),
            "--interface",
            "wsgi",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-ws",
            "bench.django_peer.wsgi:application",
        ],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://{HOST}:{port}"
    wait_http(f"{base}/auth/check", timeout_s=60, proc=proc)
    login = httpx.post(f"{base}/login", timeout=10)
    if login.status_code != 200 or "sessionid" not in login.cookies:
        raise BenchFailed(f"django login failed: {login.status_code} {login.text[:200]}")
    return proc, f"{base}/auth/check", f"sessionid={login.cookies['sessionid']}"


def measure_latency_and_peer(tmp: Path, wrk: str) -> dict[str, Any]:
    """/auth/check at 10k and 1M sessions, then dojang vs Django at the same Redis."""
    server = RedisServer(tmp)
    server.start()
    logs: list[IO[bytes]] = []
    procs = []
    out: dict[str, Any] = {"latency": {}, "peer": {}, "problems": []}
    try:
        url = f"redis://{HOST}:{server.port}/0"
        client = redis.Redis(host=HOST, port=server.port)
        dojang, check_url, cookie = _start_dojang(tmp, url, logs)
        procs.append(dojang)
        filled = 0
        for n in LATENCY_SIZES:
            fill(client, n - filled)
            filled = n
            res = _wrk_rounds(wrk, check_url, cookie, dojang.pid, f"dojang @ {n:,} sessions")
            # The filled sessions plus the one wrk uses (keys per session vary with the layout).
            res["sessions_in_redis"] = filled + 1
            res["keys_in_redis"] = int(client.dbsize())
            out["latency"][str(n)] = res
            out["problems"] += res.pop("problems")
        try:
            django, d_url, d_cookie = _start_django(tmp, url, logs)
        except BenchFailed as exc:
            out["problems"].append(f"django peer not run: {exc}")
        else:
            procs.append(django)
            for name, (u, c, pid) in (
                ("dojang", (check_url, cookie, dojang.pid)),
                ("django", (d_url, d_cookie, django.pid)),
            ):
                res = _wrk_rounds(wrk, u, c, pid, f"peer {name}")
                out["peer"][name] = res
                out["problems"] += res.pop("problems")
        client.close()
    finally:
        for p in procs:
            stop(p)
        for log in logs:
            log.close()
        server.stop()
    return out


def run() -> dict[str, Any]:
    """Memory, latency vs size, Django peer; raises WrkMissing without wrk."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise WrkMissing("wrk is not installed; install it with `apt-get install wrk`")
    if shutil.which("redis-server") is None:
        raise BenchFailed("redis-server is not installed")
    tmp = Path(tempfile.mkdtemp(prefix="dojang-scaleout-"))
    try:
        memory = measure_memory(tmp)
        served = measure_latency_and_peer(tmp, wrk)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summarise(memory, served)


def summarise(memory: list[dict[str, Any]], served: Mapping[str, Any]) -> dict[str, Any]:
    """The result document: raw numbers plus the summary rows for results/README.md."""
    compact = {
        r["sessions"]: r["bytes_per_session"] for r in memory if r["layout"] != "legacy hash"
    }
    summary = [
        {
            "metric": f"Redis bytes/session at {n:,} / {TARGET_BYTES} (target)",
            "value": compact[n] / TARGET_BYTES,
            "paired": compact[n] / TARGET_BYTES,
            "target": "<= 1.0",
            "ok": compact[n] <= TARGET_BYTES,
        }
        # The target is per session "with 1,000,000 sessions loaded"; smaller fills
        # are in the table (the bucket overhead is shared by fewer sessions there).
        for n in MEMORY_SIZES
        if n == TARGET_SESSIONS
    ]
    lat = served["latency"]
    small, big = (lat.get(str(n)) for n in LATENCY_SIZES)
    if small and big:
        growth = big["p50_ms"] / small["p50_ms"]
        summary.append(
            {
                "metric": "/auth/check p50 at 1M / at 10k sessions",
                "value": growth,
                "paired": small["requests_per_s"] / big["requests_per_s"],
                "target": f"<= {TARGET_LATENCY_GROWTH}",
                "ok": growth <= TARGET_LATENCY_GROWTH,
            }
        )
    peer = served["peer"]
    if "django" in peer:
        ratio = peer["dojang"]["requests_per_s"] / peer["django"]["requests_per_s"]
        summary.append(
            {
                "metric": "/auth/check req/s: dojang / Django (Redis sessions)",
                "value": ratio,
                "paired": peer["django"]["p99_ms"] / peer["dojang"]["p99_ms"],
                "target": f">= {TARGET_VS_DJANGO} (and lower p99)",
                "ok": ratio >= TARGET_VS_DJANGO
                and peer["dojang"]["p99_ms"] < peer["django"]["p99_ms"],
            }
        )
    return {
        "benchmark": "scaleout",
        "machine": machine_info(),
        "memory": memory,
        "latency": lat,
        "peer": peer,
        "wrk": asdict(WRK),
        "summary": summary,
        "problems": list(served["problems"]),
        "failed": bool(served["problems"]),
    }


def to_markdown(data: Mapping[str, Any]) -> str:
    """Tables for ``bench/results/scaleout.md``."""
    parts = [
        "# scaleout: Redis memory per session, /auth/check vs store size, dojang vs Django",
        "",
        (__doc__ or "").split("\n\n", 1)[1].strip(),
        "",
        machine_md(data["machine"]),
        "",
        "## Redis memory (`INFO memory` used_memory delta / sessions)",
        "",
        md_table(
            ["layout", "sessions", "bytes/session", "keys", "fill s"],
            [
                [
                    r["layout"],
                    f"{r['sessions']:,}",
                    fmt(r["bytes_per_session"], 0),
                    f"{r['keys']:,}",
                    r["fill_s"],
                ]
                for r in data["memory"]
            ],
        ),
        "",
        "## /auth/check vs store size (`wrk -t{threads} -c{connections} -d{duration_s}s`, "
        "median of {rounds})".format(**data["wrk"]),
        "",
        md_table(
            ["sessions", "req/s", "p50 ms", "p99 ms"],
            [
                [f"{int(n):,}", fmt(r["requests_per_s"], 0), fmt(r["p50_ms"]), fmt(r["p99_ms"])]
                for n, r in data["latency"].items()
            ],
        ),
    ]
    if data["peer"]:
        parts += [
            "",
            "## dojang vs Django (same Redis, 1 worker each, same wrk settings)",
            "",
            md_table(
                ["server", "req/s", "p50 ms", "p99 ms"],
                [
                    [k, fmt(r["requests_per_s"], 0), fmt(r["p50_ms"]), fmt(r["p99_ms"])]
                    for k, r in data["peer"].items()
                ],
            ),
        ]
    parts += [
        "",
        "## vs targets",
        "",
        md_table(
            ["metric", "value", "paired/aux", "target", "met"],
            [
                [
                    s["metric"],
                    fmt(s["value"], 3),
                    fmt(s["paired"], 3),
                    s["target"],
                    "yes" if s["ok"] else "**NO**",
                ]
                for s in data["summary"]
            ],
        ),
    ]
    if data["problems"]:
        parts += ["", "## problems", ""] + [f"- {p}" for p in data["problems"]]
    return "\n".join(parts)


if __name__ == "__main__":
    result = run()
    print(json.dumps(result["summary"], indent=2))
    sys.exit(0)
