"""Exact numpy metrics for the two models (no TensorFlow needed)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from two_stage_rec.types import FloatMatrix

__all__ = ["factorized_top_k_accuracy", "rmse"]


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


def rmse(predicted: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """Root mean squared error (lower is better)."""
    difference = np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
    return float(np.sqrt(np.mean(difference**2)))
