"""Top-k ranking metrics and rating errors, vectorised over many users.

Every ranking metric starts from a **hit matrix**: a bool array ``hits`` of
shape (n_users, k) where ``hits[u, r]`` says whether the item recommended to
user ``u`` at rank ``r`` (0-based, best first) is relevant to that user.
:func:`hit_matrix` builds it from recommended ids and per-user relevant sets.
Padding (id ``""``, used when fewer than k items were recommended) is never a
hit, and still counts as a slot in Precision@k, as in Microsoft Recommenders.

Per-user functions return float64 arrays of shape (n_users,) so that two
rankers can be compared user by user (see
:func:`two_stage_rec.evaluation.bootstrap.paired_bootstrap`); average them
with ``.mean()``. Relevance is binary; every metric is in [0, 1] and higher
is better. Users with no relevant item should be left out by the caller
(their Recall and NDCG are undefined); these functions return 0 for them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import numpy.typing as npt

from two_stage_rec.errors import InvalidInputError

__all__ = [
    "average_precision_at_k",
    "catalog_coverage",
    "hit_matrix",
    "hit_rate_at_k",
    "mae",
    "ndcg_at_k",
    "precision_at_k",
    "recall_at_k",
    "rmse",
]

BoolMatrix = npt.NDArray[np.bool_]
PerUser = npt.NDArray[np.float64]


def hit_matrix(recommended: npt.ArrayLike, relevant: Sequence[Collection[str]]) -> BoolMatrix:
    """Which recommended items are relevant.

    Args:
        recommended: array-like (n_users, k) of item ids (``str``), best first;
            ``""`` pads rows with fewer than k recommendations.
        relevant: n_users collections of relevant item ids.

    Returns:
        bool array (n_users, k).

    Raises:
        InvalidInputError: ``recommended`` is not 2-D or the row counts differ.
    """
    ids = np.asarray(recommended, dtype=object)
    if ids.ndim != 2:
        raise InvalidInputError(f"recommended must be 2-D (n_users, k), got shape {ids.shape}")
    if ids.shape[0] != len(relevant):
        raise InvalidInputError(f"{ids.shape[0]} recommendation rows for {len(relevant)} relevant sets")
    hits = np.zeros(ids.shape, dtype=bool)
    for row, (items, wanted) in enumerate(zip(ids, relevant, strict=True)):
        if wanted:
            hits[row] = [item != "" and item in wanted for item in items]
    return hits


def _check(hits: npt.ArrayLike, k: int) -> BoolMatrix:
    matrix = np.asarray(hits, dtype=bool)
    if matrix.ndim != 2:
        raise InvalidInputError(f"hits must be 2-D (n_users, k), got shape {matrix.shape}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InvalidInputError(f"k must be a positive integer, got {k!r}")
    if k > matrix.shape[1]:
        raise InvalidInputError(f"k={k} exceeds the {matrix.shape[1]} ranks recommended")
    return matrix[:, :k]


def _counts(n_relevant: npt.ArrayLike, n_users: int) -> npt.NDArray[np.int64]:
    counts = np.asarray(n_relevant, dtype=np.int64).reshape(-1)
    if counts.shape[0] != n_users:
        raise InvalidInputError(f"{counts.shape[0]} relevant counts for {n_users} users")
    if (counts < 0).any():
        raise InvalidInputError("relevant counts must be non-negative")
    return counts


def _discounts(k: int) -> npt.NDArray[np.float64]:
    """1 / log2(rank + 1) for ranks 1..k (the standard DCG discount)."""
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def precision_at_k(hits: npt.ArrayLike, k: int) -> PerUser:
    """Precision@k = (# relevant in the top k) / k, per user.

    Args:
        hits: bool (n_users, >= k) hit matrix.
        k: cut-off.

    Returns:
        float64 (n_users,).
    """
    top = _check(hits, k)
    return np.asarray(top.sum(axis=1) / float(k), dtype=np.float64)


def recall_at_k(hits: npt.ArrayLike, n_relevant: npt.ArrayLike, k: int) -> PerUser:
    """Recall@k = (# relevant in the top k) / (# relevant), per user (0 when none is relevant).

    Args:
        hits: bool (n_users, >= k) hit matrix.
        n_relevant: int (n_users,) number of relevant items per user.
        k: cut-off.

    Returns:
        float64 (n_users,).
    """
    top = _check(hits, k)
    counts = _counts(n_relevant, top.shape[0])
    found = top.sum(axis=1).astype(np.float64)
    return np.asarray(np.divide(found, counts, out=np.zeros_like(found), where=counts > 0), np.float64)


def hit_rate_at_k(hits: npt.ArrayLike, k: int) -> PerUser:
    """HitRate@k = 1 when at least one relevant item is in the top k, else 0, per user."""
    top = _check(hits, k)
    return np.asarray(top.any(axis=1), dtype=np.float64)


def ndcg_at_k(hits: npt.ArrayLike, n_relevant: npt.ArrayLike, k: int) -> PerUser:
    """NDCG@k with binary relevance, per user.

    DCG@k = sum over ranks r = 1..k of rel_r / log2(r + 1); the ideal DCG puts
    all relevant items first, so IDCG@k = sum over r = 1..min(k, |relevant|) of
    1 / log2(r + 1). NDCG = DCG / IDCG (0 when nothing is relevant).

    Args:
        hits: bool (n_users, >= k) hit matrix.
        n_relevant: int (n_users,) number of relevant items per user.
        k: cut-off.

    Returns:
        float64 (n_users,) in [0, 1].
    """
    top = _check(hits, k)
    counts = _counts(n_relevant, top.shape[0])
    discounts = _discounts(k)
    dcg = top.astype(np.float64) @ discounts
    ideal_prefix = np.concatenate([[0.0], np.cumsum(discounts)])
    idcg = ideal_prefix[np.minimum(counts, k)]
    return np.asarray(np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0), np.float64)


def average_precision_at_k(hits: npt.ArrayLike, n_relevant: npt.ArrayLike, k: int) -> PerUser:
    """AP@k per user; its mean over users is MAP@k.

    AP@k = (1 / min(k, |relevant|)) * sum over ranks r <= k that are hits of
    Precision@r. Dividing by min(k, |relevant|) (not |relevant|) makes a
    perfect top-k score 1 even for users with more than k relevant items.

    Args:
        hits: bool (n_users, >= k) hit matrix.
        n_relevant: int (n_users,) number of relevant items per user.
        k: cut-off.

    Returns:
        float64 (n_users,) in [0, 1].
    """
    top = _check(hits, k)
    counts = _counts(n_relevant, top.shape[0])
    as_float = top.astype(np.float64)
    precision_at_rank = np.cumsum(as_float, axis=1) / np.arange(1, k + 1, dtype=np.float64)
    summed = (precision_at_rank * as_float).sum(axis=1)
    denominator = np.minimum(counts, k).astype(np.float64)
    return np.asarray(np.divide(summed, denominator, out=np.zeros_like(summed), where=denominator > 0), np.float64)


def catalog_coverage(recommended: npt.ArrayLike, catalog_size: int, k: int | None = None) -> float:
    """Share of the catalogue that appears in at least one user's top k.

    Args:
        recommended: array-like (n_users, >= k) of item ids; ``""`` pads are ignored.
        catalog_size: number of items that could have been recommended (> 0).
        k: cut-off; None uses every column.

    Returns:
        distinct recommended items / catalog_size, in [0, 1].
    """
    if catalog_size < 1:
        raise InvalidInputError(f"catalog_size must be positive, got {catalog_size}")
    ids = np.asarray(recommended, dtype=object)
    if ids.ndim != 2:
        raise InvalidInputError(f"recommended must be 2-D (n_users, k), got shape {ids.shape}")
    if k is not None:
        ids = ids[:, :k]
    distinct = set(ids.ravel().tolist()) - {""}
    return len(distinct) / float(catalog_size)


def _pair(predicted: npt.ArrayLike, actual: npt.ArrayLike) -> tuple[PerUser, PerUser]:
    pred = np.asarray(predicted, dtype=np.float64).reshape(-1)
    true = np.asarray(actual, dtype=np.float64).reshape(-1)
    if pred.shape != true.shape:
        raise InvalidInputError(f"{pred.shape[0]} predictions for {true.shape[0]} ratings")
    if pred.size == 0:
        raise InvalidInputError("no ratings to compare")
    if not (np.isfinite(pred).all() and np.isfinite(true).all()):
        raise InvalidInputError("predictions and ratings must be finite")
    return pred, true


def rmse(predicted: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """Root mean squared error between predicted and actual ratings (lower is better)."""
    pred, true = _pair(predicted, actual)
    return float(np.sqrt(np.mean((pred - true) ** 2)))


def mae(predicted: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """Mean absolute error between predicted and actual ratings (lower is better)."""
    pred, true = _pair(predicted, actual)
    return float(np.mean(np.abs(pred - true)))
