"""``make bench``: run the benchmarks and write ``bench/results/``.

Usage: ``python -m bench.run [verify] [auth_check]`` (no names: all of them).

Per benchmark ``<name>``: ``bench/results/<name>.json`` (raw numbers and machine info) and
``<name>.md`` (tables); then ``bench/results/README.md`` summarises the latest result of every
benchmark against the issue's targets. Exit status is non-zero when a benchmark was skipped
(e.g. ``wrk`` missing) or failed; missed performance targets are reported, not fatal.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bench import (
    auth_check_bench,
    edge_bench,
    propagation_bench,
    scaleout_bench,
    token_bench,
    verify_bench,
)
from bench._common import RESULTS_DIR, fmt, md_table, write_results


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    run: Callable[[], dict[str, Any]]
    to_markdown: Callable[[Mapping[str, Any]], str]


BENCHMARKS: dict[str, Benchmark] = {
    "verify": Benchmark(
        "verify",
        "access-token verify / issue vs peers and the raw-signature floor",
        verify_bench.run,
        verify_bench.to_markdown,
    ),
    "auth_check": Benchmark(
        "auth_check",
        "GET /auth/check on a real server vs an empty-route ceiling",
        auth_check_bench.run,
        auth_check_bench.to_markdown,
    ),
    "propagation": Benchmark(
        "propagation",
        "logout → refused: SSE, Redis, other instance",
        propagation_bench.run,
        propagation_bench.to_markdown,
    ),
    "edge": Benchmark(
        "edge",
        "latency added by nginx auth_request + dojang",
        edge_bench.run,
        edge_bench.to_markdown,
    ),
    "scaleout": Benchmark(
        "scaleout",
        "Redis memory/session, /auth/check vs size, vs Django",
        scaleout_bench.run,
        scaleout_bench.to_markdown,
    ),
    "token": Benchmark(
        "token",
        "POST /oauth2/token: client_credentials and refresh_token vs Keycloak's anchor",
        token_bench.run,
        token_bench.to_markdown,
    ),
}


def write_readme(not_written: Mapping[str, str] | None = None) -> None:
    """Summarise the latest ``<name>.json`` of every benchmark in ``results/README.md``.

    ``not_written`` maps benchmarks whose run just now was skipped or failed to why, so the
    summary says its numbers are from an earlier run.
    """
    not_written = not_written or {}
    parts = [
        "# dojang benchmark results",
        "",
        "Latest numbers from `make bench` (`python -m bench.run [name ...]`). Each benchmark "
        "has its raw data in `<name>.json` and tables in `<name>.md`. Ratios are medians over "
        "rounds; 'paired' is the median of per-round ratios (cases run back to back, so load "
        "on this shared machine mostly cancels).",
    ]
    rows: list[list[str]] = []
    details: list[str] = []
    for name, bench in BENCHMARKS.items():
        path = RESULTS_DIR / f"{name}.json"
        if not path.exists():
            rows.append([name, "not run yet", "", "", "", ""])
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        machine = data["machine"]
        details.append(
            f"- [`{name}`]({name}.md) ({bench.title}): {machine['date']}, "
            f"{machine['cpu_model']}, {machine['nproc']} CPUs, Python {machine['python']}"
            + (" — **FAILED**, see problems" if data.get("failed") else "")
        )
        if name in not_written:
            details.append(f"  - **the latest attempt did not write results**: {not_written[name]}")
        for s in data["summary"]:
            rows.append(
                [
                    name,
                    s["metric"],
                    fmt(s["value"], 3) + _unit(s["metric"]),
                    fmt(s["paired"], 3) + "x",
                    s["target"],
                    "yes" if s["ok"] else "**NO**",
                ]
            )
        for problem in data.get("problems", []):
            details.append(f"  - problem: {problem}")
    parts += [
        "",
        "## vs targets",
        "",
        md_table(["bench", "metric", "median", "paired", "target", "met"], rows),
        "",
        "## runs",
        "",
        *details,
    ]
    verify_path = RESULTS_DIR / "verify.json"
    if verify_path.exists():
        data = json.loads(verify_path.read_text(encoding="utf-8"))
        parts += [
            "",
            "## headline numbers (µs/op, median)",
            "",
            md_table(
                ["alg", "floor", "dojang", *verify_bench.PEERS, "dojang issue", "raw sign"],
                [
                    [
                        r["alg"],
                        *(
                            fmt(r["verify"][k]["median_us"])
                            if "median_us" in r["verify"].get(k, {})
                            else "unsupported"
                            for k in ("floor", "dojang", *verify_bench.PEERS)
                        ),
                        fmt(r["issue"]["dojang"]["median_us"]),
                        fmt(r["issue"]["floor (raw sign)"]["median_us"]),
                    ]
                    for r in data["results"]
                ],
            ),
            "",
            "Sessions vs JWT on the wire: "
            + "; ".join(f"{k}: {v}" for k, v in data["sizes"].items())
            + ".",
        ]
    auth_path = RESULTS_DIR / "auth_check.json"
    if auth_path.exists():
        data = json.loads(auth_path.read_text(encoding="utf-8"))
        rows = []
        for v in data["variants"]:
            for target in ("dojang", "ceiling"):
                m = v["median"][target]
                rows.append(
                    [
                        v["variant"]["name"],
                        target,
                        fmt(m["requests_per_s"], 0),
                        fmt(m["p50_ms"]),
                        fmt(m["p99_ms"]),
                    ]
                )
        parts += [
            "",
            "## /auth/check (wrk, medians)",
            "",
            md_table(["variant", "server", "req/s", "p50 ms", "p99 ms"], rows),
            "",
            data["setup"]["note"],
        ]
    (RESULTS_DIR / "README.md").write_text("\n".join(parts) + "\n", encoding="utf-8")


def _unit(metric: str) -> str:
    """Summary values are ratios ("x") unless the metric names milliseconds."""
    return " ms" if " ms " in f" {metric} " else "x"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def main(argv: list[str] | None = None) -> int:
    """Run the named benchmarks (all by default); return the process exit status."""
    names = list(sys.argv[1:] if argv is None else argv) or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    status = 0
    not_written: dict[str, str] = {}
    for name in names:
        bench = BENCHMARKS[name]
        print(f"== {name}: {bench.title}", flush=True)
        started = time.monotonic()
        try:
            data = bench.run()
        except auth_check_bench.WrkMissing as exc:
            print(f"SKIPPED {name}: {exc}")
            not_written[name] = f"skipped {_now()}: {exc}"
            status = 1
            continue
        except Exception as exc:  # report and go on with the other benchmarks
            traceback.print_exc()
            print(f"FAILED {name}")
            not_written[name] = f"failed {_now()}: {type(exc).__name__}: {str(exc)[:300]}"
            status = 1
            continue
        data["elapsed_s"] = round(time.monotonic() - started, 1)
        json_path, md_path = write_results(name, data, bench.to_markdown(data))
        for s in data["summary"]:
            verdict = "ok" if s["ok"] else "MISSED"
            value = f"{s['value']:.3f}{_unit(s['metric'])}"
            print(f"  {s['metric']}: {value} (target {s['target']}) {verdict}")
        for problem in data.get("problems", []):
            print(f"  problem: {problem}")
        if data.get("failed"):
            print(f"FAILED {name} (see problems in {md_path})")
            status = 1
        print(f"  wrote {json_path} and {md_path} in {data['elapsed_s']} s", flush=True)
    write_readme(not_written)
    print(f"summary: {RESULTS_DIR / 'README.md'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
