"""``edge``: latency nginx ``auth_request`` + dojang add in front of an API (issue target:
≤ 1.5 ms at p50 on loopback). The measurement itself lives in ``deploy/measure_overhead.py``
(shared with operators, who run it by hand); this module runs it and formats the result.

One stack, ``ROUNDS`` rounds of ``wrk -t1 -c1`` for ``DURATION_S`` seconds on each path, every
other round in reverse order, so load drifting on this shared machine is charged to both paths
alike. Every figure reported is a median over rounds; "added" is the median of the per-round
differences edge - direct (paired: both ran within seconds of each other). A p99 is the slowest
1% of a run's requests and is set by scheduling hiccups as much as by the code: when the
per-round differences do not all agree that the edge is slower, the p99 is reported as noise,
never as a (negative) cost.
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

TARGET_ADDED_P50_MS = 1.5
ROUNDS = 5
DURATION_S = 5
PERCENTILES = (50, 90, 99)
_SCRIPT = Path(__file__).resolve().parents[1] / "deploy" / "measure_overhead.py"


def _measure_module() -> Any:
    spec = importlib.util.spec_from_file_location("dojang_measure_overhead", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def _added(rounds: Sequence[Mapping[str, Any]], key: str) -> list[float]:
    return [r["paths"]["edge"][key] - r["paths"]["direct"][key] for r in rounds]


def _p99_verdict(diffs: list[float]) -> tuple[bool, str]:
    """Whether the added p99 is resolved, and a sentence saying so."""
    if diffs and min(diffs) > 0:
        return True, ""
    if len(diffs) <= 1:
        why = "one run only, and the edge came out faster at p99"
    else:
        why = (
            f"per-round differences range {min(diffs):+.3f} .. {max(diffs):+.3f} ms, so the "
            "direct path's tail varied more between rounds than the edge adds"
        )
    return False, f"NOISE, not a cost or a gain ({why})"


def run(rounds: int = ROUNDS, duration: int = DURATION_S) -> dict[str, Any]:
    """``rounds`` rounds of each path with ``wrk -t1 -c1`` (no queueing: service times)."""
    from bench._common import machine_info
    from bench.auth_check_bench import WrkMissing

    module = _measure_module()
    if not Path(module.WRK).exists():
        # Reported like the other wrk benchmarks (skipped, exit status 1), not a crash of
        # the whole `make bench` run.
        raise WrkMissing("wrk is not installed; install it with `apt-get install wrk`")
    measured = module.measure_rounds(duration=duration, connections=1, rounds=rounds)
    per_round: list[dict[str, Any]] = [
        {
            "order": list(results),
            "paths": {
                name: {
                    **{f"p{p}_ms": r.percentiles[p] for p in PERCENTILES},
                    "requests_per_s": r.rps,
                }
                for name, r in results.items()
            },
        }
        for results in measured
    ]
    names = per_round[0]["paths"].keys()
    paths = {
        name: {
            key: statistics.median(r["paths"][name][key] for r in per_round)
            for key in (*(f"p{p}_ms" for p in PERCENTILES), "requests_per_s")
        }
        for name in names
    }
    p50_diffs, p99_diffs = _added(per_round, "p50_ms"), _added(per_round, "p99_ms")
    added_p50 = statistics.median(p50_diffs)
    added_p99 = statistics.median(p99_diffs)
    resolved, verdict = _p99_verdict(p99_diffs)
    unpaired_p50 = paths["edge"]["p50_ms"] - paths["direct"]["p50_ms"]
    return {
        "benchmark": "edge",
        "machine": machine_info(),
        "rounds": per_round,
        "duration_s": duration,
        "paths": paths,
        "added_p50_ms": added_p50,
        "added_p50_range_ms": [min(p50_diffs), max(p50_diffs)],
        "added_p99_ms": added_p99,
        "added_p99_range_ms": [min(p99_diffs), max(p99_diffs)],
        "added_p99_resolved": resolved,
        "summary": [
            {
                "metric": "latency added by nginx auth_request + dojang, p50 ms",
                "value": unpaired_p50,
                "paired": added_p50,
                "target": f"<= {TARGET_ADDED_P50_MS} ms",
                "ok": max(unpaired_p50, added_p50) <= TARGET_ADDED_P50_MS,
            }
        ],
        "problems": [] if resolved else [f"added p99 {added_p99:+.3f} ms is {verdict}"],
    }


def to_markdown(data: Mapping[str, Any]) -> str:
    """Tables for ``bench/results/edge.md`` (also renders a single-run result of older runs)."""
    from bench._common import fmt, machine_md, md_table

    per_round: list[Mapping[str, Any]] = data.get("rounds", [])
    rows = [
        [name, fmt(p["p50_ms"]), fmt(p["p90_ms"]), fmt(p["p99_ms"]), fmt(p["requests_per_s"], 0)]
        for name, p in data["paths"].items()
    ]
    diffs = _added(per_round, "p99_ms") if per_round else [data["added_p99_ms"]]
    resolved, verdict = _p99_verdict(diffs)
    p99_line = (
        f"p99 {data['added_p99_ms']:+.3f} ms"
        if resolved
        else f"p99 {data['added_p99_ms']:+.3f} ms — **{verdict}**"
    )
    if per_round:
        how = (
            f"{len(per_round)} rounds of `wrk -t1 -c1 -d{data['duration_s']}s --latency` per "
            "path on one stack, every other round in reverse order; figures are medians over "
            'rounds, "added" is the median of the per-round differences edge - direct.'
        )
    else:
        how = "One run of `wrk -t1 -c1 -d10s --latency` per path (before rounds were added)."
    parts = [
        "# edge: nginx auth_request + dojang in front of the orders API",
        "",
        "`direct`: the API with a bearer token; `check`: dojang's `/auth/check?aud=…` alone; "
        "`edge`: the API through nginx with the session cookie (subrequest to dojang, token "
        f"cached per session). {how} All processes and wrk share this machine's CPUs.",
        "",
        machine_md(data["machine"]),
        "",
        md_table(["path", "p50 ms", "p90 ms", "p99 ms", "req/s"], rows),
    ]
    if per_round:
        round_rows = [
            [
                i,
                " → ".join(r["order"]),
                fmt(r["paths"]["direct"]["p50_ms"]),
                fmt(r["paths"]["edge"]["p50_ms"]),
                fmt(r["paths"]["direct"]["p99_ms"]),
                fmt(r["paths"]["edge"]["p99_ms"]),
            ]
            for i, r in enumerate(per_round, 1)
        ]
        parts += [
            "",
            md_table(
                ["round", "order", "direct p50", "edge p50", "direct p99", "edge p99"],
                round_rows,
            ),
        ]
    parts += [
        "",
        f"Added by the edge: p50 {data['added_p50_ms']:+.3f} ms, {p99_line}.",
        "",
        "A p99 is the slowest 1% of a run's requests; on a shared "
        "2-CPU machine those are scheduling stalls (other jobs, wrk, three servers on two "
        "CPUs) as much as code, and the edge path cannot truly be faster than the direct path "
        "it contains. A p99 difference is reported as a cost only when every round agrees.",
    ]
    return "\n".join(parts)
