"""Train/test splits of any interaction log: random, per-user stratified, per-user temporal.

Every split returns ``(train, test)`` as two :class:`Interactions` that are
disjoint and together hold every input row exactly once, each in the input's
order. Seeded splits are deterministic given the seed (numpy's PCG64).
MovieLens's own split files (``u1`` .. ``u5``, ``ua``, ``ub``) stay available
through :func:`canonical_split`.

Which to use: :func:`temporal_split` is the realistic protocol (the model
predicts each user's future from their past); :func:`per_user_split` is the
one published ML-100K top-k tables use; :func:`random_split` is the
notebook's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, TypeAlias, get_args

import numpy as np
import numpy.typing as npt

from two_stage_rec.datasets.checksums import Checksums
from two_stage_rec.datasets.interactions import Interactions
from two_stage_rec.datasets.movielens import locate_movielens_100k
from two_stage_rec.datasets.ratings import read_ratings
from two_stage_rec.errors import InvalidInputError

__all__ = [
    "CANONICAL_SPLITS",
    "SPLIT_KINDS",
    "CanonicalSplit",
    "SplitKind",
    "SplitSpec",
    "canonical_split",
    "per_user_split",
    "random_split",
    "split",
    "temporal_split",
]

CanonicalSplit: TypeAlias = Literal["u1", "u2", "u3", "u4", "u5", "ua", "ub"]
"""The split files GroupLens ships: ``u1..u5`` are the five disjoint 80/20 folds
(published RMSE results use ``u1``); ``ua``/``ub`` hold out exactly 10 ratings per user."""

CANONICAL_SPLITS: tuple[CanonicalSplit, ...] = get_args(CanonicalSplit)

SplitKind: TypeAlias = Literal["random", "stratified", "temporal"]
"""How :func:`split` holds out test events: uniformly at random, a random share of
each user's events, or each user's latest events by timestamp."""

SPLIT_KINDS: tuple[SplitKind, ...] = get_args(SplitKind)


def _check_fraction(test_fraction: float) -> float:
    if isinstance(test_fraction, bool) or not 0.0 < float(test_fraction) < 1.0:
        raise InvalidInputError(f"test_fraction must be strictly between 0 and 1, got {test_fraction!r}")
    return float(test_fraction)


def _split_by_mask(log: Interactions, is_test: npt.NDArray[np.bool_]) -> tuple[Interactions, Interactions]:
    return log.take(~is_test), log.take(is_test)


def random_split(log: Interactions, test_fraction: float = 0.2, *, seed: int = 42) -> tuple[Interactions, Interactions]:
    """Hold out a uniformly random ``test_fraction`` of all events (the notebook's 80/20).

    Exactly ``round(test_fraction * n)`` events go to the test set. A user or
    item may end up only in the test set; use :func:`per_user_split` or
    :func:`temporal_split` when every user must keep training data.

    Args:
        log: the events to split (n rows).
        test_fraction: share of rows held out, in (0, 1).
        seed: seed of the random permutation.

    Returns:
        ``(train, test)``.
    """
    fraction = _check_fraction(test_fraction)
    n = len(log)
    chosen = np.random.default_rng(seed).permutation(n)[: round(fraction * n)]
    is_test = np.zeros(n, dtype=np.bool_)
    is_test[chosen] = True
    return _split_by_mask(log, is_test)


def _per_user_rank(
    log: Interactions, order_key: npt.NDArray[np.generic], tie_key: npt.NDArray[np.generic]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """For each row: its 0-based rank within its user by (order_key, tie_key), and the user's size.

    Returns ``(order, rank_in_block, block_size_per_row)`` where ``order`` sorts rows by (user, key).
    """
    _, user_codes = log.user_codes()
    order = np.lexsort((tie_key, order_key, user_codes)).astype(np.int64)
    sorted_users = user_codes[order]
    n = len(log)
    block_starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    block_sizes = np.diff(np.r_[block_starts, n])
    rank = np.arange(n) - np.repeat(block_starts, block_sizes)
    return order, rank.astype(np.int64), np.repeat(block_sizes, block_sizes).astype(np.int64)


def per_user_split(
    log: Interactions, test_fraction: float = 0.25, *, seed: int = 42
) -> tuple[Interactions, Interactions]:
    """Hold out a random ``test_fraction`` of each user's events (stratified by user).

    The protocol of Microsoft Recommenders' ML-100K benchmark table
    (``python_stratified_split`` with ``ratio=0.75``): each user's events are
    shuffled and the first ``round((1 - test_fraction) * n_u)`` kept for
    training, the rest held out. Every user keeps at least one training
    event, so a user with one event has none in the test set.

    Args:
        log: the events to split.
        test_fraction: share of each user's rows held out, in (0, 1).
        seed: seed of the within-user shuffles.

    Returns:
        ``(train, test)``.
    """
    fraction = _check_fraction(test_fraction)
    n = len(log)
    if n == 0:
        return _split_by_mask(log, np.zeros(0, dtype=np.bool_))
    keys = np.random.default_rng(seed).random(n)
    order, rank, size = _per_user_rank(log, keys, np.zeros(n, dtype=np.int64))
    # np.round rounds half to even, as Python's round() in the reference implementation does.
    n_train = np.maximum(np.round((1.0 - fraction) * size), 1).astype(np.int64)
    is_test = np.empty(n, dtype=np.bool_)
    is_test[order] = rank >= n_train
    return _split_by_mask(log, is_test)


def temporal_split(
    log: Interactions, test_fraction: float | None = 0.2, *, last_n: int | None = None
) -> tuple[Interactions, Interactions]:
    """Hold out each user's latest events by timestamp: the last ``test_fraction`` or the last ``last_n``.

    The realistic protocol: the model is trained on each user's past and
    asked for their future. Events with equal timestamps keep their log order
    (later rows count as later). Every user keeps at least one training event.

    Args:
        log: the events to split; needs timestamps.
        test_fraction: share of each user's events held out (the latest
            ``round(test_fraction * n_u)``, at least one for users with two or
            more events), in (0, 1). Ignored when ``last_n`` is given.
        last_n: hold out exactly each user's ``last_n`` latest events instead
            (fewer when the user has at most ``last_n``: one is kept for training).

    Returns:
        ``(train, test)``.

    Raises:
        InvalidInputError: no timestamps, or neither/invalid ``test_fraction``
            and ``last_n``.
    """
    if log.timestamps is None:
        raise InvalidInputError("a temporal split needs timestamps; these interactions have none")
    n = len(log)
    if n == 0:
        return _split_by_mask(log, np.zeros(0, dtype=np.bool_))
    order, rank, size = _per_user_rank(log, log.timestamps, np.arange(n))
    if last_n is not None:
        if isinstance(last_n, bool) or not isinstance(last_n, int | np.integer) or last_n < 1:
            raise InvalidInputError(f"last_n must be a positive integer, got {last_n!r}")
        n_test = np.minimum(last_n, size - 1)
    else:
        if test_fraction is None:
            raise InvalidInputError("pass test_fraction or last_n")
        fraction = _check_fraction(test_fraction)
        n_test = np.minimum(np.maximum(np.round(fraction * size), 1), size - 1).astype(np.int64)
    is_test = np.empty(n, dtype=np.bool_)
    is_test[order] = rank >= size - n_test
    return _split_by_mask(log, is_test)


@dataclass(frozen=True, slots=True)
class SplitSpec:
    """A reproducible split: which kind, what share, which seed.

    A bundle records the split its models were trained on, so that
    ``two-stage-rec evaluate`` can recreate it and measure on the held-out part only.

    Attributes:
        kind: ``"random"``, ``"stratified"`` or ``"temporal"``.
        test_fraction: share held out (per user for stratified and temporal).
        seed: seed of the random splits (unused by temporal).
    """

    kind: SplitKind
    test_fraction: float
    seed: int = 42

    def __post_init__(self) -> None:
        if self.kind not in SPLIT_KINDS:
            raise InvalidInputError(f"split must be one of {', '.join(SPLIT_KINDS)}, got {self.kind!r}")
        _check_fraction(self.test_fraction)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (for the bundle manifest)."""
        return {"kind": self.kind, "test_fraction": self.test_fraction, "seed": self.seed}


def split(log: Interactions, spec: SplitSpec) -> tuple[Interactions, Interactions]:
    """Apply a :class:`SplitSpec`: ``(train, test)``."""
    if spec.kind == "random":
        return random_split(log, spec.test_fraction, seed=spec.seed)
    if spec.kind == "stratified":
        return per_user_split(log, spec.test_fraction, seed=spec.seed)
    return temporal_split(log, spec.test_fraction)


def canonical_split(
    name: CanonicalSplit,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    checksums: Checksums | None = None,
) -> tuple[Interactions, Interactions]:
    """Read one of the split files GroupLens ships with MovieLens-100K (``u1.base`` / ``u1.test``, ...).

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
