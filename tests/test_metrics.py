"""Ranking metrics and rating errors against small cases worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from two_stage_rec.errors import InvalidInputError
from two_stage_rec.evaluation import (
    average_precision_at_k,
    catalog_coverage,
    hit_matrix,
    hit_rate_at_k,
    mae,
    ndcg_at_k,
    paired_bootstrap,
    precision_at_k,
    recall_at_k,
    rmse,
)

# user 0: hits at ranks 1 and 3, 3 relevant items (one never recommended)
# user 1: hit at rank 4 only, 1 relevant item
# user 2: hit at rank 1, then padding ("" = fewer than 4 recommendations)
RECOMMENDED = np.array(
    [["a", "b", "c", "d"], ["x", "y", "z", "w"], ["a", "", "", ""]],
    dtype=object,
)
RELEVANT = [{"a", "c", "e"}, {"w"}, {"a"}]
N_RELEVANT = np.array([3, 1, 1])


@pytest.fixture
def hits() -> np.ndarray:
    return hit_matrix(RECOMMENDED, RELEVANT)


def test_hit_matrix_marks_relevant_ranks_and_never_padding(hits: np.ndarray) -> None:
    expected = [[True, False, True, False], [False, False, False, True], [True, False, False, False]]
    np.testing.assert_array_equal(hits, expected)
    # a pad is never a hit, even if a (malformed) relevant set holds ""
    assert not hit_matrix(np.array([["", "a"]], dtype=object), [{""}]).any()


def test_precision_divides_by_k_including_padded_slots(hits: np.ndarray) -> None:
    np.testing.assert_allclose(precision_at_k(hits, 4), [2 / 4, 1 / 4, 1 / 4])
    np.testing.assert_allclose(precision_at_k(hits, 1), [1.0, 0.0, 1.0])


def test_recall_divides_by_number_of_relevant_items(hits: np.ndarray) -> None:
    np.testing.assert_allclose(recall_at_k(hits, N_RELEVANT, 4), [2 / 3, 1.0, 1.0])
    np.testing.assert_allclose(recall_at_k(hits, N_RELEVANT, 3), [2 / 3, 0.0, 1.0])


def test_recall_with_more_relevant_items_than_k_still_divides_by_all_of_them(hits: np.ndarray) -> None:
    # recall_at_k documents (# relevant in the top k) / (# relevant), not / min(# relevant, k):
    # a user with more relevant items than k cannot reach recall 1 (unlike NDCG and AP).
    perfect = np.ones((1, 3), dtype=bool)
    np.testing.assert_allclose(recall_at_k(perfect, [10], 3), [0.3])
    np.testing.assert_allclose(ndcg_at_k(perfect, [10], 3), [1.0])
    # user 0 of the fixture has 3 relevant items; at k=2 its one hit is 1/3, not 1/2
    np.testing.assert_allclose(recall_at_k(hits, N_RELEVANT, 2), [1 / 3, 0.0, 1.0])


def test_ndcg_uses_log2_discount_and_ideal_over_min_k_relevant(hits: np.ndarray) -> None:
    # user 0: DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3) + 1/log2(4)
    user0 = 1.5 / (1 + 1 / math.log2(3) + 0.5)
    user1 = (1 / math.log2(5)) / 1.0
    np.testing.assert_allclose(ndcg_at_k(hits, N_RELEVANT, 4), [user0, user1, 1.0])
    # at k=2 the ideal for user 0 is 1 + 1/log2(3) (two of three relevant fit)
    np.testing.assert_allclose(ndcg_at_k(hits, N_RELEVANT, 2), [1 / (1 + 1 / math.log2(3)), 0.0, 1.0])


def test_ndcg_is_one_for_a_perfect_ranking_with_more_relevant_than_k() -> None:
    perfect = np.ones((1, 3), dtype=bool)
    np.testing.assert_allclose(ndcg_at_k(perfect, [10], 3), [1.0])
    np.testing.assert_allclose(average_precision_at_k(perfect, [10], 3), [1.0])


def test_average_precision_divides_by_min_k_relevant(hits: np.ndarray) -> None:
    # user 0: (1/1 + 2/3) / min(4, 3); user 1: (1/4) / 1; user 2: 1/1
    np.testing.assert_allclose(average_precision_at_k(hits, N_RELEVANT, 4), [(1 + 2 / 3) / 3, 0.25, 1.0])
    # MAP@4 is the mean over users
    assert average_precision_at_k(hits, N_RELEVANT, 4).mean() == pytest.approx(((5 / 9) + 0.25 + 1) / 3)


def test_hit_rate(hits: np.ndarray) -> None:
    np.testing.assert_allclose(hit_rate_at_k(hits, 4), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(hit_rate_at_k(hits, 3), [1.0, 0.0, 1.0])


def test_users_without_relevant_items_score_zero_not_nan() -> None:
    none = np.zeros((1, 2), dtype=bool)
    for values in (recall_at_k(none, [0], 2), ndcg_at_k(none, [0], 2), average_precision_at_k(none, [0], 2)):
        np.testing.assert_array_equal(values, [0.0])


def test_catalog_coverage_ignores_padding_and_respects_k() -> None:
    assert catalog_coverage(RECOMMENDED, 10) == pytest.approx(8 / 10)
    assert catalog_coverage(RECOMMENDED, 10, k=1) == pytest.approx(2 / 10)  # {"a", "x"}


def test_rmse_and_mae() -> None:
    assert rmse([3.0, 4.0, 5.0], [4.0, 4.0, 3.0]) == pytest.approx(math.sqrt((1 + 0 + 4) / 3))
    assert mae([3.0, 4.0, 5.0], [4.0, 4.0, 3.0]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: precision_at_k(np.zeros((2, 3), bool), 4),  # k beyond the recommended ranks
        lambda: precision_at_k(np.zeros((2, 3), bool), 0),
        lambda: precision_at_k(np.zeros(3, bool), 1),  # not 2-D
        lambda: recall_at_k(np.zeros((2, 3), bool), [1], 2),  # counts misaligned
        lambda: hit_matrix(RECOMMENDED, RELEVANT[:2]),
        lambda: catalog_coverage(RECOMMENDED, 0),
        lambda: rmse([1.0], [1.0, 2.0]),
        lambda: mae([], []),
        lambda: rmse([float("nan")], [1.0]),
    ],
)
def test_bad_input_gets_a_typed_error(call: object) -> None:
    with pytest.raises(InvalidInputError):
        call()  # type: ignore[operator]


def test_paired_bootstrap_of_a_constant_difference_is_exact() -> None:
    result = paired_bootstrap([0.1, 0.2, 0.3, 0.4], [0.3, 0.4, 0.5, 0.6], n_resamples=200)
    assert result.mean_difference == pytest.approx(0.2)
    assert result.ci_low == pytest.approx(0.2) and result.ci_high == pytest.approx(0.2)
    assert (result.wins, result.losses, result.ties) == (4, 0, 0)
    assert result.significant and result.verdict() == "better"


def test_paired_bootstrap_is_seeded_and_brackets_the_mean() -> None:
    rng = np.random.default_rng(1)
    before, after = rng.random(300), rng.random(300)
    first = paired_bootstrap(before, after, seed=7, n_resamples=2000)
    again = paired_bootstrap(before, after, seed=7, n_resamples=2000)
    assert first == again
    assert first.ci_low < first.mean_difference < first.ci_high
    # independent noise: the interval straddles 0
    assert first.verdict() == "no significant difference"
    assert paired_bootstrap(after, before, seed=7, n_resamples=2000).mean_difference == pytest.approx(
        -first.mean_difference
    )


def test_paired_bootstrap_rejects_misaligned_or_empty_input() -> None:
    with pytest.raises(InvalidInputError):
        paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(InvalidInputError):
        paired_bootstrap([], [])
    with pytest.raises(InvalidInputError):
        paired_bootstrap([1.0], [2.0], confidence=1.5)
