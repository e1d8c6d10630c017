"""``edge``: latency nginx ``auth_request`` + dojang add in front of an API (issue target:
≤ 1.5 ms at p50 on loopback). The measurement itself lives in ``deploy/measure_overhead.py``
(shared with operators, who run it by hand); this module runs it and formats the result."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TARGET_ADDED_P50_MS = 1.5
_SCRIPT = Path(__file__).resolve().parents[1] / "deploy" / "measure_overhead.py"


def _measure_module() -> Any:
    spec = importlib.util.spec_from_file_location("dojang_measure_overhead", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def run() -> dict[str, Any]:
    """One run of each path with ``wrk -t1 -c1 -d10s`` (no queueing: service times)."""
    from bench._common import machine_info
    from bench.auth_check_bench import WrkMissing

    module = _measure_module()
    if not Path(module.WRK).exists():
        # Reported like the other wrk benchmarks (skipped, exit status 1), not a crash of
        # the whole `make bench` run.
        raise WrkMissing("wrk is not installed; install it with `apt-get install wrk`")
    results = module.measure(duration=10, connections=1)
    paths = {
        name: {
            "p50_ms": r.percentiles[50],
            "p90_ms": r.percentiles[90],
            "p99_ms": r.percentiles[99],
            "requests_per_s": r.rps,
        }
        for name, r in results.items()
    }
    added_p50 = paths["edge"]["p50_ms"] - paths["direct"]["p50_ms"]
    added_p99 = paths["edge"]["p99_ms"] - paths["direct"]["p99_ms"]
    return {
        "benchmark": "edge",
        "machine": machine_info(),
        "paths": paths,
        "added_p50_ms": added_p50,
        "added_p99_ms": added_p99,
        "summary": [
            {
                "metric": "latency added by nginx auth_request + dojang, p50 ms",
                "value": added_p50,
                "paired": added_p99,
                "target": f"<= {TARGET_ADDED_P50_MS} ms",
                "ok": added_p50 <= TARGET_ADDED_P50_MS,
            }
        ],
        "problems": [],
    }


def to_markdown(data: Mapping[str, Any]) -> str:
    """Tables for ``bench/results/edge.md``."""
    from bench._common import fmt, machine_md, md_table

    rows = [
        [name, fmt(p["p50_ms"]), fmt(p["p90_ms"]), fmt(p["p99_ms"]), fmt(p["requests_per_s"], 0)]
        for name, p in data["paths"].items()
    ]
    return "\n".join(
        [
            "# edge: nginx auth_request + dojang in front of the orders API",
            "",
            "`direct`: the API with a bearer token; `check`: dojang's `/auth/check?aud=…` alone; "
            "`edge`: the API through nginx with the session cookie (subrequest to dojang, token "
            "cached per session). `wrk -t1 -c1 -d10s --latency`, all on this machine's CPUs.",
            "",
            machine_md(data["machine"]),
            "",
            md_table(["path", "p50 ms", "p90 ms", "p99 ms", "req/s"], rows),
            "",
            f"Added by the edge: p50 {data['added_p50_ms']:+.3f} ms, "
            f"p99 {data['added_p99_ms']:+.3f} ms.",
        ]
    )
