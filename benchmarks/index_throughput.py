"""Indexing throughput: vectors per second through ``Recommender.index_items``.

``index_items`` embeds the items in batches (``batch_size``, default 1,000)
with the item embedder and upserts each batch into the store, validating ids,
vectors and metadata first. Measured here, each case on a fresh store:

* FAISS flat, HNSW and IVF (the store's default parameters) with
  ``batch_size`` 1,000 (default) and 10,000;
* ``store_upsert_one_call``: the whole catalogue in one ``upsert`` (no
  embedding, one validation pass), and ``raw_faiss_add``: FAISS's own
  ``add_with_ids`` on the same vectors (the floor);
* Pinecone: the local Pinecone-compatible server
  (:mod:`two_stage_rec.testing.pinecone_server`, in its own process) through the
  real ``pinecone`` client and :class:`~two_stage_rec.stores.pinecone.PineconeVectorStore`,
  with ``upsert_workers`` 1 and 4. This measures the library, the client and
  the local server's JSON handling, not Pinecone's cloud (see
  ``benchmarks/pinecone_throughput.py`` for upsert and query throughput of the
  store alone).

Items: synthetic 32-d vectors with movie-like metadata (title, genres, year),
served by a :class:`~two_stage_rec.embedders.table.TableEmbedder`.

Usage::

    .venv/bin/python benchmarks/index_throughput.py [--quick]

Writes ``benchmarks/results/index_throughput.json``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, machine, ratio, write_results

from two_stage_rec import Recommender
from two_stage_rec.embedders.table import TableEmbedder
from two_stage_rec.protocols import VectorStore
from two_stage_rec.stores.faiss import FaissVectorStore

RESULTS = RESULTS_DIR / "index_throughput.json"
DIMENSION = 32
API_KEY = "benchmark-key"


def catalogue(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    ids = [str(i) for i in range(1, n + 1)]
    vectors = rng.standard_normal((n, DIMENSION), dtype=np.float32)
    genres = ["Action", "Comedy", "Drama", "Horror", "Romance", "Thriller"]
    metadata: list[dict[str, Any]] = [
        {"title": f"Movie {i} ({1930 + i % 90})", "genres": [genres[i % 6], genres[(i * 7) % 6]], "year": 1930 + i % 90}
        for i in range(n)
    ]
    return ids, vectors, metadata


def index_once(
    store: VectorStore, ids: list[str], vectors: np.ndarray, metadata: list[dict[str, Any]], batch: int
) -> float:
    """Seconds for ``index_items`` of the whole catalogue into ``store``."""
    recommender = Recommender(
        user_embedder=TableEmbedder(["user"], vectors[:1]),
        item_embedder=TableEmbedder(ids, vectors),
        store=store,
    )
    started = time.perf_counter()
    written = recommender.index_items(ids, metadata=metadata, batch_size=batch)
    elapsed = time.perf_counter() - started
    assert written == len(ids) and store.describe().count == len(ids), "not every item landed"
    return elapsed


def summarize(samples: list[float], items: int) -> dict[str, float]:
    median = float(np.median(samples))
    return {
        "items": items,
        "runs": len(samples),
        "median_s": round(median, 6),
        "min_s": round(min(samples), 6),
        "vectors_per_s": round(items / median, 1),
    }


def repeat(make: Callable[[], float], runs: int) -> list[float]:
    return [make() for _ in range(runs)]


def faiss_cases(sizes: dict[str, int], runs: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, n in sizes.items():
        items = catalogue(n)
        for batch in (1_000, 10_000):
            samples = repeat(lambda kind=kind, batch=batch, items=items: index_faiss(kind, items, batch), runs)
            out[f"faiss_{kind}_index_items_batch{batch}"] = summarize(samples, n)
        if kind == "flat":
            out["faiss_flat_store_upsert_one_call"] = summarize(
                repeat(lambda items=items: upsert_one_call(items), runs), n
            )
            out["faiss_flat_raw_faiss_add"] = summarize(repeat(lambda items=items: raw_faiss_add(items[1]), runs), n)
    return out


def index_faiss(kind: str, items: tuple[list[str], np.ndarray, list[dict[str, Any]]], batch: int) -> float:
    store = FaissVectorStore(dimension=DIMENSION, index=kind)  # type: ignore[arg-type]
    return index_once(store, *items, batch)


def upsert_one_call(items: tuple[list[str], np.ndarray, list[dict[str, Any]]]) -> float:
    store = FaissVectorStore(dimension=DIMENSION, index="flat")  # "auto" would train an IVF past 100k items
    started = time.perf_counter()
    store.upsert(*items)
    return time.perf_counter() - started


def raw_faiss_add(vectors: np.ndarray) -> float:
    import faiss

    index = faiss.IndexIDMap(faiss.IndexFlat(DIMENSION, faiss.METRIC_INNER_PRODUCT))
    started = time.perf_counter()
    index.add_with_ids(vectors, np.arange(vectors.shape[0], dtype=np.int64))
    return time.perf_counter() - started


def start_pinecone_server() -> tuple[subprocess.Popen[str], str]:
    """The local Pinecone-compatible server in its own process (no shared GIL); returns (process, URL)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "two_stage_rec.testing.pinecone_server", "--port", "0", "--api-key", API_KEY],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        process.kill()
        raise RuntimeError(f"the Pinecone test server did not start: {url!r}")
    return process, url


def pinecone_cases(n: int, runs: int) -> dict[str, Any]:
    from two_stage_rec.stores.pinecone import PineconeVectorStore

    ids, vectors, metadata = catalogue(n)
    process, url = start_pinecone_server()
    out: dict[str, Any] = {}
    try:
        counter = iter(range(1_000_000))
        for workers in (1, 4):

            def one(workers: int = workers) -> float:
                store = PineconeVectorStore(
                    index_name=f"throughput-{next(counter)}",
                    dimension=DIMENSION,
                    api_key=API_KEY,
                    controller_host=url,
                    create_if_missing=True,
                    upsert_workers=workers,
                )
                try:
                    return index_once(store, ids, vectors, metadata, 1_000)
                finally:
                    store.close()

            out[f"pinecone_local_index_items_batch1000_workers{workers}"] = summarize(repeat(one, runs), n)
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
    return out


def run(
    faiss_sizes: dict[str, int], pinecone_items: int, runs: int, out: Path | None, quiet: bool = False
) -> dict[str, Any]:
    import pinecone

    results: dict[str, Any] = {
        "machine": machine(pinecone=pinecone.__version__),
        "config": {
            "dimension": DIMENSION,
            "metadata": "title, genres (2), year",
            "faiss_items": faiss_sizes,
            "pinecone_items": pinecone_items,
            "runs": runs,
            "store_params": "FaissVectorStore defaults (HnswParams(), IvfParams())",
        },
    }
    cases = faiss_cases(faiss_sizes, runs)
    if pinecone_items:
        cases.update(pinecone_cases(pinecone_items, runs))
    results["cases"] = cases
    flat = cases.get("faiss_flat_index_items_batch1000")
    raw = cases.get("faiss_flat_raw_faiss_add")
    if flat and raw:
        results["ratios"] = {
            "flat_index_items_time_over_raw_faiss_add": ratio(flat["median_s"], raw["median_s"], 1),
            "flat_index_items_time_over_one_upsert": ratio(
                flat["median_s"], cases["faiss_flat_store_upsert_one_call"]["median_s"]
            ),
        }
    if out is not None:
        write_results(out, results, quiet=quiet)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller catalogues, one run each")
    parser.add_argument(
        "--out", type=Path, default=None, help="default: results/index_throughput.json (--quick: _quick.json)"
    )
    args = parser.parse_args(argv)
    out = args.out or (RESULTS.with_name(RESULTS.stem + "_quick.json") if args.quick else RESULTS)
    if args.quick:
        run({"flat": 20_000, "hnsw": 5_000, "ivf": 20_000}, 2_000, 1, out)
    else:
        run({"flat": 100_000, "hnsw": 20_000, "ivf": 100_000}, 10_000, 3, out)


if __name__ == "__main__":
    main()
