"""The numpy reference: exact scores per metric and top-k selection, against brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from two_stage_rec.scoring import exact_scores, normalize_rows, top_k_rows
from two_stage_rec.types import METRICS, Metric


def _brute_force_scores(queries: np.ndarray, vectors: np.ndarray, metric: Metric) -> np.ndarray:
    out = np.empty((len(queries), len(vectors)))
    for i, q in enumerate(queries.astype(np.float64)):
        for j, v in enumerate(vectors.astype(np.float64)):
            if metric == "dotproduct":
                out[i, j] = q @ v
            elif metric == "cosine":
                norms = np.linalg.norm(q) * np.linalg.norm(v)
                out[i, j] = q @ v / norms if norms else 0.0
            else:
                out[i, j] = -np.sum((q - v) ** 2)
    return out


def _brute_force_top_k(scores: np.ndarray, k: int, allowed: np.ndarray | None) -> list[list[int]]:
    rows = []
    for i, row in enumerate(scores):
        mask = np.ones(row.shape, bool) if allowed is None else np.broadcast_to(allowed, scores.shape)[i]
        # Sort by descending score, then ascending column: the documented tie rule.
        ranked = sorted((j for j in range(len(row)) if mask[j]), key=lambda j: (-row[j], j))
        rows.append(ranked[:k])
    return rows


@pytest.mark.parametrize("metric", METRICS)
def test_exact_scores_match_brute_force(metric: Metric) -> None:
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(4, 6)).astype(np.float32)
    vectors = rng.normal(size=(9, 6)).astype(np.float32)
    vectors[2] = 0.0  # a zero vector: cosine 0 by convention
    scores = exact_scores(queries, vectors, metric)
    assert scores.shape == (4, 9) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, _brute_force_scores(queries, vectors, metric), rtol=1e-5, atol=1e-5)


def test_euclidean_score_is_higher_for_closer_vectors_and_zero_for_itself() -> None:
    vectors = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 4.0]], np.float32)
    scores = exact_scores(vectors[:1], vectors, "euclidean")
    np.testing.assert_allclose(scores, [[0.0, -1.0, -25.0]])
    same = np.full((1, 8), 1e4, np.float32)  # large norms: rounding could go below zero without the clip
    assert exact_scores(same, same, "euclidean")[0, 0] == 0.0


def test_cosine_scores_lie_in_minus_one_to_one() -> None:
    rng = np.random.default_rng(1)
    queries, vectors = rng.normal(size=(5, 4)).astype(np.float32), rng.normal(size=(7, 4)).astype(np.float32)
    scores = exact_scores(queries, vectors, "cosine")
    assert (np.abs(scores) <= 1.0 + 1e-6).all()


def test_normalize_rows_keeps_zero_rows() -> None:
    out = normalize_rows(np.array([[3.0, 4.0], [0.0, 0.0]], np.float32))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    assert out.dtype == np.float32


def test_top_k_rows_sorts_descending_and_pads() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.3], [1.0, 2.0, 3.0, 4.0]], np.float32)
    allowed = np.array([[True, False, True, False], [True, True, True, True]])
    columns, top, counts = top_k_rows(scores, 3, allowed)
    assert counts.tolist() == [2, 3]
    assert columns.tolist() == [[2, 0, -1], [3, 2, 1]]
    np.testing.assert_array_equal(top[0], np.array([0.5, 0.1, -np.inf], np.float32))


def test_top_k_rows_k_larger_than_columns() -> None:
    columns, top, counts = top_k_rows(np.array([[2.0, 1.0, 3.0]], np.float32), 10)
    assert columns.tolist() == [[2, 0, 1]] and counts.tolist() == [3] and top.shape == (1, 3)


def test_top_k_rows_nothing_allowed_gives_width_zero() -> None:
    columns, top, counts = top_k_rows(np.ones((2, 4), np.float32), 3, np.zeros(4, bool))
    assert columns.shape == (2, 0) and top.shape == (2, 0) and counts.tolist() == [0, 0]


def test_top_k_rows_breaks_ties_by_lower_column_even_at_the_cut() -> None:
    # argpartition alone picks an arbitrary member of a tie at the k-th place.
    scores = np.array([[1.0] * 17 + [2.0] + [1.0] * 3], np.float32)
    columns, _, _ = top_k_rows(scores, 3)
    assert columns.tolist() == [[17, 0, 1]]
    columns, _, _ = top_k_rows(np.zeros((2, 100), np.float32), 4)
    assert columns.tolist() == [[0, 1, 2, 3]] * 2


@settings(max_examples=50, deadline=None, derandomize=True, database=None)
@given(
    n=st.integers(1, 4),
    m=st.integers(1, 30),
    k=st.integers(1, 35),
    levels=st.integers(1, 4),
    mask_kind=st.sampled_from(["none", "shared", "per_row"]),
    seed=st.integers(0, 2**16),
)
def test_top_k_rows_matches_brute_force(n: int, m: int, k: int, levels: int, mask_kind: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Few distinct levels make ties common, which is where selection goes wrong.
    scores = rng.integers(0, levels, size=(n, m)).astype(np.float32)
    allowed = None
    if mask_kind == "shared":
        allowed = rng.random(m) < 0.6
    elif mask_kind == "per_row":
        allowed = rng.random((n, m)) < 0.6
    columns, top, counts = top_k_rows(scores, k, allowed)
    expected = _brute_force_top_k(scores, k, allowed)
    assert counts.tolist() == [len(row) for row in expected]
    assert columns.shape[1] == max(len(row) for row in expected)
    for i, row in enumerate(expected):
        assert columns[i, : counts[i]].tolist() == row
        assert (columns[i, counts[i] :] == -1).all()
        np.testing.assert_array_equal(top[i, : counts[i]], scores[i, row])
        assert np.isneginf(top[i, counts[i] :]).all()
