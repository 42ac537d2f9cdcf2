"""Train/test splits of a rating log: random, per-user stratified, and the canonical ML-100K files.

Every split returns ``(train, test)`` as two :class:`Ratings` that are disjoint
and together hold every input row exactly once, each in the input's order.
Seeded splits are deterministic given the seed (numpy's PCG64 generator).
"""

from __future__ import annotations

import os
from typing import Literal, TypeAlias, get_args

import numpy as np

from two_stage_rec.datasets.checksums import Checksums
from two_stage_rec.datasets.movielens import locate_movielens_100k
from two_stage_rec.datasets.ratings import Ratings, read_ratings
from two_stage_rec.errors import InvalidInputError

__all__ = ["CANONICAL_SPLITS", "CanonicalSplit", "canonical_split", "per_user_split", "random_split"]

CanonicalSplit: TypeAlias = Literal["u1", "u2", "u3", "u4", "u5", "ua", "ub"]
"""The split files GroupLens ships: ``u1..u5`` are the five disjoint 80/20 folds
(published RMSE results use ``u1``); ``ua``/``ub`` hold out exactly 10 ratings per user."""

CANONICAL_SPLITS: tuple[CanonicalSplit, ...] = get_args(CanonicalSplit)


def _check_fraction(test_fraction: float) -> float:
    if isinstance(test_fraction, bool) or not 0.0 < float(test_fraction) < 1.0:
        raise InvalidInputError(f"test_fraction must be strictly between 0 and 1, got {test_fraction!r}")
    return float(test_fraction)


def _split_by_mask(ratings: Ratings, is_test: np.ndarray) -> tuple[Ratings, Ratings]:
    return ratings.take(~is_test), ratings.take(is_test)


def random_split(ratings: Ratings, test_fraction: float = 0.2, *, seed: int = 42) -> tuple[Ratings, Ratings]:
    """Hold out a uniformly random ``test_fraction`` of all ratings (the notebook's 80/20).

    Exactly ``round(test_fraction * n)`` ratings go to the test set. A user or
    item may end up only in the test set; use :func:`per_user_split` when every
    user must keep training data.

    Args:
        ratings: the log to split (n rows).
        test_fraction: share of rows held out, in (0, 1).
        seed: seed of the random permutation.

    Returns:
        ``(train, test)``.
    """
    fraction = _check_fraction(test_fraction)
    n = len(ratings)
    n_test = round(fraction * n)
    chosen = np.random.default_rng(seed).permutation(n)[:n_test]
    is_test = np.zeros(n, dtype=np.bool_)
    is_test[chosen] = True
    return _split_by_mask(ratings, is_test)


def per_user_split(ratings: Ratings, test_fraction: float = 0.25, *, seed: int = 42) -> tuple[Ratings, Ratings]:
    """Hold out a random ``test_fraction`` of each user's ratings (stratified by user).

    This is the protocol of Microsoft Recommenders' ML-100K benchmark table
    (``python_stratified_split`` with ``ratio=0.75``): each user's ratings are
    shuffled and the first ``round((1 - test_fraction) * n_u)`` kept for
    training, the rest held out. Every user keeps at least one training
    rating, so a user with one rating has none in the test set.

    Args:
        ratings: the log to split.
        test_fraction: share of each user's rows held out, in (0, 1).
        seed: seed of the within-user shuffles.

    Returns:
        ``(train, test)``.
    """
    fraction = _check_fraction(test_fraction)
    n = len(ratings)
    if n == 0:
        return _split_by_mask(ratings, np.zeros(0, dtype=np.bool_))
    # Shuffle within users in one vectorised pass: sort by (user, random key);
    # a row's position inside its user's block is then its random rank.
    keys = np.random.default_rng(seed).random(n)
    order = np.lexsort((keys, ratings.user_ids))
    users_sorted = ratings.user_ids[order]
    block_starts = np.flatnonzero(np.r_[True, users_sorted[1:] != users_sorted[:-1]])
    block_sizes = np.diff(np.r_[block_starts, n])
    rank_in_block = np.arange(n) - np.repeat(block_starts, block_sizes)
    # np.round rounds half to even, as Python's round() in the reference implementation does.
    n_train = np.maximum(np.round((1.0 - fraction) * block_sizes), 1).astype(np.int64)
    is_test = np.empty(n, dtype=np.bool_)
    is_test[order] = rank_in_block >= np.repeat(n_train, block_sizes)
    return _split_by_mask(ratings, is_test)


def canonical_split(
    name: CanonicalSplit,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    checksums: Checksums | None = None,
) -> tuple[Ratings, Ratings]:
    """Read one of the split files GroupLens ships (``u1.base`` / ``u1.test``, ...).

    The folder is found (or downloaded) as in
    :func:`~two_stage_rec.datasets.movielens.locate_movielens_100k`.

    Args:
        name: ``"u1"`` .. ``"u5"`` (80/20 folds), ``"ua"`` or ``"ub"`` (10 test ratings per user).
        data_dir: a local ml-100k folder (default: ``$TWO_STAGE_REC_DATA``, then the cache).
        cache_dir: where downloads are kept.
        progress: show a progress bar while downloading.
        checksums: expected digests of ``u.data``/``u.item``/``u.user`` (default: the published ones).

    Returns:
        ``(train, test)`` read from ``<name>.base`` and ``<name>.test``.

    Raises:
        InvalidInputError: ``name`` is not a canonical split.
        DatasetError: the folder lacks the split files (named) or they do not parse.
    """
    if name not in CANONICAL_SPLITS:
        raise InvalidInputError(f"unknown split {name!r}; choose one of {', '.join(CANONICAL_SPLITS)}")
    folder = locate_movielens_100k(data_dir, cache_dir=cache_dir, progress=progress, checksums=checksums)
    return read_ratings(folder / f"{name}.base"), read_ratings(folder / f"{name}.test")
