"""One fold-in for new users and another for known ones, chosen per user by whether a prior is given."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from two_stage_rec.errors import InvalidInputError, InvalidResultError
from two_stage_rec.fold_in._batch import check_batch
from two_stage_rec.protocols import FoldIn
from two_stage_rec.types import FloatMatrix, FloatVector

__all__ = ["SplitFoldIn"]


class SplitFoldIn:
    """Fold new users in with ``new`` and known users (those with a prior) with ``known``.

    Why two: a new user has only a few items and the population to lean on,
    a known user has their trained vector, and the two cases favour
    different methods (measured in ``benchmarks/fold_in.py``: the ridge
    fold-in for new users, the learned one, pulled towards the prior, for
    recent activity of known users).

    Args:
        new: the fold-in of users without a prior.
        known: the fold-in of users with one.
        dimension: d, the width of item and user vectors.

    Thread safety: as safe as ``new`` and ``known``.
    """

    def __init__(self, new: FoldIn, known: FoldIn, *, dimension: int) -> None:
        if dimension < 1:
            raise InvalidInputError(f"dimension must be positive, got {dimension}")
        self._new = new
        self._known = known
        self._dimension = int(dimension)

    def __repr__(self) -> str:
        return f"SplitFoldIn(new={self._new!r}, known={self._known!r})"

    @property
    def dimension(self) -> int:
        """d."""
        return self._dimension

    @property
    def new(self) -> FoldIn:
        """The fold-in of users without a prior."""
        return self._new

    @property
    def known(self) -> FoldIn:
        """The fold-in of users with a prior."""
        return self._known

    def fold_in(
        self,
        item_vectors: Sequence[FloatMatrix],
        *,
        ratings: Sequence[FloatVector | None],
        priors: Sequence[FloatVector | None],
    ) -> FloatMatrix:
        """One vector per history: ``new``'s for users without a prior, ``known``'s for the others.

        Args:
            item_vectors: per user, float32 (h_i, d) history item vectors, h_i >= 1.
            ratings: per user, float32 (h_i,) ratings (higher is better), or None.
            priors: per user, the trained float32 (d,) vector, or None.

        Returns:
            float32 (n, d), rows in the order of the users given.

        Raises:
            InvalidInputError: lengths differ, a history is empty, widths
                differ, or a value is not finite.
            InvalidResultError: a part returned the wrong shape.
        """
        # Checked whole first, so that an error names the user's position in this batch, not in a part.
        check_batch(item_vectors, ratings, priors, self._dimension)
        n = len(item_vectors)
        out = np.zeros((n, self._dimension), dtype=np.float32)
        for part, rows in (
            (self._new, [u for u in range(n) if priors[u] is None]),
            (self._known, [u for u in range(n) if priors[u] is not None]),
        ):
            if not rows:
                continue
            got = np.asarray(
                part.fold_in(
                    [item_vectors[u] for u in rows],
                    ratings=[ratings[u] for u in rows],
                    priors=[priors[u] for u in rows],
                ),
                dtype=np.float32,
            )
            if got.shape != (len(rows), self._dimension):
                raise InvalidResultError(f"{type(part).__name__} returned shape {got.shape} for {len(rows)} histories")
            out[rows] = got
        return out
