"""The Recommender gives the same recommendations whether its items live in Pinecone
(through the real client and the local server) or in the exact in-memory / FAISS flat
stores, for the same vectors (dotproduct, as in the notebook)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from pinecone_helpers import StoreFactory, make_store, server
from two_stage_rec.embedders.table import TableEmbedder
from two_stage_rec.protocols import VectorStore
from two_stage_rec.recommender import Recommendation, Recommender
from two_stage_rec.stores.memory import InMemoryVectorStore
from two_stage_rec.types import FloatMatrix, FloatVector

__all__ = ["make_store", "server"]  # fixtures, imported for pytest

D = 16


class _BilinearReranker:
    """A deterministic stand-in for the scoring model: u^T W v."""

    def __init__(self, seed: int) -> None:
        self._w = np.random.default_rng(seed).normal(size=(D, D)).astype(np.float32)

    def score(self, user_vectors: FloatMatrix, item_vectors: FloatMatrix) -> FloatVector:
        return np.einsum("ij,jk,ik->i", user_vectors, self._w, item_vectors).astype(np.float32)


@pytest.fixture
def catalogue() -> Iterator[tuple[list[str], np.ndarray, list[dict[str, object]], list[str], np.ndarray]]:
    rng = np.random.default_rng(42)
    items = [str(i) for i in range(1, 401)]
    item_vectors = rng.normal(size=(len(items), D)).astype(np.float32)
    metadata: list[dict[str, object]] = [
        {"title": f"Movie {i}", "genres": [["Drama"], ["Comedy"], ["Drama", "Romance"]][int(i) % 3]} for i in items
    ]
    users = [str(u) for u in range(1, 31)]
    user_vectors = rng.normal(size=(len(users), D)).astype(np.float32)
    yield items, item_vectors, metadata, users, user_vectors


def _stores(make_store: StoreFactory) -> dict[str, VectorStore]:
    stores: dict[str, VectorStore] = {
        "memory": InMemoryVectorStore(dimension=D),
        "pinecone": make_store(dimension=D, metric="dotproduct"),
    }
    try:
        from two_stage_rec.stores.faiss import FaissVectorStore
    except ImportError:
        pass  # the comparison with the in-memory reference still runs
    else:
        stores["faiss_flat"] = FaissVectorStore(dimension=D, metric="dotproduct", index="flat")
    return stores


def _key(recommendations: list[list[Recommendation]]) -> list[list[tuple[str, str]]]:
    return [[(r.item_id, r.source) for r in row] for row in recommendations]


@pytest.mark.parametrize("rerank", [True, False])
def test_same_recommendations_as_exact_stores(
    make_store: StoreFactory,
    catalogue: tuple[list[str], np.ndarray, list[dict[str, object]], list[str], np.ndarray],
    rerank: bool,
) -> None:
    items, item_vectors, metadata, users, user_vectors = catalogue
    exclude = {user: items[int(user) : int(user) + 10] for user in users}  # "already rated"
    results: dict[str, list[list[Recommendation]]] = {}
    for name, store in _stores(make_store).items():
        recommender = Recommender(
            user_embedder=TableEmbedder(users, user_vectors),
            item_embedder=TableEmbedder(items, item_vectors),
            store=store,
            reranker=_BilinearReranker(seed=7),
        )
        assert recommender.index_items(items, metadata=metadata, batch_size=150) == len(items)
        results[name] = recommender.recommend_batch(
            users, k=10, candidates=50, exclude=exclude, rerank=rerank
        ) + recommender.recommend_batch(users[:5], k=5, candidates=20, filter={"genres": "Drama"}, rerank=rerank)
    reference = results.pop("memory")
    assert all(len(row) == 10 for row in reference[: len(users)])
    for name, got in results.items():
        assert _key(got) == _key(reference), name
        for got_row, want_row in zip(got, reference, strict=True):
            np.testing.assert_allclose(
                [r.score for r in got_row], [r.score for r in want_row], rtol=1e-5, atol=1e-5, err_msg=name
            )
            np.testing.assert_allclose(
                [r.retrieval_score for r in got_row], [r.retrieval_score for r in want_row], rtol=1e-5, atol=1e-5
            )
            assert [r.metadata["title"] for r in got_row] == [r.metadata["title"] for r in want_row]


def test_exclusions_longer_than_pinecones_payload_limit(make_store: StoreFactory) -> None:
    # candidates + exclusions = 1,150 > the 1,000 Pinecone allows with values or
    # metadata: the Recommender asks for ranks, then fetches the payload.
    rng = np.random.default_rng(5)
    items = [str(i) for i in range(1, 1301)]
    item_vectors = rng.normal(size=(len(items), D)).astype(np.float32)
    metadata: list[dict[str, object]] = [{"title": f"Movie {i}"} for i in items]
    user_vector = rng.normal(size=(1, D)).astype(np.float32)
    ranking = [items[i] for i in np.argsort(-(item_vectors @ user_vector[0]), kind="stable")]
    seen = set(ranking[:1100])
    results = {}
    for name, store in (("memory", InMemoryVectorStore(dimension=D)), ("pinecone", make_store(dimension=D))):
        recommender = Recommender(
            user_embedder=TableEmbedder(["u"], user_vector),
            item_embedder=TableEmbedder(items, item_vectors),
            store=store,
            reranker=_BilinearReranker(seed=3),
        )
        recommender.index_items(items, metadata=metadata)
        results[name] = recommender.recommend("u", k=10, candidates=50, exclude=seen)
    assert _key([results["pinecone"]]) == _key([results["memory"]])
    assert len(results["pinecone"]) == 10 and not {r.item_id for r in results["pinecone"]} & seen
    assert [r.metadata["title"] for r in results["pinecone"]] == [r.metadata["title"] for r in results["memory"]]
