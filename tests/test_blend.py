"""BlendReranker and fit_blend on a synthetic world where the right blend is known.

Users like items by ``<u, v[:3]> + 3 * v[3]``: the last item coordinate is a
"popularity" the user vectors cannot see (their last coordinate is 0), so a
dot-product retrieval ranks by taste alone. A blend that learns an item prior
along v[3] (or trusts a rating model that knows it) must rank the items users
actually pick higher than retrieval does.
"""

from __future__ import annotations

import numpy as np
import pytest

from two_stage_rec import Recommender
from two_stage_rec.datasets import Interactions
from two_stage_rec.embedders.table import TableEmbedder
from two_stage_rec.errors import InvalidInputError, ModelError
from two_stage_rec.evaluation import evaluate
from two_stage_rec.rerankers.blend import BlendReranker, BlendWeights, fit_blend, hold_out_items
from two_stage_rec.stores.memory import InMemoryVectorStore
from two_stage_rec.types import FloatMatrix, FloatVector

N_USERS, N_ITEMS, PICKS = 120, 200, 12


class KnowsPopularity:
    """A 'rating model' that sees only the hidden popularity coordinate."""

    def score(self, user_vectors: FloatMatrix, item_vectors: FloatMatrix) -> FloatVector:
        return np.asarray(item_vectors[:, 3], dtype=np.float32)


class FixedRatings:
    def score(self, user_vectors: FloatMatrix, item_vectors: FloatMatrix) -> FloatVector:
        return np.array([4.0, 5.0], np.float32)


def world(seed: int = 0) -> tuple[TableEmbedder, InMemoryVectorStore, list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    users = rng.normal(size=(N_USERS, 4)).astype(np.float32)
    users[:, 3] = 0.0
    items = rng.normal(size=(N_ITEMS, 4)).astype(np.float32)
    user_ids = [f"u{i}" for i in range(N_USERS)]
    item_ids = np.array([f"i{j}" for j in range(N_ITEMS)])
    store = InMemoryVectorStore(dimension=4)
    store.upsert(list(item_ids), items)
    return TableEmbedder(user_ids, users), store, user_ids, items, item_ids


def picks(users: TableEmbedder, items: np.ndarray, item_ids: np.ndarray, seed: int) -> dict[str, set[str]]:
    """Each user picks PICKS items with probability softmax(taste + 3 * popularity)."""
    rng = np.random.default_rng(seed)
    utility = users.vectors[:, :3] @ items[:, :3].T + 3.0 * items[:, 3][None, :]
    chosen: dict[str, set[str]] = {}
    for row, user in enumerate(users.keys):
        p = np.exp(utility[row] - utility[row].max())
        chosen[user] = set(rng.choice(item_ids, size=PICKS, replace=False, p=p / p.sum()).tolist())
    return chosen


def as_log(by_user: dict[str, set[str]]) -> Interactions:
    pairs = [(user, item) for user, items in sorted(by_user.items()) for item in sorted(items)]
    return Interactions.from_arrays(user_ids=[u for u, _ in pairs], item_ids=[i for _, i in pairs])


def test_fit_learns_the_hidden_item_prior_and_beats_retrieval_on_fresh_picks() -> None:
    users, store, _, items, item_ids = world()
    train = picks(users, items, item_ids, seed=1)
    seen, targets = hold_out_items(train, fraction=0.3, seed=0)
    blend = fit_blend(user_embedder=users, store=store, seen=seen, targets=targets, candidates=60)
    assert blend.metric == "dotproduct"
    assert blend.weights.retrieval > 0
    assert blend.weights.item is not None
    assert blend.weights.item[3] > 0.5 and np.abs(blend.weights.item[:3]).max() < blend.weights.item[3]

    test = picks(users, items, item_ids, seed=2)
    test = {user: test[user] - train[user] for user in test}
    recommender = Recommender(user_embedder=users, store=store, reranker=blend)
    result = evaluate(recommender, as_log(train), as_log(test), k=10, candidates=60, n_resamples=500)
    assert result.metric("reranked", "ndcg") > result.metric("retrieval", "ndcg") + 0.05
    assert result.comparisons["reranked vs retrieval"]["ndcg"].verdict() == "better"


def test_fit_trusts_a_rating_model_that_carries_the_missing_signal() -> None:
    users, store, _, items, item_ids = world()
    seen, targets = hold_out_items(picks(users, items, item_ids, seed=1), fraction=0.3, seed=0)
    blend = fit_blend(
        user_embedder=users, store=store, seen=seen, targets=targets, rating_model=KnowsPopularity(), item_prior=False
    )
    assert blend.weights.item is None
    assert blend.weights.rating > 0.5 and blend.weights.retrieval > 0


class Logit:
    """A relevance model in logit units: an affine image of KnowsPopularity, negative for most items."""

    def score(self, user_vectors: FloatMatrix, item_vectors: FloatMatrix) -> FloatVector:
        return np.asarray(7.0 * item_vectors[:, 3] - 4.0, dtype=np.float32)


def test_the_scoring_model_may_be_a_logit_on_any_scale() -> None:
    # Nothing assumes a 1..5 rating: a model with another scale and offset gets the same ranking.
    users, store, user_ids, items, item_ids = world()
    seen, targets = hold_out_items(picks(users, items, item_ids, seed=1), fraction=0.3, seed=0)
    common = {"user_embedder": users, "store": store, "seen": seen, "targets": targets, "item_prior": False}
    rating = fit_blend(rating_model=KnowsPopularity(), **common)  # type: ignore[arg-type]
    logit = fit_blend(rating_model=Logit(), **common)  # type: ignore[arg-type]
    assert logit.weights.rating == pytest.approx(rating.weights.rating / 7.0, rel=1e-4)
    assert logit.weights.retrieval == pytest.approx(rating.weights.retrieval, rel=1e-4)
    u = users.embed(user_ids[:5] * 40)
    v = items[np.arange(200)].astype(np.float32)
    shift = logit.score(u, v).astype(np.float64) - rating.score(u, v)
    assert np.ptp(shift) < 1e-4  # a constant offset: the same ranking for every user


def test_score_is_the_documented_formula() -> None:
    u = np.array([[1.0, 2.0], [0.5, -1.0]], np.float32)
    v = np.array([[3.0, 1.0], [2.0, 2.0]], np.float32)
    blend = BlendReranker(
        BlendWeights(retrieval=2.0, rating=0.5, item=np.array([1.0, -1.0], np.float32), bias=0.25),
        rating_model=FixedRatings(),
    )
    expected = 2.0 * np.array([5.0, -1.0]) + 0.5 * np.array([4.0, 5.0]) + np.array([2.0, 0.0]) + 0.25
    np.testing.assert_allclose(blend.score(u, v), expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("metric", "expected"),
    [("dotproduct", [5.0]), ("cosine", [5.0 / (np.sqrt(5.0) * np.sqrt(10.0))]), ("euclidean", [-5.0])],
)
def test_retrieval_term_matches_the_store_metric(metric: str, expected: list[float]) -> None:
    blend = BlendReranker(BlendWeights(retrieval=1.0, rating=0.0, item=None), metric=metric)  # type: ignore[arg-type]
    score = blend.score(np.array([[1.0, 2.0]], np.float32), np.array([[3.0, 1.0]], np.float32))
    np.testing.assert_allclose(score, expected, rtol=1e-6)


def test_save_and_load_round_trip(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "blend.npz"
    blend = BlendReranker(
        BlendWeights(retrieval=1.5, rating=0.0, item=np.array([0.1, 0.2], np.float32), bias=0.0), metric="cosine"
    )
    blend.save(path)
    again = BlendReranker.load(path)
    assert again.metric == "cosine" and again.weights.retrieval == 1.5
    x = np.array([[1.0, 0.0], [0.2, 0.3]], np.float32)
    np.testing.assert_array_equal(again.score(x, x), blend.score(x, x))
    (path.parent / "junk.npz").write_bytes(b"not an npz")
    with pytest.raises(ModelError):
        BlendReranker.load(path.parent / "junk.npz")


def test_bad_configuration_is_rejected() -> None:
    with pytest.raises(InvalidInputError):
        BlendReranker(BlendWeights(retrieval=1.0, rating=1.0, item=None))  # rating weight, no model
    with pytest.raises(InvalidInputError):
        BlendReranker(BlendWeights(retrieval=1.0, rating=0.0, item=None), metric="manhattan")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        hold_out_items({"u": {"a", "b"}}, fraction=1.0)
    users, store, _, _, _ = world()
    with pytest.raises(InvalidInputError, match="no target"):
        fit_blend(user_embedder=users, store=store, seen={}, targets={"u0": {"not-an-item"}})


def test_hold_out_items_hides_a_fraction_and_skips_small_users() -> None:
    seen, targets = hold_out_items({"a": {str(i) for i in range(10)}, "b": {"x", "y"}}, fraction=0.2, min_items=5)
    assert set(targets) == {"a"} and len(targets["a"]) == 2 and len(seen["a"]) == 8
    assert seen["a"] | targets["a"] == {str(i) for i in range(10)}


def test_moved_to_reexpresses_the_item_prior_in_another_embedding_space() -> None:
    rng = np.random.default_rng(3)
    source = rng.normal(size=(50, 4)).astype(np.float32)
    rotation, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    target = (source @ rotation).astype(np.float32)  # same items, rotated space: the prior is reproducible
    blend = BlendReranker(BlendWeights(retrieval=2.0, rating=0.0, item=np.array([1.0, 0.0, -1.0, 0.5], np.float32)))
    moved, r2 = blend.moved_to(source, target, rating_model=KnowsPopularity())
    assert r2 == pytest.approx(1.0, abs=1e-6)
    assert moved.weights.retrieval == 2.0 and moved.rating_model is not None
    assert moved.weights.item is not None and blend.weights.item is not None
    np.testing.assert_allclose(target @ moved.weights.item, source @ blend.weights.item, atol=1e-4)
    # a target space that cannot express the prior reports it through r2
    _, poor = blend.moved_to(source, rng.normal(size=(50, 4)).astype(np.float32))
    assert poor < 0.5
    with pytest.raises(InvalidInputError):
        blend.moved_to(source, target[:10])
    unchanged, r2_none = BlendReranker(BlendWeights(retrieval=1.0, rating=0.0, item=None)).moved_to(source, target)
    assert r2_none == 1.0 and unchanged.weights.item is None
