"""What training reads: a rating log as three aligned arrays, keyed by id strings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from two_stage_rec.errors import EmptyBatchError, InvalidInputError

__all__ = ["Interactions", "RatingLog", "SideFeatures"]

SideFeatures = Mapping[str, npt.ArrayLike]
"""Per-key side features: key -> float vector (f,), the same f for every key."""


class RatingLog(Protocol):
    """Anything with aligned ``user_ids``, ``item_ids`` and ``ratings`` arrays of one
    length, e.g. :class:`two_stage_rec.datasets.Ratings`. Ids may be ints or strings;
    models key them by their decimal string (``"42"``)."""

    @property
    def user_ids(self) -> npt.NDArray[Any]: ...

    @property
    def item_ids(self) -> npt.NDArray[Any]: ...

    @property
    def ratings(self) -> npt.NDArray[Any]: ...


def _as_keys(values: npt.ArrayLike, name: str) -> npt.NDArray[np.str_]:
    array = np.asarray(values)
    if array.ndim != 1:
        raise InvalidInputError(f"{name} must be one-dimensional, got shape {array.shape}")
    keys = array.astype(np.str_)
    if keys.size and (np.char.str_len(keys) == 0).any():
        raise InvalidInputError(f"{name} hold empty ids")
    return keys


@dataclass(frozen=True, slots=True, eq=False)
class Interactions:
    """A validated rating log: row i says ``users[i]`` rated ``items[i]`` with ``ratings[i]``.

    Attributes:
        users: str array (n,) of user keys.
        items: str array (n,) of item keys.
        ratings: float32 array (n,); higher is better.
    """

    users: npt.NDArray[np.str_]
    items: npt.NDArray[np.str_]
    ratings: npt.NDArray[np.float32]

    @classmethod
    def from_log(cls, log: RatingLog, *, name: str = "ratings") -> Interactions:
        """Convert and check a :class:`RatingLog`.

        Raises:
            EmptyBatchError: the log is empty.
            InvalidInputError: columns differ in length, or ratings are not finite.
        """
        users = _as_keys(log.user_ids, f"{name}.user_ids")
        items = _as_keys(log.item_ids, f"{name}.item_ids")
        ratings = np.asarray(log.ratings, dtype=np.float32).reshape(-1)
        if not (len(users) == len(items) == len(ratings)):
            raise InvalidInputError(f"{name}: columns differ in length ({len(users)}, {len(items)}, {len(ratings)})")
        if len(users) == 0:
            raise EmptyBatchError(f"{name} hold no ratings")
        if not np.isfinite(ratings).all():
            raise InvalidInputError(f"{name} hold NaN or infinite ratings")
        return cls(users=users, items=items, ratings=ratings)

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def take(self, rows: npt.NDArray[np.intp]) -> Interactions:
        """The rows selected by an integer index array."""
        return Interactions(users=self.users[rows], items=self.items[rows], ratings=self.ratings[rows])

    def split(self, fraction: float, rng: np.random.Generator) -> tuple[Interactions, Interactions | None]:
        """Hold out a random ``fraction`` of rows: (rest, held_out); held_out is None for 0."""
        count = round(len(self) * fraction)
        if count == 0:
            return self, None
        order = rng.permutation(len(self))
        return self.take(np.sort(order[count:])), self.take(np.sort(order[:count]))


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
