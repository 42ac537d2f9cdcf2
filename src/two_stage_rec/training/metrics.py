"""Exact numpy metrics for the two models while they train (no TensorFlow needed).

Rating errors of a trained model are :mod:`two_stage_rec.evaluation.metrics`' (one ``rmse``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from two_stage_rec.evaluation.metrics import rmse
from two_stage_rec.types import FloatMatrix

__all__ = ["binary_log_loss", "factorized_top_k_accuracy", "rmse_or_nan", "sampled_auc"]


def factorized_top_k_accuracy(
    user_vectors: FloatMatrix,
    item_vectors: FloatMatrix,
    true_items: npt.NDArray[np.intp],
    ks: Sequence[int] = (1, 5, 10, 50, 100),
    *,
    chunk: int = 4096,
) -> dict[int, float]:
    """Share of (user, item) pairs whose item ranks in the user's top k of the whole catalogue.

    This is TensorFlow Recommenders' ``FactorizedTopK`` metric: for each pair the
    true item's dot-product score is compared with every catalogue item's; an
    item tied with the true one counts as ranked below it.

    Args:
        user_vectors: float32 (n, d), one row per test pair.
        item_vectors: float32 (m, d), the whole catalogue.
        true_items: int (n,), row of each pair's item in ``item_vectors``.
        ks: cut-offs.
        chunk: pairs scored at once (bounds memory to chunk x m floats).

    Returns:
        {k: accuracy in [0, 1]}, higher is better.
    """
    n = user_vectors.shape[0]
    ranks = np.empty(n, dtype=np.int64)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        scores = user_vectors[start:stop] @ item_vectors.T
        true_scores = scores[np.arange(stop - start), true_items[start:stop]]
        ranks[start:stop] = (scores > true_scores[:, None]).sum(axis=1)
    return {int(k): float((ranks < k).mean()) if n else 0.0 for k in ks}


def rmse_or_nan(predicted: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """:func:`two_stage_rec.evaluation.metrics.rmse`, or NaN where it would refuse the input.

    Training measures models while they learn: a diverged epoch's non-finite
    predictions (or an empty split) are recorded as NaN, which no epoch
    selection prefers, instead of stopping the run.
    """
    pred = np.asarray(predicted, dtype=np.float64).reshape(-1)
    true = np.asarray(actual, dtype=np.float64).reshape(-1)
    if pred.size == 0 or not (np.isfinite(pred).all() and np.isfinite(true).all()):
        return float("nan")
    return rmse(pred, true)


def sampled_auc(
    positive_scores: npt.ArrayLike, negative_scores: npt.ArrayLike, valid: npt.ArrayLike | None = None
) -> float:
    """Share of (event, sampled negative) pairs the model orders correctly (higher is better).

    Each event is compared with the negatives sampled for it (same user), so
    this is the per-user ranking AUC estimated from a sample; a tie counts
    half. 0.5 is chance, 1.0 every event above every one of its negatives.

    Args:
        positive_scores: float (n,), the model's score of each event.
        negative_scores: float (n, m), the scores of the m negatives sampled for each event.
        valid: bool (n, m), which negatives count (e.g. not an item the user
            did interact with); None counts all.

    Returns:
        The AUC in [0, 1], or NaN when no pair counts.
    """
    positive = np.asarray(positive_scores, dtype=np.float64).reshape(-1, 1)
    negative = np.asarray(negative_scores, dtype=np.float64)
    mask = np.ones(negative.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    pairs = int(mask.sum())
    if pairs == 0:
        return float("nan")
    wins = ((positive > negative) & mask).sum() + 0.5 * ((positive == negative) & mask).sum()
    return float(wins / pairs)


def binary_log_loss(logits: npt.ArrayLike, labels: npt.ArrayLike, weights: npt.ArrayLike | None = None) -> float:
    """Weighted mean binary cross-entropy of logits against 0/1 labels (lower is better)."""
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    w = np.ones_like(z) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    # max(z, 0) - z*y + log(1 + exp(-|z|)): the overflow-free form of -y log s(z) - (1-y) log(1-s(z)).
    losses = np.maximum(z, 0.0) - z * y + np.log1p(np.exp(-np.abs(z)))
    total = float(w.sum())
    return float((w * losses).sum() / total) if total > 0 else float("nan")
