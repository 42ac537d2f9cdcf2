"""Beyond-accuracy metrics, evaluate()'s diversity columns and the MMR curve, against hand-worked answers.

The curve's recommender: five items, dot-product retrieval, no reranker.

    item  vector        genres   u1 = [1, 0]   u2 = [0, 1]
    i0    [1, 0]        A        1.0           0.0
    i1    [0.99, 0.14]  A        0.99          0.14
    i2    [0.6, 0.8]    B        0.6           0.8
    i3    [0, 1]        C        0.0           1.0
    i4    [-1, 0]       D        (seen by both users, so never recommended)

Top 2, λ = 0: u1 [i0, i1], u2 [i3, i2]. MMR(0.9) with min-max relevance
keeps each first item and then picks the one least like it (cosine 0):
u1 [i0, i3], u2 [i3, i0]. Test items: u1 {i3}, u2 {i2}.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from two_stage_rec import Recommender
from two_stage_rec.datasets import Interactions
from two_stage_rec.embedders.table import TableEmbedder
from two_stage_rec.errors import InvalidInputError
from two_stage_rec.evaluation import (
    distinct_values,
    evaluate,
    intra_list_diversity,
    measure_policies,
    mmr_curve,
    novelty,
)
from two_stage_rec.policies import MaxPerValue, RankedList
from two_stage_rec.stores.memory import InMemoryVectorStore

VECTORS = {"i0": [1.0, 0.0], "i1": [0.99, 0.14], "i2": [0.6, 0.8], "i3": [0.0, 1.0], "i4": [-1.0, 0.0]}
GENRES = {"i0": ["A"], "i1": ["A"], "i2": ["B"], "i3": ["C"], "i4": ["D"]}
TRAIN = Interactions.from_arrays(user_ids=["u1", "u2"], item_ids=["i4", "i4"])
TEST = Interactions.from_arrays(user_ids=["u1", "u2"], item_ids=["i3", "i2"])
COS_I0_I1 = 0.99 / math.sqrt(0.99**2 + 0.14**2)
ONE_HIT_AT_TWO = 1.0 / math.log2(3)


def build() -> Recommender:
    items = list(VECTORS)
    recommender = Recommender(
        user_embedder=TableEmbedder(["u1", "u2"], [[1.0, 0.0], [0.0, 1.0]]),
        item_embedder=TableEmbedder(items, [VECTORS[i] for i in items]),
        store=InMemoryVectorStore(dimension=2),
    )
    recommender.index_items(items, metadata=[{"genres": GENRES[i]} for i in items])
    return recommender


def test_intra_list_diversity_by_hand() -> None:
    vectors = np.array(
        [
            [[1, 0], [0, 1], [1, 1]],  # pairs: 1, 1 - 1/sqrt 2, 1 - 1/sqrt 2
            [[1, 0], [-1, 0], [9, 9]],  # third slot is padding: one pair, opposite
            [[3, 4], [0, 0], [0, 0]],  # one valid item: no pair
            [[0, 0], [2, 0], [0, 0]],  # a zero vector is at distance 1 from anything
        ],
        dtype=np.float32,
    )
    valid = [[True, True, True], [True, True, False], [True, False, False], [True, True, False]]
    expected = [(1 + 2 * (1 - 1 / math.sqrt(2))) / 3, 2.0, 0.0, 1.0]
    np.testing.assert_allclose(intra_list_diversity(vectors, valid), expected, rtol=1e-6)
    np.testing.assert_allclose(intra_list_diversity(vectors[:1]), expected[:1], rtol=1e-6)
    assert intra_list_diversity(vectors).dtype == np.float64


def test_intra_list_diversity_rejects_bad_shapes_and_values() -> None:
    with pytest.raises(InvalidInputError, match="3-D"):
        intra_list_diversity(np.zeros((2, 3)))
    with pytest.raises(InvalidInputError, match="valid must have shape"):
        intra_list_diversity(np.zeros((2, 3, 4)), np.ones((2, 2), bool))
    with pytest.raises(InvalidInputError, match="finite"):
        intra_list_diversity(np.full((1, 2, 2), np.nan))
    # NaN in a padding slot is ignored
    padded = np.array([[[1.0, 0.0], [np.nan, np.nan]]])
    np.testing.assert_array_equal(intra_list_diversity(padded, [[True, False]]), [0.0])


def test_distinct_values_counts_list_and_scalar_fields() -> None:
    metadata: list[list[dict[str, object]]] = [
        [{"genres": ["A", "B"]}, {"genres": ["B"]}, {}],
        [{"genres": "A"}, {"genres": None}, {"year": 1999}],
        [],
    ]
    np.testing.assert_array_equal(distinct_values(metadata, "genres"), [2.0, 1.0, 0.0])  # type: ignore[arg-type]
    np.testing.assert_array_equal(distinct_values(metadata, "year"), [0.0, 1.0, 0.0])  # type: ignore[arg-type]


def test_novelty_by_hand() -> None:
    counts = {"a": 4, "b": 1}
    recommended = [["a", "b", ""], ["c", "", ""], ["", "", ""]]
    # a: -log2(4/4) = 0, b: -log2(1/4) = 2, c (never seen, counted once): 2
    np.testing.assert_allclose(novelty(recommended, counts, 4), [1.0, 2.0, 0.0])
    np.testing.assert_allclose(novelty(recommended, counts, 4, k=1), [0.0, 2.0, 0.0])
    with pytest.raises(InvalidInputError, match="more than the 2"):
        novelty(recommended, counts, 2)
    with pytest.raises(InvalidInputError, match="positive"):
        novelty(recommended, counts, 0)
    with pytest.raises(InvalidInputError, match="2-D"):
        novelty(["a"], counts, 4)


def test_evaluate_reports_diversity_for_every_ranking() -> None:
    result = evaluate(
        build(), TRAIN, TEST, k=2, cutoffs=(1, 2), candidates=4, n_resamples=200, diversity_field="genres"
    )
    retrieval = result.rankers["retrieval"]
    assert retrieval.metrics["ild@2"] == pytest.approx(((1 - COS_I0_I1) + (1 - 0.8)) / 2, rel=1e-5)
    assert retrieval.metrics["ild@1"] == 0.0
    assert retrieval.metrics["distinct_genres@2"] == pytest.approx(1.5)  # {A}, {C, B}
    assert retrieval.metrics["novelty@2"] == pytest.approx(1.0)  # no recommended item was seen in training
    np.testing.assert_allclose(retrieval.per_user["distinct_genres"], [1.0, 2.0])
    # most popular knows only i4, which both users have seen: empty lists
    popular = result.rankers["most_popular"].metrics
    assert (popular["ild@2"], popular["novelty@2"], popular["distinct_genres@2"]) == (0.0, 0.0, 0.0)
    assert result.beyond_accuracy() == ["coverage", "ild", "novelty", "distinct_genres"]
    header, _ = result.table_rows()
    assert header[-4:] == ["coverage@2", "ild@2", "novelty@2", "distinct_genres@2"]
    assert result.settings["diversity_field"] == "genres"


def test_evaluate_without_a_field_and_with_an_unknown_one() -> None:
    result = evaluate(build(), TRAIN, TEST, k=2, cutoffs=(2,), candidates=4, n_resamples=200)
    assert "distinct_genres@2" not in result.rankers["retrieval"].metrics
    assert "ild@2" in result.rankers["retrieval"].metrics
    with pytest.raises(InvalidInputError, match="'mood'"):
        evaluate(build(), TRAIN, TEST, k=2, cutoffs=(2,), candidates=4, n_resamples=200, diversity_field="mood")


def test_mmr_curve_by_hand() -> None:
    curve = mmr_curve(build(), TRAIN, TEST, trade_offs=(0.9,), field="genres", k=2, candidates=4, n_resamples=200)
    assert list(curve.rows) == ["mmr_0.0", "mmr_0.9"]  # λ = 0 is always measured first
    plain, varied = curve.rows["mmr_0.0"], curve.rows["mmr_0.9"]
    assert (plain.trade_off, varied.trade_off) == (0.0, 0.9)
    assert plain.policies == () and varied.policies[0].startswith("MMR(trade_off=0.9")
    np.testing.assert_allclose(plain.per_user["ndcg"], [0.0, ONE_HIT_AT_TWO])  # u1 [i0, i1], u2 [i3, i2]
    np.testing.assert_allclose(varied.per_user["ndcg"], [ONE_HIT_AT_TWO, 0.0])  # u1 [i0, i3], u2 [i3, i0]
    assert plain.metrics["ild@2"] == pytest.approx(((1 - COS_I0_I1) + 0.2) / 2, rel=1e-5)
    assert varied.metrics["ild@2"] == pytest.approx(1.0)
    assert plain.metrics["distinct_genres@2"] == 1.5 and varied.metrics["distinct_genres@2"] == 2.0
    assert plain.metrics["coverage@2"] == pytest.approx(4 / 5) and varied.metrics["coverage@2"] == pytest.approx(2 / 5)
    assert plain.metrics["novelty@2"] == pytest.approx(1.0)
    assert plain.versus_first is None
    assert varied.versus_first is not None and varied.versus_first.mean_difference == pytest.approx(0.0)
    assert (varied.versus_first.wins, varied.versus_first.losses) == (1, 1)
    data = curve.to_dict()
    assert data["baseline"] == "mmr_0.0" and data["n_users"] == 2 and data["catalog_size"] == 5
    assert data["rows"]["mmr_0.9"]["ndcg_vs_first"]["n_users"] == 2  # type: ignore[index]


def test_mmr_curve_rejects_bad_settings() -> None:
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        mmr_curve(build(), TRAIN, TEST, trade_offs=(1.5,), k=2, candidates=4)
    with pytest.raises(InvalidInputError, match="at least k"):
        mmr_curve(build(), TRAIN, TEST, k=5, candidates=4)
    with pytest.raises(InvalidInputError, match="'mood'"):
        mmr_curve(build(), TRAIN, TEST, field="mood", k=2, candidates=4)


def test_measure_policies_on_given_lists() -> None:
    lists = [
        RankedList.of(["a", "b", "c"], [3, 2, 1], [{"g": "x"}, {"g": "x"}, {"g": "y"}], vectors=np.eye(3)),
    ]
    curve = measure_policies(
        lists, {"none": [], "cap": [MaxPerValue("g", 1)]}, [{"c"}], k=2, catalog_size=3, field="g", n_resamples=100
    )
    assert curve.rows["none"].metrics["ndcg@2"] == 0.0
    assert curve.rows["cap"].metrics["ndcg@2"] == pytest.approx(ONE_HIT_AT_TWO)  # [a, c]
    assert curve.rows["cap"].metrics["distinct_g@2"] == 2.0
    assert curve.rows["none"].metrics["ild@2"] == pytest.approx(1.0)  # orthogonal vectors
    assert "novelty@2" not in curve.rows["none"].metrics  # no popularity given
    assert curve.rows["cap"].policy_seconds.shape == (1,)
    with pytest.raises(InvalidInputError, match="at least one"):
        measure_policies(lists, {}, [{"c"}], k=2, catalog_size=3)
    with pytest.raises(InvalidInputError, match="relevant sets"):
        measure_policies(lists, {"none": []}, [], k=2, catalog_size=3)
