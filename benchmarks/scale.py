"""How FaissVectorStore's cost grows with the catalogue: flat, HNSW and IVF at 10k, 100k and 1M items.

Data: a *clustered* synthetic catalogue, closer to learned item embeddings
than uniform noise. Item vectors come from a Gaussian mixture whose cluster
sizes follow a power law (a few big genres, a long tail of small ones); each
item is its cluster's centre plus isotropic noise, scaled by a log-normal
"popularity" factor (two-tower models give popular items larger norms, which
is what makes maximum-inner-product search harder than nearest-neighbour
search). Queries ("users") are drawn from the same mixture. The metric is the
library's default, ``dotproduct``. ``--uniform`` adds a uniform-noise catalogue
of the same size for comparison.

For each size and index configuration, measured through the library's
:class:`~two_stage_rec.stores.faiss.FaissVectorStore` (one ``upsert`` of the
whole catalogue):

* ``build_s``: the upsert (for IVF including k-means training);
* ``rss_delta_mib``: resident memory the store added (the FAISS index plus the
  store's side table of vectors, ids and metadata), and ``faiss_index_mib``,
  the serialised FAISS index alone;
* ``query_p50_ms`` / ``query_p99_ms``: one query vector per call, top 50,
  ``include_values=True, include_metadata=True`` (what the Recommender asks);
* ``raw_faiss_p50_ms``: the same search on the FAISS index alone (the floor);
* ``batch_ms_per_query``: all query vectors in one call, per query;
* ``recall_at_50``: mean overlap of the top 50 with the exact top 50 (computed
  in numpy, independent of FAISS).

Search-time parameters (HNSW ``ef_search``, IVF ``nprobe``) are swept on one
built index. ``filter`` rows time a metadata-filtered exact query.

Usage::

    .venv/bin/python benchmarks/scale.py            # 10k, 100k, 1M (32-d) and 1M (128-d)
    .venv/bin/python benchmarks/scale.py --quick    # 10k and 100k only

Writes ``benchmarks/results/scale.json`` (``--quick``: ``scale_quick.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, machine, rss_mib, summarize, write_results

from two_stage_rec.stores.faiss import FaissVectorStore, HnswParams, IvfParams

TOP_K = 50


# ------------------------------------------------------------------ data


def clustered_catalogue(
    n: int, d: int, *, seed: int = 0, clusters: int | None = None, n_queries: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """Items (n, d) and queries (n_queries, d), float32, from a power-law Gaussian mixture.

    Cluster c holds a share proportional to ``1 / (c + 1)`` (Zipf); items are
    ``popularity * (centre + 0.6 * noise)`` with log-normal popularity (sigma 0.25).
    """
    rng = np.random.default_rng(seed)
    clusters = clusters or max(8, int(np.sqrt(n) / 2))
    centres = rng.standard_normal((clusters, d), dtype=np.float32) / np.sqrt(d).astype(np.float32)
    share = 1.0 / np.arange(1, clusters + 1)
    share /= share.sum()

    def draw(count: int, spread: float) -> np.ndarray:
        out = np.empty((count, d), dtype=np.float32)
        for start in range(0, count, 200_000):  # chunks keep the float temporaries small
            stop = min(count, start + 200_000)
            which = rng.choice(clusters, size=stop - start, p=share)
            noise = rng.standard_normal((stop - start, d), dtype=np.float32) / np.float32(np.sqrt(d))
            out[start:stop] = centres[which] + np.float32(spread) * noise
        return out

    items = draw(n, 0.6)
    items *= rng.lognormal(0.0, 0.25, size=(n, 1)).astype(np.float32)
    queries = draw(n_queries, 0.6)
    return items, queries


def uniform_catalogue(n: int, d: int, *, seed: int = 0, n_queries: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Items and queries of i.i.d. standard normal noise (the hardest case for ANN indexes)."""
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((n, d), dtype=np.float32),
        rng.standard_normal((n_queries, d), dtype=np.float32),
    )


def exact_top_k(queries: np.ndarray, items: np.ndarray, k: int, chunk: int = 16) -> np.ndarray:
    """Row indices (n_queries, k) of the k largest dot products, best first, in plain numpy."""
    k = min(k, items.shape[0])
    out = np.empty((queries.shape[0], k), dtype=np.int64)
    for start in range(0, queries.shape[0], chunk):
        scores = queries[start : start + chunk] @ items.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        out[start : start + chunk] = np.take_along_axis(part, order, axis=1)
    return out


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean over rows of |found ∩ exact| / |exact row|; ``found`` may hold -1 pads."""
    if exact.shape[0] == 0:
        return float("nan")
    hits = [len(set(f[f >= 0].tolist()) & set(e.tolist())) / e.shape[0] for f, e in zip(found, exact, strict=True)]
    return float(np.mean(hits))


# --------------------------------------------------------------- configs


@dataclass(frozen=True)
class IndexConfig:
    """One index to build, and the search-time values to sweep on it."""

    kind: str
    build: dict[str, int] = field(default_factory=dict)
    sweep: tuple[int, ...] = (0,)  # ef_search (hnsw) or nprobe (ivf); ignored for flat

    def label(self, value: int) -> str:
        if self.kind == "flat":
            return "flat"
        params = ",".join(f"{k}={v}" for k, v in self.build.items())
        knob = "ef_search" if self.kind == "hnsw" else "nprobe"
        return f"{self.kind}({params},{knob}={value})"


def plan(size: int, d: int) -> list[IndexConfig]:
    """The configurations measured at one catalogue size."""
    if size <= 20_000:
        return [
            IndexConfig("flat"),
            IndexConfig("hnsw", {"m": 32, "ef_construction": 200}, (32, 64, 128, 256)),
            IndexConfig("ivf", {"nlist": 100}, (5, 10, 20, 40)),
        ]
    if size <= 200_000:
        return [
            IndexConfig("flat"),
            IndexConfig("hnsw", {"m": 16, "ef_construction": 100}, (64, 128, 256, 512)),
            IndexConfig("hnsw", {"m": 32, "ef_construction": 100}, (64, 128, 256, 512)),
            IndexConfig("ivf", {"nlist": 100}, (5, 10, 20)),
            IndexConfig("ivf", {"nlist": 1024}, (8, 16, 32, 64)),
        ]
    if d > 64:  # 1M x 128-d: an HNSW build would take most of the time budget on 2 cores
        return [
            IndexConfig("flat"),
            IndexConfig("ivf", {"nlist": 1024, "max_train_size": 65_536}, (16, 32, 64, 128)),
        ]
    return [
        IndexConfig("flat"),
        IndexConfig("hnsw", {"m": 16, "ef_construction": 64}, (64, 128, 256, 512)),
        IndexConfig("ivf", {"nlist": 100}, (5, 10)),
        IndexConfig("ivf", {"nlist": 1024, "max_train_size": 65_536}, (8, 16, 32, 64, 128)),
        IndexConfig("ivf", {"nlist": 4096, "max_train_size": 163_840}, (16, 32, 64, 128, 256)),
    ]


def make_store(config: IndexConfig, d: int) -> FaissVectorStore:
    if config.kind == "hnsw":
        return FaissVectorStore(dimension=d, index="hnsw", hnsw=HnswParams(**config.build))
    if config.kind == "ivf":
        return FaissVectorStore(dimension=d, index="ivf", ivf=IvfParams(**config.build))
    return FaissVectorStore(dimension=d, index="flat")


def with_search_value(store: FaissVectorStore, config: IndexConfig, value: int) -> None:
    """Change only the query-time knob of a built store (the store has no public setter for it)."""
    if config.kind == "hnsw":
        store._hnsw = dataclasses.replace(store._hnsw, ef_search=value)  # type: ignore[arg-type]
    elif config.kind == "ivf":
        store._ivf = dataclasses.replace(store._ivf, nprobe=value)  # type: ignore[arg-type]


def faiss_index_mib(store: FaissVectorStore) -> float:
    return round(faiss.serialize_index(store._index).nbytes / 2**20, 1)


def time_single(call: Any, queries: np.ndarray, repeats: int) -> dict[str, float]:
    samples = []
    clock = time.perf_counter
    for _ in range(repeats):
        for row in range(queries.shape[0]):
            q = queries[row : row + 1]
            start = clock()
            call(q)
            samples.append(clock() - start)
    return summarize(samples)


def measure_config(
    config: IndexConfig, items: np.ndarray, queries: np.ndarray, exact: np.ndarray, ids: list[str], repeats: int
) -> Iterator[dict[str, Any]]:
    """Build one store and yield one result row per swept search value."""
    d = items.shape[1]
    gc.collect()
    before = rss_mib()
    started = time.perf_counter()
    store = make_store(config, d)
    store.upsert(ids, items)
    build_s = time.perf_counter() - started
    gc.collect()
    rss_delta = rss_mib() - before
    index_mib = faiss_index_mib(store)
    for value in config.sweep:
        with_search_value(store, config, value)
        for row in range(min(10, queries.shape[0])):  # warm up caches and FAISS's thread pool
            store.query(queries[row : row + 1], TOP_K, include_values=True, include_metadata=True)
        single = time_single(
            lambda q: store.query(q, TOP_K, include_values=True, include_metadata=True), queries, repeats
        )
        raw_p50: float | None = None
        if store.is_trained:  # an untrained IVF store answers exactly from its side table
            params = store._search_params(None)
            inner = store._index
            # One OpenMP thread, as the store uses for one query (see stores/faiss.py).
            threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            try:
                raw_p50 = time_single(
                    lambda q, index=inner, p=params: index.search(q, TOP_K, params=p), queries, repeats
                )["p50_ms"]
            finally:
                faiss.omp_set_num_threads(threads)
        started = time.perf_counter()
        batch = store.query(queries, TOP_K)
        batch_s = time.perf_counter() - started
        found = np.where(batch.ids == "", -1, batch.ids).astype(np.int64)
        yield {
            "index": config.label(value),
            "kind": config.kind,
            **config.build,
            **({"ef_search": value} if config.kind == "hnsw" else {}),
            **({"nprobe": value} if config.kind == "ivf" else {}),
            "build_s": round(build_s, 2),
            "rss_delta_mib": round(rss_delta, 1),
            "faiss_index_mib": index_mib,
            "query_p50_ms": single["p50_ms"],
            "query_p99_ms": single["p99_ms"],
            "raw_faiss_p50_ms": raw_p50,
            "batch_ms_per_query": round(batch_s * 1e3 / queries.shape[0], 4),
            "recall_at_50": round(recall_at_k(found, exact), 4),
        }


def measure_filter(n: int, d: int, repeats: int, seed: int = 0) -> dict[str, Any]:
    """Single-query latency of an exact (flat) store with and without a metadata filter."""
    # Filters are evaluated per stored item in Python, so 1M items get fewer queries.
    items, queries = clustered_catalogue(n, d, seed=seed, n_queries=50 if n <= 100_000 else 10)
    rng = np.random.default_rng(seed)
    genres = [f"g{i}" for i in range(20)]
    metadata = [
        {"genre": genres[g], "year": int(y)}
        for g, y in zip(rng.integers(0, 20, n).tolist(), rng.integers(1950, 2025, n).tolist(), strict=True)
    ]
    store = FaissVectorStore(dimension=d)
    started = time.perf_counter()
    store.upsert([str(i) for i in range(n)], items, metadata)
    build_s = time.perf_counter() - started
    out: dict[str, Any] = {"items": n, "dimension": d, "build_with_metadata_s": round(build_s, 2)}
    filters: dict[str, Any] = {
        "none": None,
        "genre_eq": {"genre": "g3"},
        "year_gte_and_genre_in": {"year": {"$gte": 2000}, "genre": {"$in": ["g1", "g2"]}},
    }
    for name, spec in filters.items():
        out[name] = time_single(
            lambda q, f=spec: store.query(q, TOP_K, filter=f, include_metadata=True), queries, repeats
        )
    return out


def run(
    sizes: list[tuple[int, int]],
    repeats: int,
    uniform: bool,
    filter_sizes: list[int],
    out: Path | None,
    quiet: bool = False,
) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": machine(),
        "config": {
            "data": "clustered: Zipf-sized Gaussian mixture, log-normal norms; queries from the same mixture",
            "metric": "dotproduct",
            "top_k": TOP_K,
            "queries": 200,
            "repeats_per_query": repeats,
            "store": "FaissVectorStore, one upsert of the whole catalogue",
        },
        "rows": [],
    }
    datasets = [("clustered", n, d) for n, d in sizes]
    if uniform:
        datasets += [("uniform", n, d) for n, d in sizes]
    for data_name, n, d in datasets:
        started = time.perf_counter()
        items, queries = (clustered_catalogue if data_name == "clustered" else uniform_catalogue)(n, d)
        exact = exact_top_k(queries, items, TOP_K)
        ids = [str(i) for i in range(n)]
        print(
            f"{data_name} n={n} d={d}: data and exact answer in {time.perf_counter() - started:.1f} s", file=sys.stderr
        )
        for config in plan(n, d):
            for row in measure_config(config, items, queries, exact, ids, repeats):
                row = {"data": data_name, "items": n, "dimension": d, **row}
                results["rows"].append(row)
                print(
                    f"  {row['index']:<45} build {row['build_s']:>7.2f}s  p50 {row['query_p50_ms']:>8.3f}ms  "
                    f"recall {row['recall_at_50']:.3f}",
                    file=sys.stderr,
                )
        del items, queries, exact, ids
        gc.collect()
    results["filters"] = [measure_filter(n, 32, 1) for n in filter_sizes]
    if out is not None:
        write_results(out, results, quiet=quiet)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k and 100k items only")
    parser.add_argument("--uniform", action="store_true", help="also measure uniform-noise catalogues")
    parser.add_argument("--repeats", type=int, default=2, help="passes over the 200 queries per setting")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        sizes, filter_sizes = [(10_000, 32), (100_000, 32)], [100_000]
    else:
        sizes, filter_sizes = [(10_000, 32), (100_000, 32), (1_000_000, 32), (1_000_000, 128)], [100_000, 1_000_000]
    out = args.out or RESULTS_DIR / ("scale_quick.json" if args.quick else "scale.json")
    run(sizes, args.repeats, args.uniform, filter_sizes, out)


if __name__ == "__main__":
    main()
