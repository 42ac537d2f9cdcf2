"""The interaction log evaluation works on: aligned user ids, item ids and (optional) ratings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from two_stage_rec.errors import InvalidInputError

__all__ = ["Interactions", "InteractionsLike", "as_interactions"]

StrArray: TypeAlias = npt.NDArray[np.str_]

InteractionsLike: TypeAlias = Any
"""Anything :func:`as_interactions` accepts: an :class:`Interactions`, an object
with ``user_ids`` and ``item_ids`` (and optionally ``ratings``) array attributes
(e.g. a split from :mod:`two_stage_rec.datasets`), or a tuple
``(user_ids, item_ids)`` / ``(user_ids, item_ids, ratings)``."""


@dataclass(frozen=True, slots=True)
class Interactions:
    """One event per row: user ``user_ids[i]`` interacted with item ``item_ids[i]``.

    Attributes:
        user_ids: str array (n,).
        item_ids: str array (n,).
        ratings: float32 array (n,) of explicit ratings (higher is better), or
            None for implicit feedback.
    """

    user_ids: StrArray
    item_ids: StrArray
    ratings: npt.NDArray[np.float32] | None = None

    def __len__(self) -> int:
        return int(self.user_ids.shape[0])

    def items_by_user(self, *, min_rating: float | None = None) -> dict[str, set[str]]:
        """Map each user to the set of items they interacted with.

        Args:
            min_rating: keep only events rated at least this (needs ratings);
                None keeps every event. A user whose events are all dropped
                does not appear.
        """
        keep = np.ones(len(self), dtype=bool)
        if min_rating is not None:
            if self.ratings is None:
                raise InvalidInputError("min_rating needs ratings, but these interactions have none")
            keep = self.ratings >= min_rating
        grouped: dict[str, set[str]] = {}
        for user, item in zip(self.user_ids[keep].tolist(), self.item_ids[keep].tolist(), strict=True):
            grouped.setdefault(user, set()).add(item)
        return grouped

    def item_counts(self) -> dict[str, int]:
        """Number of events per item (its popularity)."""
        items, counts = np.unique(self.item_ids, return_counts=True)
        return {str(item): int(count) for item, count in zip(items, counts, strict=True)}


def _as_str_array(values: Any, what: str) -> StrArray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise InvalidInputError(f"{what} must be 1-D, got shape {array.shape}")
    return array.astype(np.str_)


def as_interactions(data: InteractionsLike) -> Interactions:
    """Convert ``data`` (see :data:`InteractionsLike`) to :class:`Interactions`.

    Ids are converted to strings (MovieLens' integer ids become ``"42"``),
    matching how embedders and stores key users and items.

    Raises:
        InvalidInputError: the arrays are missing, not 1-D or differ in length.
    """
    if isinstance(data, Interactions):
        return data
    if isinstance(data, tuple):
        if len(data) not in (2, 3):
            raise InvalidInputError("a tuple of interactions must be (user_ids, item_ids[, ratings])")
        users, items, ratings = data[0], data[1], data[2] if len(data) == 3 else None
    else:
        users = getattr(data, "user_ids", None)
        items = getattr(data, "item_ids", None)
        ratings = getattr(data, "ratings", None)
        if users is None or items is None:
            raise InvalidInputError(
                f"{type(data).__name__} has no user_ids/item_ids; pass Interactions or (user_ids, item_ids)"
            )
    user_ids = _as_str_array(users, "user_ids")
    item_ids = _as_str_array(items, "item_ids")
    rating_array = None if ratings is None else np.asarray(ratings, dtype=np.float32).reshape(-1)
    if item_ids.shape != user_ids.shape or (rating_array is not None and rating_array.shape != user_ids.shape):
        raise InvalidInputError("user_ids, item_ids and ratings must have the same length")
    return Interactions(user_ids=user_ids, item_ids=item_ids, ratings=rating_array)
