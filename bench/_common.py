"""Shared benchmark plumbing: machine info, tight-loop timing, result files.

Timing follows ``timeit``: the garbage collector is off while timing, each round runs a
callable N times, N is calibrated so a round takes about ``target_round_s``. Cases are
*interleaved* in short slices within each round so load on a noisy shared machine hits every
case alike; the reported figure is the median over rounds.
"""

from __future__ import annotations

import datetime as _dt
import gc
import hashlib
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"

LIBRARIES = (
    "dojang",
    "cryptography",
    "PyJWT",
    "joserfc",
    "jwcrypto",
    "Authlib",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "httpx",
)


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def library_versions(names: Iterable[str] = LIBRARIES) -> dict[str, str]:
    """Installed versions of ``names`` ("missing" when not installed)."""
    versions: dict[str, str] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def source_fingerprint(root: Path | None = None) -> dict[str, str]:
    """SHA-256 over ``src/dojang/**/*.py`` and the newest file: which code was measured.

    The tree may have no commits (or uncommitted edits), so a content hash says more than
    a git revision would.
    """
    root = root or Path(__file__).resolve().parent.parent / "src" / "dojang"
    digest = hashlib.sha256()
    newest: tuple[float, str] = (0.0, "")
    for path in sorted(root.rglob("*.py")):
        data = path.read_bytes()
        rel = path.relative_to(root).as_posix()
        digest.update(rel.encode() + b"\0" + data + b"\0")
        newest = max(newest, (path.stat().st_mtime, rel))
    when = _dt.datetime.fromtimestamp(newest[0], _dt.UTC).isoformat(timespec="seconds")
    return {"sha256": digest.hexdigest()[:16], "newest_file": newest[1], "newest_mtime": when}


def machine_info() -> dict[str, Any]:
    """What a reader needs to judge the numbers: CPU, cores, load, Python, libraries, date."""
    try:
        load = list(os.getloadavg())
    except OSError:
        load = []
    return {
        "cpu_model": cpu_model(),
        "nproc": os.cpu_count(),
        "loadavg_at_start": load,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "libraries": library_versions(),
        "dojang_source": source_fingerprint(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


# --- timing ---------------------------------------------------------------------------------


@dataclass
class Case:
    """One thing to time: ``fn`` is called with no arguments; its result is discarded."""

    name: str
    fn: Callable[[], object]
    number: int = 0
    rounds_us: list[float] = field(default_factory=list)

    @property
    def median_us(self) -> float:
        return statistics.median(self.rounds_us)

    @property
    def best_us(self) -> float:
        return min(self.rounds_us)

    def paired_ratio(self, other: Case) -> float:
        """Median over rounds of self/other: both ran back to back, so load mostly cancels."""
        return statistics.median(
            a / b for a, b in zip(self.rounds_us, other.rounds_us, strict=True)
        )

    def record(self, floor: Case, reference: Case) -> dict[str, object]:
        """The raw numbers of this case plus ratios to ``floor`` and ``reference``."""
        return {
            "median_us": self.median_us,
            "best_us": self.best_us,
            "rounds_us": self.rounds_us,
            "number": self.number,
            "vs_floor": self.median_us / floor.median_us,
            "vs_floor_paired": self.paired_ratio(floor),
            "vs_floor_best": self.best_us / floor.best_us,
            "vs_dojang": self.median_us / reference.median_us,
            "vs_dojang_paired": self.paired_ratio(reference),
        }


def _run_round(fn: Callable[[], object], number: int) -> float:
    """Seconds for ``number`` calls of ``fn`` with the GC off (as ``timeit`` does)."""
    loop = range(number)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in loop:
            fn()
        return time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()


def calibrate(fn: Callable[[], object], target_s: float) -> int:
    """Return N so that N calls of ``fn`` take about ``target_s`` (at least 10)."""
    number = 10
    while True:
        elapsed = _run_round(fn, number)
        if elapsed >= target_s / 4 or number >= 10_000_000:
            break
        number *= 4
    return max(10, round(number * target_s / max(elapsed, 1e-9)))


def time_cases(
    cases: list[Case], *, rounds: int = 7, target_round_s: float = 0.3, slices: int = 10
) -> None:
    """Fill ``rounds_us`` (µs per call, one entry per round) of every case, interleaved.

    Each round is cut into ``slices`` short slices and the cases take turns slice by slice,
    so every case's round spans the same stretch of wall time: load from other processes
    on a shared machine lands on all cases alike instead of on whichever ran during a spike.
    """
    for case in cases:
        case.fn()  # warm caches and imports outside the timed rounds
        case.number = max(slices, calibrate(case.fn, target_round_s))
    for _ in range(rounds):
        totals = [0.0] * len(cases)
        for _ in range(slices):
            for i, case in enumerate(cases):
                totals[i] += _run_round(case.fn, case.number // slices)
        for total, case in zip(totals, cases, strict=True):
            case.rounds_us.append(total / (case.number // slices * slices) * 1e6)


# --- output ---------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 2) -> str:
    """Format a number for a Markdown table ("—" for None)."""
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def md_table(headers: list[str], rows: Iterable[Iterable[object]]) -> str:
    """Render a GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)


def write_results(name: str, data: Mapping[str, Any], markdown: str) -> tuple[Path, Path]:
    """Write ``bench/results/<name>.json`` and ``<name>.md``; return both paths."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS_DIR / f"{name}.json"
    md_path = RESULTS_DIR / f"{name}.md"
    json_path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    md_path.write_text(markdown.rstrip() + "\n", encoding="utf-8")
    return json_path, md_path


def machine_md(info: Mapping[str, Any]) -> str:
    """A short Markdown paragraph describing the machine."""
    libs = ", ".join(f"{k} {v}" for k, v in info["libraries"].items())
    load = ", ".join(f"{x:.2f}" for x in info.get("loadavg_at_start", []))
    src = info.get("dojang_source", {})
    return (
        f"Machine: {info['cpu_model']}, {info['nproc']} CPUs (load at start: {load}); "
        f"{info['python_implementation']} {info['python']}; {info['platform']}.  \n"
        f"Libraries: {libs}.  \ndojang source: sha256 {src.get('sha256')} (newest file "
        f"{src.get('newest_file')} at {src.get('newest_mtime')}).  \nDate: {info['date']}."
    )
