"""FAISS-specific behaviour: parameters, HNSW tombstones, IVF training, atomic save/load, errors.

What every store must do is in tests/test_store_contract.py; this file covers
what only the FAISS backend has.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from two_stage_rec.errors import InvalidInputError, MissingDependencyError, PersistenceError, StoreError

faiss = pytest.importorskip("faiss", reason="faiss-cpu is not installed (extra: faiss)")
faiss_module = pytest.importorskip("two_stage_rec.stores.faiss")
FaissVectorStore = faiss_module.FaissVectorStore
HnswParams = faiss_module.HnswParams
IvfParams = faiss_module.IvfParams


@pytest.fixture(autouse=True, scope="module")
def _single_threaded_faiss() -> Iterator[None]:
    """One OpenMP thread: many tiny calls are far slower with thread start-up on a busy machine."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def _data(n: int, d: int = 8, seed: int = 0) -> tuple[list[str], np.ndarray]:
    return [f"id-{i}" for i in range(n)], np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _hnsw_store(**kwargs: Any) -> Any:
    return FaissVectorStore(dimension=8, index="hnsw", **kwargs)


# ------------------------------------------------------------------ config


def test_parameters_are_typed_keyword_only_and_frozen() -> None:
    params = HnswParams(m=16, ef_construction=100, ef_search=50)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.m = 8  # type: ignore[misc]
    with pytest.raises(TypeError):
        HnswParams(16)  # type: ignore[misc]
    with pytest.raises(TypeError):
        FaissVectorStore(8)  # type: ignore[misc]
    assert IvfParams(nlist=10).train_threshold == 390
    assert IvfParams(nlist=10).train_sample_cap == 2560
    assert IvfParams(nlist=10, min_train_size=50, max_train_size=60).train_threshold == 50


@pytest.mark.parametrize(
    "make",
    [
        lambda: HnswParams(m=0),
        lambda: HnswParams(ef_search=True),
        lambda: IvfParams(nlist=0),
        lambda: IvfParams(nlist=4, nprobe=5),
        lambda: IvfParams(nlist=10, min_train_size=5),
        lambda: IvfParams(nlist=10, max_train_size=5),
        lambda: FaissVectorStore(dimension=0),
        lambda: FaissVectorStore(dimension=8, metric="manhattan"),
        lambda: FaissVectorStore(dimension=8, index="lsh"),
        lambda: FaissVectorStore(dimension=8, index="flat", hnsw=HnswParams()),
        lambda: FaissVectorStore(dimension=8, index="hnsw", ivf=IvfParams()),
        lambda: FaissVectorStore(dimension=8, index="ivf", ivf={"nlist": 4}),
    ],
)
def test_bad_configuration_is_rejected(make: Any) -> None:
    with pytest.raises(InvalidInputError):
        make()


@pytest.mark.parametrize(("index", "exact", "faiss_class"), [
    ("flat", True, "IndexFlat"), ("hnsw", False, "IndexHNSWFlat"),
    # IVF and auto stores search a flat index (exactly) until they are trained.
    ("ivf", True, "IndexFlat"), ("auto", True, "IndexFlat"),
])  # fmt: skip
def test_describe_and_capabilities(index: str, exact: bool, faiss_class: str) -> None:
    store = FaissVectorStore(dimension=8, metric="cosine", index=index)
    assert store.is_exact is exact and store.supports_persistence is True
    stats = store.describe()
    assert (stats.dimension, stats.metric, stats.count, stats.backend) == (8, "cosine", 0, "faiss")
    assert stats.details["index"] == index and stats.details["faiss_index"] == faiss_class
    assert stats.details["layout"] == ("hnsw" if index == "hnsw" else "flat")
    assert "FaissVectorStore(dimension=8" in repr(store)


def test_ids_are_arbitrary_strings() -> None:
    store = FaissVectorStore(dimension=2, metric="euclidean")
    ids = ["Toy Story (1995)", "ünïcødé ✓", "x" * 500, "1", "01"]
    vectors = np.arange(10, dtype=np.float32).reshape(5, 2)
    store.upsert(ids, vectors)
    result = store.query(vectors, top_k=1)
    assert [result.row_ids(r)[0] for r in range(5)] == ids


# --------------------------------------------------------- HNSW tombstones


def test_hnsw_overwrite_hides_the_old_vector() -> None:
    ids, vectors = _data(40)
    store = _hnsw_store()
    store.upsert(ids, vectors)
    store.upsert(["id-0"], vectors[1:2] + 100.0)
    assert store.describe().details["tombstones"] == 1
    assert len(store) == 40
    result = store.query(vectors[:1], top_k=40, include_values=True)
    assert result.row_ids(0).count("id-0") == 1
    assert result.values is not None
    row = result.row_ids(0).index("id-0")
    np.testing.assert_allclose(result.values[0, row], vectors[1] + 100.0)


def test_hnsw_delete_hides_then_compacts() -> None:
    ids, vectors = _data(40)
    store = _hnsw_store(metric="euclidean")
    store.upsert(ids, vectors)
    store.delete(ids[:15])
    assert store.describe().details["tombstones"] == 15
    assert not set(store.query(vectors, top_k=40).ids.ravel()) & set(ids[:15])
    # Once tombstones outnumber live vectors the graph is rebuilt without them.
    store.delete(ids[15:25])
    stats = store.describe()
    assert stats.count == 15 and stats.details["tombstones"] == 0
    assert int(store._index.ntotal) == 15
    result = store.query(vectors[25:], top_k=1)
    assert [result.row_ids(r)[0] for r in range(15)] == ids[25:]


def test_flat_delete_removes_from_faiss_immediately() -> None:
    ids, vectors = _data(20)
    store = FaissVectorStore(dimension=8)
    store.upsert(ids, vectors)
    store.delete([*ids[:5], "never-there"])
    assert int(store._index.ntotal) == 15 and store.describe().details["tombstones"] == 0


# ------------------------------------------------------------ IVF training


def test_ivf_is_exact_until_trained_then_trains_once() -> None:
    params = IvfParams(nlist=4, nprobe=1)  # trains at 39 * 4 = 156 vectors
    ids, vectors = _data(300)
    ivf = FaissVectorStore(dimension=8, index="ivf", ivf=params)
    flat = FaissVectorStore(dimension=8)
    ivf.upsert(ids[:100], vectors[:100])
    flat.upsert(ids[:100], vectors[:100])
    assert not ivf.is_trained and ivf.describe().details["trained"] is False
    queries = vectors[200:210]
    assert ivf.query(queries, top_k=7).ids.tolist() == flat.query(queries, top_k=7).ids.tolist()
    ivf.upsert(ids[100:160], vectors[100:160])
    assert ivf.is_trained and int(ivf._index.ntotal) == 160
    centroids_before = ivf._index.quantizer.reconstruct_n(0, 4)
    ivf.upsert(ids[160:], vectors[160:])
    assert int(ivf._index.ntotal) == 300
    np.testing.assert_array_equal(ivf._index.quantizer.reconstruct_n(0, 4), centroids_before)
    ivf.train()  # explicit retrain on all 300
    assert int(ivf._index.ntotal) == 300 and len(ivf) == 300


def test_train_is_only_for_ivf_with_enough_vectors() -> None:
    with pytest.raises(InvalidInputError, match="only an IVF index"):
        FaissVectorStore(dimension=8, index="flat").train()
    store = FaissVectorStore(dimension=8, index="ivf", ivf=IvfParams(nlist=16))
    store.upsert(*_data(10))
    with pytest.raises(InvalidInputError, match="at least nlist=16"):
        store.train()


def test_ivf_counts_exact_fallbacks_when_probes_find_too_few() -> None:
    ids, vectors = _data(200)
    store = FaissVectorStore(dimension=8, index="ivf", ivf=IvfParams(nlist=8, nprobe=1, min_train_size=100))
    store.upsert(ids, vectors, [{"even": i % 2 == 0} for i in range(200)])
    result = store.query(vectors[:20], top_k=80, filter={"even": True})
    assert result.counts.tolist() == [80] * 20
    assert store.describe().details["exact_fallbacks"] > 0


# ------------------------------------------------------------ boundaries


def test_faiss_errors_become_store_errors_and_nothing_is_written(monkeypatch: pytest.MonkeyPatch) -> None:
    ids, vectors = _data(10)
    store = FaissVectorStore(dimension=8, metric="euclidean")
    store.upsert(ids, vectors)

    class Broken:
        """Delegates to the real index but fails on add, after remove has run."""

        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

        def add_with_ids(self, *args: Any) -> None:
            raise RuntimeError("Error in faiss::IndexIDMap::add_with_ids: simulated")

    monkeypatch.setattr(store, "_index", Broken(store._index))
    with pytest.raises(StoreError, match="simulated") as info:
        store.upsert(["id-0", "new"], vectors[:2] + 5.0)
    assert isinstance(info.value.__cause__, RuntimeError)
    # The half-applied remove was undone from the side table.
    assert len(store) == 10 and store.fetch(["new"]).missing == ["new"]
    np.testing.assert_array_equal(store.fetch(["id-0"]).vectors, vectors[:1])
    result = store.query(vectors, top_k=1)
    assert [result.row_ids(r)[0] for r in range(10)] == ids


def test_missing_faiss_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` fail
    with pytest.raises(MissingDependencyError) as info:
        FaissVectorStore(dimension=8)
    assert isinstance(info.value, ImportError)
    assert 'pip install "two-stage-rec[faiss]"' in str(info.value)
    assert "faiss-cpu" in str(info.value)


def test_importing_the_package_or_module_imports_neither_faiss_nor_pytest() -> None:
    code = (
        "import sys, two_stage_rec, two_stage_rec.stores.faiss, two_stage_rec.testing, "
        "two_stage_rec.stores.memory\n"
        "print(sorted(m for m in ('faiss', 'pytest', 'hypothesis') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------- save / load


def _saved(tmp_path: Path, index: str = "flat") -> tuple[Any, Path, list[str], np.ndarray]:
    ids, vectors = _data(50)
    store = FaissVectorStore(dimension=8, metric="cosine", index=index)
    store.upsert(ids, vectors, [{"n": i} for i in range(50)])
    target = tmp_path / "store"
    store.save(target)
    return store, target, ids, vectors


@pytest.mark.parametrize("index", ["flat", "hnsw", "ivf"])
def test_save_writes_no_pickle(tmp_path: Path, index: str) -> None:
    _, target, _, _ = _saved(tmp_path, index)
    pointer = json.loads((target / "CURRENT").read_text())
    snapshot = target / pointer["snapshot"]
    assert sorted(p.name for p in snapshot.iterdir()) == ["index.faiss", "slots.npz", "store.json"]
    with np.load(snapshot / "slots.npz", allow_pickle=False) as arrays:
        # The vectors are in index.faiss only; cosine keeps the norms to give them back as upserted.
        assert sorted(arrays.files) == ["alive", "ids", "norms"]
        assert arrays["norms"].shape == (50,) and arrays["ids"].dtype.kind == "U"
    config = json.loads((snapshot / "store.json").read_text())
    assert config["index"] == index and config["metadata"][3] == {"n": 3}
    assert sorted(p.name for p in target.iterdir()) == ["CURRENT", pointer["snapshot"]]


def test_failed_save_leaves_the_previous_copy_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, target, _, vectors = _saved(tmp_path)
    store.upsert(["added"], vectors[:1])

    def crash(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(faiss_module.np, "savez", crash)
    with pytest.raises(PersistenceError, match="disk full"):
        store.save(target)
    monkeypatch.undo()
    loaded = FaissVectorStore.load(target)
    assert len(loaded) == 50 and loaded.fetch(["added"]).missing == ["added"]
    assert sorted(p.name for p in target.iterdir())[0] == "CURRENT" and len(list(target.iterdir())) == 2


def test_crash_before_the_pointer_switch_keeps_the_old_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, target, _, vectors = _saved(tmp_path)
    store.upsert(["added"], vectors[:1])
    real = faiss_module.write_atomically

    def crash_on_pointer(path: Path, data: bytes, **options: Any) -> None:
        if path.name == "CURRENT":
            raise KeyboardInterrupt  # not an Exception: cleanup must still run, and it is re-raised
        real(path, data, **options)

    monkeypatch.setattr(faiss_module, "write_atomically", crash_on_pointer)
    with pytest.raises(KeyboardInterrupt):
        store.save(target)
    monkeypatch.undo()
    assert len(FaissVectorStore.load(target)) == 50
    assert len(list(target.iterdir())) == 2  # the new snapshot was cleaned up


def test_leftovers_of_a_killed_save_are_ignored_then_cleaned(tmp_path: Path) -> None:
    store, target, _, _ = _saved(tmp_path)
    (target / ".tmp-killed").mkdir()
    (target / ".tmp-killed" / "index.faiss").write_bytes(b"half")
    (target / "snapshot-orphan").mkdir()
    assert len(FaissVectorStore.load(target)) == 50
    store.save(target)
    assert len(list(target.iterdir())) == 2


def test_saving_twice_replaces_the_copy(tmp_path: Path) -> None:
    store, target, ids, _ = _saved(tmp_path, "hnsw")
    store.delete(ids[:10])
    store.save(target)
    loaded = FaissVectorStore.load(target)
    assert len(loaded) == 40 and loaded.describe().details["tombstones"] == 10
    assert loaded.index_kind == "hnsw" and loaded.describe().details["hnsw"] == dataclasses.asdict(HnswParams())


def test_untrained_ivf_round_trips_and_trains_later(tmp_path: Path) -> None:
    ids, vectors = _data(200)
    store = FaissVectorStore(dimension=8, index="ivf", ivf=IvfParams(nlist=4, nprobe=2))
    store.upsert(ids[:50], vectors[:50])
    store.save(tmp_path / "ivf")
    loaded = FaissVectorStore.load(tmp_path / "ivf")
    assert not loaded.is_trained and len(loaded) == 50
    loaded.upsert(ids[50:], vectors[50:])
    assert loaded.is_trained and int(loaded._index.ntotal) == 200


def test_refuses_to_save_into_an_unrelated_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(PersistenceError, match="neither empty"):
        FaissVectorStore(dimension=8).save(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def _corrupt(target: Path, how: str) -> None:
    snapshot = target / json.loads((target / "CURRENT").read_text())["snapshot"]
    if how == "no pointer":
        (target / "CURRENT").unlink()
    elif how == "garbage pointer":
        (target / "CURRENT").write_text("{not json")
    elif how == "pointer escapes":
        (target / "CURRENT").write_text(json.dumps({"snapshot": "../elsewhere"}))
    elif how == "missing index":
        (snapshot / "index.faiss").unlink()
    elif how == "truncated index":
        data = (snapshot / "index.faiss").read_bytes()
        (snapshot / "index.faiss").write_bytes(data[: len(data) // 2])
    elif how == "corrupt npz":
        (snapshot / "slots.npz").write_bytes(b"PK\x03\x04 not really a zip")
    elif how == "wrong version":
        config = json.loads((snapshot / "store.json").read_text())
        config["version"] = 99
        (snapshot / "store.json").write_text(json.dumps(config))
    elif how == "invalid metadata":
        config = json.loads((snapshot / "store.json").read_text())
        config["metadata"][0] = {"n": None}
        (snapshot / "store.json").write_text(json.dumps(config))
    elif how == "wrong index kind":
        faiss.write_index(faiss.IndexIDMap(faiss.IndexHNSWFlat(8, 4)), str(snapshot / "index.faiss"))
    elif how == "wrong metric":
        config = json.loads((snapshot / "store.json").read_text())
        config["metric"] = "euclidean"
        (snapshot / "store.json").write_text(json.dumps(config))
    elif how == "count mismatch":
        config = json.loads((snapshot / "store.json").read_text())
        config["count"] = 7
        (snapshot / "store.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    "how",
    ["no pointer", "garbage pointer", "pointer escapes", "missing index", "truncated index",
     "corrupt npz", "wrong version", "invalid metadata", "count mismatch", "wrong index kind", "wrong metric"],
)  # fmt: skip
def test_corrupt_saves_raise_persistence_error(tmp_path: Path, how: str) -> None:
    _, target, _, _ = _saved(tmp_path)
    _corrupt(target, how)
    with pytest.raises(PersistenceError) as info:
        FaissVectorStore.load(target)
    assert isinstance(info.value, OSError)


def test_loading_a_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(PersistenceError, match="not a directory"):
        FaissVectorStore.load(tmp_path / "nothing here")


def test_selective_filters_skip_the_approximate_index() -> None:
    ids, vectors = _data(2000)
    metadata = [{"rare": i % 50 == 0} for i in range(2000)]  # 40 matches: exact search is far cheaper
    hnsw = FaissVectorStore(dimension=8, index="hnsw", hnsw=HnswParams(m=4, ef_construction=16, ef_search=4))
    flat = FaissVectorStore(dimension=8)
    for store in (hnsw, flat):
        store.upsert(ids, vectors, metadata)
    queries = vectors[:30]
    want = flat.query(queries, top_k=10, filter={"rare": True})
    got = hnsw.query(queries, top_k=10, filter={"rare": True})
    assert got.ids.tolist() == want.ids.tolist()
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5)
    assert hnsw._exact_is_cheaper(40, 10) and not hnsw._exact_is_cheaper(1000, 10)
    ivf = FaissVectorStore(dimension=8, index="ivf", ivf=IvfParams(nlist=8, nprobe=2, min_train_size=312))
    ivf.upsert(ids, vectors)
    # Probing all 8 cells scans 2000 entries; looking up 31 vectors costs 31 * 64 = 1984 of them.
    assert ivf._ivf_probes(31 / 2000) == 8
    assert ivf._exact_is_cheaper(31, 10) and not ivf._exact_is_cheaper(32, 10)


def test_ivf_probes_more_cells_for_selective_filters() -> None:
    store = FaissVectorStore(dimension=8, index="ivf", ivf=IvfParams(nlist=1024, nprobe=32))
    store._layout = "ivf"  # the probe count is a pure function of the parameters
    assert store._ivf_probes(1.0) == 32
    assert store._ivf_probes(0.25) == 64  # 32 / sqrt(0.25)
    assert store._ivf_probes(0.05) == 144  # ceil(32 / 0.2236)
    assert store._ivf_probes(0.0001) == 1024  # never more than every cell


def test_a_failed_compaction_says_the_write_landed(monkeypatch: pytest.MonkeyPatch) -> None:
    ids, vectors = _data(40)
    store = _hnsw_store(metric="euclidean")
    store.upsert(ids, vectors)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("faiss failed to rebuild the index: simulated")

    monkeypatch.setattr(store, "_indexed", broken)
    with pytest.raises(StoreError, match="the write landed"):
        store.delete(ids[:30])
    # Still correct: the deleted ids are hidden by tombstones.
    assert len(store) == 10 and store.describe().details["tombstones"] == 30
    assert sorted(store.query(vectors[:3], top_k=40).row_ids(0)) == sorted(ids[30:])


def test_a_failed_automatic_training_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    ids, vectors = _data(200)
    store = FaissVectorStore(dimension=8, index="ivf", ivf=IvfParams(nlist=4, nprobe=1))
    store.upsert(ids[:100], vectors[:100])

    def broken(*args: Any) -> Any:
        raise StoreError("faiss failed to train the IVF index: simulated")

    monkeypatch.setattr(store, "_build_ivf", broken)
    with pytest.raises(StoreError, match="simulated"):
        store.upsert(ids[100:], vectors[100:])  # reaches 39 * 4 = 156 vectors: trains
    assert len(store) == 100 and not store.is_trained and store.fetch(ids[100:101]).missing == ids[100:101]
    assert store.query(vectors[:2], top_k=5).counts.tolist() == [5, 5]
    monkeypatch.undo()
    store.upsert(ids[100:], vectors[100:])
    assert store.is_trained and int(store._index.ntotal) == 200


def test_ivf_default_probes_are_twenty_or_every_cell() -> None:
    # Measured default (docs/benchmarks.md): 20 probes with nlist=100; a small
    # nlist probes every cell rather than raising.
    assert IvfParams().probes == 20
    assert IvfParams(nlist=8).probes == 8
    assert IvfParams(nlist=100, nprobe=5).probes == 5
