"""FAISS at scale, on small synthetic data: inner product as L2 on IVF, the norm bound,
``index="auto"``, the columnar metadata cache, and vectors kept only in the index.

The timing targets these serve are measured in benchmarks/scale.py, not here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from two_stage_rec.filters import filter_mask

faiss = pytest.importorskip("faiss", reason="faiss-cpu is not installed (extra: faiss)")
faiss_module = pytest.importorskip("two_stage_rec.stores.faiss")
FaissVectorStore = faiss_module.FaissVectorStore
IvfParams = faiss_module.IvfParams
AUTO_IVF = faiss_module.AUTO_IVF
NORM_HEADROOM = pytest.importorskip("two_stage_rec.stores._faiss_space").NORM_HEADROOM


@pytest.fixture(autouse=True, scope="module")
def _single_threaded_faiss() -> Iterator[None]:
    """One OpenMP thread: many tiny calls are far slower with thread start-up on a busy machine."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def _catalogue(n: int, d: int = 8, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Vectors whose norms vary (log-normal), the case where IVF on raw inner product does badly."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, d)) * rng.lognormal(0.0, 0.5, size=(n, 1))
    return [f"id-{i}" for i in range(n)], vectors.astype(np.float32)


def _ivf(nlist: int = 8, nprobe: int | None = None, min_train_size: int = 200, **kwargs: Any) -> Any:
    params = IvfParams(nlist=nlist, nprobe=nprobe or nlist, min_train_size=min_train_size)
    return FaissVectorStore(dimension=8, index="ivf", ivf=params, **kwargs)


# ------------------------------------------------------- inner product as L2


def test_augmented_ivf_probing_every_cell_equals_flat() -> None:
    """With every cell probed the IVF search is exhaustive: the L2 order over augmented
    vectors must then be exactly the inner-product order, with the true scores."""
    ids, vectors = _catalogue(600)
    ivf, flat = _ivf(), FaissVectorStore(dimension=8, index="flat")
    for store in (ivf, flat):
        store.upsert(ids, vectors)
    stats = ivf.describe()
    assert stats.details["layout"] == "ivf" and stats.details["faiss_index"] == "IndexIVFFlat"
    longest = float(np.linalg.norm(vectors, axis=1).max())
    assert stats.details["norm_bound"] == pytest.approx(NORM_HEADROOM * longest, rel=1e-6)
    assert int(ivf._index.metric_type) == faiss.METRIC_L2 and ivf._index.d == 9
    queries = np.random.default_rng(5).normal(size=(20, 8)).astype(np.float32) * 3.0
    got, want = ivf.query(queries, top_k=25), flat.query(queries, top_k=25)
    assert got.ids.tolist() == want.ids.tolist()
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5, atol=1e-5)
    column = {item: j for j, item in enumerate(ids)}
    true = np.array([[vectors[column[i]] @ queries[r] for i in got.row_ids(r)] for r in range(20)])
    np.testing.assert_allclose(got.scores, true, rtol=1e-5, atol=1e-5)


def test_augmented_ivf_scores_are_true_inner_products_when_probing_few_cells() -> None:
    ids, vectors = _catalogue(2000)
    store = _ivf(nlist=16, nprobe=2)
    store.upsert(ids, vectors)
    queries = np.random.default_rng(6).normal(size=(10, 8)).astype(np.float32)
    result = store.query(queries, top_k=20)
    column = {item: j for j, item in enumerate(ids)}
    for row in range(10):
        got = [column[i] for i in result.row_ids(row)]
        np.testing.assert_allclose(result.row_scores(row), vectors[got] @ queries[row], rtol=1e-5, atol=1e-5)
        assert np.all(np.diff(result.row_scores(row)) <= 0)


# ------------------------------------------------------------- norm bound


def test_a_longer_vector_raises_the_norm_bound_and_is_found_with_its_score() -> None:
    ids, vectors = _catalogue(600)
    store = _ivf()
    store.upsert(ids, vectors)
    bound = store.describe().details["norm_bound"]
    # Within the headroom: written in place, the bound stays.
    within = vectors[:1] / np.linalg.norm(vectors[0]) * np.float32(bound * 0.99)
    store.upsert(["within"], within)
    assert store.describe().details["norm_bound"] == bound
    # Beyond it: the index is retrained with a new bound, in the same call.
    longer = np.full((1, 8), 10.0 * bound, dtype=np.float32)
    store.upsert(["long", ids[3]], np.vstack([longer, vectors[4:5]]), [{"tag": "long"}, {"tag": "moved"}])
    stats = store.describe()
    assert stats.details["norm_bound"] == pytest.approx(NORM_HEADROOM * float(np.linalg.norm(longer)), rel=1e-6)
    assert stats.count == 602 and stats.details["layout"] == "ivf"
    query = np.ones((1, 8), dtype=np.float32)
    result = store.query(query, top_k=3, include_metadata=True, include_values=True)
    assert result.row_ids(0)[0] == "long"
    assert float(result.scores[0, 0]) == pytest.approx(float(longer[0] @ query[0]), rel=1e-6)
    np.testing.assert_array_equal(
        store.fetch(["long", ids[3], "within"]).vectors, np.vstack([longer, vectors[4:5], within])
    )
    assert store.query(query, top_k=5, filter={"tag": "moved"}).row_ids(0) == [ids[3]]
    flat = FaissVectorStore(dimension=8, index="flat")
    flat.upsert([*ids, "within", "long"], np.vstack([vectors, within, longer]))
    flat.upsert([ids[3]], vectors[4:5])
    queries = np.random.default_rng(9).normal(size=(10, 8)).astype(np.float32)
    assert store.query(queries, top_k=10).ids.tolist() == flat.query(queries, top_k=10).ids.tolist()


def test_a_failed_retrain_for_a_longer_vector_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    ids, vectors = _catalogue(600)
    store = _ivf()
    store.upsert(ids, vectors)
    bound = store.describe().details["norm_bound"]

    def broken(*args: Any) -> Any:
        raise faiss_module.StoreError("faiss failed to train the IVF index: simulated")

    monkeypatch.setattr(store, "_build_ivf", broken)
    with pytest.raises(faiss_module.StoreError, match="simulated"):
        store.upsert(["long", ids[0]], np.full((2, 8), 100.0, dtype=np.float32))
    assert len(store) == 600 and store.fetch(["long"]).missing == ["long"]
    np.testing.assert_array_equal(store.fetch(ids[:1]).vectors, vectors[:1])
    assert store.describe().details["norm_bound"] == bound


# ------------------------------------------------------------------ auto


def test_auto_is_the_default_and_stays_flat_below_its_threshold() -> None:
    ids, vectors = _catalogue(500)
    auto, flat = FaissVectorStore(dimension=8), FaissVectorStore(dimension=8, index="flat")
    assert auto.index_kind == "auto" and auto.describe().details["ivf"] == dict(
        nlist=1024, nprobe=32, min_train_size=100_000, max_train_size=65_536
    )
    metadata = [{"even": i % 2 == 0} for i in range(500)]
    for store in (auto, flat):
        store.upsert(ids, vectors, metadata)
    assert auto.is_exact and auto.layout == "flat" and not auto.is_trained
    queries = np.random.default_rng(3).normal(size=(7, 8)).astype(np.float32)
    for spec in (None, {"even": True}):
        got, want = auto.query(queries, top_k=30, filter=spec), flat.query(queries, top_k=30, filter=spec)
        assert got.ids.tolist() == want.ids.tolist()
        np.testing.assert_array_equal(got.scores, want.scores)  # the same FAISS flat search


def test_auto_turns_to_ivf_once_at_its_threshold_and_keeps_its_answers_close() -> None:
    ids, vectors = _catalogue(900)
    params = IvfParams(nlist=8, nprobe=8, min_train_size=400)
    store = FaissVectorStore(dimension=8, index="auto", ivf=params)
    store.upsert(ids[:399], vectors[:399])
    assert store.layout == "flat" and store.is_exact
    store.upsert(ids[399:400], vectors[399:400])
    assert store.layout == "ivf" and not store.is_exact and store.is_trained
    assert int(store._index.ntotal) == 400
    centroids = store._index.quantizer.reconstruct_n(0, 8)
    store.upsert(ids[400:], vectors[400:])
    np.testing.assert_array_equal(store._index.quantizer.reconstruct_n(0, 8), centroids)  # trained once
    store.delete(ids[:600])  # shrinking does not go back to flat
    assert store.layout == "ivf" and len(store) == 300
    flat = FaissVectorStore(dimension=8, index="flat")
    flat.upsert(ids[600:], vectors[600:])
    queries = np.random.default_rng(4).normal(size=(10, 8)).astype(np.float32)
    assert store.query(queries, top_k=10).ids.tolist() == flat.query(queries, top_k=10).ids.tolist()


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_auto_ivf_for_other_metrics_is_not_augmented(metric: str) -> None:
    ids, vectors = _catalogue(500)
    store = FaissVectorStore(dimension=8, metric=metric, ivf=IvfParams(nlist=4, nprobe=4, min_train_size=200))
    store.upsert(ids, vectors)
    assert store.layout == "ivf" and store.describe().details["norm_bound"] is None
    flat = FaissVectorStore(dimension=8, metric=metric, index="flat")
    flat.upsert(ids, vectors)
    queries = vectors[:5] + 0.01
    assert store.query(queries, top_k=10).ids.tolist() == flat.query(queries, top_k=10).ids.tolist()


def test_auto_parameters_are_checked_like_ivf_ones() -> None:
    with pytest.raises(faiss_module.InvalidInputError):
        FaissVectorStore(dimension=8, index="flat", ivf=IvfParams())
    with pytest.raises(faiss_module.InvalidInputError):
        FaissVectorStore(dimension=8, index="auto", ivf={"nlist": 4})
    assert AUTO_IVF.probes == 32 and AUTO_IVF.train_threshold == 100_000


# ------------------------------------------------------ metadata columns


@pytest.mark.parametrize("index", ["flat", "hnsw", "ivf"])
def test_columns_follow_overwrites_deletes_and_compaction(index: str) -> None:
    """After every write, the columnar filter equals the filter evaluated on the stored metadata."""
    rng = np.random.default_rng(11)
    kwargs: dict[str, Any] = {"ivf": IvfParams(nlist=4, nprobe=4, min_train_size=100)} if index == "ivf" else {}
    store = FaissVectorStore(dimension=8, index=index, **kwargs)
    reference: dict[str, dict[str, Any]] = {}
    specs: list[dict[str, Any]] = [
        {"genre": "a"},
        {"genre": {"$in": ["a", "b"]}, "year": {"$gte": 2}},
        {"$or": [{"tags": "x"}, {"flag": True}]},
        {"year": {"$exists": False}},
        {"genre": {"$ne": "c"}},
    ]
    for step in range(30):
        batch = [f"id-{i}" for i in rng.choice(120, 20, replace=False).tolist()]
        metadata: list[dict[str, Any]] = []
        for _ in batch:
            entry: dict[str, Any] = {}
            if rng.random() < 0.8:
                entry["genre"] = str(rng.choice(["a", "b", "c"]))
            if rng.random() < 0.7:
                entry["year"] = int(rng.integers(0, 4))
            if rng.random() < 0.3:
                entry["tags"] = ["x"] if rng.random() < 0.5 else ["y", "x"]
            if rng.random() < 0.3:
                entry["flag"] = bool(rng.random() < 0.5)
            metadata.append(entry)
        if step % 5 == 4:
            store.upsert(batch, rng.normal(size=(20, 8)).astype(np.float32))  # no metadata: cleared
            reference.update({item: {} for item in batch})
        else:
            store.upsert(batch, rng.normal(size=(20, 8)).astype(np.float32), metadata)
            reference.update(dict(zip(batch, metadata, strict=True)))
        doomed = [f"id-{i}" for i in rng.choice(120, 25, replace=False).tolist()]
        store.delete(doomed)
        for item in doomed:
            reference.pop(item, None)
        for spec in specs:
            want = sorted(item for item, md in reference.items() if filter_mask(spec, [md])[0])
            got = store.query(np.ones((1, 8), np.float32), top_k=200, filter=spec)
            assert sorted(got.row_ids(0)) == want, (step, spec)


def test_filtered_queries_equal_exact_filtered_search() -> None:
    ids, vectors = _catalogue(3000)
    genres = [f"g{i % 20}" for i in range(3000)]
    metadata = [{"genre": g, "year": 1950 + i % 75} for i, g in enumerate(genres)]
    store = FaissVectorStore(dimension=8, index="flat")
    store.upsert(ids, vectors, metadata)
    queries = np.random.default_rng(8).normal(size=(5, 8)).astype(np.float32)
    for spec in ({"genre": "g3"}, {"year": {"$gte": 2000}, "genre": {"$in": ["g1", "g2"]}}):
        allowed = filter_mask(spec, metadata)
        scores = np.where(allowed, queries @ vectors.T, -np.inf)
        want = np.argsort(-scores, axis=1, kind="stable")[:, :50]
        got = store.query(queries, top_k=50, filter=spec, include_metadata=True)
        assert got.ids.tolist() == [[ids[j] for j in row] for row in want.tolist()]
        assert got.metadata is not None
        assert all(filter_mask(spec, [dict(md) for md in row]).all() for row in got.metadata)


# ------------------------------------------------------------- one copy


@pytest.mark.parametrize("index", ["flat", "hnsw", "ivf"])
@pytest.mark.parametrize("metric", ["dotproduct", "cosine", "euclidean"])
def test_vectors_live_in_the_index_only_and_come_back_as_given(index: str, metric: str) -> None:
    ids, vectors = _catalogue(400)
    kwargs: dict[str, Any] = {"ivf": IvfParams(nlist=4, nprobe=2, min_train_size=200)} if index == "ivf" else {}
    store = FaissVectorStore(dimension=8, metric=metric, index=index, **kwargs)
    store.upsert(ids, vectors)
    store.upsert(ids[:10], vectors[10:20] * 2.0)  # overwrites (HNSW: tombstones)
    expected = vectors.copy()
    expected[:10] = vectors[10:20] * 2.0
    tables = [value for value in vars(store).values() if isinstance(value, np.ndarray)]
    assert all(table.dtype != np.float32 or table.ndim == 1 for table in tables), "no second copy of the vectors"
    fetched = store.fetch(ids).vectors
    if metric == "cosine":  # FAISS holds unit rows; norm * unit is within two roundings of the input
        np.testing.assert_allclose(fetched, expected, rtol=1e-6, atol=1e-7)
    else:
        np.testing.assert_array_equal(fetched, expected)
    result = store.query(expected[:3], top_k=5, include_values=True)
    assert result.values is not None
    column = {item: j for j, item in enumerate(ids)}
    for row in range(3):
        got = [column[i] for i in result.row_ids(row)]
        np.testing.assert_allclose(result.values[row], expected[got], rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------- save / load


def test_augmented_ivf_round_trips(tmp_path: Path) -> None:
    ids, vectors = _catalogue(600)
    store = _ivf(nprobe=2)
    store.upsert(ids, vectors, [{"n": i % 3} for i in range(600)])
    store.delete(ids[:5])
    store.save(tmp_path / "ivf")
    loaded = FaissVectorStore.load(tmp_path / "ivf")
    assert loaded.layout == "ivf" and loaded.describe().details["norm_bound"] == store.describe().details["norm_bound"]
    queries = np.random.default_rng(1).normal(size=(5, 8)).astype(np.float32)
    for spec in (None, {"n": 1}):
        want, got = store.query(queries, top_k=10, filter=spec), loaded.query(queries, top_k=10, filter=spec)
        assert got.ids.tolist() == want.ids.tolist()
        np.testing.assert_array_equal(got.scores, want.scores)
    np.testing.assert_array_equal(loaded.fetch(ids).vectors, vectors[5:])


def test_a_save_of_format_version_1_is_read_by_re_adding_its_vectors(tmp_path: Path) -> None:
    """Version 1 held the vectors beside the index (vectors.npz); its index file is not needed."""
    ids, vectors = _catalogue(30)
    snapshot = tmp_path / "old" / "snapshot-0123"
    snapshot.mkdir(parents=True)
    alive = np.ones(31, dtype=np.bool_)
    alive[30] = False  # a dead slot, as version 1 left them
    with open(snapshot / "vectors.npz", "wb") as handle:
        np.savez(
            handle, ids=np.array([*ids, ""], dtype=np.str_), vectors=np.vstack([vectors, vectors[:1]]), alive=alive
        )
    (snapshot / "index.faiss").write_bytes(b"")
    config = {
        "format": "two_stage_rec.FaissVectorStore", "version": 1, "dimension": 8, "metric": "cosine",
        "index": "flat", "hnsw": None, "ivf": None, "count": 30,
        "metadata": [{"n": i} for i in range(30)] + [{}],
    }  # fmt: skip
    (snapshot / "store.json").write_text(json.dumps(config))
    (tmp_path / "old" / "CURRENT").write_text(json.dumps({"snapshot": "snapshot-0123"}))
    loaded = FaissVectorStore.load(tmp_path / "old")
    assert len(loaded) == 30 and loaded.index_kind == "flat"
    np.testing.assert_allclose(loaded.fetch(ids).vectors, vectors, rtol=1e-6, atol=1e-7)
    assert loaded.fetch(ids[4:5]).metadata == [{"n": 4}]
    assert loaded.query(vectors[7], top_k=1).row_ids(0) == [ids[7]]
