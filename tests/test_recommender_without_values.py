"""A store that cannot return its vectors is still reranked: the item embedder supplies them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from comparisons import assert_same_recommendations
from two_stage_rec import InvalidInputError, Recommendation, Recommender, UnknownKeyError
from two_stage_rec.embedders import TableEmbedder
from two_stage_rec.protocols import DeclaresValues, VectorStore, returns_values
from two_stage_rec.stores.memory import InMemoryVectorStore
from two_stage_rec.testing import VectorStoreContract
from two_stage_rec.types import FetchResult, Filter, FloatMatrix, FloatVector, Metadata, Metric, QueryResult, StoreStats

D = 8
N_ITEMS = 120
USERS = [f"u{n}" for n in range(7)]


class RanksOnlyStore:
    """Wraps a store and answers with ids, scores and metadata only (like a
    search service that keeps no vectors); declares ``returns_values = False``."""

    is_exact = True
    supports_persistence = False
    returns_values = False

    def __init__(self, inner: VectorStore) -> None:
        self._inner = inner
        self.asked_for_values = 0

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    @property
    def metric(self) -> Metric:
        return self._inner.metric

    def upsert(self, ids: Sequence[str], vectors: npt.ArrayLike, metadata: Sequence[Metadata] | None = None) -> int:
        return self._inner.upsert(ids, vectors, metadata)

    def query(
        self,
        vectors: npt.ArrayLike,
        top_k: int,
        *,
        filter: Filter | None = None,
        include_values: bool = False,
        include_metadata: bool = False,
    ) -> QueryResult:
        self.asked_for_values += include_values
        return self._inner.query(vectors, top_k, filter=filter, include_metadata=include_metadata)

    def fetch(self, ids: Sequence[str]) -> FetchResult:
        return self._inner.fetch(ids)

    def delete(self, ids: Sequence[str]) -> None:
        self._inner.delete(ids)

    def describe(self) -> StoreStats:
        return self._inner.describe()


class TestRanksOnlyStoreContract(VectorStoreContract):
    """The contract suite skips the include_values tests for it, and says why."""

    def make_store(self, dimension: int, metric: Metric) -> VectorStore:
        return RanksOnlyStore(InMemoryVectorStore(dimension=dimension, metric=metric))


class CountingEmbedder(TableEmbedder):
    def __init__(self, keys: Sequence[str], vectors: npt.ArrayLike) -> None:
        super().__init__(keys, vectors)
        self.calls: list[list[str]] = []

    def embed(self, keys: Sequence[str]) -> FloatMatrix:
        self.calls.append(list(keys))
        return super().embed(keys)


class BilinearReranker:
    def __init__(self) -> None:
        self._w = np.random.default_rng(4).normal(size=(D, D)).astype(np.float32)

    def score(self, user_vectors: FloatMatrix, item_vectors: FloatMatrix) -> FloatVector:
        return np.einsum("ij,jk,ik->i", user_vectors, self._w, item_vectors).astype(np.float32)


@pytest.fixture()
def world() -> tuple[list[str], FloatMatrix, FloatMatrix, list[Metadata]]:
    rng = np.random.default_rng(11)
    items = [f"i{n}" for n in range(N_ITEMS)]
    metadata: list[Metadata] = [{"even": n % 2 == 0} for n in range(N_ITEMS)]
    return (
        items,
        rng.normal(size=(N_ITEMS, D)).astype(np.float32),
        rng.normal(size=(len(USERS), D)).astype(np.float32),
        metadata,
    )


def _recommender(world, store: VectorStore, item_embedder: TableEmbedder) -> Recommender:  # type: ignore[no-untyped-def]
    items, _, user_vectors, metadata = world
    recommender = Recommender(
        user_embedder=TableEmbedder(USERS, user_vectors),
        item_embedder=item_embedder,
        store=store,
        reranker=BilinearReranker(),
    )
    recommender.index_items(items, metadata=metadata)
    return recommender


def _assert_same(got: list[list[Recommendation]], want: list[list[Recommendation]]) -> None:
    assert len(got) == len(want)
    for got_row, want_row in zip(got, want, strict=True):
        assert_same_recommendations(got_row, want_row, atol=1e-5)


@pytest.mark.parametrize(
    "exclude",
    [
        None,  # every row full: the slicing fast path
        {user: {"i3", f"i{n + 10}"} for n, user in enumerate(USERS)},  # one query, candidates gathered per pair
        {"u0": {"i3", "i4"}, "u2": {f"i{n}" for n in range(40)}},  # one query per group of exclusion sizes
    ],
    ids=["no_exclusions", "exclusions", "grouped_exclusions"],
)
def test_reranks_with_the_item_embedders_vectors(world, exclude) -> None:  # type: ignore[no-untyped-def]
    items, item_vectors, _, _ = world
    store = RanksOnlyStore(InMemoryVectorStore(dimension=D))
    assert isinstance(store, DeclaresValues) and not returns_values(store)
    embedder = CountingEmbedder(items, item_vectors)
    without_values = _recommender(world, store, embedder)
    reference = _recommender(world, InMemoryVectorStore(dimension=D), TableEmbedder(items, item_vectors))
    embedder.calls.clear()
    got = without_values.recommend_batch(USERS, k=6, candidates=20, exclude=exclude)
    _assert_same(got, reference.recommend_batch(USERS, k=6, candidates=20, exclude=exclude))
    assert {r.source for row in got for r in row} == {"reranked"}
    assert store.asked_for_values == 0
    # One embedder call for the batch, each distinct candidate once.
    assert len(embedder.calls) == 1 and len(embedder.calls[0]) == len(set(embedder.calls[0])) <= len(USERS) * 20
    filtered = without_values.recommend("u1", k=4, candidates=10, filter={"even": True})
    _assert_same([filtered], [reference.recommend("u1", k=4, candidates=10, filter={"even": True})])
    embedder.calls.clear()
    without_values.recommend("u1", k=4, rerank=False)
    assert embedder.calls == []  # retrieval order needs no item vectors


def test_reranking_a_store_without_values_needs_an_item_embedder(world) -> None:  # type: ignore[no-untyped-def]
    _, _, user_vectors, _ = world
    store = RanksOnlyStore(InMemoryVectorStore(dimension=D))
    with pytest.raises(InvalidInputError, match="RanksOnlyStore does not return stored vectors"):
        Recommender(user_embedder=TableEmbedder(USERS, user_vectors), store=store, reranker=BilinearReranker())
    Recommender(user_embedder=TableEmbedder(USERS, user_vectors), store=store)  # no reranker: nothing to embed


def test_an_item_embedder_keyed_by_something_else_fails_by_item_id(world) -> None:  # type: ignore[no-untyped-def]
    items, item_vectors, _, _ = world
    titles = [f"Title of {item}" for item in items]
    store = RanksOnlyStore(InMemoryVectorStore(dimension=D))
    recommender = _recommender(world, store, TableEmbedder(items, item_vectors))
    recommender.item_embedder = TableEmbedder(titles, item_vectors)  # indexed by id, embedder now knows titles
    with pytest.raises(UnknownKeyError, match="unknown item id"):
        recommender.recommend("u0", k=3)
