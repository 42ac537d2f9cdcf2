"""The checked, flattened form of a fold-in batch that every method computes on.

Every method runs :func:`check_batch` first, so bad input gets the same typed
error (an :class:`~two_stage_rec.errors.InvalidInputError` subclass naming the
user's position) whatever the method, before anything is computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from two_stage_rec.errors import DimensionMismatchError, EmptyBatchError, InvalidInputError, NonFiniteVectorError
from two_stage_rec.types import FloatMatrix, FloatVector

__all__ = ["Batch", "check_batch", "rating_weights", "segment_gram", "segment_sum"]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Batch:
    """n histories, flattened: user ``u``'s items are rows ``starts[u]:starts[u] + lengths[u]``.

    Attributes:
        vectors: float64 (N, d), every history's item vectors, user after user.
        ratings: float64 (N,) ratings, NaN where the user's history came without ratings.
        has_ratings: bool (n,), whose history came with ratings.
        starts: int64 (n,), each user's first row.
        lengths: int64 (n,), h_u >= 1.
        priors: float64 (n, d), the prior vector (zeros where there is none).
        has_prior: bool (n,), who has a prior.
    """

    vectors: F64
    ratings: F64
    has_ratings: npt.NDArray[np.bool_]
    starts: npt.NDArray[np.int64]
    lengths: npt.NDArray[np.int64]
    priors: F64
    has_prior: npt.NDArray[np.bool_]

    @property
    def n(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def owner(self) -> npt.NDArray[np.int64]:
        """int64 (N,): the user each row belongs to."""
        return np.repeat(np.arange(self.n, dtype=np.int64), self.lengths)


def _matrix(value: object, what: str) -> F64:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} is not a numeric array: {exc}") from exc


def check_batch(
    item_vectors: Sequence[FloatMatrix],
    ratings: Sequence[FloatVector | None],
    priors: Sequence[FloatVector | None],
    dimension: int,
) -> Batch:
    """Validate a fold-in request and flatten it (see :class:`Batch`).

    Raises:
        InvalidInputError: the three sequences differ in length, or a rating
            array does not have one rating per history item.
        EmptyBatchError: a history holds no items.
        DimensionMismatchError: item vectors or a prior are not ``dimension`` wide.
        NonFiniteVectorError: a vector, rating or prior holds NaN or infinity.
    """
    if isinstance(item_vectors, np.ndarray) and item_vectors.ndim == 2:
        raise InvalidInputError(
            "item_vectors must be a sequence of per-user (h, d) arrays, not one matrix; wrap one user's in a list"
        )
    n = len(item_vectors)
    if len(ratings) != n or len(priors) != n:
        raise InvalidInputError(
            f"one entry per user in each argument: {n} histories, {len(ratings)} ratings, {len(priors)} priors"
        )
    blocks: list[F64] = []
    rating_blocks: list[F64] = []
    has_ratings = np.zeros(n, dtype=np.bool_)
    lengths = np.zeros(n, dtype=np.int64)
    prior_rows = np.zeros((n, dimension), dtype=np.float64)
    has_prior = np.zeros(n, dtype=np.bool_)
    for user, (history, rated, prior) in enumerate(zip(item_vectors, ratings, priors, strict=True)):
        block = _matrix(history, f"history {user}")
        if block.ndim == 1 and block.shape[0] == dimension:
            block = block.reshape(1, dimension)
        if block.ndim != 2 or block.shape[0] == 0:
            if block.size == 0:
                raise EmptyBatchError(f"history {user} is empty: fold-in needs at least one item per user")
            raise InvalidInputError(f"history {user} must be an (h, d) array, got shape {block.shape}")
        if block.shape[1] != dimension:
            raise DimensionMismatchError(dimension, block.shape[1], f"history {user}'s item vectors")
        if not np.isfinite(block).all():
            raise NonFiniteVectorError(f"history {user}'s item vectors hold NaN or infinity")
        h = block.shape[0]
        lengths[user] = h
        blocks.append(block)
        if rated is None:
            rating_blocks.append(np.full(h, np.nan))
        else:
            values = _matrix(rated, f"ratings {user}").reshape(-1)
            if values.shape[0] != h:
                raise InvalidInputError(f"history {user} has {h} items but {values.shape[0]} ratings")
            if not np.isfinite(values).all():
                raise NonFiniteVectorError(f"ratings {user} hold NaN or infinity")
            rating_blocks.append(values)
            has_ratings[user] = True
        if prior is not None:
            row = _matrix(prior, f"prior {user}").reshape(-1)
            if row.shape[0] != dimension:
                raise DimensionMismatchError(dimension, row.shape[0], f"prior {user}")
            if not np.isfinite(row).all():
                raise NonFiniteVectorError(f"prior {user} holds NaN or infinity")
            prior_rows[user] = row
            has_prior[user] = True
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if n else lengths
    return Batch(
        vectors=np.concatenate(blocks) if blocks else np.zeros((0, dimension)),
        ratings=np.concatenate(rating_blocks) if rating_blocks else np.zeros(0),
        has_ratings=has_ratings,
        starts=starts,
        lengths=lengths,
        priors=prior_rows,
        has_prior=has_prior,
    )


def segment_sum(values: npt.NDArray[np.float64], batch: Batch) -> npt.NDArray[np.float64]:
    """Sum rows of ``values`` (N, ...) per user: (n, ...)."""
    if batch.n == 0:
        return np.zeros((0, *values.shape[1:]), dtype=np.float64)
    return np.add.reduceat(values, batch.starts, axis=0)


_PADDED_FLOATS = 1 << 22
"""Largest padded (users, h_max, d) block :func:`segment_gram` forms at once (32 MiB of float64)."""


def segment_gram(batch: Batch, weights: F64) -> F64:
    """Per user ``Σ_i w_i v_i v_iᵀ``: float64 (n, d, d).

    Histories are padded to the longest in a chunk of users (zeros add
    nothing), so the sums are one batched product per chunk.
    """
    n, d = batch.n, batch.vectors.shape[1]
    out = np.zeros((n, d, d), dtype=np.float64)
    weighted = batch.vectors * weights[:, None]
    position = np.arange(batch.vectors.shape[0], dtype=np.int64) - np.repeat(batch.starts, batch.lengths)
    owner = batch.owner
    start = 0
    while start < n:
        longest = int(batch.lengths[start])
        stop = start + 1
        while stop < n and (stop - start + 1) * max(longest, int(batch.lengths[stop])) * d <= _PADDED_FLOATS:
            longest = max(longest, int(batch.lengths[stop]))
            stop += 1
        rows = slice(int(batch.starts[start]), int(batch.starts[stop - 1] + batch.lengths[stop - 1]))
        left = np.zeros((stop - start, longest, d))
        right = np.zeros((stop - start, longest, d))
        left[owner[rows] - start, position[rows]] = batch.vectors[rows]
        right[owner[rows] - start, position[rows]] = weighted[rows]
        out[start:stop] = np.matmul(left.transpose(0, 2, 1), right)
        start = stop
    return out


def rating_weights(batch: Batch) -> F64:
    """float64 (N,): each history item's weight from its rating, 1 without ratings.

    ``w_i = r_i - min_j r_j + 1`` over the user's history: the user's lowest
    rated item counts once, better rated items more, equal ratings give the
    plain mean, and the weights do not depend on where the rating scale starts.
    """
    weights = np.ones(batch.vectors.shape[0], dtype=np.float64)
    if batch.has_ratings.any():
        owner = batch.owner
        rated = batch.has_ratings[owner]
        lowest = np.minimum.reduceat(np.where(rated, batch.ratings, np.inf), batch.starts)
        weights[rated] = batch.ratings[rated] - lowest[owner[rated]] + 1.0
    return weights
