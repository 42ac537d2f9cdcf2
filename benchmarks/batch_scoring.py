"""Batch scoring at scale: users/s and memory of one process and of a local Dask cluster.

A synthetic bundle (written with :func:`~two_stage_rec.bundle.write_bundle`,
so it is served exactly as a trained one): ``--users`` users with 32-d tower
vectors, ``--items`` items (clustered, as in ``scale.py``) with a genre and a
year each, one training event per user (left out of that user's
recommendations), a scoring MLP and the blend reranker, served from the
default store (FAISS, exact flat index) with the numpy backend. Every 100th
input id is a user the bundle does not know (answered by the popularity
fallback).

Two runs over the same input, top 10 of 50 candidates, chunks of 256 users:

* ``single_process``: :func:`~two_stage_rec.batch_scoring.score_users`, in a
  child process of its own (so its memory is its own) started with the
  environment Dask's nanny gives its workers (``OMP_NUM_THREADS=1`` and the
  like: see :func:`worker_environment`); resident memory is
  sampled as the run reads its input (every 5% of the users) and reported at
  10%, 50% and 100%, with the peak;
* ``dask``: :func:`~two_stage_rec.distributed.score_users_distributed` on a
  ``LocalCluster`` of ``--dask-workers`` worker processes (one thread each),
  partitions of 8,192 users; each worker's memory (and the client's) is
  sampled as the client reads the input (at most 4 partitions ahead of the
  output), the last sample at the last id read, and once more after the job
  (the workers have released the recommender).

Both outputs are hashed: the Dask one must be byte for byte the single-process
one. ``--budget-s`` bounds the single-process run: when it is reached the
input stops early, the users actually scored are recorded, and the Dask run
scores the same users (the results file records how many were scored).

Usage::

    .venv/bin/python benchmarks/batch_scoring.py                       # 1M users x 100k items
    .venv/bin/python benchmarks/batch_scoring.py --users 20000 --items 5000 --out /tmp/b.json

Writes ``benchmarks/results/batch_scoring.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, machine, peak_rss_mib, ratio, rss_mib, write_results

DIMENSION = 32
K, CANDIDATES, CHUNK, PARTITION = 10, 50, 256, 8192
UNKNOWN_EVERY = 100
GENRES = ["action", "comedy", "drama", "horror", "romance", "sci-fi", "thriller", "documentary"]


def user_ids(
    n: int, known: int, *, stop_after_s: float | None = None, on_user: Callable[[int], None] | None = None
) -> Iterator[str]:
    """The input: ``n`` ids, every 100th one unknown to the bundle; lazily, optionally stopping after a time budget."""
    start = time.perf_counter()
    for i in range(n):
        if on_user is not None:
            on_user(i)
        if stop_after_s is not None and i % CHUNK == 0 and time.perf_counter() - start > stop_after_s:
            return
        yield f"new-{i}" if i % UNKNOWN_EVERY == UNKNOWN_EVERY - 1 else f"u{i % known}"


def build_bundle(path: str, users: int, items: int, seed: int) -> dict[str, Any]:
    """Write the synthetic bundle (in a child process: its peak memory is not the scoring's)."""
    from scale import clustered_catalogue

    from two_stage_rec.bundle import write_bundle
    from two_stage_rec.datasets.catalogue import Catalogue
    from two_stage_rec.datasets.interactions import Interactions
    from two_stage_rec.rerankers.blend import BlendReranker, BlendWeights
    from two_stage_rec.rerankers.mlp import MLPReranker

    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    item_vectors, user_vectors = clustered_catalogue(items, DIMENSION, seed=seed, n_queries=users)
    item_keys = [f"i{j}" for j in range(items)]
    user_keys = [f"u{i}" for i in range(users)]
    catalogue = Catalogue.from_records(
        item_keys, [{"genre": GENRES[j % len(GENRES)], "year": 1950 + j % 70} for j in range(items)]
    )
    train = Interactions.from_arrays(
        user_ids=np.asarray(user_keys),
        item_ids=np.asarray(item_keys)[rng.integers(0, items, size=users)],
        ratings=rng.integers(1, 6, size=users).astype(np.float32),
    )
    scoring = MLPReranker(
        [rng.normal(size=(2 * DIMENSION, 16)) / 8, rng.normal(size=(16, 1)) / 4],
        [np.zeros(16), np.array([3.0])],
        user_dimension=DIMENSION,
    )
    blend = BlendReranker(
        BlendWeights(retrieval=1.0, rating=0.1, item=rng.normal(size=DIMENSION).astype(np.float32) / 8),
        rating_model=scoring,
    )
    write_bundle(
        path,
        user_keys=user_keys,
        user_vectors=user_vectors,
        item_keys=item_keys,
        item_vectors=item_vectors,
        catalogue=catalogue,
        train=train,
        recommended="blend",
        scoring=scoring,
        blend=blend,
        dataset="synthetic",
    )
    size = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
    return {"seconds": round(time.perf_counter() - started, 1), "bundle_mib": round(size / 2**20, 1)}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def at_fractions(samples: list[list[Any]], done: int, column: int) -> dict[str, Any]:
    """The sampled value at 10%, 50% and 100% of ``done`` users (the sample nearest each point)."""
    out = {}
    for label, fraction in (("10pct", 0.1), ("50pct", 0.5), ("100pct", 1.0)):
        nearest = min(samples, key=lambda row: abs(row[0] - fraction * done))
        out[label] = nearest[column]
    return out


def single_process(bundle: str, output: str, users: int, known: int, budget_s: float | None) -> dict[str, Any]:
    """Load the bundle and score the input with score_users, sampling resident memory as the input is read."""
    from two_stage_rec.assembly import assemble
    from two_stage_rec.batch_scoring import score_users

    started = time.perf_counter()
    served = assemble(bundle)
    load_s = time.perf_counter() - started
    after_load = rss_mib()
    every = max(1, users // 20)
    samples: list[list[float]] = []
    clock = time.perf_counter()

    def sample(i: int) -> None:
        if i % every == 0:
            samples.append([i, rss_mib(), round(time.perf_counter() - clock, 2)])

    with served:
        result = score_users(
            served,
            user_ids(users, known, stop_after_s=budget_s, on_user=sample),
            output,
            k=K,
            candidates=CANDIDATES,
            chunk_size=CHUNK,
        )
    samples.append([result.users, rss_mib(), round(result.seconds, 2)])
    return {
        "users": result.users,
        "from_model": result.from_model,
        "fallback": result.fallback,
        "seconds": round(result.seconds, 2),
        "users_per_second": round(result.users_per_second, 1),
        "load_s": round(load_s, 2),
        "budget_hit": result.users < users,
        "rss_mib": {
            "after_load": after_load,
            **at_fractions(samples, result.users, 1),
            "peak": peak_rss_mib(),
            "samples": samples,
        },
        "output_sha256": sha256(Path(output)),
        "output_mib": round(Path(output).stat().st_size / 2**20, 1),
    }


def dask_run(bundle: str, output: str, users: int, known: int, workers: int) -> dict[str, Any]:
    """The same input on a LocalCluster of ``workers`` processes, sampling each worker's memory."""
    from two_stage_rec.distributed import dask_client, score_users_distributed

    started = time.perf_counter()
    with dask_client(workers=workers, threads_per_worker=1, processes=True) as client:
        cluster_s = time.perf_counter() - started
        every = max(1, users // 20)
        samples: list[list[Any]] = []
        clock = time.perf_counter()

        def worker_rss() -> list[float]:
            found = client.run(lambda: __import__("psutil").Process().memory_info().rss)
            return [round(found[address] / 2**20, 1) for address in sorted(found)]

        def sample(i: int) -> None:
            # Not at 0 (the workers are still loading); at the last id read, the last partitions are being scored.
            if i and (i % every == 0 or i == users - 1):
                samples.append([i, worker_rss(), rss_mib(), round(time.perf_counter() - clock, 2)])

        result = score_users_distributed(
            client,
            bundle,
            user_ids(users, known, on_user=sample),
            output,
            k=K,
            candidates=CANDIDATES,
            chunk_size=CHUNK,
            partition_size=PARTITION,
        )
        after_job = [worker_rss(), rss_mib()]  # the workers have released the recommender
    wall_s = time.perf_counter() - started
    return {
        "workers": workers,
        "users": result.users,
        "from_model": result.from_model,
        "fallback": result.fallback,
        "seconds": round(result.seconds, 2),
        "users_per_second": round(result.users_per_second, 1),
        "cluster_start_s": round(cluster_s, 2),
        "wall_s_with_cluster_and_loading": round(wall_s, 2),
        "worker_rss_mib": {**at_fractions(samples, result.users, 1), "after_job": after_job[0], "samples": samples},
        "client_rss_mib": {**at_fractions(samples, result.users, 2), "after_job": after_job[1]},
        "output_sha256": sha256(Path(output)),
    }


def in_child(
    function: Callable[..., dict[str, Any]], *args: Any, environ: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``function(*args)`` in a fresh process (its own memory, and a peak RSS of its own).

    ``environ`` is set for the child only, before it starts (thread counts are read when
    the BLAS and OpenMP libraries load).
    """
    saved = {name: os.environ.get(name) for name in environ or {}}
    os.environ.update(environ or {})
    try:
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            return pool.apply(function, args)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def worker_environment() -> dict[str, str]:
    """The variables Dask's nanny sets in every worker process (OMP_NUM_THREADS=1 and the like).

    The single-process run gets them too: BLAS and FAISS results can differ in
    the last bit with another thread count, enough to swap two near-tied
    candidates at the 50th place, and the comparison is of byte-identical files.
    """
    import dask

    return {name: str(value) for name, value in dask.config.get("distributed.nanny.pre-spawn-environ").items()}


def run(
    users: int, items: int, workers: int, budget_s: float | None, out: Path, *, seed: int = 0, quiet: bool = False
) -> dict[str, Any]:
    import dask
    import distributed

    results: dict[str, Any] = {
        "benchmark": "batch_scoring",
        "command": "benchmarks/batch_scoring.py " + " ".join(sys.argv[1:]) if __name__ == "__main__" else "run()",
        "machine": machine(dask=dask.__version__, distributed=distributed.__version__),
        "config": {
            "users": users,
            "known_users": users,
            "unknown_every": UNKNOWN_EVERY,
            "items": items,
            "dimension": DIMENSION,
            "k": K,
            "candidates": CANDIDATES,
            "chunk_size": CHUNK,
            "partition_size": PARTITION,
            "store": "faiss (exact flat)",
            "reranker": "blend (scoring MLP 64-16-1)",
            "backend": "numpy",
            "budget_s": budget_s,
        },
    }
    work = Path(tempfile.mkdtemp(prefix="batch-scoring-"))
    try:
        bundle = str(work / "models")
        results["build"] = in_child(build_bundle, bundle, users, items, seed)
        environ = worker_environment()
        results["config"]["environment_of_both_runs"] = environ
        single = in_child(single_process, bundle, str(work / "single.jsonl"), users, users, budget_s, environ=environ)
        (work / "single.jsonl").unlink()
        results["single_process"] = single
        spread = dask_run(bundle, str(work / "dask.jsonl"), single["users"], users, workers)
        results["dask"] = spread
        results["identical_output"] = spread["output_sha256"] == single["output_sha256"]
        results["ratios"] = {
            "dask_over_single_users_per_second": ratio(spread["users_per_second"], single["users_per_second"]),
            "single_rss_100pct_over_10pct": ratio(single["rss_mib"]["100pct"], single["rss_mib"]["10pct"], 3),
        }
        results["scored_all_users"] = single["users"] == users
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_results(out, results, quiet=quiet)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dask-workers", type=int, default=2)
    parser.add_argument("--budget-s", type=float, default=None, help="stop the single-process input after this long")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "batch_scoring.json")
    args = parser.parse_args()
    run(args.users, args.items, args.dask_workers, args.budget_s, args.out)


if __name__ == "__main__":
    main()
