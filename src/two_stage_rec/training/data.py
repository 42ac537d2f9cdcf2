"""What training reads besides the interaction log: vocabularies, side features, hold-outs, negatives.

The log itself is :class:`two_stage_rec.datasets.Interactions` (string ids;
ratings for explicit feedback, ``None`` for implicit; optional weights).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from two_stage_rec.datasets.interactions import Interactions
from two_stage_rec.errors import EmptyBatchError, InvalidInputError
from two_stage_rec.training.config import NegativeSampling

__all__ = [
    "NegativeSampler",
    "SideFeatures",
    "check_log",
    "event_weights",
    "feature_matrix",
    "hold_out_rows",
    "vocabulary",
]

SideFeatures = Mapping[str, npt.ArrayLike]
"""Per-key side features: key -> float vector (f,), the same f for every key."""


def check_log(log: object, name: str) -> Interactions:
    """``log`` itself when it is a non-empty :class:`Interactions`.

    Raises:
        InvalidInputError: ``log`` is another type (the message says how to build one).
        EmptyBatchError: the log holds no events.
    """
    if not isinstance(log, Interactions):
        raise InvalidInputError(
            f"{name} must be two_stage_rec.datasets.Interactions, got {type(log).__name__}; build one with "
            "Interactions.from_arrays(user_ids=..., item_ids=..., ratings=... or None)"
        )
    if len(log) == 0:
        raise EmptyBatchError(f"{name} holds no interactions")
    return log


def hold_out_rows(
    log: Interactions, fraction: float, rng: np.random.Generator
) -> tuple[Interactions, Interactions | None]:
    """Hold out a random ``fraction`` of rows (not per user): ``(rest, held_out)``, both in log order.

    ``held_out`` is None when ``round(len(log) * fraction)`` is 0; ``rng`` is
    then left untouched (so a run without validation draws the same batches).
    """
    count = round(len(log) * fraction)
    if count == 0:
        return log, None
    order = rng.permutation(len(log))
    return log.take(np.sort(order[count:])), log.take(np.sort(order[:count]))


def event_weights(log: Interactions) -> npt.NDArray[np.float32] | None:
    """The log's weights scaled to mean 1, float32 (n,), or None when it has none.

    Scaling keeps the loss on the scale of an unweighted run, so learning
    rates and loss weights tuned without weights still apply; only the
    relative importance of events changes.
    """
    if log.weights is None:
        return None
    weights = log.weights.astype(np.float64)
    scaled: npt.NDArray[np.float32] = (weights / weights.mean()).astype(np.float32)
    return scaled


def vocabulary(keys: npt.NDArray[np.str_], extra: Sequence[str] | None = None) -> list[str]:
    """Unique keys: ``extra`` first in its order (e.g. the whole item catalogue), then
    keys not in it, sorted (so that a run does not depend on row order)."""
    ordered = [] if extra is None else [str(k) for k in extra]
    if len(set(ordered)) != len(ordered):
        raise InvalidInputError("the key catalogue holds duplicates")
    known = set(ordered)
    ordered.extend(str(k) for k in np.unique(keys) if str(k) not in known)
    return ordered


def feature_matrix(keys: Sequence[str], features: SideFeatures | None, name: str) -> npt.NDArray[np.float32] | None:
    """Side features as float32 (len(keys) + 1, f): row 0 (the unknown key) and keys
    without features are zeros."""
    if not features:
        return None
    widths = {np.asarray(v, dtype=np.float32).reshape(-1).shape[0] for v in features.values()}
    if len(widths) != 1:
        raise InvalidInputError(f"{name} side features have different lengths: {sorted(widths)}")
    matrix = np.zeros((len(keys) + 1, widths.pop()), dtype=np.float32)
    for row, key in enumerate(keys, start=1):
        value = features.get(key)
        if value is not None:
            matrix[row] = np.asarray(value, dtype=np.float32).reshape(-1)
    if not np.isfinite(matrix).all():
        raise InvalidInputError(f"{name} side features hold NaN or infinity")
    return matrix


class NegativeSampler:
    """Draws items a user did *not* interact with, as negatives for implicit feedback.

    Items are tower rows ``1 .. n_rows - 1`` (row 0 is the unknown key). A
    draw that is one of the user's known events is kept in place (so shapes
    stay fixed) but flagged invalid: it must not count as a negative.

    Args:
        n_rows: rows of the item tower (catalogue size + 1).
        known_users: int64 (m,) user rows of the events that are *not*
            negatives (the user's positives).
        known_items: int64 (m,) their item rows.
        counts: int (n_rows,) training events per item row, for
            ``kind="popularity"``.
        kind: ``"popularity"`` draws an item in proportion to ``count ** 0.75``
            (an item never seen counts once), ``"uniform"`` evenly.
    """

    def __init__(
        self,
        n_rows: int,
        *,
        known_users: npt.NDArray[np.int64],
        known_items: npt.NDArray[np.int64],
        counts: npt.NDArray[np.int64] | None = None,
        kind: NegativeSampling = "popularity",
    ) -> None:
        if n_rows < 2:
            raise InvalidInputError("negative sampling needs at least one item")
        self.n_rows = int(n_rows)
        if kind == "popularity":
            if counts is None:
                raise InvalidInputError("popularity sampling needs item counts")
            mass = np.maximum(np.asarray(counts, dtype=np.float64)[1:], 1.0) ** 0.75
        else:
            mass = np.ones(n_rows - 1, dtype=np.float64)
        cdf = np.cumsum(mass)
        self._cdf = cdf / cdf[-1]
        self._known = np.unique(known_users.astype(np.int64) * self.n_rows + known_items.astype(np.int64))

    def sample(
        self, user_rows: npt.NDArray[np.int64], per_event: int, rng: np.random.Generator
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """``per_event`` negatives for each of n events.

        Returns:
            ``(items, valid)``: int64 (n * per_event,) item rows, the negatives
            of event i at ``i * per_event .. (i + 1) * per_event - 1``; bool
            (n * per_event,), False where the draw is one of the user's known events.
        """
        draws = np.searchsorted(self._cdf, rng.random(len(user_rows) * per_event), side="right") + 1
        items = np.minimum(draws, self.n_rows - 1).astype(np.int64)
        codes = np.repeat(user_rows.astype(np.int64), per_event) * self.n_rows + items
        at = np.minimum(np.searchsorted(self._known, codes), max(len(self._known) - 1, 0))
        known = self._known[at] == codes if len(self._known) else np.zeros(len(codes), dtype=bool)
        return items, ~known
