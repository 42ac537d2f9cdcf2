"""Shared helpers of the benchmark scripts: machine facts, interleaved timing, summaries, output.

Every script writes one JSON file under ``benchmarks/results/`` holding the
machine it ran on (CPU model, cores, load average at start and end), its
configuration, raw summaries (p50/p90/p99) and ratios of medians measured in
the same run. Absolute numbers drift with the load (other processes on the
same cores), so only medians and ratios from one run are worth quoting.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SEED = 0


def cpu_model() -> str:
    """The CPU's marketing name (Linux), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(**libraries: str) -> dict[str, Any]:
    """Facts about the machine and the library versions, plus the load average now."""
    import faiss

    facts: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "faiss": faiss.__version__,
        "faiss_omp_threads": faiss.omp_get_max_threads(),
        **libraries,
        "git_commit": git_commit(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "note": "absolute times depend on the load recorded here: quote medians and ratios from one run",
    }
    return facts


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` as a results file records it: never an absolute path of the machine that ran the benchmark.

    Inside the repository: relative to its root. Inside the library's cache,
    the temporary directory or the home directory: ``<cache>/...``,
    ``<tmp>/...``, ``~/...``. Anywhere else: ``<elsewhere>/<name>``.
    """
    import tempfile

    from two_stage_rec.datasets import default_cache_dir

    target = Path(path).expanduser().resolve()
    roots = [
        (Path(__file__).resolve().parents[1], ""),
        (default_cache_dir().expanduser().resolve(), "<cache>"),
        (Path(tempfile.gettempdir()).resolve(), "<tmp>"),
        (Path.home().resolve(), "~"),
    ]
    for root, label in roots:
        if target.is_relative_to(root):
            relative = target.relative_to(root).as_posix()
            return f"{label}/{relative}" if label else relative
    return f"<elsewhere>/{target.name}"


def git_commit() -> str | None:
    """The commit measured (``+dirty`` when the library's sources have uncommitted changes)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}+dirty" if dirty else head


def _memory_gib() -> float | None:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return round(pages * page_size / 2**30, 1)


def summarize(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/mean in milliseconds of a list of durations in seconds."""
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    return {
        "n": int(ms.size),
        "p50_ms": round(float(np.percentile(ms, 50)), 4),
        "p90_ms": round(float(np.percentile(ms, 90)), 4),
        "p99_ms": round(float(np.percentile(ms, 99)), 4),
        "mean_ms": round(float(ms.mean()), 4),
    }


def measure_interleaved(
    cases: Mapping[str, Callable[[int], object]],
    rounds: int,
    *,
    every: Mapping[str, int] | None = None,
    warmup: int = 10,
    seed: int = SEED,
) -> dict[str, dict[str, float]]:
    """Time each case once per round, in a fresh shuffled order every round.

    Interleaving spreads machine noise (other processes on the same cores)
    evenly over the cases, which is what makes their ratios meaningful.

    Args:
        cases: name -> callable taking the round number (e.g. to pick a user).
        rounds: rounds to run.
        every: name -> n to run a slow case only every n-th round.
        warmup: untimed calls of each case first.

    Returns:
        name -> :func:`summarize` of its samples.
    """
    every = every or {}
    for case in cases.values():
        for i in range(warmup):
            case(i)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    rng = np.random.default_rng(seed)
    names = list(cases)
    clock = time.perf_counter
    for r in range(rounds):
        rng.shuffle(names)
        for name in names:
            if r % every.get(name, 1):
                continue
            case = cases[name]
            start = clock()
            case(r)
            samples[name].append(clock() - start)
    return {name: summarize(times) for name, times in samples.items()}


def ratio(numerator: float, denominator: float, digits: int = 2) -> float:
    return round(numerator / denominator, digits) if denominator else float("nan")


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux ru_maxrss is KiB)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def rss_mib() -> float:
    """Current resident memory of this process, MiB (Linux), else the peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return peak_rss_mib()


def write_results(path: Path, results: dict[str, Any], *, quiet: bool = False) -> Path:
    """Add the end-of-run load average and write ``results`` as indented JSON."""
    results.setdefault("machine", {})["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    if not quiet:
        print(json.dumps(results, indent=2))
        print(f"wrote {path}", file=sys.stderr)
    return path
