"""Explicit ratings as parallel numpy arrays, and the per-user views every protocol needs."""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from two_stage_rec.datasets._ids import as_int_id
from two_stage_rec.errors import DatasetError, InvalidInputError

__all__ = ["Ratings", "item_popularity", "read_ratings", "seen_items_by_user"]

IntArray = npt.NDArray[np.int32]
IndexLike = npt.NDArray[np.integer] | npt.NDArray[np.bool_] | slice


def _frozen_column(values: npt.ArrayLike, dtype: type[np.generic], name: str) -> npt.NDArray[Any]:
    if isinstance(values, np.ndarray) and values.dtype == dtype and values.ndim == 1 and not values.flags.writeable:
        return values  # already a checked column (e.g. from another Ratings): share it
    try:
        source = np.asarray(values)
        column = np.array(source, dtype=dtype)  # a copy: callers' arrays stay theirs
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInputError(f"{name} cannot be converted to {np.dtype(dtype).name}: {exc}") from exc
    if column.ndim != 1:
        raise InvalidInputError(f"{name} must be one-dimensional, got shape {column.shape}")
    # numpy casts float -> int by truncation and int64 -> int32 by wrapping; refuse both silently changing ids.
    numeric = source.dtype.kind in "iuf"
    if numeric and np.issubdtype(dtype, np.integer) and not np.array_equal(column, source):
        raise InvalidInputError(f"{name} hold values that are not {np.dtype(dtype).name} integers")
    column.flags.writeable = False
    return column


@dataclass(frozen=True, slots=True, eq=False)
class Ratings:
    """A log of explicit ratings: row ``i`` says user ``user_ids[i]`` gave item
    ``item_ids[i]`` the rating ``ratings[i]`` at time ``timestamps[i]``.

    Columns are read-only 1-D arrays of one length n. The constructor converts
    (copies) and checks what it is given; :meth:`from_arrays` does the same
    with parameters typed for any array-like. MovieLens ids are integers; models, stores and
    the notebook key users and items by their decimal string (``"42"``), which
    :meth:`user_ids_str` / :meth:`item_ids_str` give.

    Attributes:
        user_ids: int32 (n,).
        item_ids: int32 (n,).
        ratings: float32 (n,), 1..5 stars for MovieLens (higher is better).
        timestamps: int64 (n,), seconds since the Unix epoch.
    """

    user_ids: IntArray
    item_ids: IntArray
    ratings: npt.NDArray[np.float32]
    timestamps: npt.NDArray[np.int64]

    def __post_init__(self) -> None:
        columns = {
            "user_ids": _frozen_column(self.user_ids, np.int32, "user_ids"),
            "item_ids": _frozen_column(self.item_ids, np.int32, "item_ids"),
            "ratings": _frozen_column(self.ratings, np.float32, "ratings"),
            "timestamps": _frozen_column(self.timestamps, np.int64, "timestamps"),
        }
        lengths = {name: len(column) for name, column in columns.items()}
        if len(set(lengths.values())) != 1:
            raise InvalidInputError(f"rating columns differ in length: {lengths}")
        for name, column in columns.items():
            object.__setattr__(self, name, column)

    @classmethod
    def from_arrays(
        cls,
        *,
        user_ids: npt.ArrayLike,
        item_ids: npt.ArrayLike,
        ratings: npt.ArrayLike,
        timestamps: npt.ArrayLike,
    ) -> Ratings:
        """Build from any array-likes (lists, int64 arrays, ...), converted and checked.

        Raises:
            InvalidInputError: a column is not 1-D, ids are not integers that fit
                int32, or the columns differ in length.
        """
        return cls(
            user_ids=_frozen_column(user_ids, np.int32, "user_ids"),
            item_ids=_frozen_column(item_ids, np.int32, "item_ids"),
            ratings=_frozen_column(ratings, np.float32, "ratings"),
            timestamps=_frozen_column(timestamps, np.int64, "timestamps"),
        )

    def __len__(self) -> int:
        return int(self.user_ids.shape[0])

    def __repr__(self) -> str:
        return f"Ratings(n={len(self)}, users={self.n_users}, items={self.n_items})"

    @property
    def n_users(self) -> int:
        """Number of distinct users."""
        return int(np.unique(self.user_ids).size)

    @property
    def n_items(self) -> int:
        """Number of distinct items."""
        return int(np.unique(self.item_ids).size)

    def user_ids_str(self) -> npt.NDArray[np.str_]:
        """User ids as strings (``"42"``), shape (n,): the keys models and stores use."""
        return self.user_ids.astype(np.str_)

    def item_ids_str(self) -> npt.NDArray[np.str_]:
        """Item ids as strings (``"50"``), shape (n,)."""
        return self.item_ids.astype(np.str_)

    def take(self, index: IndexLike) -> Ratings:
        """The rows selected by an integer index array, a boolean mask (n,) or a slice."""
        return Ratings(
            user_ids=self.user_ids[index],
            item_ids=self.item_ids[index],
            ratings=self.ratings[index],
            timestamps=self.timestamps[index],
        )

    def for_user(self, user_id: int | str) -> Ratings:
        """The ratings of one user (``42`` or ``"42"``), in log order; empty if none."""
        key = as_int_id(user_id)
        if key is None:
            raise InvalidInputError(f"user id {user_id!r} is not an integer MovieLens id")
        return self.take(self.user_ids == key)

    @classmethod
    def concatenate(cls, parts: list[Ratings]) -> Ratings:
        """Stack several rating logs, in the order given (e.g. train + test)."""
        if not parts:
            raise InvalidInputError("concatenate needs at least one Ratings")
        return cls(
            user_ids=np.concatenate([p.user_ids for p in parts]),
            item_ids=np.concatenate([p.item_ids for p in parts]),
            ratings=np.concatenate([p.ratings for p in parts]),
            timestamps=np.concatenate([p.timestamps for p in parts]),
        )


def seen_items_by_user(ratings: Ratings) -> dict[str, set[str]]:
    """Map each user id string to the set of item id strings it rated.

    This is what evaluation removes from a user's recommendations
    ("exclude seen") and what ``Recommender.recommend(exclude=...)`` takes.
    """
    order = np.argsort(ratings.user_ids, kind="stable")
    users = ratings.user_ids[order]
    items = ratings.item_ids_str()[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else np.empty(0, np.intp)
    bounds = np.r_[starts, len(users)]
    return {str(users[start]): set(items[start:stop].tolist()) for start, stop in itertools.pairwise(bounds)}


def item_popularity(ratings: Ratings) -> dict[str, int]:
    """Number of ratings per item id string, most rated first (ties: smaller id first).

    The order is the "most popular" baseline's ranking; pass it to
    ``PopularityFallback(list(counts), scores=list(counts.values()))``.
    """
    items, counts = np.unique(ratings.item_ids, return_counts=True)  # sorted by id
    order = np.argsort(-counts, kind="stable")
    return {str(items[i]): int(counts[i]) for i in order}


def read_ratings(path: Path) -> Ratings:
    """Parse a MovieLens-100K rating file (``u.data``, ``u1.base``, ...).

    Each line is ``user<TAB>item<TAB>rating<TAB>unix_time``, all integers.

    Raises:
        DatasetError: the file is missing, empty, or a line is malformed
            (the message names the file and, from numpy, the line).
    """
    if not path.is_file():
        raise DatasetError(f"rating file {path} does not exist")
    if path.stat().st_size == 0:
        raise DatasetError(f"rating file {path} is empty")
    try:
        with warnings.catch_warnings():
            # A file of blank lines makes numpy warn "input contained no data"; the size check reports it.
            warnings.simplefilter("ignore", UserWarning)
            table = np.loadtxt(path, dtype=np.int64, delimiter="\t", ndmin=2)
    except ValueError as exc:
        raise DatasetError(f"cannot parse {path}: {exc}") from exc
    if table.size == 0:
        raise DatasetError(f"rating file {path} holds no ratings")
    if table.shape[1] != 4:
        raise DatasetError(f"{path} has {table.shape[1]} columns; expected user, item, rating, timestamp")
    try:
        return Ratings.from_arrays(
            user_ids=table[:, 0], item_ids=table[:, 1], ratings=table[:, 2], timestamps=table[:, 3]
        )
    except InvalidInputError as exc:
        raise DatasetError(f"{path}: {exc}") from exc
