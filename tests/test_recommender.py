"""Recommender on synthetic vectors where the right answer is known."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from two_stage_rec import (
    DimensionMismatchError,
    InvalidIdError,
    InvalidInputError,
    PartialWriteError,
    PopularityFallback,
    Recommender,
    UnknownKeyError,
    UnknownUserError,
)
from two_stage_rec.embedders import TableEmbedder
from two_stage_rec.stores.memory import InMemoryVectorStore
from two_stage_rec.types import FloatMatrix, FloatVector

DIM = 8
N_ITEMS = 200
N_USERS = 6


class CountingDotReranker:
    """Scores a pair by a fixed linear map of the item vector, and counts calls.

    Ranking by ``item @ w`` is independent of retrieval order, so reranked
    results are predictable with numpy.
    """

    def __init__(self, weights: FloatVector) -> None:
        self.weights = weights
        self.calls = 0
        self.pairs = 0

    def score(self, user_vectors: FloatMatrix, item_vectors: FloatMatrix) -> FloatVector:
        self.calls += 1
        self.pairs += len(item_vectors)
        assert user_vectors.shape == item_vectors.shape
        return (item_vectors @ self.weights).astype(np.float32)


@pytest.fixture()
def world() -> tuple[FloatMatrix, FloatMatrix, list[str], list[str]]:
    rng = np.random.default_rng(7)
    items = rng.normal(size=(N_ITEMS, DIM)).astype(np.float32)
    users = rng.normal(size=(N_USERS, DIM)).astype(np.float32)
    return items, users, [f"i{n}" for n in range(N_ITEMS)], [f"u{n}" for n in range(N_USERS)]


def build(
    world: tuple[FloatMatrix, FloatMatrix, list[str], list[str]],
    reranker: CountingDotReranker | None = None,
    fallback: PopularityFallback | None = None,
) -> Recommender:
    items, users, item_ids, user_ids = world
    recommender = Recommender(
        user_embedder=TableEmbedder(user_ids, users),
        item_embedder=TableEmbedder(item_ids, items),
        store=InMemoryVectorStore(dimension=DIM),
        reranker=reranker,
        fallback=fallback,
    )
    metadata = [{"parity": "even" if n % 2 == 0 else "odd", "n": n} for n in range(N_ITEMS)]
    assert recommender.index_items(item_ids, metadata=metadata, batch_size=64) == N_ITEMS
    return recommender


def oracle(items: FloatMatrix, user: FloatMatrix, allowed: Sequence[int]) -> list[int]:
    scores = items @ user
    return sorted(allowed, key=lambda n: -scores[n])


def test_retrieval_only_equals_numpy_ranking(world):
    items, users, _, _ = world
    recommender = build(world)
    got = recommender.recommend("u0", k=5, rerank=False)
    expected = oracle(items, users[0], range(N_ITEMS))[:5]
    assert [r.item_id for r in got] == [f"i{n}" for n in expected]
    assert all(r.source == "retrieval" for r in got)
    assert [r.score for r in got] == sorted((r.score for r in got), reverse=True)
    np.testing.assert_allclose([r.score for r in got], items[expected] @ users[0], rtol=1e-5)


def test_rerank_reorders_the_candidates_only(world):
    items, users, _, _ = world
    weights = np.random.default_rng(1).normal(size=DIM).astype(np.float32)
    reranker = CountingDotReranker(weights)
    recommender = build(world, reranker)
    got = recommender.recommend("u0", k=5, candidates=20)
    candidates = oracle(items, users[0], range(N_ITEMS))[:20]
    expected = sorted(candidates, key=lambda n: -(items[n] @ weights))[:5]
    assert [r.item_id for r in got] == [f"i{n}" for n in expected]
    assert all(r.source == "reranked" for r in got)
    # retrieval_score is still the store's similarity for that item.
    np.testing.assert_allclose([r.retrieval_score for r in got], items[expected] @ users[0], rtol=1e-5)
    assert reranker.calls == 1 and reranker.pairs == 20


def test_exclude_over_fetches_so_k_still_come_back(world):
    items, users, _, _ = world
    recommender = build(world)
    ranking = oracle(items, users[1], range(N_ITEMS))
    excluded = {f"i{n}" for n in ranking[:30]}
    got = recommender.recommend("u1", k=10, candidates=10, exclude=excluded, rerank=False)
    assert [r.item_id for r in got] == [f"i{n}" for n in ranking[30:40]]


def test_filter_and_exclude_together_still_return_k(world):
    items, users, _, _ = world
    recommender = build(world)
    even = [n for n in range(N_ITEMS) if n % 2 == 0]
    ranking = oracle(items, users[2], even)
    excluded = {f"i{n}" for n in ranking[:15]}
    got = recommender.recommend(
        "u2", k=7, candidates=7, exclude=excluded, filter={"parity": "even"}, rerank=False
    )
    assert [r.item_id for r in got] == [f"i{n}" for n in ranking[15:22]]
    assert all(r.metadata["parity"] == "even" for r in got)


def test_fewer_than_k_only_when_the_catalogue_has_fewer(world):
    recommender = build(world)
    got = recommender.recommend("u0", k=10, filter={"n": {"$lt": 4}}, rerank=False)
    assert sorted(r.item_id for r in got) == ["i0", "i1", "i2", "i3"]


def test_batch_matches_single_calls_with_one_reranker_call(world):
    weights = np.ones(DIM, dtype=np.float32)
    reranker = CountingDotReranker(weights)
    recommender = build(world, reranker)
    users = [f"u{n}" for n in range(N_USERS)]
    exclude = {"u3": {"i1", "i2", "i3"}}
    batch = recommender.recommend_batch(users, k=4, candidates=12, exclude=exclude)
    assert reranker.calls == 1
    assert reranker.pairs == N_USERS * 12
    for user, recommendations in zip(users, batch, strict=True):
        single = recommender.recommend(user, k=4, candidates=12, exclude=exclude.get(user, ()))
        assert [r.item_id for r in recommendations] == [r.item_id for r in single]
        # A batched matmul may round differently from a single-row one.
        np.testing.assert_allclose(
            [r.retrieval_score for r in recommendations], [r.retrieval_score for r in single], rtol=1e-5
        )
        assert [r.score for r in recommendations] == [r.score for r in single]


def test_unknown_user_raises_typed_error(world):
    recommender = build(world)
    with pytest.raises(UnknownUserError) as caught:
        recommender.recommend("nobody")
    assert caught.value.keys == ["nobody"]
    assert isinstance(caught.value, KeyError)
    assert "nobody" in str(caught.value)


def test_cold_start_fallback_is_marked_and_respects_exclude_and_filter(world):
    fallback = PopularityFallback(
        ["i5", "i4", "i3", "i2", "i1"],
        metadata={f"i{n}": {"parity": "even" if n % 2 == 0 else "odd"} for n in range(6)},
    )
    recommender = build(world, fallback=fallback)
    got = recommender.recommend("nobody", k=2, exclude={"i5"})
    assert [r.item_id for r in got] == ["i4", "i3"]
    assert all(r.source == "fallback" and np.isnan(r.retrieval_score) for r in got)
    filtered = recommender.recommend("nobody", k=5, filter={"parity": "even"})
    assert [r.item_id for r in filtered] == ["i4", "i2"]
    # Known and unknown users mixed in one batch: each gets its own kind.
    mixed = recommender.recommend_batch(["u0", "nobody"], k=2)
    assert mixed[0][0].source == "retrieval" and mixed[1][0].source == "fallback"


def test_popularity_from_interactions_orders_by_count():
    fallback = PopularityFallback.from_interactions(["b", "a", "b", "c", "b", "a"])
    assert [item for item, _, _ in fallback.top(3)] == ["b", "a", "c"]
    assert [score for _, score, _ in fallback.top(3)] == [3.0, 2.0, 1.0]


def test_dimension_mismatch_is_caught_at_construction(world):
    items, _, item_ids, _ = world
    with pytest.raises(DimensionMismatchError):
        Recommender(
            user_embedder=TableEmbedder(["u"], np.ones((1, DIM + 1))),
            item_embedder=TableEmbedder(item_ids, items),
            store=InMemoryVectorStore(dimension=DIM),
        )


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"k": 0}, InvalidInputError),
        ({"k": 5, "candidates": 3}, InvalidInputError),
        ({"k": True}, InvalidInputError),
    ],
)
def test_bad_request_arguments(world, kwargs, error):
    recommender = build(world)
    with pytest.raises(error):
        recommender.recommend("u0", **kwargs)


def test_user_ids_must_be_strings(world):
    recommender = build(world)
    with pytest.raises(InvalidIdError):
        recommender.recommend_batch([42])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError):
        recommender.recommend_batch("u0")


def test_index_items_keys_let_model_and_store_differ(world):
    items, users, _, _ = world
    titles = [f"Movie {n} (1995)" for n in range(N_ITEMS)]
    recommender = Recommender(
        user_embedder=TableEmbedder(["u0"], users[:1]),
        item_embedder=TableEmbedder(titles, items),
        store=InMemoryVectorStore(dimension=DIM),
    )
    recommender.index_items([str(n) for n in range(N_ITEMS)], keys=titles)
    top = recommender.recommend("u0", k=1, rerank=False)[0]
    assert top.item_id == str(oracle(items, users[0], range(N_ITEMS))[0])


def test_index_items_validates_everything_before_writing(world):
    items, users, item_ids, user_ids = world
    store = InMemoryVectorStore(dimension=DIM)
    recommender = Recommender(
        user_embedder=TableEmbedder(user_ids, users), item_embedder=TableEmbedder(item_ids, items), store=store
    )
    with pytest.raises(InvalidInputError):
        recommender.index_items(["i0", "i1", "i0"])
    with pytest.raises(InvalidInputError):
        recommender.index_items(["i0", "i1"], metadata=[{"ok": 1}, {"bad": None}])
    with pytest.raises(InvalidInputError):
        recommender.index_items(["i0", "i1"], keys=["i0"])
    assert store.describe().count == 0


def test_index_items_failure_in_a_later_batch_names_what_landed(world):
    items, users, item_ids, user_ids = world
    store = InMemoryVectorStore(dimension=DIM)
    recommender = Recommender(
        user_embedder=TableEmbedder(user_ids, users), item_embedder=TableEmbedder(item_ids, items), store=store
    )
    keys = [*item_ids[:10], "not-a-known-key", *item_ids[11:20]]
    with pytest.raises(PartialWriteError) as caught:
        recommender.index_items(item_ids[:20], keys=keys, batch_size=5)
    assert caught.value.written_ids == item_ids[:10]
    assert caught.value.failed_ids == item_ids[10:20]
    assert isinstance(caught.value.__cause__, UnknownKeyError)
    assert store.describe().count == 10


def test_index_items_first_batch_failure_raises_the_original_error(world):
    items, users, item_ids, user_ids = world
    recommender = Recommender(
        user_embedder=TableEmbedder(user_ids, users),
        item_embedder=TableEmbedder(item_ids, items),
        store=InMemoryVectorStore(dimension=DIM),
    )
    with pytest.raises(UnknownKeyError):
        recommender.index_items(["x"], keys=["missing"])


def test_reranker_input_width_is_checked_at_construction(world):
    _, users, _, user_ids = world

    class WideReranker(CountingDotReranker):
        input_width = 3 * DIM

    with pytest.raises(DimensionMismatchError):
        Recommender(
            user_embedder=TableEmbedder(user_ids, users),
            store=InMemoryVectorStore(dimension=DIM),
            reranker=WideReranker(np.ones(DIM, np.float32)),
        )


class PayloadCappedStore(InMemoryVectorStore):
    """An exact store that, like Pinecone, refuses values/metadata above a top_k."""

    max_top_k_with_payload = 20

    def query(self, vectors, top_k, *, filter=None, include_values=False, include_metadata=False):  # type: ignore[no-untyped-def]
        if (include_values or include_metadata) and top_k > self.max_top_k_with_payload:
            raise InvalidInputError(f"top_k={top_k} with payload exceeds {self.max_top_k_with_payload}")
        return super().query(
            vectors, top_k, filter=filter, include_values=include_values, include_metadata=include_metadata
        )


def test_long_exclusions_past_a_stores_payload_limit_still_return_k(world):
    items, users, item_ids, user_ids = world
    weights = np.random.default_rng(3).normal(size=DIM).astype(np.float32)
    results = {}
    for name, store in (("capped", PayloadCappedStore(dimension=DIM)), ("plain", InMemoryVectorStore(dimension=DIM))):
        recommender = Recommender(
            user_embedder=TableEmbedder(user_ids, users),
            item_embedder=TableEmbedder(item_ids, items),
            store=store,
            reranker=CountingDotReranker(weights),
        )
        recommender.index_items(item_ids, metadata=[{"n": n} for n in range(N_ITEMS)])
        ranking = oracle(items, users[0], range(N_ITEMS))
        exclude = {"u0": {f"i{n}" for n in ranking[:30]}, "u1": {"i0"}}  # u0 needs top_k 40 > 20
        results[name] = recommender.recommend_batch(["u0", "u1", "u2"], k=5, candidates=10, exclude=exclude)
        single = recommender.recommend("u0", k=5, candidates=10, exclude=exclude["u0"], rerank=False)
        assert [r.item_id for r in single] == [f"i{n}" for n in ranking[30:35]]
    assert results["capped"] == results["plain"]
    assert all(len(row) == 5 for row in results["capped"])
