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
built index, their single queries interleaved (a shuffled order each
round). On dot product, ``ivf`` rows are the store's IVF over inner product
as L2 (one extra coordinate, see ``stores/_faiss_space.py``).
``filters`` time metadata-filtered queries (one genre of 20; a year range and
two genres) and check every answer: each result passes the filter and, for
the exact store, the ids equal a numpy filtered search.

``--million`` measures the 1M x 32-d catalogue with the store's defaults:
``auto`` (what ``FaissVectorStore(dimension=32)`` builds: exact up to 100k
vectors, then IVF with 1024 cells, 32 probes; swept over 16/32/64 probes)
against ``flat``, and ``faiss_ip_ivf``: the same IVF built on raw inner
product directly in FAISS (the layout the store used before), for recall and
raw latency. Memory per row: ``rss_delta_mib`` (resident memory the store
added), ``faiss_index_mib`` (the serialised index, which now holds the only
copy of the vectors), ``slot_tables_mib`` (the store's numpy tables: ids,
live mask, norms, metadata columns) and ``raw_vectors_mib`` (n * d * 4
bytes). Filters are timed on both ``auto`` and ``flat`` stores at 1M.

Usage::

    .venv/bin/python benchmarks/scale.py            # 10k, 100k, 1M (32-d) and 1M (128-d)
    .venv/bin/python benchmarks/scale.py --quick    # 10k and 100k only
    .venv/bin/python benchmarks/scale.py --million  # 1M (32-d): defaults, memory, filters

Writes ``benchmarks/results/scale.json`` (``--quick``: ``scale_quick.json``;
``--million``: ``scale_million.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, machine, measure_interleaved, rss_mib, summarize, write_results

from two_stage_rec.filters import filter_mask
from two_stage_rec.stores.faiss import AUTO_IVF, FaissVectorStore, HnswParams, IvfParams

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
        return f"{self.kind}({params},{knob}={value})" if params else f"{self.kind}({knob}={value})"


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


def million_plan() -> list[IndexConfig]:
    """``--million``: the default store (auto) against exact search."""
    return [IndexConfig("flat"), IndexConfig("auto", {}, (16, AUTO_IVF.probes, 64))]


def make_store(config: IndexConfig, d: int) -> FaissVectorStore:
    if config.kind == "auto":
        return FaissVectorStore(dimension=d)  # the default: index="auto", AUTO_IVF
    if config.kind == "hnsw":
        return FaissVectorStore(dimension=d, index="hnsw", hnsw=HnswParams(**config.build))
    if config.kind == "ivf":
        return FaissVectorStore(dimension=d, index="ivf", ivf=IvfParams(**config.build))
    return FaissVectorStore(dimension=d, index="flat")


def with_search_value(store: FaissVectorStore, config: IndexConfig, value: int) -> None:
    """Change only the query-time knob of a built store (the store has no public setter for it)."""
    if config.kind == "hnsw":
        store._hnsw = dataclasses.replace(store._hnsw, ef_search=value)  # type: ignore[arg-type]
    elif config.kind in ("ivf", "auto"):
        store._ivf = dataclasses.replace(store._ivf, nprobe=value)  # type: ignore[arg-type]


def faiss_index_mib(store: FaissVectorStore) -> float:
    return round(faiss.serialize_index(store._index).nbytes / 2**20, 1)


def slot_tables_mib(store: FaissVectorStore) -> float:
    """Bytes of the store's own numpy tables (ids are object pointers: 8 bytes each, strings not counted)."""
    tables = [store._slot_ids, store._alive, *([store._norms] if store._norms is not None else [])]
    tables += [field.codes for field in store._columns._fields.values()]
    return round(sum(table.nbytes for table in tables) / 2**20, 1)


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
    # The query-time parameters of each swept value, switched by one assignment per call.
    knobs = {}
    for value in config.sweep:
        with_search_value(store, config, value)
        knobs[value] = (store._hnsw, store._ivf)
    n_queries = queries.shape[0]

    def one_query(value: int) -> Any:
        def call(i: int) -> None:
            store._hnsw, store._ivf = knobs[value]
            row = i % n_queries
            store.query(queries[row : row + 1], TOP_K, include_values=True, include_metadata=True)

        return call

    # Interleaved over the swept values (shuffled every round), so load spikes hit them alike.
    singles = measure_interleaved({str(v): one_query(v) for v in config.sweep}, rounds=n_queries * repeats)
    for value in config.sweep:
        store._hnsw, store._ivf = knobs[value]
        single = singles[str(value)]
        raw_p50: float | None = None
        if store.is_trained:  # an untrained IVF store answers exactly from its side table
            params = store._search_params(None)
            inner = store._index
            space = store._space  # the query as FAISS sees it (augmented for IVF over dot products)
            # One OpenMP thread, as the store uses for one query (see stores/faiss.py).
            threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            try:
                raw_p50 = time_single(
                    lambda q, index=inner, p=params, s=space: index.search(s.queries(q), TOP_K, params=p),
                    queries,
                    repeats,
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
            **({"nprobe": value} if config.kind in ("ivf", "auto") else {}),
            "layout": store.layout,
            "build_s": round(build_s, 2),
            "rss_delta_mib": round(rss_delta, 1),
            "faiss_index_mib": index_mib,
            "slot_tables_mib": slot_tables_mib(store),
            "raw_vectors_mib": round(items.nbytes / 2**20, 1),
            "query_p50_ms": single["p50_ms"],
            "query_p99_ms": single["p99_ms"],
            "raw_faiss_p50_ms": raw_p50,
            "batch_ms_per_query": round(batch_s * 1e3 / queries.shape[0], 4),
            "recall_at_50": round(recall_at_k(found, exact), 4),
        }


def raw_inner_product_ivf(
    items: np.ndarray, queries: np.ndarray, exact: np.ndarray, repeats: int, nprobes: tuple[int, ...]
) -> Iterator[dict[str, Any]]:
    """The store's former IVF layout, in FAISS directly: IVF (nlist 1024) ranking raw inner products."""
    nlist = AUTO_IVF.nlist
    started = time.perf_counter()
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(items.shape[1]), items.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    sample = items[np.sort(np.random.default_rng(0).choice(items.shape[0], AUTO_IVF.train_sample_cap, replace=False))]
    index.train(sample)
    index.add(items)
    build_s = time.perf_counter() - started
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        for nprobe in nprobes:
            params = faiss.SearchParametersIVF(nprobe=nprobe)
            single = time_single(lambda q, p=params: index.search(q, TOP_K, params=p), queries, repeats)
            _, found = index.search(queries, TOP_K, params=params)
            yield {
                "index": f"faiss_ip_ivf(nlist={nlist},nprobe={nprobe})",
                "kind": "faiss_ip_ivf",
                "nlist": nlist,
                "nprobe": nprobe,
                "build_s": round(build_s, 2),
                "raw_faiss_p50_ms": single["p50_ms"],
                "raw_faiss_p99_ms": single["p99_ms"],
                "recall_at_50": round(recall_at_k(found, exact), 4),
            }
    finally:
        faiss.omp_set_num_threads(threads)


MEMORY_BASELINE = "975e522"
"""The last commit whose FaissVectorStore kept a numpy copy of the vectors beside the index."""


def _store_class(revision: str | None) -> Any:
    """FaissVectorStore now (None), or as it was at a git revision (loaded from ``git show``)."""
    if revision is None:
        return FaissVectorStore
    source = subprocess.run(
        ["git", "show", f"{revision}:src/two_stage_rec/stores/faiss.py"],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "faiss_store_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("faiss_store_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def memory_child(case: str, revision: str | None) -> dict[str, Any]:
    """Build one 1M x 32-d store in this (fresh) process and measure the resident memory it added."""
    items, _ = clustered_catalogue(1_000_000, 32, n_queries=1)
    ids = [str(i) for i in range(items.shape[0])]
    module = _store_class(revision)
    store_class = module if revision is None else module.FaissVectorStore
    gc.collect()
    before = rss_mib()
    if case == "flat":
        store = store_class(dimension=32, index="flat")
    elif revision is None:  # "ivf1024": what index="auto" becomes at 1M
        store = store_class(dimension=32)
    else:  # the same IVF cells and training sample, as the former store built them
        params = module.IvfParams(nlist=1024, nprobe=32, max_train_size=65_536)
        store = store_class(dimension=32, index="ivf", ivf=params)
    store.upsert(ids, items)
    gc.collect()
    return {
        "case": case,
        "store": f"at {revision}" if revision else "now",
        "rss_delta_mib": round(rss_mib() - before, 1),
        "faiss_index_mib": faiss_index_mib(store),
        "raw_vectors_mib": round(items.nbytes / 2**20, 1),
    }


def measure_memory() -> list[dict[str, Any]]:
    """Resident memory of the store at 1M items, now and at MEMORY_BASELINE, each in a fresh process."""
    rows = []
    for case in ("flat", "ivf1024"):
        for revision in (MEMORY_BASELINE, None):
            command = [sys.executable, __file__, "--memory-child", case]
            if revision is not None:
                command += ["--revision", revision]
            output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(output.strip().splitlines()[-1]))
            print(f"  memory {rows[-1]}", file=sys.stderr)
    return rows


FILTERS: dict[str, Any] = {
    "none": None,
    "genre_eq": {"genre": "g3"},
    "year_gte_and_genre_in": {"year": {"$gte": 2000}, "genre": {"$in": ["g1", "g2"]}},
}


def measure_filter(n: int, d: int, repeats: int, seed: int = 0, index: str = "flat") -> dict[str, Any]:
    """Single-query latency of a store with and without a metadata filter, answers checked.

    Every returned item must pass the filter (by the metadata returned with
    it); on an exact store the ids must equal numpy's filtered top 50.
    """
    items, queries = clustered_catalogue(n, d, seed=seed, n_queries=50)
    rng = np.random.default_rng(seed)
    genres = [f"g{i}" for i in range(20)]
    metadata = [
        {"genre": genres[g], "year": int(y)}
        for g, y in zip(rng.integers(0, 20, n).tolist(), rng.integers(1950, 2025, n).tolist(), strict=True)
    ]
    store = FaissVectorStore(dimension=d, index=index)  # type: ignore[arg-type]
    started = time.perf_counter()
    store.upsert([str(i) for i in range(n)], items, metadata)
    build_s = time.perf_counter() - started
    out: dict[str, Any] = {
        "items": n,
        "dimension": d,
        "index": index,
        "layout": store.layout,
        "build_with_metadata_s": round(build_s, 2),
    }
    n_queries = queries.shape[0]
    # Interleaved (a shuffled order of the cases every round), so load spikes hit all cases alike.
    timings = measure_interleaved(
        {
            name: lambda i, f=spec: store.query(
                queries[i % n_queries : i % n_queries + 1], TOP_K, filter=f, include_metadata=True
            )
            for name, spec in FILTERS.items()
        },
        rounds=n_queries * repeats,
    )
    for name, spec in FILTERS.items():
        out[name] = timings[name]
        result = store.query(queries, TOP_K, filter=spec, include_metadata=True)
        assert result.metadata is not None
        out[name]["all_results_pass_filter"] = all(
            bool(filter_mask(spec, [dict(md) for md in row]).all()) for row in result.metadata
        )
        if store.is_exact:
            allowed = filter_mask(spec, metadata)
            candidates = np.flatnonzero(allowed)
            want = candidates[exact_top_k(queries, items[candidates], TOP_K)]
            found = np.where(result.ids == "", -1, result.ids).astype(np.int64)
            out[name]["ids_equal_exact_filtered_search"] = bool(np.array_equal(found, want))
        else:
            candidates = np.flatnonzero(filter_mask(spec, metadata))
            want = candidates[exact_top_k(queries, items[candidates], TOP_K)]
            found = np.where(result.ids == "", -1, result.ids).astype(np.int64)
            out[name]["recall_at_50"] = round(recall_at_k(found, want), 4)
    return out


def run(
    sizes: list[tuple[int, int]],
    repeats: int,
    uniform: bool,
    filter_sizes: list[int],
    out: Path | None,
    quiet: bool = False,
    million: bool = False,
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
        rows: Iterator[dict[str, Any]] = (
            row
            for config in (million_plan() if million else plan(n, d))
            for row in measure_config(config, items, queries, exact, ids, repeats)
        )
        if million:
            rows = chain(rows, raw_inner_product_ivf(items, queries, exact, repeats, (16, AUTO_IVF.probes, 64)))
        for row in rows:
            row = {"data": data_name, "items": n, "dimension": d, **row}
            results["rows"].append(row)
            p50 = row.get("query_p50_ms", row.get("raw_faiss_p50_ms"))
            print(
                f"  {row['index']:<45} build {row['build_s']:>7.2f}s  p50 {p50:>8.3f}ms  "
                f"recall {row['recall_at_50']:.3f}",
                file=sys.stderr,
            )
        del items, queries, exact, ids
        gc.collect()
    filter_indexes = ("auto", "flat") if million else ("flat",)
    results["filters"] = [measure_filter(n, 32, repeats, index=index) for n in filter_sizes for index in filter_indexes]
    if million:
        results["memory"] = measure_memory()
    if out is not None:
        write_results(out, results, quiet=quiet)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k and 100k items only")
    parser.add_argument(
        "--million", action="store_true", help="1M items (32-d) only: the default store, memory and filters"
    )
    parser.add_argument("--uniform", action="store_true", help="also measure uniform-noise catalogues")
    parser.add_argument("--repeats", type=int, default=2, help="passes over the 200 queries per setting")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--memory-child", choices=("flat", "ivf1024"), help=argparse.SUPPRESS)
    parser.add_argument("--revision", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:  # one measurement of measure_memory, in its own process
        print(json.dumps(memory_child(args.memory_child, args.revision)))
        return
    if args.million:
        sizes, filter_sizes, name = [(1_000_000, 32)], [1_000_000], "scale_million.json"
    elif args.quick:
        sizes, filter_sizes, name = [(10_000, 32), (100_000, 32)], [100_000], "scale_quick.json"
    else:
        sizes = [(10_000, 32), (100_000, 32), (1_000_000, 32), (1_000_000, 128)]
        filter_sizes, name = [100_000, 1_000_000], "scale.json"
    out = args.out or RESULTS_DIR / name
    run(sizes, args.repeats, args.uniform, filter_sizes, out, million=args.million)


if __name__ == "__main__":
    main()
