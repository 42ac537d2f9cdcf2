"""Recommender on synthetic vectors where the right answer is known."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from comparisons import assert_same_recommendations
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
from two_stage_rec.protocols import DeclaresInputWidth, Fallback, input_width
from two_stage_rec.rerankers.blend import BlendReranker, BlendWeights
from two_stage_rec.rerankers.mlp import MLPReranker
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
    fallback: Fallback | None = None,
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


class CoarseReranker:
    """Scores an item by the sign of its first coordinate: two values, so most scores tie."""

    def score(self, user_vectors: FloatMatrix, item_vectors: FloatMatrix) -> FloatVector:
        return (item_vectors[:, 0] > 0).astype(np.float32)


@pytest.mark.parametrize("exclude", [None, {"u0": {"i5"}, "u3": {f"i{n}" for n in range(0, 40, 3)}}])
def test_equal_rerank_scores_keep_retrieval_order(world, exclude):
    items, users, _, user_ids = world
    recommender = build(world, CoarseReranker())  # type: ignore[arg-type]
    batch = recommender.recommend_batch(user_ids, k=12, candidates=30, exclude=exclude)
    for row, user in enumerate(user_ids):
        skipped = (exclude or {}).get(user, set())
        retrieved = [n for n in oracle(items, users[row], range(N_ITEMS)) if f"i{n}" not in skipped][:30]
        # Positive first coordinate first; within each score, retrieval order (a stable sort).
        expected = [n for n in retrieved if items[n, 0] > 0] + [n for n in retrieved if items[n, 0] <= 0]
        assert [r.item_id for r in batch[row]] == [f"i{n}" for n in expected[:12]]
        assert {r.source for r in batch[row]} == {"reranked"}
    constant = build(world, CountingDotReranker(np.zeros(DIM, np.float32)))  # every score 0
    for user in user_ids:
        reranked = constant.recommend(user, k=10, candidates=30)
        assert [r.item_id for r in reranked] == [r.item_id for r in constant.recommend(user, k=10, rerank=False)]


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
        # Ids exactly; scores (retrieval and rerank) to a tolerance: a batched matmul may round
        # differently from a single-row one.
        assert_same_recommendations(recommendations, single)


def test_unknown_user_raises_typed_error(world):
    recommender = build(world)
    with pytest.raises(UnknownUserError) as caught:
        recommender.recommend("nobody")
    assert caught.value.keys == ["nobody"]
    assert isinstance(caught.value, KeyError)
    assert "nobody" in str(caught.value)


class NewestFirstFallback:
    """A cold-start policy of a third party's own: any Fallback is accepted, not only PopularityFallback."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, frozenset[str]]] = []

    def top(self, k, *, exclude=(), filter=None):  # type: ignore[no-untyped-def]
        self.asked.append((k, frozenset(exclude)))
        newest = [f"i{n}" for n in range(N_ITEMS - 1, -1, -1) if f"i{n}" not in exclude]
        return [(item, float(-rank), {"rank": rank}) for rank, item in enumerate(newest[:k])]


def test_any_fallback_answers_unknown_users(world):
    fallback = NewestFirstFallback()
    assert isinstance(fallback, Fallback) and isinstance(PopularityFallback(["a"]), Fallback)
    recommender = build(world, fallback=fallback)
    known, unknown = recommender.recommend_batch(["u0", "stranger"], k=3, exclude={"stranger": {"i199"}})
    assert {r.source for r in known} == {"retrieval"}
    assert [(r.item_id, r.score, r.source) for r in unknown] == [
        ("i198", 0.0, "fallback"),
        ("i197", -1.0, "fallback"),
        ("i196", -2.0, "fallback"),
    ]
    assert fallback.asked == [(3, frozenset({"i199"}))]


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


def test_rerankers_declare_their_input_width_and_a_mismatch_fails_at_build(world):
    _, users, _, user_ids = world
    rng = np.random.default_rng(0)

    def mlp(user_dimension: int, item_dimension: int) -> MLPReranker:
        first = rng.normal(size=(user_dimension + item_dimension, 4))
        return MLPReranker([first, rng.normal(size=(4, 1))], [np.zeros(4), np.zeros(1)], user_dimension=user_dimension)

    fits, too_wide = mlp(DIM, DIM), mlp(DIM, DIM + 1)
    assert isinstance(fits, DeclaresInputWidth) and fits.input_width == 2 * DIM
    blend = BlendReranker(BlendWeights(retrieval=1.0, rating=0.5, item=None), rating_model=too_wide)
    assert input_width(blend) == 2 * DIM + 1 and input_width(CountingDotReranker(np.ones(DIM, np.float32))) is None
    assert input_width(BlendReranker(BlendWeights(retrieval=1.0, rating=0.0, item=None))) is None
    for reranker in (too_wide, blend):
        with pytest.raises(DimensionMismatchError, match="concatenated user and item vectors have dimension 16"):
            Recommender(user_embedder=TableEmbedder(user_ids, users), store=InMemoryVectorStore(dimension=DIM),
                        reranker=reranker)  # fmt: skip
    Recommender(user_embedder=TableEmbedder(user_ids, users), store=InMemoryVectorStore(dimension=DIM), reranker=fits)
