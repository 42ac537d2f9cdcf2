"""evaluate() on a synthetic recommender whose every ranking is known in advance.

Six items i0..i5 on a line: item j has vector [6 - j, 0]. Users u1 and u3 have
vector [1, 0] (they rank i0 > i1 > ... > i5), u2 has [-1, 0] (i5 > ... > i0).
The reranker reverses retrieval order. With k = 2 and every item a candidate:

    user  train     test   retrieval (seen removed)   reranked      most popular
    u1    {i0}      {i1}   [i1, i2]  NDCG 1           [i5, i4]  0   [i2, i5]  0
    u2    {i5}      {i0}   [i4, i3]  0                [i0, i1]  1   [i0, i2]  1
    u3    {i0, i2}  {i1}   [i1, i3]  1                [i5, i4]  0   [i5, ""]  0

(popularity from training counts: i0 twice, i2 and i5 once, ties by id.)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from two_stage_rec import Recommender
from two_stage_rec.datasets import Interactions
from two_stage_rec.embedders.table import TableEmbedder
from two_stage_rec.errors import InvalidInputError
from two_stage_rec.evaluation import evaluate, most_popular_ranking, rating_errors
from two_stage_rec.stores.memory import InMemoryVectorStore
from two_stage_rec.types import FloatMatrix, FloatVector

ITEMS = [f"i{j}" for j in range(6)]


class Reverse:
    """Scores a pair by minus its dot product: reverses retrieval order."""

    def score(self, user_vectors: FloatMatrix, item_vectors: FloatMatrix) -> FloatVector:
        return -np.einsum("ij,ij->i", user_vectors, item_vectors).astype(np.float32)


class Constant:
    def __init__(self, value: float) -> None:
        self.value = value

    def score(self, user_vectors: FloatMatrix, item_vectors: FloatMatrix) -> FloatVector:
        return np.full(user_vectors.shape[0], self.value, np.float32)


def build(reranker: object | None = None) -> Recommender:
    users = TableEmbedder(["u1", "u2", "u3"], [[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])
    items = TableEmbedder(ITEMS, [[6.0 - j, 0.0] for j in range(6)])
    recommender = Recommender(
        user_embedder=users,
        item_embedder=items,
        store=InMemoryVectorStore(dimension=2),
        reranker=reranker,  # type: ignore[arg-type]
    )
    recommender.index_items(ITEMS)
    return recommender


TRAIN = Interactions(
    user_ids=np.array(["u1", "u2", "u3", "u3"]),
    item_ids=np.array(["i0", "i5", "i0", "i2"]),
    ratings=np.array([5, 4, 3, 2], np.float32),
)
TEST = Interactions.from_arrays(user_ids=["u1", "u2", "u3"], item_ids=["i1", "i0", "i1"], ratings=[4.0, 2.0, 5.0])


def log(users: list[str], items: list[str], ratings: list[float] | None = None) -> Interactions:
    return Interactions.from_arrays(user_ids=users, item_ids=items, ratings=ratings)


def test_every_ranking_and_metric_matches_the_hand_worked_answer() -> None:
    result = evaluate(build(Reverse()), TRAIN, TEST, k=2, cutoffs=(1, 2), candidates=6, n_resamples=500)
    assert list(result.rankers) == ["retrieval", "reranked", "most_popular"]
    assert result.n_users == 3 and result.skipped_users == 0 and result.catalog_size == 6

    assert result.metric("retrieval", "ndcg") == pytest.approx(2 / 3)
    assert result.metric("reranked", "ndcg") == pytest.approx(1 / 3)
    assert result.metric("most_popular", "ndcg") == pytest.approx(1 / 3)
    assert result.metric("retrieval", "recall") == pytest.approx(2 / 3)
    assert result.metric("retrieval", "precision") == pytest.approx(1 / 3)  # 2 hits in 6 slots
    assert result.metric("retrieval", "hit_rate", k=1) == pytest.approx(2 / 3)
    assert result.metric("retrieval", "map") == pytest.approx(2 / 3)
    assert result.rankers["retrieval"].metrics["coverage@2"] == pytest.approx(4 / 6)  # i1 i2 i3 i4
    assert result.rankers["reranked"].metrics["coverage@2"] == pytest.approx(4 / 6)  # i5 i4 i0 i1
    np.testing.assert_allclose(result.rankers["reranked"].per_user["ndcg"], [0.0, 1.0, 0.0])

    ndcg = result.comparisons["reranked vs retrieval"]["ndcg"]
    assert ndcg.mean_difference == pytest.approx(-1 / 3)
    assert (ndcg.wins, ndcg.losses, ndcg.ties) == (1, 2, 0)
    assert ndcg.ci_low <= ndcg.mean_difference <= ndcg.ci_high
    assert "most_popular vs retrieval" in result.comparisons
    assert result.rankers["retrieval"].curves["ndcg"] == [
        pytest.approx(2 / 3),
        pytest.approx(2 / 3),
    ]


def test_recall_of_users_with_more_relevant_items_than_k() -> None:
    # u1 and u3 have three test items each and k = 2: retrieval finds two of them
    # (u1: [i1, i2], u3: [i1, i3]), so recall is 2/3 for each, not 2/min(3, 2) = 1.
    test = log(["u1", "u1", "u1", "u2", "u3", "u3", "u3"], ["i1", "i2", "i3", "i0", "i1", "i3", "i4"])
    result = evaluate(build(), TRAIN, test, k=2, cutoffs=(2,), candidates=6, baselines=False)
    np.testing.assert_allclose(result.rankers["retrieval"].per_user["recall"], [2 / 3, 0.0, 2 / 3])
    assert result.metric("retrieval", "recall") == pytest.approx(4 / 9)
    assert result.metric("retrieval", "ndcg") == pytest.approx(2 / 3)  # NDCG's ideal is over min(3, k)


def test_most_popular_pads_when_too_few_unseen_items_were_ever_rated() -> None:
    ids = most_popular_ranking(TRAIN, ["u1", "u2", "u3"], [{"i0"}, {"i5"}, {"i0", "i2"}], 2)
    np.testing.assert_array_equal(ids, [["i2", "i5"], ["i0", "i2"], ["i5", ""]])


def test_without_excluding_seen_items_retrieval_spends_slots_on_them() -> None:
    result = evaluate(build(), TRAIN, TEST, k=2, cutoffs=(2,), candidates=6, exclude_seen=False, baselines=False)
    # u1 gets [i0, i1] (hit at 2), u2 [i5, i4] (miss), u3 [i0, i1] (hit at 2)
    assert result.metric("retrieval", "ndcg") == pytest.approx(2 * (1 / np.log2(3)) / 3)
    assert list(result.rankers) == ["retrieval"] and result.comparisons == {}


def test_named_rerankers_share_the_same_candidates() -> None:
    result = evaluate(
        build(), TRAIN, TEST, k=2, cutoffs=(2,), candidates=6, rerankers={"reverse": Reverse(), "flat": Constant(1.0)}
    )
    assert result.metric("reverse", "ndcg") == pytest.approx(1 / 3)
    # equal scores keep retrieval order (stable sort), so "flat" equals retrieval
    assert result.metric("flat", "ndcg") == pytest.approx(result.metric("retrieval", "ndcg"))
    assert result.comparisons["flat vs retrieval"]["ndcg"].verdict() == "no significant difference"


def test_min_rating_keeps_only_liked_test_items_and_unknown_users_are_skipped() -> None:
    test = log(["u1", "u2", "u3", "stranger"], ["i1", "i0", "i1", "i2"], [4.0, 2.0, 5.0, 5.0])
    result = evaluate(build(Reverse()), TRAIN, test, k=2, cutoffs=(2,), candidates=6, min_rating=4.0)
    assert result.n_users == 2 and result.skipped_users == 1  # u2's only item was rated 2
    assert result.users == ["u1", "u3"]
    assert result.metric("retrieval", "ndcg") == pytest.approx(1.0)


def test_result_serialises_to_json_and_markdown() -> None:
    result = evaluate(build(Reverse()), TRAIN, TEST, k=2, cutoffs=(1, 2), candidates=6, n_resamples=200)
    data = json.loads(result.to_json())
    assert data["rankers"]["reranked"]["metrics"]["ndcg@2"] == pytest.approx(1 / 3)
    assert data["comparisons"]["reranked vs retrieval"]["ndcg"]["verdict"] in {"worse", "no significant difference"}
    assert "per_user" not in json.dumps(data)
    markdown = result.to_markdown()
    assert "| reranked | " in markdown and "NDCG@2" in markdown


def test_rating_errors_score_test_pairs_with_the_reranker() -> None:
    errors = rating_errors(build(Constant(4.0)), TEST)
    assert errors["rmse"] == pytest.approx(np.sqrt((0 + 4 + 1) / 3))
    assert errors["mae"] == pytest.approx(1.0)
    assert errors["n"] == 3
    result = evaluate(build(Constant(4.0)), TRAIN, TEST, k=2, cutoffs=(2,), candidates=6, measure_rating_errors=True)
    assert result.rating_errors == errors


@pytest.mark.parametrize(
    "kwargs",
    [
        {"k": 0},
        {"candidates": 1, "k": 2},
        {"batch_size": 0},
        {"rerankers": {"retrieval": Reverse()}},
    ],
)
def test_bad_settings_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        evaluate(build(), TRAIN, TEST, cutoffs=(1,), **kwargs)  # type: ignore[arg-type]


def test_no_evaluable_user_is_an_error() -> None:
    with pytest.raises(InvalidInputError, match="no test user"):
        evaluate(build(), TRAIN, log(["nobody"], ["i1"]), k=1, cutoffs=(1,), candidates=6)


def test_batches_give_the_same_answer_as_one_call() -> None:
    whole = evaluate(build(Reverse()), TRAIN, TEST, k=2, cutoffs=(2,), candidates=6, n_resamples=200)
    batched = evaluate(build(Reverse()), TRAIN, TEST, k=2, cutoffs=(2,), candidates=6, n_resamples=200, batch_size=1)
    assert whole.to_dict() == batched.to_dict()


def test_implicit_logs_give_the_same_rankings_and_metrics() -> None:
    explicit = evaluate(build(Reverse()), TRAIN, TEST, k=2, cutoffs=(1, 2), candidates=6, n_resamples=200)
    implicit = evaluate(
        build(Reverse()),
        TRAIN.without_ratings(),
        TEST.without_ratings(),
        k=2,
        cutoffs=(1, 2),
        candidates=6,
        n_resamples=200,
    )
    for name in explicit.rankers:
        assert implicit.rankers[name].metrics == explicit.rankers[name].metrics
    assert implicit.rating_errors is None and implicit.settings["test_has_ratings"] is False
    assert explicit.settings["test_has_ratings"] is True


def test_rating_thresholds_and_errors_need_test_ratings() -> None:
    implicit = TEST.without_ratings()
    with pytest.raises(InvalidInputError, match="ratings"):
        evaluate(build(Constant(4.0)), TRAIN, implicit, k=2, cutoffs=(2,), candidates=6, min_rating=4.0)
    with pytest.raises(InvalidInputError, match="implicit"):
        evaluate(build(Constant(4.0)), TRAIN, implicit, k=2, cutoffs=(2,), candidates=6, measure_rating_errors=True)
    with pytest.raises(InvalidInputError, match="ratings"):
        rating_errors(build(Constant(4.0)), implicit)


def test_logs_must_be_interactions() -> None:
    with pytest.raises(InvalidInputError, match="Interactions"):
        evaluate(build(), TRAIN, (["u1"], ["i1"]), k=1, cutoffs=(1,), candidates=6)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="Interactions"):
        most_popular_ranking((["u1"], ["i1"]), ["u1"], [set()], 1)  # type: ignore[arg-type]


def test_opaque_string_ids_and_weights_are_fine() -> None:
    users = TableEmbedder(["c-9f2a", "c-01"], [[1.0, 0.0], [-1.0, 0.0]])
    items = TableEmbedder(["sku-1", "sku-2", "sku-3"], [[3.0, 0.0], [2.0, 0.0], [1.0, 0.0]])
    recommender = Recommender(user_embedder=users, item_embedder=items, store=InMemoryVectorStore(dimension=2))
    recommender.index_items(["sku-1", "sku-2", "sku-3"])
    train = Interactions.from_arrays(user_ids=["c-9f2a", "c-01"], item_ids=["sku-1", "sku-3"], weights=[5.0, 1.0])
    test = Interactions.from_arrays(user_ids=["c-9f2a", "c-01"], item_ids=["sku-2", "sku-2"])
    result = evaluate(recommender, train, test, k=1, cutoffs=(1,), candidates=3, n_resamples=200)
    # c-9f2a: sku-1 seen -> [sku-2] hit; c-01: sku-3 seen -> [sku-2] hit
    assert result.metric("retrieval", "ndcg", k=1) == pytest.approx(1.0)
    assert result.users == ["c-01", "c-9f2a"]


def _fingerprint(log: Interactions) -> str:
    import hashlib

    return hashlib.sha1(("|".join(log.user_ids) + "#" + "|".join(log.item_ids)).encode()).hexdigest()[:12]


@pytest.mark.integration
def test_protocol_splits_are_the_published_ones(movielens_dir: Path) -> None:
    from two_stage_rec.evaluation.movielens_protocols import MOVIELENS_PROTOCOLS, protocol_spec, split_for_protocol

    # Fingerprints of the splits as the library made them before the one Interactions type:
    # the migration must not move a single rating between train and test.
    expected = {
        "random": (80_000, 20_000, "1903a4cfce29", "053fabe1a9cf"),
        "stratified": (74_992, 25_008, "e03c52780772", "f16491bcac90"),
        "u1": (80_000, 20_000, "f485c83f0ebd", "20e55c3d58d5"),
    }
    assert MOVIELENS_PROTOCOLS == ("random", "stratified", "u1", "temporal")
    for name, (n_train, n_test, train_print, test_print) in expected.items():
        train, test = split_for_protocol(name, str(movielens_dir), progress=False)
        assert (len(train), len(test), _fingerprint(train), _fingerprint(test)) == (
            n_train,
            n_test,
            train_print,
            test_print,
        ), name
    train, test = split_for_protocol("temporal", str(movielens_dir), progress=False)
    assert len(train) + len(test) == 100_000 and train.ratings is not None and test.timestamps is not None
    assert protocol_spec("temporal").measure_rating_errors is False
    assert train.timestamps is not None
    for user in ("1", "42", "943"):
        mine, theirs = train.for_user(user), test.for_user(user)
        assert mine.timestamps is not None and theirs.timestamps is not None
        assert mine.timestamps.max() <= theirs.timestamps.min()  # the test part is the user's future
        assert len(theirs) == round(0.2 * (len(mine) + len(theirs)))
