"""Fit a fold-in from what a trained bundle holds: its users' vectors and their training items."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from two_stage_rec.errors import DimensionMismatchError, InvalidInputError
from two_stage_rec.fold_in.learned import HISTORY_SIZES, LearnedFoldIn
from two_stage_rec.fold_in.mean import MeanFoldIn
from two_stage_rec.fold_in.ridge import RidgeFoldIn
from two_stage_rec.fold_in.split import SplitFoldIn
from two_stage_rec.protocols import FoldIn
from two_stage_rec.types import FloatMatrix
from two_stage_rec.validation import as_float_matrix

if TYPE_CHECKING:
    from two_stage_rec.bundle import Bundle

__all__ = [
    "DEFAULT_METHOD",
    "PRIOR_STRENGTH",
    "RIDGE_L2",
    "RIDGE_NEGATIVE_WEIGHT",
    "RIDGE_PRIOR",
    "SCORE_SAMPLE",
    "FoldInMethod",
    "RidgePrior",
    "default_fold_in",
    "fit_fold_in",
]

FoldInMethod: TypeAlias = Literal["mean", "ridge", "learned", "split"]
"""The fold-ins :func:`fit_fold_in` fits: :class:`MeanFoldIn`, :class:`RidgeFoldIn`,
:class:`LearnedFoldIn`, and ``"split"``: a :class:`SplitFoldIn` of the ridge fold-in for new
users and the learned one for known users (with a prior)."""

DEFAULT_METHOD: FoldInMethod = "split"
"""What :func:`default_fold_in` fits: what measured best on MovieLens-100K (``benchmarks/fold_in.py``;
the table is in the evaluation guide): the ridge fold-in for users held out of training, the learned
one for trained users' activity since training."""

RidgePrior: TypeAlias = Literal["covariance", "isotropic"]
"""The fitted ridge fold-in's penalty ``(u - p)ᵀ P (u - p)``: ``"covariance"``, ``P = σ² C⁻¹`` (C the trained
users' covariance, σ² the variance of their scores of their own items: Bayesian linear regression,
so l2 = 1 is the posterior mean); ``"isotropic"``, ``P = I · tr(G) / d``."""

RIDGE_PRIOR: RidgePrior = "covariance"
"""The penalty of the fitted :class:`RidgeFoldIn` (measured better than isotropic on validation users)."""

RIDGE_NEGATIVE_WEIGHT = 0.0
"""The fitted :class:`RidgeFoldIn`'s weight of the global negatives: 0, they did not help on validation users."""

RIDGE_L2 = 1.0
"""l2 of the fitted :class:`RidgeFoldIn` (with the covariance prior: the posterior mean; best on validation users)."""

PRIOR_STRENGTH = 1.0
"""κ of the fitted mean and learned fold-ins: a known user's trained vector counts as this many new items
(chosen for the learned fold-in on half the trained users, ``benchmarks/fold_in.py``)."""

ItemVectors: TypeAlias = Callable[[Sequence[str]], FloatMatrix] | Mapping[str, npt.ArrayLike]
"""Item vectors by id: an embedder's ``embed`` (ids -> float32 (n, d)) or a mapping id -> (d,) vector."""


def _lookup(item_vectors: ItemVectors, ids: Sequence[str], dimension: int) -> FloatMatrix:
    if isinstance(item_vectors, Mapping):
        missing = [item for item in ids if item not in item_vectors]
        if missing:
            raise InvalidInputError(f"{len(missing)} history items have no vector, e.g. {missing[:5]}")
        rows = np.asarray([np.asarray(item_vectors[item], dtype=np.float32) for item in ids], dtype=np.float32)
    else:
        rows = np.asarray(item_vectors(list(ids)), dtype=np.float32)
    if rows.ndim != 2 or rows.shape[0] != len(ids):
        raise InvalidInputError(f"item vectors must be ({len(ids)}, d), got {rows.shape}")
    if rows.shape[1] != dimension:
        raise DimensionMismatchError(dimension, rows.shape[1], "item vectors")
    return as_float_matrix(rows, dimension, what="item vectors")


def _events(
    ids: Sequence[str], histories: Mapping[str, Collection[str]]
) -> tuple[list[str], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``(items, events, owners)``: the distinct history items (sorted) and, per event, its item's and user's row.

    Events are ordered by user, then item: the same histories give the same arrays whatever the set order.
    """
    known = [histories.get(user, ()) for user in ids]
    items = sorted(set().union(*known))
    code = {item: row for row, item in enumerate(items)}
    lengths = np.fromiter(map(len, known), dtype=np.int64, count=len(known))
    events = np.fromiter(map(code.__getitem__, chain.from_iterable(known)), dtype=np.int64, count=int(lengths.sum()))
    owners = np.repeat(np.arange(len(ids), dtype=np.int64), lengths)
    order = np.argsort(owners * max(len(items), 1) + events, kind="stable")
    return items, events[order], owners[order]


def _event_ratings(
    ratings: Mapping[str, Mapping[str, float]],
    ids: Sequence[str],
    items: Sequence[str],
    events: npt.NDArray[np.int64],
    owners: npt.NDArray[np.int64],
) -> npt.NDArray[np.float64]:
    try:
        return np.fromiter(
            (float(ratings[ids[o]][items[e]]) for o, e in zip(owners.tolist(), events.tolist(), strict=True)),
            dtype=np.float64,
            count=events.size,
        )
    except KeyError as exc:
        raise InvalidInputError(f"ratings lack the rating of a history item: {exc}") from exc


SCORE_SAMPLE = 1 << 18
"""Events the ridge fold-in's score statistics (t₊, rating line, σ²) are computed on: all of
them up to this many, else a seeded uniform sample (the statistics are means, so a sample of
this size pins them to about three digits)."""


def _event_scores(
    users: npt.NDArray[np.float32],
    items: npt.NDArray[np.float32],
    events: npt.NDArray[np.int64],
    owners: npt.NDArray[np.int64],
    seed: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """``(sample, scores)``: the events measured (all, or :data:`SCORE_SAMPLE` of them), their ``u_owner · v_item``."""
    sample = np.arange(events.size)
    if events.size > SCORE_SAMPLE:
        sample = np.sort(np.random.default_rng(seed).choice(events.size, SCORE_SAMPLE, replace=False))
    scores = np.einsum("nd,nd->n", users[owners[sample]], items[events[sample]], dtype=np.float64)
    return sample, scores


def fit_fold_in(
    user_ids: Sequence[str],
    user_vectors: npt.ArrayLike,
    histories: Mapping[str, Collection[str]],
    item_vectors: ItemVectors,
    *,
    ratings: Mapping[str, Mapping[str, float]] | None = None,
    method: FoldInMethod = DEFAULT_METHOD,
    negative_weight: float = RIDGE_NEGATIVE_WEIGHT,
    l2: float = RIDGE_L2,
    prior_strength: float = PRIOR_STRENGTH,
    prior: RidgePrior = RIDGE_PRIOR,
    seed: int = 0,
) -> FoldIn:
    """Fit a fold-in on the trained users, so that folded-in vectors land where trained ones are.

    What each method takes from the trained users:

    * ``"mean"``: the median norm of their vectors (the scale);
    * ``"ridge"``: the mean user vector (a new user's prior) and, with
      ``prior="covariance"``, the users' covariance (the prior's shape); the
      item distribution of their events (Gram matrix ``G`` and mean ``g``);
      the mean score they give their own items (``t₊``), its variance (σ²),
      and the score of an item drawn from that distribution (``t₋``); with
      ``ratings``, the least-squares line of the scores on the ratings
      (slope and centre);
    * ``"learned"``: a ridge map per history size from the mean of a random
      subset of their items to their vector;
    * ``"split"``: both of the last two, the ridge fold-in for new users and
      the learned one for known users.

    Cost: linear in the events, with no per-user solve. Measured
    (``benchmarks/fold_in.py``, 2 busy cores): the default takes 0.13 s on a
    MovieLens-100K bundle and 3.4 s for 100,000 users with 50 items each,
    most of it turning the users' item sets into arrays.

    Args:
        user_ids: U trained user ids, row ``i`` of ``user_vectors`` for ``user_ids[i]``.
        user_vectors: float (U, d) trained user vectors.
        histories: user id -> the items they were trained on (e.g. a
            bundle's ``seen_items``); users not in ``user_ids`` are ignored.
        item_vectors: the item tower: ``embed`` or a mapping id -> vector.
        ratings: user id -> item id -> rating, or None (implicit feedback).
        method: which fold-in (default :data:`DEFAULT_METHOD`).
        negative_weight: the ridge fold-in's α, in history items.
        l2: the ridge fold-in's l2 (in history items with the isotropic prior).
        prior_strength: the mean and learned fold-ins' κ, in history items.
        prior: the ridge fold-in's penalty (:data:`RidgePrior`).
        seed: seed of the learned fold-in's subsets.

    Returns:
        A :class:`~two_stage_rec.protocols.FoldIn`.

    Raises:
        InvalidInputError: no user has a history, shapes disagree, a vector
            is not finite, a history item has no vector in the mapping or
            no rating, or ``method`` or ``prior`` is unknown.
        UnknownKeyError: ``item_vectors`` is an embedder that does not know a history item.
    """
    if method not in ("mean", "ridge", "learned", "split"):
        raise InvalidInputError(f"method must be 'mean', 'ridge', 'learned' or 'split', got {method!r}")
    if prior not in ("covariance", "isotropic"):
        raise InvalidInputError(f"prior must be 'covariance' or 'isotropic', got {prior!r}")
    ids = [str(user) for user in user_ids]
    given = np.asarray(user_vectors, dtype=np.float32)
    if given.ndim != 2 or given.shape[0] != len(ids) or not ids:
        raise InvalidInputError(f"need one user vector per user id: {len(ids)} ids, vectors of shape {given.shape}")
    d = given.shape[1]
    users32 = as_float_matrix(given, d, what="user vectors")
    users = users32.astype(np.float64)
    if method == "mean":
        return MeanFoldIn(d, scale=float(np.median(np.linalg.norm(users, axis=1))), prior_strength=prior_strength)
    items, events, owners = _events(ids, histories)
    if not items:
        raise InvalidInputError("no trained user has a history to fit the fold-in on")
    table32 = _lookup(item_vectors, items, d)
    table = table32.astype(np.float64)
    rated = None if ratings is None else _event_ratings(ratings, ids, items, events, owners)
    if method == "split":
        known = LearnedFoldIn.fit(
            users, table32, events, owners, ratings=rated, sizes=HISTORY_SIZES, prior_strength=prior_strength, seed=seed
        )
        new = _fit_ridge(users, users32, table, table32, events, owners, rated, negative_weight, l2, prior, seed)
        return SplitFoldIn(new, known, dimension=d)
    if method == "learned":
        return LearnedFoldIn.fit(
            users, table32, events, owners, ratings=rated, sizes=HISTORY_SIZES, prior_strength=prior_strength, seed=seed
        )
    return _fit_ridge(users, users32, table, table32, events, owners, rated, negative_weight, l2, prior, seed)


def _fit_ridge(
    users: npt.NDArray[np.float64],
    users32: npt.NDArray[np.float32],
    table: npt.NDArray[np.float64],
    table32: npt.NDArray[np.float32],
    events: npt.NDArray[np.int64],
    owners: npt.NDArray[np.int64],
    rated: npt.NDArray[np.float64] | None,
    negative_weight: float,
    l2: float,
    prior: RidgePrior,
    seed: int,
) -> RidgeFoldIn:
    d = users.shape[1]
    # The events' item distribution π, from counts: G and g without one row per event.
    share = np.bincount(events, minlength=table.shape[0]) / events.size
    gram = (table * share[:, None]).T @ table
    mean_item = share @ table
    sample, scores = _event_scores(users32, table32, events, owners, seed)
    residuals = scores - scores.mean()
    slope, centre = 0.0, 0.0
    if rated is not None and float(np.var(rated[sample])) > 0:
        # The least-squares line score ≈ t₊ + slope · (rating - centre), centred on the mean rating.
        centre = float(rated[sample].mean())
        slope = float(np.cov(rated[sample], scores)[0, 1] / np.var(rated[sample], ddof=1))
        residuals = residuals - slope * (rated[sample] - centre)
    mean_user = users.mean(axis=0)
    precision = None
    if prior == "covariance":
        # A Gaussian prior: trained users vary by their covariance C around the mean, the history's
        # scores by σ² around their targets. l2 = 1 is then the posterior mean (Bayesian linear regression).
        noise = float(np.mean(residuals**2))
        covariance = np.cov(users, rowvar=False) + 1e-6 * np.eye(d)
        precision = noise * np.linalg.inv(covariance)
    return RidgeFoldIn(
        d,
        mean_user=mean_user,
        gram=gram,
        mean_item=mean_item,
        positive_target=float(scores.mean()),
        negative_target=float(mean_user @ mean_item),
        negative_weight=negative_weight,
        l2=l2,
        rating_slope=slope,
        rating_centre=centre,
        prior_precision=precision,
    )


def default_fold_in(bundle: Bundle, *, method: FoldInMethod = DEFAULT_METHOD) -> FoldIn:
    """The fold-in for a bundle: :func:`fit_fold_in` on its trained users and their training items.

    Works for either model backend: the trained users are the bundle's
    ``seen_items`` keys, embedded by its user embedder. What the assembler
    calls when it builds a recommender from a bundle.

    Raises:
        InvalidInputError: the bundle has no user with training items.
    """
    users = sorted(bundle.seen_items)
    if not users:
        raise InvalidInputError("the bundle lists no trained user's items (seen_items is empty)")
    return fit_fold_in(
        users,
        bundle.user_embedder.embed(users),
        bundle.seen_items,
        bundle.item_embedder.embed,
        method=method,
    )
