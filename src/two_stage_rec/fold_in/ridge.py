"""Least-squares fold-in: the user vector whose dot products best reproduce the history's scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from two_stage_rec.errors import DimensionMismatchError, InvalidInputError
from two_stage_rec.fold_in._batch import check_batch, segment_gram, segment_sum
from two_stage_rec.types import FloatMatrix, FloatVector
from two_stage_rec.validation import as_float_matrix

__all__ = ["RidgeFoldIn"]


def _vector(value: npt.ArrayLike, dimension: int, what: str) -> npt.NDArray[np.float64]:
    row = as_float_matrix(np.asarray(value, dtype=np.float64).reshape(1, -1), dimension, what=what)
    return np.asarray(row[0], dtype=np.float64)


class RidgeFoldIn:
    """Solve for the user vector in the towers' dot-product model, in closed form.

    For a history of item vectors ``v_1 .. v_h`` (rows of ``V``)::

        u = argmin  Σ_i (t_i − u·v_i)²  +  α Σ_j π_j (t₋ − u·v_j)²  +  λ ‖u − p‖²
          = (VᵀV + α G + λ I)⁻¹ (Σ_i t_i v_i + α t₋ g + λ p)

    * ``t_i``, the target score of a history item: ``t₊`` (``positive_target``)
      without a rating; ``t₊ + b (r_i − c)`` with one (``rating_slope`` b,
      ``rating_centre`` c), so that better rated items should score higher.
    * The middle term is implicit-ALS's treatment of the items the user did
      *not* pick: every item ``j``, drawn with probability ``π_j`` (the
      training events' item distribution), should score ``t₋``
      (``negative_target``). It needs only ``G = Σ_j π_j v_j v_jᵀ`` (``gram``,
      d x d) and ``g = Σ_j π_j v_j`` (``mean_item``), never the catalogue.
      ``α`` (``negative_weight``) counts in history items: α = 1 weighs all
      negatives together like one history item.
    * ``p`` is the user's trained vector when there is one (a known user;
      the history is then evidence on top of it), else ``mean_user``.
      The penalty is ``λ (u − p)ᵀ P (u − p)``, so the solve uses ``λ P`` in
      place of ``λ I``. With ``prior_precision`` given, ``P`` is it and
      ``λ = l2``: :func:`~two_stage_rec.fold_in.fit_fold_in` passes
      ``σ² C⁻¹`` (C the trained users' covariance, σ² the variance of their
      scores), which makes ``l2 = 1`` the Bayesian posterior mean and
      shrinks hardest in the directions where users differ least. Without
      it, ``P = I`` and ``λ = l2 · tr(G) / d`` (``l2`` counts in average
      history items; ``λ = l2`` without a Gram matrix).

    Targets, ``G``, ``g`` and the mean user come from the trained users
    (:func:`~two_stage_rec.fold_in.fit_fold_in`): ``t₊`` is the mean score a
    trained user gives their own items, ``t₋`` the mean score they give an
    item drawn from ``π``, so a folded-in vector lands where trained vectors
    are, in direction and in length. With ``α = 0``, ``b = 1``, ``c = 0``,
    ``t₊ = 0`` and ratings ``r_i = u*·v_i`` it recovers ``u*`` exactly once
    the history spans the space and ``l2 → 0``.

    Args:
        dimension: d.
        mean_user: float (d,) prior of a new user.
        gram: float (d, d) ``G``, or None for no negatives term.
        mean_item: float (d,) ``g`` (needed with ``gram``).
        positive_target: ``t₊``.
        negative_target: ``t₋``.
        negative_weight: ``α >= 0``.
        l2: ``> 0``.
        rating_slope: ``b``; 0 ignores ratings.
        rating_centre: ``c``.
        prior_precision: float (d, d) symmetric positive definite ``P``, or None for ``I``.

    Cost: one d x d solve per user, batched (numpy ``linalg.solve`` on (n, d, d)).
    Thread safety: ``fold_in`` is read-only and safe to call concurrently.
    """

    def __init__(
        self,
        dimension: int,
        *,
        mean_user: npt.ArrayLike | None = None,
        gram: npt.ArrayLike | None = None,
        mean_item: npt.ArrayLike | None = None,
        positive_target: float = 1.0,
        negative_target: float = 0.0,
        negative_weight: float = 0.0,
        l2: float = 1.0,
        rating_slope: float = 0.0,
        rating_centre: float = 0.0,
        prior_precision: npt.ArrayLike | None = None,
    ) -> None:
        if dimension < 1:
            raise InvalidInputError(f"dimension must be positive, got {dimension}")
        d = int(dimension)
        numbers = {
            "positive_target": positive_target,
            "negative_target": negative_target,
            "negative_weight": negative_weight,
            "l2": l2,
            "rating_slope": rating_slope,
            "rating_centre": rating_centre,
        }
        for name, value in numbers.items():
            if not np.isfinite(value):
                raise InvalidInputError(f"{name} must be finite, got {value}")
        if l2 <= 0:
            raise InvalidInputError(f"l2 must be positive, got {l2}")
        if negative_weight < 0:
            raise InvalidInputError(f"negative_weight must be >= 0, got {negative_weight}")
        self._dimension = d
        self._mean_user = np.zeros(d) if mean_user is None else _vector(mean_user, d, "mean_user")
        if gram is None:
            self._gram = np.zeros((d, d))
            self._mean_item = np.zeros(d)
            self._l2 = float(l2)
        else:
            matrix = np.asarray(gram, dtype=np.float64)
            if matrix.shape != (d, d):
                raise DimensionMismatchError(d, matrix.shape[-1] if matrix.ndim else 0, "gram")
            if not np.isfinite(matrix).all():
                raise InvalidInputError("gram holds NaN or infinity")
            if mean_item is None:
                raise InvalidInputError("a gram matrix needs its mean_item")
            self._gram = (matrix + matrix.T) / 2.0
            self._mean_item = _vector(mean_item, d, "mean_item")
            self._l2 = float(l2) * max(float(np.trace(self._gram)) / d, np.finfo(np.float64).tiny)
        self._penalty = np.eye(d)
        if prior_precision is not None:
            precision = np.asarray(prior_precision, dtype=np.float64)
            if precision.shape != (d, d):
                raise DimensionMismatchError(d, precision.shape[-1] if precision.ndim else 0, "prior_precision")
            if not np.isfinite(precision).all():
                raise InvalidInputError("prior_precision holds NaN or infinity")
            self._penalty = (precision + precision.T) / 2.0
            self._l2 = float(l2)
        self._positive = float(positive_target)
        self._negative = float(negative_target)
        self._alpha = float(negative_weight)
        self._slope = float(rating_slope)
        self._centre = float(rating_centre)

    def __repr__(self) -> str:
        return (
            f"RidgeFoldIn(dimension={self._dimension}, positive_target={self._positive:.4g}, "
            f"negative_target={self._negative:.4g}, negative_weight={self._alpha:g}, "
            f"rating_slope={self._slope:.4g})"
        )

    @property
    def dimension(self) -> int:
        """d."""
        return self._dimension

    @property
    def positive_target(self) -> float:
        """``t₊``, the target score of a history item without a rating."""
        return self._positive

    @property
    def rating_slope(self) -> float:
        """``b``, how much a rating moves an item's target score (0: ratings are ignored)."""
        return self._slope

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
                differ, or a value is not finite.
        """
        d = self._dimension
        batch = check_batch(item_vectors, ratings, priors, d)
        if batch.n == 0:
            return np.zeros((0, d), dtype=np.float32)
        targets = np.full(batch.vectors.shape[0], self._positive)
        rated = ~np.isnan(batch.ratings)
        targets[rated] += self._slope * (batch.ratings[rated] - self._centre)
        prior = np.where(batch.has_prior[:, None], batch.priors, self._mean_user[None, :])
        system = (
            segment_gram(batch, np.ones(batch.vectors.shape[0])) + self._alpha * self._gram + self._l2 * self._penalty
        )
        right = (
            segment_sum(batch.vectors * targets[:, None], batch)
            + self._alpha * self._negative * self._mean_item
            + self._l2 * prior @ self._penalty
        )
        return np.linalg.solve(system, right[:, :, None])[:, :, 0].astype(np.float32)
