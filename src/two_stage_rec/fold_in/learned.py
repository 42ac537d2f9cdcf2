"""A fold-in learned from the trained users: a linear map from their history to their trained vector."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from two_stage_rec.errors import DimensionMismatchError, InvalidInputError
from two_stage_rec.fold_in._batch import check_batch, rating_weights, segment_sum
from two_stage_rec.fold_in._prior import with_priors
from two_stage_rec.types import FloatMatrix, FloatVector

__all__ = ["HISTORY_SIZES", "MAX_FIT_USERS", "LearnedFoldIn"]

F64 = npt.NDArray[np.float64]

HISTORY_SIZES: tuple[int, ...] = (1, 2, 3, 5, 8, 13, 21, 34)
"""History sizes :meth:`LearnedFoldIn.fit` fits one map for; a history of h
items uses the map of the largest size <= h."""


MAX_FIT_USERS = 20_000
"""Users :meth:`LearnedFoldIn.fit` fits on by default (a seeded sample when there are more)."""

_PADDED_FLOATS = 1 << 22
"""Floats of the padded (users, longest size, d) block fitting forms at once (32 MiB of float64)."""


def _indices(values: npt.ArrayLike, size: int, what: str) -> npt.NDArray[np.int64]:
    rows = np.asarray(values)
    if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
        raise InvalidInputError(f"{what} must be a 1-D integer array, got {rows.dtype} of shape {rows.shape}")
    if rows.size and (rows.min() < 0 or rows.max() >= size):
        raise InvalidInputError(f"{what} must index the {size} rows given")
    return rows.astype(np.int64)


def _running(values: npt.NDArray[np.floating], steps: npt.NDArray[np.int64], op: np.ufunc) -> F64:
    """``op`` accumulated along axis 0 and read at ``steps``: (len(steps), ...) float64.

    Reduces the contiguous slab between consecutive steps, then accumulates
    the few slab results: cheaper than a full running sum over every position.
    """
    bounds = np.r_[0, steps + 1]
    slabs = np.stack([op.reduce(values[a:b], axis=0, dtype=np.float64) for a, b in pairwise(bounds.tolist())])
    out: F64 = op.accumulate(slabs, axis=0)
    return out


def _prefix_means(
    items: npt.NDArray[np.float32],
    events: npt.NDArray[np.int64],
    owners: npt.NDArray[np.int64],
    ratings: F64 | None,
    sizes: Sequence[int],
    seed: int,
) -> Iterator[tuple[npt.NDArray[np.int64], F64, npt.NDArray[np.bool_]]]:
    """Per chunk of users: ``(users, means, has)``, the mean item vector of each user's first s events.

    Each user's events are shuffled (seeded), so the first s are a random
    s-subset, nested across sizes. ``means`` is (S, users, d), rating-weighted
    as :func:`rating_weights` weighs (``r - min + 1`` over the subset);
    ``has[j, u]`` says whether user u has at least ``sizes[j]`` events.
    Memory is bounded by :data:`_PADDED_FLOATS` whatever the number of events.
    """
    # Sorting by (user, item) first makes the shuffle independent of the order the events came in.
    canonical = np.argsort(owners * (int(events.max()) + 1) + events, kind="stable")
    shuffle = np.random.default_rng(seed).random(owners.size)
    order = canonical[np.argsort(owners[canonical] + shuffle, kind="stable")]
    owner_sorted = owners[order]
    starts = np.flatnonzero(np.r_[True, owner_sorted[1:] != owner_sorted[:-1]])
    counts = np.diff(np.r_[starts, owners.size])
    longest = int(sizes[-1])
    steps = np.asarray(sizes, dtype=np.int64) - 1
    d = items.shape[1]
    per_chunk = max(1, _PADDED_FLOATS // (longest * d))
    for first in range(0, starts.size, per_chunk):
        block_starts, block_counts = starts[first : first + per_chunk], counts[first : first + per_chunk]
        taken = np.minimum(block_counts, longest)
        user_of = np.repeat(np.arange(block_starts.size), taken)
        position = np.arange(int(taken.sum())) - np.repeat(np.cumsum(taken) - taken, taken)
        source = order[np.repeat(block_starts, taken) + position]
        # Position-major (longest, users, d): the running sums add whole contiguous slabs.
        vectors = np.zeros((longest, block_starts.size, d), dtype=np.float32)
        vectors[position, user_of] = items[events[source]]
        sums = _running(vectors, steps, np.add)
        if ratings is None:
            means = sums / (steps + 1)[:, None, None]
        else:
            stars = np.full((longest, block_starts.size), np.inf)
            stars[position, user_of] = ratings[source]
            lowest = _running(stars, steps, np.minimum)
            finite = np.where(np.isfinite(stars), stars, 0.0)
            weighted = _running(vectors * finite[:, :, None], steps, np.add)
            star_sums = _running(finite, steps, np.add)
            shift = np.where(np.isfinite(lowest), lowest - 1.0, 0.0)  # w_i = r_i - (lowest - 1)
            totals = star_sums - shift * (steps + 1)[:, None]
            means = (weighted - shift[:, :, None] * sums) / np.maximum(totals, 1e-12)[:, :, None]
        yield owner_sorted[block_starts], means, (steps + 1)[:, None] <= block_counts[None, :]


def _features(means: F64) -> F64:
    """(n, d + 1): the mean history vector and a constant (the intercept)."""
    return np.hstack([means, np.ones((means.shape[0], 1))])


class LearnedFoldIn:
    """A user is a linear function of the mean of their history, fitted on the trained users.

    For a history of ``h`` items with (rating-weighted, as in
    :class:`~two_stage_rec.fold_in.MeanFoldIn`) mean item vector ``m``::

        f = [m, 1] · W_s        W_s: (d + 1, d), s = the largest fitted size <= h

    Each ``W_s`` is a ridge regression, fitted in closed form by
    :meth:`fit`, from the mean of a random ``s``-item subset of each trained
    user's items to that user's trained vector: the map learns how the
    towers place users relative to their items (direction, length, the
    offset of the average user), and, fitted per size, how far a mean of
    only a few items should be trusted (a one-item mean is noisy, so its
    map shrinks towards the average user). A known user (prior ``p``) gets
    ``(κ p + h f) / (κ + h)`` with ``κ = prior_strength``.

    Args:
        maps: float (S, d + 1, d), one map per size.
        sizes: S increasing history sizes, the first 1.
        prior_strength: κ >= 0, how many history items a prior counts as.

    Thread safety: ``fold_in`` is read-only and safe to call concurrently.
    """

    def __init__(self, maps: npt.ArrayLike, sizes: Sequence[int], *, prior_strength: float = 10.0) -> None:
        weights = np.asarray(maps, dtype=np.float64)
        if weights.ndim != 3 or weights.shape[1] != weights.shape[2] + 1 or weights.shape[0] == 0:
            raise InvalidInputError(f"maps must have shape (S, d + 1, d), got {weights.shape}")
        if not np.isfinite(weights).all():
            raise InvalidInputError("maps hold NaN or infinity")
        size_list = [int(s) for s in sizes]
        if len(size_list) != weights.shape[0] or not size_list or size_list[0] != 1:
            raise InvalidInputError(
                f"need one size per map, the first 1: {len(size_list)} sizes, {weights.shape[0]} maps"
            )
        if any(b <= a for a, b in pairwise(size_list)):
            raise InvalidInputError(f"sizes must increase, got {size_list}")
        if not (np.isfinite(prior_strength) and prior_strength >= 0):
            raise InvalidInputError(f"prior_strength must be a finite number >= 0, got {prior_strength}")
        self._maps = weights
        self._sizes = np.array(size_list, dtype=np.int64)
        self._prior_strength = float(prior_strength)

    def __repr__(self) -> str:
        return (
            f"LearnedFoldIn(dimension={self.dimension}, sizes={self._sizes.tolist()}, "
            f"prior_strength={self._prior_strength})"
        )

    @property
    def dimension(self) -> int:
        """d."""
        return int(self._maps.shape[2])

    @property
    def maps(self) -> F64:
        """The fitted maps, float64 (S, d + 1, d), a read-only view: ``maps[j]`` serves ``sizes[j]``."""
        view = self._maps.view()
        view.flags.writeable = False
        return view

    @property
    def sizes(self) -> tuple[int, ...]:
        """The history sizes a map was fitted for."""
        return tuple(int(s) for s in self._sizes)

    @classmethod
    def fit(
        cls,
        user_vectors: npt.ArrayLike,
        item_vectors: npt.ArrayLike,
        events: npt.ArrayLike,
        owners: npt.ArrayLike,
        *,
        ratings: npt.ArrayLike | None = None,
        sizes: Sequence[int] = HISTORY_SIZES,
        l2: float = 1e-3,
        prior_strength: float = 10.0,
        max_users: int | None = MAX_FIT_USERS,
        seed: int = 0,
    ) -> LearnedFoldIn:
        """Fit one ridge map per history size from trained users' histories to their vectors.

        For size ``s``, every user with at least ``s`` items contributes one
        example: the mean of a random ``s``-item subset of their items
        (subsets nested across sizes) and their trained vector. A size with
        fewer examples than ``d + 1`` reuses the previous size's map.

        Args:
            user_vectors: float (U, d) trained user vectors.
            item_vectors: float (M, d), the items' vectors.
            events: int (N,), the row of ``item_vectors`` of each history event.
            owners: int (N,), the row of ``user_vectors`` each event belongs to.
            ratings: float (N,) ratings of the events, or None (implicit).
            sizes: increasing history sizes, the first 1.
            l2: ridge penalty relative to the features' mean square (> 0).
            prior_strength: passed to the fold-in.
            max_users: fit on at most this many users (a seeded sample), or
                None for all: (d + 1) x d coefficients per size need no more,
                and the cost then stops growing with the users.
            seed: seed of the subsets and of the sample.

        Raises:
            InvalidInputError: shapes disagree, a value is not finite, an
                index is out of range, or there is no event.
        """
        users = np.asarray(user_vectors, dtype=np.float64)
        # float32: the per-event gathers dominate the cost, and half the bytes is several times faster.
        items = np.asarray(item_vectors, dtype=np.float32)
        if users.ndim != 2 or items.ndim != 2:
            raise InvalidInputError(f"user and item vectors must be 2-D, got {users.shape} and {items.shape}")
        if items.shape[1] != users.shape[1]:
            raise DimensionMismatchError(users.shape[1], items.shape[1], "item vectors")
        if not (np.isfinite(users).all() and np.isfinite(items).all()):
            raise InvalidInputError("user or item vectors hold NaN or infinity")
        item_rows = _indices(events, items.shape[0], "events")
        rows = _indices(owners, users.shape[0], "owners")
        if item_rows.shape != rows.shape:
            raise InvalidInputError(f"{item_rows.size} events but {rows.size} owners")
        if rows.size == 0:
            raise InvalidInputError("no history events to fit on")
        if l2 <= 0:
            raise InvalidInputError(f"l2 must be positive, got {l2}")
        rated = None if ratings is None else np.asarray(ratings, dtype=np.float64).reshape(-1)
        if rated is not None and (rated.shape[0] != rows.size or not np.isfinite(rated).all()):
            raise InvalidInputError(f"ratings must be {rows.size} finite numbers")
        if max_users is not None and max_users < 1:
            raise InvalidInputError(f"max_users must be positive or None, got {max_users}")
        present = np.flatnonzero(np.bincount(rows, minlength=users.shape[0]))
        if max_users is not None and present.size > max_users:
            chosen = np.zeros(users.shape[0], dtype=np.bool_)
            chosen[np.random.default_rng(seed).choice(present, max_users, replace=False)] = True
            picked = chosen[rows]
            item_rows, rows = item_rows[picked], rows[picked]
            rated = None if rated is None else rated[picked]
        size_list = [int(s) for s in sizes]
        if not size_list or size_list[0] != 1 or any(b <= a for a, b in pairwise(size_list)):
            raise InvalidInputError(f"sizes must increase from 1, got {size_list}")
        d = users.shape[1]
        gram = np.zeros((len(size_list), d + 1, d + 1))
        cross = np.zeros((len(size_list), d + 1, d))
        examples = np.zeros(len(size_list), dtype=np.int64)
        for chunk_users, chunk_means, has in _prefix_means(items, item_rows, rows, rated, size_list, seed):
            x = np.concatenate([chunk_means, np.ones((*chunk_means.shape[:2], 1))], axis=2)  # (S, users, d + 1)
            kept = x * has[:, :, None]  # a user too short for a size adds nothing to it
            # einsum, not matmul: these products are small, and a threaded BLAS on busy cores costs
            # a hundred times their arithmetic in waiting.
            gram += np.einsum("sui,suj->sij", kept, x)
            cross += np.einsum("sui,uj->sij", kept, users[chunk_users])
            examples += has.sum(axis=1)
        maps = np.zeros((len(size_list), d + 1, d))
        for index in range(len(size_list)):
            if examples[index] < d + 1 and index:
                maps[index] = maps[index - 1]  # too few users this long: the shorter size's map
                continue
            penalty = l2 * max(float(np.trace(gram[index])), 1.0) / (d + 1) * np.eye(d + 1)
            penalty[d, d] = 0.0  # the intercept is not shrunk
            maps[index] = np.linalg.solve(gram[index] + penalty + 1e-12 * np.eye(d + 1), cross[index])
        return cls(maps, size_list, prior_strength=prior_strength)

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
        batch = check_batch(item_vectors, ratings, priors, self.dimension)
        if batch.n == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        weights = rating_weights(batch)
        means = segment_sum(batch.vectors * weights[:, None], batch) / segment_sum(weights, batch)[:, None]
        which = np.searchsorted(self._sizes, batch.lengths, side="right") - 1
        folded = np.einsum("nk,nkd->nd", _features(means), self._maps[which])
        return with_priors(folded, batch, self._prior_strength).astype(np.float32)
