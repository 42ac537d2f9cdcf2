"""Run the benchmarks one after another (``make bench``), each in its own process.

Speed benchmarks (the default set):

* ``recommend_latency``: one user and all 943 users on ML-100K, against the
  notebook's per-candidate loop and the raw-FAISS floor;
* ``scale``: FAISS flat / HNSW / IVF from 10k to 1M items;
* ``index_throughput``: ``Recommender.index_items`` into FAISS and the local
  Pinecone-compatible server;
* ``tf_adapter_calls``, ``pinecone_throughput``, ``serve_latency``: per-call
  TensorFlow latency, Pinecone store throughput, HTTP service latency;
* ``store_comparison``: memory, FAISS, pgvector and the Pinecone client side by
  side on one catalogue (indexing, query p50/p99, recall@50, filters);
* ``request_options``: the cost of ``explain``, fold-in and policies per request;
* ``batch_scoring``: ``recommend --users-file`` for many users, one process and
  a local Dask cluster (users/s, memory).

Quality benchmarks (``--all`` or by name):

* ``train_quality``: top-k accuracy and RMSE of the trained models, wall time;
* ``evaluate_quality``: every ranking metric per protocol, retrieval only vs
  the ``scoring`` and ``blend`` rerankers;
* ``implicit_quality``: the recommended pipeline on implicit feedback;
* ``ranking_quality``: the learned ranking stage (several candidate sources,
  a LightGBM ranker) against retrieval, the blend and EASE alone;
* ``diversity``: NDCG@10 against intra-list diversity, genres and coverage
  over the MMR trade-off and genre caps;
* ``fold_in``: new users given their first n interactions, each fold-in
  against popularity and retrained towers.

Each script writes ``benchmarks/results/<name>.json``. ``--quick`` runs smaller
versions that write ``<name>_quick.json`` instead (scripts that cannot redirect
their output are skipped in quick mode, so quick runs never overwrite full
results). Processes run one at a time: the machine has 2 cores and the
numbers are only comparable without a second benchmark competing for them.

Usage::

    .venv/bin/python benchmarks/run.py                       # the speed set, full size
    .venv/bin/python benchmarks/run.py --quick               # minutes
    .venv/bin/python benchmarks/run.py scale recommend_latency
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


@dataclass(frozen=True)
class Script:
    """A benchmark script and how to make it quick."""

    quick_args: tuple[str, ...] | None  # None: no quick mode that keeps full results intact
    speed: bool = True


SCRIPTS: dict[str, Script] = {
    "recommend_latency": Script(("--quick",)),
    "scale": Script(("--quick",)),
    "index_throughput": Script(("--quick",)),
    "tf_adapter_calls": Script(("--repeats", "50")),
    "pinecone_throughput": Script(None),
    "serve_latency": Script(("--requests", "200")),
    "train_quality": Script(("--seeds", "42", "--no-ablations"), speed=False),
    "evaluate_quality": Script(("--resamples", "1000"), speed=False),
    "implicit_quality": Script(("--no-tune", "--resamples", "1000"), speed=False),
    "ranking_quality": Script(("--seeds", "1", "--resamples", "1000"), speed=False),
    "store_comparison": Script(("--quick",)),
    "request_options": Script(("--rounds", "100")),
    "diversity": Script(None, speed=False),
    "fold_in": Script(None, speed=False),
    "batch_scoring": Script(("--users", "20000", "--items", "5000")),
}
"""Name -> script. ``scale`` chooses its own quick output file; the others get ``--out``."""


def command(name: str, quick: bool) -> list[str] | None:
    script = SCRIPTS[name]
    argv = [sys.executable, str(HERE / f"{name}.py")]
    if not quick:
        return argv
    if script.quick_args is None:
        return None
    argv += list(script.quick_args)
    if name != "scale":
        argv += ["--out", str(RESULTS / f"{name}_quick.json")]
    return argv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run, of {', '.join(SCRIPTS)} (default: speed set)")
    parser.add_argument("--quick", action="store_true", help="small versions, results in *_quick.json")
    parser.add_argument("--all", action="store_true", help="also the quality benchmarks")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in SCRIPTS]
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; choose from {', '.join(SCRIPTS)}")
    names = args.names or [name for name, script in SCRIPTS.items() if script.speed or args.all]
    failed: list[str] = []
    for name in names:
        cmd = command(name, args.quick)
        if cmd is None:
            print(f"== {name}: skipped in --quick mode (it has no quick output file)", file=sys.stderr)
            continue
        print(f"== {name}: {' '.join(cmd[1:])}", file=sys.stderr)
        started = time.perf_counter()
        code = subprocess.run(cmd, stdout=subprocess.DEVNULL, check=False).returncode
        print(f"== {name}: exit {code} after {time.perf_counter() - started:.0f} s", file=sys.stderr)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
