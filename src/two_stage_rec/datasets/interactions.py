"""The one interaction log of the library: string ids, optional rating, timestamp and weight.

Every part of the library that reads user behaviour — training, the blend,
evaluation, splits, the popularity fallback, the bundle's seen items — takes
an :class:`Interactions`. Ids are strings (``"42"``, ``"c-1f9a"``,
``"sku-88"``); integer ids are accepted and turned into their decimal string,
which is what models and vector stores key by. Explicit feedback carries
``ratings``; implicit feedback (views, clicks, purchases) leaves it ``None``.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from two_stage_rec.errors import InvalidInputError

__all__ = ["IndexLike", "Interactions", "UnknownItemPolicy"]

StrArray: TypeAlias = npt.NDArray[np.str_]
IndexLike: TypeAlias = npt.NDArray[np.integer[Any]] | npt.NDArray[np.bool_] | slice
"""Rows to keep: an integer index array, a boolean mask (n,) or a slice."""

UnknownItemPolicy: TypeAlias = Literal["drop", "raise"]
"""What to do with interactions whose item is not in the catalogue."""


def _first(mask: npt.NDArray[np.bool_]) -> int:
    return int(np.flatnonzero(mask)[0])


def _id_column(values: npt.ArrayLike, name: str) -> StrArray:
    if isinstance(values, np.ndarray) and values.dtype.kind == "U" and values.ndim == 1 and not values.flags.writeable:
        return values  # already a checked column (from another Interactions): share it
    source = np.asarray(values)
    if source.ndim != 1:
        raise InvalidInputError(f"{name} must be one-dimensional, got shape {source.shape}")
    if source.dtype.kind in "fb" and source.size:  # an empty list arrives as float64: nothing to refuse
        # 42.0 would silently become the id "42.0"; a float id column is almost always a reading mistake.
        raise InvalidInputError(
            f"{name}[0] is {source[0].item()!r}; ids must be strings or integers, got {source.dtype} values"
        )
    if source.dtype.kind == "O":
        bad = np.array(
            [v is None or isinstance(v, float | bool | np.floating | np.bool_) for v in source.tolist()], dtype=bool
        )
        if bad.any():
            row = _first(bad)
            raise InvalidInputError(f"{name}[{row}] is {source[row]!r}; ids must be strings or integers")
    column = source.astype(np.str_)
    if column.size:
        empty = np.char.str_len(np.char.strip(column)) == 0
        if empty.any():
            raise InvalidInputError(f"{name}[{_first(empty)}] is empty; ids must be non-empty strings")
    column.flags.writeable = False
    return column


def _float_column(values: npt.ArrayLike | None, name: str, *, positive: bool = False) -> npt.NDArray[np.float32] | None:
    if values is None:
        return None
    if (
        isinstance(values, np.ndarray)
        and values.dtype == np.float32
        and values.ndim == 1
        and not values.flags.writeable
    ):
        return values
    try:
        column = np.array(values, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} cannot be converted to float32: {exc}") from exc
    if column.ndim != 1:
        raise InvalidInputError(f"{name} must be one-dimensional, got shape {column.shape}")
    finite = np.isfinite(column)
    if not finite.all():
        row = _first(~finite)
        raise InvalidInputError(f"{name}[{row}] is {column[row]}; values must be finite")
    if positive and column.size and (column <= 0).any():
        row = _first(column <= 0)
        raise InvalidInputError(f"{name}[{row}] is {column[row]}; weights must be positive")
    column.flags.writeable = False
    return column


def _timestamp_column(values: npt.ArrayLike | None, name: str) -> npt.NDArray[np.int64] | None:
    if values is None:
        return None
    if isinstance(values, np.ndarray) and values.dtype == np.int64 and values.ndim == 1 and not values.flags.writeable:
        return values
    source = np.asarray(values)
    if source.ndim != 1:
        raise InvalidInputError(f"{name} must be one-dimensional, got shape {source.shape}")
    if source.dtype.kind == "M":  # numpy datetime64: seconds since the epoch
        if np.isnat(source).any():
            raise InvalidInputError(f"{name}[{_first(np.isnat(source))}] is not a time")
        column = source.astype("datetime64[s]").astype(np.int64)
    else:
        try:
            as_float = source.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{name} must be Unix seconds (integers) or datetime64: {exc}") from exc
        finite = np.isfinite(as_float)
        if not finite.all():
            raise InvalidInputError(f"{name}[{_first(~finite)}] is not a finite time")
        column = as_float.astype(np.int64)
    column.flags.writeable = False
    return column


@dataclass(frozen=True, slots=True, eq=False)
class Interactions:
    """A log of user-item events: row ``i`` says user ``user_ids[i]`` interacted with item ``item_ids[i]``.

    Columns are read-only 1-D arrays of one length n; the optional ones are
    ``None`` when the log does not have them. The constructor converts and
    checks (see :meth:`from_arrays`).

    Attributes:
        user_ids: str (n,), non-empty.
        item_ids: str (n,), non-empty.
        ratings: float32 (n,) explicit ratings, higher is better (MovieLens: 1..5
            stars), or None for implicit feedback.
        timestamps: int64 (n,) seconds since the Unix epoch, or None.
        weights: float32 (n,) positive event weights (e.g. 1 for a view, 5
            for a purchase), or None (every event counts once).
    """

    user_ids: StrArray
    item_ids: StrArray
    ratings: npt.NDArray[np.float32] | None = None
    timestamps: npt.NDArray[np.int64] | None = None
    weights: npt.NDArray[np.float32] | None = None

    def __post_init__(self) -> None:
        columns: dict[str, npt.NDArray[Any] | None] = {
            "user_ids": _id_column(self.user_ids, "user_ids"),
            "item_ids": _id_column(self.item_ids, "item_ids"),
            "ratings": _float_column(self.ratings, "ratings"),
            "timestamps": _timestamp_column(self.timestamps, "timestamps"),
            "weights": _float_column(self.weights, "weights", positive=True),
        }
        lengths = {name: len(column) for name, column in columns.items() if column is not None}
        if len(set(lengths.values())) != 1:
            raise InvalidInputError(f"interaction columns differ in length: {lengths}")
        for name, column in columns.items():
            object.__setattr__(self, name, column)

    @classmethod
    def from_arrays(
        cls,
        *,
        user_ids: npt.ArrayLike,
        item_ids: npt.ArrayLike,
        ratings: npt.ArrayLike | None = None,
        timestamps: npt.ArrayLike | None = None,
        weights: npt.ArrayLike | None = None,
    ) -> Interactions:
        """Build from any array-likes (lists, int or str arrays, pandas columns' ``.to_numpy()``).

        Args:
            user_ids: (n,) strings or integers (integers become ``"42"``).
            item_ids: (n,) likewise.
            ratings: (n,) finite numbers, or None for implicit feedback.
            timestamps: (n,) Unix seconds or ``datetime64`` values, or None.
            weights: (n,) positive finite numbers, or None.

        Raises:
            InvalidInputError: a column is not 1-D, an id is empty, missing or a
                float, a rating or weight is not finite, a weight is not
                positive, or the columns differ in length; the message names
                the column and the first bad row.
        """
        return cls(user_ids=user_ids, item_ids=item_ids, ratings=ratings, timestamps=timestamps, weights=weights)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return int(self.user_ids.shape[0])

    def __repr__(self) -> str:
        kind = "explicit" if self.ratings is not None else "implicit"
        extras = "".join(f", {name}" for name in ("timestamps", "weights") if getattr(self, name) is not None)
        return f"Interactions(n={len(self)}, users={self.n_users}, items={self.n_items}, {kind}{extras})"

    @property
    def has_ratings(self) -> bool:
        """True for explicit feedback (a rating per event)."""
        return self.ratings is not None

    @property
    def n_users(self) -> int:
        """Number of distinct users."""
        return int(np.unique(self.user_ids).size)

    @property
    def n_items(self) -> int:
        """Number of distinct items."""
        return int(np.unique(self.item_ids).size)

    def take(self, index: IndexLike) -> Interactions:
        """The rows selected by an integer index array, a boolean mask (n,) or a slice."""

        def pick(column: npt.NDArray[Any] | None) -> npt.NDArray[Any] | None:
            if column is None:
                return None
            picked = column[index]
            picked.flags.writeable = False
            return picked

        return Interactions(
            user_ids=pick(self.user_ids),  # type: ignore[arg-type]
            item_ids=pick(self.item_ids),  # type: ignore[arg-type]
            ratings=pick(self.ratings),
            timestamps=pick(self.timestamps),
            weights=pick(self.weights),
        )

    def for_user(self, user_id: str | int) -> Interactions:
        """The events of one user, in log order; empty when the user has none."""
        return self.take(self.user_ids == str(user_id))

    def without_ratings(self) -> Interactions:
        """The same events as implicit feedback (ratings dropped)."""
        return Interactions(
            user_ids=self.user_ids, item_ids=self.item_ids, timestamps=self.timestamps, weights=self.weights
        )

    @classmethod
    def concatenate(cls, parts: Sequence[Interactions]) -> Interactions:
        """Stack several logs in the order given (e.g. train + test).

        Raises:
            InvalidInputError: no parts, or the parts disagree on which optional columns they have.
        """
        if not parts:
            raise InvalidInputError("concatenate needs at least one Interactions")
        columns: dict[str, npt.NDArray[Any] | None] = {}
        for name in ("user_ids", "item_ids", "ratings", "timestamps", "weights"):
            present = [getattr(part, name) is not None for part in parts]
            if any(present) and not all(present):
                raise InvalidInputError(f"cannot concatenate logs where only some have {name}")
            columns[name] = np.concatenate([getattr(part, name) for part in parts]) if all(present) else None
        return cls(**columns)  # type: ignore[arg-type]

    def user_codes(self) -> tuple[StrArray, npt.NDArray[np.int64]]:
        """``(users, codes)``: the sorted distinct user ids and each row's index into them, int64 (n,)."""
        users, codes = np.unique(self.user_ids, return_inverse=True)
        return users, codes.astype(np.int64).reshape(-1)

    def items_by_user(self, *, min_rating: float | None = None) -> dict[str, set[str]]:
        """Map each user to the set of items they interacted with.

        This is what a user's recommendations exclude ("seen items") and what
        evaluation counts as relevant.

        Args:
            min_rating: keep only events rated at least this (needs ratings);
                None keeps every event. A user whose events are all dropped
                does not appear.

        Raises:
            InvalidInputError: ``min_rating`` on implicit feedback.
        """
        log = self
        if min_rating is not None:
            if self.ratings is None:
                raise InvalidInputError("min_rating needs ratings, but these interactions are implicit")
            log = self.take(self.ratings >= min_rating)
        if len(log) == 0:
            return {}
        order = np.argsort(log.user_ids, kind="stable")
        users = log.user_ids[order]
        items = log.item_ids[order]
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
        bounds = np.r_[starts, len(users)]
        return {str(users[start]): set(items[start:stop].tolist()) for start, stop in itertools.pairwise(bounds)}

    def item_counts(self) -> dict[str, int]:
        """Number of events per item, most frequent first (ties: smaller id first).

        The order is the most-popular baseline's ranking and the cold-start
        fallback's; the counts are its scores (higher is better).
        """
        items, counts = np.unique(self.item_ids, return_counts=True)  # sorted by id
        order = np.argsort(-counts, kind="stable")
        return {str(items[i]): int(counts[i]) for i in order}

    def restrict_items(
        self, known: Collection[str], *, unknown: UnknownItemPolicy = "raise", source: str = "interactions"
    ) -> tuple[Interactions, int]:
        """Keep only events whose item is in ``known`` (e.g. the catalogue).

        Args:
            known: the item ids that exist.
            unknown: ``"raise"`` refuses a log with unknown items; ``"drop"``
                removes their events.
            source: how to name the log in the error (e.g. its file name).

        Returns:
            ``(interactions, dropped)``: the kept events and how many were dropped.

        Raises:
            InvalidInputError: ``unknown="raise"`` and some items are not known;
                the message says how many events and items, with examples.
        """
        if unknown not in ("drop", "raise"):
            raise InvalidInputError(f"unknown must be 'drop' or 'raise', got {unknown!r}")
        known_array = np.asarray(sorted(str(k) for k in known), dtype=np.str_)
        mask = np.isin(self.item_ids, known_array)
        dropped = int(len(self) - mask.sum())
        if dropped == 0:
            return self, 0
        if unknown == "raise":
            missing = np.unique(self.item_ids[~mask])
            examples = ", ".join(repr(str(item)) for item in missing[:5])
            raise InvalidInputError(
                f"{source}: {dropped:,} interaction(s) name {missing.size:,} item(s) that are not in the catalogue "
                f"(e.g. {examples}, first at row {_first(~mask)}); add them to the catalogue or drop them "
                "(on_unknown_items='drop', --drop-unknown-items)"
            )
        return self.take(mask), dropped

    def fingerprint(self) -> str:
        """A SHA-256 of the events (user, item, and timestamp when present), in order.

        A bundle records its training log's fingerprint, so evaluation can
        check that a split of a file reproduces exactly what the models were
        trained on before it trusts the other part as unseen.
        """
        digest = hashlib.sha256()
        for column in (self.user_ids, self.item_ids):
            digest.update("\x1f".join(column.tolist()).encode("utf-8"))
            digest.update(b"\x1e")
        if self.timestamps is not None:
            digest.update(self.timestamps.tobytes())
        return digest.hexdigest()
