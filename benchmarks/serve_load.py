"""Throughput and latency of ``two-stage-rec serve`` under concurrent load, measured with ``wrk``.

Starts the service as users run it (``two-stage-rec serve`` in its own
process, FAISS store, numpy models) in several configurations at once, each on
its own loopback port:

* ``batching``: the default (micro-batching on, one process);
* ``no_batching``: ``--no-batching`` (each request its own ``recommend`` call
  in FastAPI's thread pool, as before micro-batching);
* ``batching_2_workers``: ``--workers 2`` (two processes, each its own index).

Then it drives each with ``wrk`` (one client thread): ``GET /healthz`` at 100
connections (the HTTP floor) and ``GET /recommendations/{user_id}`` at 1, 10
and 100 connections, the user ids cycling over every user of the bundle (a
generated wrk Lua script). Every (configuration, case) pair runs once per
round, in a freshly shuffled order each round, so machine noise (other
processes on the same cores, and wrk itself) hits them alike; the JSON
keeps every run and the medians over the rounds, and the ratio
recommendations/healthz is taken within each round.

Goals (the serving issue): at 100 connections, >= 1,000 recommendations/s
with 0 errors and >= 40% of the /healthz throughput of the same run; at 10
connections, p99 <= 25 ms.

The bundle: ``--models DIR`` (e.g. from ``two-stage-rec train --out DIR``), else
a random bundle over MovieLens-100K (``tests/synthetic_models.py``: 943 users,
1,682 movies, 32-d towers, a small MLP and the blend; each user's training
items excluded), which needs ``$TWO_STAGE_REC_DATA``. Random towers cost
what trained ones cost, so the latency is representative.

``wrk`` is the Debian package ``wrk``; when it is missing and this runs as
root on a Debian-like system, the script installs it with ``apt-get install -y
wrk``, else it says how to.

Usage::

    .venv/bin/python benchmarks/serve_load.py [--models DIR] [--rounds 3] [--duration 5] [--quick]

Writes ``benchmarks/results/serve_load.json`` (``serve_load_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from statistics import median
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, machine, write_results

CONFIGURATIONS: dict[str, list[str]] = {
    "batching": [],
    "no_batching": ["--no-batching"],
    "batching_2_workers": ["--workers", "2"],
}
CASES: dict[str, tuple[str, int]] = {  # name -> (endpoint, connections)
    "healthz_c100": ("healthz", 100),
    "recommendations_c1": ("recommendations", 1),
    "recommendations_c10": ("recommendations", 10),
    "recommendations_c100": ("recommendations", 100),
}

_DONE_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,'
    .. '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def ensure_wrk() -> str:
    """The path of ``wrk``, installing the Debian package when possible."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: apt-get install -y wrk", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, env=env, stdout=subprocess.DEVNULL)
        found = shutil.which("wrk")
        if found:
            return found
    sys.exit("this benchmark needs wrk: install the 'wrk' package (e.g. sudo apt-get install wrk)")


def wrk_version(wrk: str) -> str:
    result = subprocess.run([wrk, "-v"], capture_output=True, text=True)
    return (result.stdout or result.stderr).splitlines()[0].strip()


def synthetic_bundle(directory: Path) -> Path:
    tests = Path(__file__).resolve().parents[1] / "tests"
    sys.path.insert(0, str(tests))
    from synthetic_models import write_synthetic_models

    return write_synthetic_models(directory / "bundle", dimension=32, seed=0)


def write_scripts(directory: Path, user_ids: list[str]) -> dict[str, Path]:
    ids = ",".join(json.dumps(quote(user, safe="")) for user in user_ids)
    recommendations = directory / "recommendations.lua"
    recommendations.write_text(
        f"local ids = {{{ids}}}\nlocal n = 0\n"
        "request = function()\n  n = n + 1\n"
        '  return wrk.format("GET", "/recommendations/" .. ids[(n % #ids) + 1])\nend\n' + _DONE_LUA
    )
    healthz = directory / "healthz.lua"
    healthz.write_text('request = function()\n  return wrk.format("GET", "/healthz")\nend\n' + _DONE_LUA)
    return {"recommendations": recommendations, "healthz": healthz}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(models: Path, flags: list[str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [
        sys.executable,
        "-c",
        "from two_stage_rec.cli import main; main()",
        "serve",
        "--models",
        str(models),
        "--store",
        "faiss",
        "--port",
        str(port),
        "--log-level",
        "warning",
        *flags,
    ]
    with log.open("wb") as sink:
        child = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    return child, f"http://127.0.0.1:{port}"


def wait_ready(children: dict[str, tuple[subprocess.Popen[bytes], str]], timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    for name, (child, base_url) in children.items():
        while True:
            if child.poll() is not None:
                raise RuntimeError(f"server {name} exited with code {child.returncode}")
            try:
                with urllib.request.urlopen(f"{base_url}/readyz", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server {name} did not become ready")
            time.sleep(0.2)


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) used so far by process ``pid`` and its children's live processes
    (``--workers``), from ``/proc``; None where there is no ``/proc``."""
    total = 0.0
    pending = [pid]
    try:
        while pending:
            current = pending.pop()
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pending.extend(int(child) for child in children)
    except (OSError, ValueError, IndexError):
        return None
    return total


def run_wrk(
    wrk: str, base_url: str, script: Path, connections: int, duration_s: float, server_pid: int | None = None
) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    cpu_before = cpu_seconds(server_pid) if server_pid is not None else None
    command = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{duration_s:g}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        base_url,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("WRKJSON "))
    raw = json.loads(line.removeprefix("WRKJSON "))
    cpu_after = cpu_seconds(server_pid) if server_pid is not None else None
    errors = sum(raw[key] for key in ("connect", "read", "write", "status", "timeout"))
    # The server's CPU time per answered request: what the service's own code costs, and far
    # less sensitive than requests/s to other jobs taking the cores (it inflates a little with
    # cache and frequency effects, but does not count time spent waiting for a core).
    cpu_ms = (
        round((cpu_after - cpu_before) * 1e3 / raw["requests"], 3)
        if cpu_before is not None and cpu_after is not None and raw["requests"]
        else None
    )
    return {
        "requests_per_s": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "requests": raw["requests"],
        "p50_ms": round(raw["p50_us"] / 1e3, 2),
        "p90_ms": round(raw["p90_us"] / 1e3, 2),
        "p99_ms": round(raw["p99_us"] / 1e3, 2),
        "max_ms": round(raw["max_us"] / 1e3, 2),
        "errors": errors,
        "error_kinds": {key: raw[key] for key in ("connect", "read", "write", "status", "timeout") if raw[key]},
        "server_cpu_ms_per_request": cpu_ms,
        "loadavg_1min_before": round(load_before, 2),
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    cpu = [r["server_cpu_ms_per_request"] for r in runs if r.get("server_cpu_ms_per_request") is not None]
    return {
        "requests_per_s": round(median(r["requests_per_s"] for r in runs), 1),
        "p50_ms": round(median(r["p50_ms"] for r in runs), 2),
        "p99_ms": round(median(r["p99_ms"] for r in runs), 2),
        "errors": sum(r["errors"] for r in runs),
        "server_cpu_ms_per_request": round(median(cpu), 3) if cpu else None,
        "rounds": len(runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, help="a models bundle (default: a random one over MovieLens-100K)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--configurations", default=",".join(CONFIGURATIONS), help="comma-separated subset")
    parser.add_argument("--quick", action="store_true", help="one round of 2 s runs (a smoke test)")
    args = parser.parse_args()
    rounds, duration = (1, 2.0) if args.quick else (args.rounds, args.duration)
    chosen = [name.strip() for name in args.configurations.split(",") if name.strip()]

    wrk = ensure_wrk()
    facts = machine(wrk=wrk_version(wrk))
    with tempfile.TemporaryDirectory(prefix="serve-load-") as scratch:
        work = Path(scratch)
        models = args.models or synthetic_bundle(work)
        from two_stage_rec.bundle import read_bundle

        users = sorted(read_bundle(models).seen_items)
        scripts = write_scripts(work, users)
        children = {name: start_server(models, CONFIGURATIONS[name], work / f"{name}.log") for name in chosen}
        try:
            wait_ready(children)
            for _, base_url in children.values():  # warm up: connections, caches, the batching thread
                run_wrk(wrk, base_url, scripts["recommendations"], 10, 1.0)
            runs: dict[str, dict[str, list[dict[str, Any]]]] = {name: {case: [] for case in CASES} for name in chosen}
            pairs = [(name, case) for name in chosen for case in CASES]
            shuffle = random.Random(0)
            for round_number in range(rounds):
                shuffle.shuffle(pairs)
                for name, case in pairs:
                    endpoint, connections = CASES[case]
                    child, base_url = children[name]
                    result = run_wrk(wrk, base_url, scripts[endpoint], connections, duration, child.pid)
                    runs[name][case].append(result)
                    print(
                        f"round {round_number + 1}/{rounds} {name:>20} {case:>22}: "
                        f"{result['requests_per_s']:>8,.0f}/s p50 {result['p50_ms']:>7.2f} ms "
                        f"p99 {result['p99_ms']:>7.2f} ms errors {result['errors']}",
                        file=sys.stderr,
                    )
        finally:
            for child, _ in children.values():
                child.terminate()
            for child, _ in children.values():
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()

    summary: dict[str, Any] = {}
    for name in chosen:
        cases = {case: summarize(results) for case, results in runs[name].items()}
        ratios = [
            rec["requests_per_s"] / health["requests_per_s"]
            for rec, health in zip(runs[name]["recommendations_c100"], runs[name]["healthz_c100"], strict=True)
        ]
        c100, c10 = cases["recommendations_c100"], cases["recommendations_c10"]
        summary[name] = {
            **cases,
            "recommendations_over_healthz_c100": round(median(ratios), 3),
            "goals": {
                "c100_at_least_1000_per_s": c100["requests_per_s"] >= 1000,
                "c100_zero_errors": c100["errors"] == 0,
                "c100_at_least_40pct_of_healthz": median(ratios) >= 0.40,
                "c10_p99_at_most_25_ms": c10["p99_ms"] <= 25.0,
            },
        }
    results = {
        "benchmark": "serve_load",
        "machine": facts,
        "config": {
            "models": "random bundle over MovieLens-100K (tests/synthetic_models.py, 32-d, seed 0)"
            if args.models is None
            else f"the bundle {args.models.name!r}",
            "users": len(users),
            "store": "faiss",
            "backend": "numpy",
            "request": "GET /recommendations/{user_id} (k=5, 50 candidates, training items excluded)",
            "configurations": {name: ["two-stage-rec", "serve", *CONFIGURATIONS[name]] for name in chosen},
            "rounds": rounds,
            "duration_s": duration,
            "wrk_threads": 1,
        },
        "summary": summary,
        "runs": runs,
    }
    name = "serve_load_quick.json" if args.quick else "serve_load.json"
    write_results(RESULTS_DIR / name, results)


if __name__ == "__main__":
    main()
