"""The Recommender's fast paths give the answers of the plain path.

recommend_batch queries the store once per group of users with similar exclusion
counts (so that a user with few exclusions does not over-fetch as much as the user
with the most) and reranks all candidates in one call; a FAISS query of one vector
runs on one OpenMP thread and leaves the caller's thread count as it was.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from comparisons import assert_same_recommendations
from two_stage_rec import Recommender
from two_stage_rec.embedders.table import TableEmbedder
from two_stage_rec.stores.memory import InMemoryVectorStore
from two_stage_rec.types import FloatMatrix, FloatVector, QueryResult


class CountingReranker:
    """A fixed nonlinear score of (user, item) pairs that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def score(self, user_vectors: FloatMatrix, item_vectors: FloatMatrix) -> FloatVector:
        self.calls += 1
        return np.tanh((user_vectors * item_vectors).sum(axis=1) + item_vectors[:, 0]).astype(np.float32)


class CountingStore(InMemoryVectorStore):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.top_ks: list[int] = []

    def query(self, vectors: Any, top_k: int, **kwargs: Any) -> QueryResult:
        self.top_ks.append(top_k)
        return super().query(vectors, top_k, **kwargs)


@pytest.fixture
def world() -> tuple[Recommender, CountingStore, CountingReranker, list[str], list[frozenset[str]]]:
    rng = np.random.default_rng(7)
    users = [f"u{i}" for i in range(12)]
    items = [f"i{i}" for i in range(120)]
    store = CountingStore(dimension=6)
    reranker = CountingReranker()
    recommender = Recommender(
        user_embedder=TableEmbedder(users, rng.normal(size=(12, 6))),
        item_embedder=TableEmbedder(items, rng.normal(size=(120, 6))),
        store=store,
        reranker=reranker,
    )
    recommender.index_items(items, metadata=[{"genre": f"g{i % 3}", "rank": i} for i in range(120)])
    # Exclusion sizes 0, 1, 3, 6, ..., 60: several power-of-two groups.
    excluded = [frozenset(rng.choice(items, size=min(5 * i, 60) + (i % 2), replace=False).tolist()) for i in range(12)]
    return recommender, store, reranker, users, excluded


@pytest.mark.parametrize("options", [{}, {"filter": {"genre": "g1"}}, {"rerank": False}, {"k": 7, "candidates": 9}])
def test_grouped_batch_equals_one_call_per_user(world: Any, options: dict[str, Any]) -> None:
    recommender, store, reranker, users, excluded = world
    store.top_ks.clear()
    reranker.calls = 0
    batch = recommender.recommend_batch(users, exclude=excluded, **options)
    groups = len({len(e).bit_length() for e in excluded})
    assert len(store.top_ks) == groups > 1
    assert reranker.calls == (0 if options.get("rerank") is False else 1)
    for user, skip, got in zip(users, excluded, batch, strict=True):
        # Ids exactly, scores to a tolerance: the batch's products need not round like one row's.
        assert_same_recommendations(got, recommender.recommend(user, exclude=skip, **options))
        assert not {r.item_id for r in got} & skip


def test_a_filter_matching_nothing_gives_empty_lists(world: Any) -> None:
    recommender, _, _, users, excluded = world
    assert recommender.recommend_batch(users, exclude=excluded, filter={"genre": "none"}) == [[] for _ in users]


def test_one_faiss_query_restores_the_callers_thread_count() -> None:
    faiss = pytest.importorskip("faiss", reason="the faiss extra is not installed")
    from two_stage_rec.stores.faiss import FaissVectorStore

    store = FaissVectorStore(dimension=4)
    store.upsert([f"i{i}" for i in range(50)], np.random.default_rng(0).normal(size=(50, 4)))
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    try:
        assert store.query(np.ones(4), 5).counts.tolist() == [5]
        assert faiss.omp_get_max_threads() == 2
    finally:
        faiss.omp_set_num_threads(before)
