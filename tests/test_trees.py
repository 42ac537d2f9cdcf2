"""The numpy tree evaluator against a plain-Python walk of LightGBM's decision rule.

Random ensembles cover both strategies (decision tables for trees of at most
12 splits, the level-by-level walk above), every missing-value type, values
equal to a threshold, thresholds that are not float32 numbers, values within
LightGBM's zero threshold, infinities and NaN, in float32 and float64 rows.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from two_stage_rec.errors import InvalidInputError
from two_stage_rec.rerankers import _trees
from two_stage_rec.rerankers._trees import MAX_TABLE_SPLITS, MISSING_NAN, MISSING_NONE, MISSING_ZERO
from two_stage_rec.rerankers.feature_ranker import TreeEnsemble

# Thresholds: ties with the data, 0.1 (not a float32), LightGBM's zero threshold, huge values.
FIELDS = ("feature", "threshold", "left", "right", "default_left", "missing", "leaf_value", "roots", "n_features")
THRESHOLDS = [-2.0, -0.5, -1e-35, 0.0, 1.0000000180025095e-35, 0.1, 0.5, 1.0, 3e38, 1e300]


def goes_left(value: float, threshold: float, missing: int, default_left: bool) -> bool:
    """LightGBM's NumericalDecision (tree.h), one value at a time."""
    if math.isnan(value) and missing != MISSING_NAN:
        value = 0.0
    if (missing == MISSING_ZERO and -1e-35 <= value <= 1e-35) or (missing == MISSING_NAN and math.isnan(value)):
        return default_left
    return value <= threshold


def oracle(trees: TreeEnsemble, rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out = np.zeros(rows.shape[0])
    for r, row in enumerate(rows.tolist()):
        for root in trees.roots.tolist():
            node = root
            while node >= 0:
                left = goes_left(
                    row[int(trees.feature[node])],
                    float(trees.threshold[node]),
                    int(trees.missing[node]),
                    bool(trees.default_left[node]),
                )
                node = int(trees.left[node] if left else trees.right[node])
            out[r] += trees.leaf_value[~node]
    return out


def random_ensemble(rng: np.random.Generator, n_trees: int, max_splits: int, n_features: int) -> TreeEnsemble:
    feature: list[int] = []
    threshold: list[float] = []
    left: list[int] = []
    right: list[int] = []
    default_left: list[bool] = []
    missing: list[int] = []
    leaves: list[float] = []
    roots: list[int] = []

    def grow(budget: int) -> int:
        if budget == 0 or rng.random() < 0.15:
            leaves.append(float(rng.normal()))
            return ~(len(leaves) - 1)
        index = len(feature)
        feature.append(int(rng.integers(n_features)))
        threshold.append(float(rng.choice(THRESHOLDS)) if rng.random() < 0.7 else float(rng.normal()))
        default_left.append(bool(rng.random() < 0.5))
        missing.append(int(rng.choice([MISSING_NONE, MISSING_ZERO, MISSING_NAN])))
        left.append(0)
        right.append(0)
        share = int(rng.integers(0, budget))
        left[index] = grow(share)
        right[index] = grow(budget - 1 - share)
        return index

    for _ in range(n_trees):
        roots.append(grow(int(rng.integers(0, max_splits + 1))))
    return TreeEnsemble(
        feature=np.array(feature, dtype=np.int32),
        threshold=np.array(threshold, dtype=np.float64),
        left=np.array(left, dtype=np.int32),
        right=np.array(right, dtype=np.int32),
        default_left=np.array(default_left, dtype=bool),
        missing=np.array(missing, dtype=np.int8),
        leaf_value=np.array(leaves, dtype=np.float64),
        roots=np.array(roots, dtype=np.int32),
        n_features=n_features,
    )


def random_rows(rng: np.random.Generator, n: int, n_features: int) -> npt.NDArray[np.float32]:
    """float32 rows: thresholds and their float32 neighbours, zeros, tiny values, infinities, NaN."""
    values = [*THRESHOLDS, 0.1, 1e-36, -1e-36, 2e-35, np.inf, -np.inf, np.nan, np.nan]
    specials = np.array([v for v in values if abs(v) < 3.4e38 or not math.isfinite(v)], dtype=np.float32)
    neighbours = np.concatenate(
        [np.nextafter(specials, np.float32(np.inf)), np.nextafter(specials, np.float32(-np.inf))]
    )
    pool = np.concatenate([specials, neighbours[np.isfinite(neighbours)]])
    rows = rng.normal(size=(n, n_features)).astype(np.float32)
    pick = rng.random(rows.shape) < 0.6
    rows[pick] = rng.choice(pool, size=int(pick.sum()))
    return rows


@pytest.mark.parametrize("max_splits", [1, 6, MAX_TABLE_SPLITS, 30])
def test_random_ensembles_equal_lightgbms_rule(max_splits: int) -> None:
    rng = np.random.default_rng(max_splits)
    trees = random_ensemble(rng, n_trees=25, max_splits=max_splits, n_features=4)
    rows32 = random_rows(rng, 1_500, 4)  # more than one block of rows
    rows64 = rows32.astype(np.float64)
    expected = oracle(trees, rows64)
    np.testing.assert_allclose(trees.predict(rows64), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(trees.predict(rows32), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(trees.predict(rows64[:7]), expected[:7], rtol=1e-12, atol=1e-12)


def test_float64_rows_that_are_not_float32_numbers() -> None:
    rng = np.random.default_rng(5)
    trees = random_ensemble(rng, n_trees=20, max_splits=6, n_features=3)
    rows = rng.choice(np.array(THRESHOLDS), size=(300, 3)) + rng.choice([0.0, 1e-17, -1e-17], size=(300, 3))
    np.testing.assert_allclose(trees.predict(rows), oracle(trees, rows), rtol=1e-12, atol=1e-12)


def test_single_leaf_trees_and_empty_input() -> None:
    trees = TreeEnsemble(
        feature=np.array([0], np.int32),
        threshold=np.array([0.5]),
        left=np.array([~1], np.int32),
        right=np.array([~2], np.int32),
        default_left=np.array([True]),
        missing=np.array([MISSING_NAN], np.int8),
        leaf_value=np.array([7.0, 1.0, 2.0]),
        roots=np.array([~0, 0], np.int32),
        n_features=1,
    )
    np.testing.assert_array_equal(trees.predict(np.array([[0.0], [1.0], [np.nan]])), [8.0, 9.0, 8.0])
    assert trees.predict(np.zeros((0, 1))).shape == (0,)
    with pytest.raises(InvalidInputError):
        trees.predict(np.zeros((2, 3)))


def test_tables_and_the_walk_add_the_same_float64_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both strategies sum a contiguous (rows, trees) block: bit for bit the same scores."""
    rng = np.random.default_rng(11)
    trees = random_ensemble(rng, n_trees=60, max_splits=6, n_features=5)
    rows = random_rows(rng, 2_100, 5)
    tables = trees.predict(rows)
    monkeypatch.setattr(_trees, "MAX_TABLE_SPLITS", 0)
    walked = TreeEnsemble(**{name: getattr(trees, name) for name in FIELDS}).predict(rows)
    np.testing.assert_array_equal(tables, walked)
