"""The baseline fold-in: the (rating-weighted) mean of the history's item vectors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from two_stage_rec.errors import InvalidInputError
from two_stage_rec.fold_in._batch import check_batch, rating_weights, segment_sum
from two_stage_rec.fold_in._prior import with_priors
from two_stage_rec.types import FloatMatrix, FloatVector

__all__ = ["MeanFoldIn"]


class MeanFoldIn:
    """A user is the weighted mean of their items, rescaled to a trained user's norm.

    For a history of item vectors ``v_1 .. v_h`` with weights ``w_i`` (1
    without ratings; ``r_i - min_j r_j + 1`` with ratings, so better rated
    items count more)::

        m = Σ w_i v_i / Σ w_i
        f = s · m / ‖m‖            (f = m when no scale s is set)

    ``s`` is the typical norm of trained user vectors (the median, as
    :func:`~two_stage_rec.fold_in.fit_fold_in` sets it), because the mean of
    item vectors is much shorter than a user vector and the scoring model
    and blend see the vector's length, not only its direction. A known user
    (a prior ``p``) gets ``(κ p + h f) / (κ + h)`` with ``κ = prior_strength``.

    A baseline: the direction of the mean ranks items by their average
    similarity to the history, which ignores how the towers spread users.

    Args:
        dimension: d, the width of item and user vectors.
        scale: the norm of the returned vectors (before the prior), or None
            to return the mean itself.
        prior_strength: κ >= 0, how many history items a prior counts as.

    Thread safety: ``fold_in`` is read-only and safe to call concurrently.
    """

    def __init__(self, dimension: int, *, scale: float | None = None, prior_strength: float = 10.0) -> None:
        if dimension < 1:
            raise InvalidInputError(f"dimension must be positive, got {dimension}")
        if scale is not None and not (np.isfinite(scale) and scale > 0):
            raise InvalidInputError(f"scale must be a positive finite number or None, got {scale}")
        if not (np.isfinite(prior_strength) and prior_strength >= 0):
            raise InvalidInputError(f"prior_strength must be a finite number >= 0, got {prior_strength}")
        self._dimension = int(dimension)
        self._scale = None if scale is None else float(scale)
        self._prior_strength = float(prior_strength)

    def __repr__(self) -> str:
        return f"MeanFoldIn(dimension={self._dimension}, scale={self._scale}, prior_strength={self._prior_strength})"

    @property
    def dimension(self) -> int:
        """d."""
        return self._dimension

    def fold_in(
        self,
        item_vectors: Sequence[FloatMatrix],
        *,
        ratings: Sequence[FloatVector | None],
        priors: Sequence[FloatVector | None],
    ) -> FloatMatrix:
        """One vector per history; see the class docstring for the formula.

        Args:
            item_vectors: per user, float32 (h_i, d) history item vectors, h_i >= 1.
            ratings: per user, float32 (h_i,) ratings (higher is better), or None.
            priors: per user, the trained float32 (d,) vector, or None.

        Returns:
            float32 (n, d); dot products with item vectors rank items, higher is better.

        Raises:
            InvalidInputError: lengths differ, a history is empty, widths
                differ, or a value is not finite (see :func:`check_batch`).
        """
        batch = check_batch(item_vectors, ratings, priors, self._dimension)
        weights = rating_weights(batch)
        mean = segment_sum(batch.vectors * weights[:, None], batch) / segment_sum(weights, batch)[:, None]
        if self._scale is not None:
            norms = np.linalg.norm(mean, axis=1, keepdims=True)
            mean = np.divide(self._scale * mean, norms, out=np.zeros_like(mean), where=norms > 0)
        return with_priors(mean, batch, self._prior_strength).astype(np.float32)
