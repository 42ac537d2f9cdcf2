"""The VectorStore contract suite and the concurrency test against the FAISS configurations
added for scale: ``index="auto"`` (the default) and IVF over inner product as L2.

The other FAISS configurations run in tests/test_store_contract.py and
tests/test_store_concurrency.py; these reuse those suites unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from two_stage_rec.protocols import VectorStore
from two_stage_rec.testing import VectorStoreContract
from two_stage_rec.types import Metric

faiss = pytest.importorskip("faiss", reason="faiss-cpu is not installed (extra: faiss)")
faiss_store = pytest.importorskip("two_stage_rec.stores.faiss")


@pytest.fixture(autouse=True, scope="module")
def _single_threaded_faiss() -> Iterator[None]:
    """One OpenMP thread, as in tests/test_store_contract.py (thousands of tiny calls)."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


class _IndexPathOnly(faiss_store.FaissVectorStore):  # type: ignore[misc,name-defined]
    """Sends every filtered query through FAISS's ID selector (no exact shortcut).

    A subclass rather than a patched instance, so that ``load`` (a classmethod)
    gives back a store that searches the same way.
    """

    def _exact_is_cheaper(self, n_allowed: int, k: int) -> bool:
        return False


class TestFaissAutoDefault(VectorStoreContract):
    """The default store: the suite's catalogues are far below the threshold, so it is exact."""

    def make_store(self, dimension: int, metric: Metric) -> VectorStore:
        store = faiss_store.FaissVectorStore(dimension=dimension, metric=metric)
        assert store.index_kind == "auto"
        return store


class TestFaissAutoTrained(VectorStoreContract):
    # Turns to IVF at 20 vectors (so every test but the tiniest runs on it),
    # 4 cells, 2 probed, with the cost model off: the augmented (dot product)
    # search, the ID selector and the exact fallback all run on small data.
    # (FAISS prints a k-means "too few training points" note to stderr.)
    min_recall = 0.6

    def make_store(self, dimension: int, metric: Metric) -> VectorStore:
        return _IndexPathOnly(
            dimension=dimension,
            metric=metric,
            index="auto",
            ivf=faiss_store.IvfParams(nlist=4, nprobe=2, min_train_size=20),
        )


class TestFaissIvfInnerProductAsL2(VectorStoreContract):
    # 8 cells, 4 probed, trained at 312 vectors: the 600-vector oracle test
    # runs on the augmented IVF index.
    min_recall = 0.8

    def make_store(self, dimension: int, metric: Metric) -> VectorStore:
        return faiss_store.FaissVectorStore(
            dimension=dimension, metric=metric, index="ivf", ivf=faiss_store.IvfParams(nlist=8, nprobe=4)
        )


def test_readers_and_a_writer_on_an_auto_store_past_its_threshold(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """tests/test_store_concurrency.py's reader/writer test, on an auto store that turned to IVF."""
    import test_store_concurrency as concurrency

    built: list[VectorStore] = []

    def build() -> VectorStore:
        params = faiss_store.IvfParams(nlist=8, nprobe=4, min_train_size=300)
        built.append(faiss_store.FaissVectorStore(dimension=concurrency.DIMENSION, ivf=params))
        return built[-1]

    monkeypatch.setitem(concurrency.STORES, "faiss-auto-ivf", build)
    concurrency.test_readers_with_filters_and_exclusions_while_a_writer_upserts_and_deletes("faiss-auto-ivf", request)
    (store,) = built
    assert store.layout == "ivf" and store.describe().details["norm_bound"] is not None  # type: ignore[attr-defined]
