"""Business rules after ranking: boost or bury by a metadata filter, pin items, block items.

Rules move items by *places in the list*, never by an amount of score: a
ranker's scores have no fixed scale (a predicted rating, a dot product, a
log-odds), so "+0.5" would mean something different for every model, while
"3 places up" means the same for all of them, and it stays meaningful after
an earlier policy reordered the list. No rule changes a score.

Filters are in the Pinecone filter language of :mod:`two_stage_rec.filters`
and are checked when the rule is built: an invalid filter raises
:class:`~two_stage_rec.errors.InvalidFilterError` there, never at request time.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from two_stage_rec.errors import InvalidFilterError, InvalidIdError, InvalidPolicyError
from two_stage_rec.filters import compile_filter, filter_mask
from two_stage_rec.policies.base import RankedList
from two_stage_rec.types import Filter

__all__ = ["Block", "Boost", "Bury", "Pin", "Pins"]


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _checked_filter(rule: str, spec: object) -> tuple[Filter, str]:
    """A private copy of a valid filter and its canonical JSON text (what equality and hashing use)."""
    if not isinstance(spec, dict):
        raise InvalidFilterError(f"{rule} needs a filter mapping, got {type(spec).__name__}")
    compile_filter(spec)  # raises InvalidFilterError with the path of the fault
    try:
        canonical = json.dumps(spec, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidFilterError(f"{rule}'s filter must hold only strings, numbers, bools and lists") from exc
    # A deep copy, so a caller changing their dict later does not change the rule.
    return copy.deepcopy(spec), canonical


def _checked_places(rule: str, by: object) -> int | None:
    if by is None:
        return None
    if isinstance(by, bool) or not isinstance(by, int | np.integer) or by < 1:
        raise InvalidPolicyError(f"{rule} by must be a whole number of places >= 1 (or None), got {by!r}")
    return int(by)


def _moved(ranked: RankedList, matched: npt.NDArray[np.bool_], shift: float) -> RankedList:
    """Each matched item ranked as if it were ``shift`` places further down (negative: up).

    The sort key of the item at position ``i`` is ``i`` (unmatched) or
    ``i + shift`` (matched); a matched item tying with an unmatched one goes
    first when moving up and second when moving down, so it moves by the
    full amount. Matched items keep their order among themselves.
    """
    if not matched.any():
        return ranked
    keys = np.arange(len(ranked), dtype=np.float64)
    keys[matched] += shift + (-0.5 if shift < 0 else 0.5)
    return ranked.take(np.argsort(keys, kind="stable").astype(np.int64))


@dataclass(frozen=True)
class _MoveByFilter:
    """Boost and Bury: move the items whose metadata match a filter by places (the sign is the subclass's)."""

    filter: Filter = field(compare=False)
    by: int | None = field(default=None, kw_only=True)
    _canonical: str = field(init=False, repr=False)
    _direction: ClassVar[float]  # -1: up the list, +1: down

    def __post_init__(self) -> None:
        rule = type(self).__name__
        spec, canonical = _checked_filter(rule, self.filter)
        object.__setattr__(self, "filter", spec)
        object.__setattr__(self, "_canonical", canonical)
        object.__setattr__(self, "by", _checked_places(rule, self.by))

    def apply(self, ranked: RankedList, k: int) -> RankedList:
        """Matching items moved (to the end of the list when ``by`` is None); all kept, scores unchanged."""
        places = float(len(ranked)) if self.by is None else float(self.by)
        return _moved(ranked, filter_mask(self.filter, ranked.metadata), self._direction * places)


@dataclass(frozen=True)
class Boost(_MoveByFilter):
    """Move the items whose metadata match a filter up the list.

    ``by=n``: each matching item is ranked as if it were n places higher
    (position p → p - n, or the top; when the items it passes include other
    matching items, it ends lower than p - n, as they move too). ``by=None``
    (the default): every matching item goes above every other item (a
    "promoted first" rule). Matching items keep their order among themselves.

    Example: ``Boost({"genres": "Documentary"}, by=3)``.

    Args:
        filter: a metadata filter (:mod:`two_stage_rec.filters`).
        by: places to move up, >= 1, or None for "to the top".

    Raises:
        InvalidFilterError: the filter is malformed.
        InvalidInputError: ``by`` is not a whole number >= 1.
    """

    _direction: ClassVar[float] = -1.0


@dataclass(frozen=True)
class Bury(_MoveByFilter):
    """Move the items whose metadata match a filter down the list.

    ``by=n``: each matching item is ranked as if it were n places lower.
    ``by=None`` (the default): every matching item goes below every other
    item, to the end of the list, where it fills the top k only when too few
    other items remain. Matching items keep their order among themselves.
    Burying does not drop (use a request filter, or :class:`Block`, for that).

    Example: ``Bury({"year": {"$lt": 1960}})``.

    Args:
        filter: a metadata filter (:mod:`two_stage_rec.filters`).
        by: places to move down, >= 1, or None for "to the end".

    Raises:
        InvalidFilterError: the filter is malformed.
        InvalidInputError: ``by`` is not a whole number >= 1.
    """

    _direction: ClassVar[float] = 1.0


def _checked_id(rule: str, item_id: object) -> str:
    if not isinstance(item_id, str) or not item_id:
        raise InvalidIdError(f"{rule} needs non-empty string item ids, got {item_id!r}")
    return item_id


def _checked_position(rule: str, position: object) -> int:
    if isinstance(position, bool) or not isinstance(position, int | np.integer) or position < 1:
        raise InvalidPolicyError(f"{rule} position must be a whole number >= 1 (1 is the top), got {position!r}")
    return int(position)


def _placed(ranked: RankedList, pins: tuple[tuple[str, int], ...]) -> RankedList:
    """``ranked`` with each pinned item it holds at its 1-based position (``pins`` sorted by position).

    The pinned items are taken out, then put back top position first: each
    insertion only shifts items below its own position, so every pin placed
    before it stays where it was put.
    """
    index_of = {item: i for i, item in enumerate(ranked.ids)}
    present = [(position, index_of[item]) for item, position in pins if item in index_of]
    if not present:
        return ranked
    taken = {i for _, i in present}
    order = [i for i in range(len(ranked)) if i not in taken]
    for position, i in present:
        order.insert(min(position - 1, len(order)), i)
    if order == list(range(len(ranked))):
        return ranked
    return ranked.take(np.asarray(order, dtype=np.int64))


@dataclass(frozen=True)
class Pin:
    """Put one item at a fixed 1-based position of the final list.

    The item is moved to ``position`` (or to the end, if the list is shorter),
    and the items from there down shift one place. ``extra_items`` names the
    item, so the recommender fetches it from the store when the ranking did
    not return it; an item the request excludes or filters out (or a
    :class:`Block` ahead of the pin drops) is never added, and the pin then
    does nothing. A pin placed after the other policies (as
    :func:`~two_stage_rec.policies.parse_policies` does) wins over them: a
    pinned item may exceed a :class:`~two_stage_rec.policies.MaxPerValue`
    cap. A position beyond k places the item outside the final list.

    To pin several items use :class:`Pins`, which places them all at once so
    that each lands exactly on its position. A chain of single pins does not
    guarantee that: moving a later pin's item out from above an earlier
    pinned item shifts that item up one place.

    Example: ``Pin("50", 1)``.

    Args:
        item_id: the item to pin.
        position: its 1-based position (>= 1).

    Raises:
        InvalidIdError: an empty or non-string id.
        InvalidInputError: position < 1.
    """

    item_id: str
    position: int
    extra_items: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _checked_id("Pin", self.item_id)
        object.__setattr__(self, "position", _checked_position("Pin", self.position))
        object.__setattr__(self, "extra_items", frozenset({self.item_id}))

    def apply(self, ranked: RankedList, k: int) -> RankedList:
        """The item moved to its position when the list holds it; all items kept, scores unchanged."""
        return _placed(ranked, ((self.item_id, self.position),))


@dataclass(frozen=True, repr=False)
class Pins:
    """Put several items at fixed 1-based positions, each exactly on its own.

    All pinned items the list holds are taken out and put back at their
    positions, top first, so each one ends exactly on its position when the
    list is long enough (the rest go to the end, in position order). Items
    the list does not hold are skipped, as with :class:`Pin`, whose rules
    (``extra_items``, exclusions, k) apply to each item here.

    Example: ``Pins({"50": 1, "181": 4})``.

    Args:
        positions: item id -> 1-based position; at least one, positions distinct.

    Raises:
        InvalidIdError: an empty or non-string id.
        InvalidInputError: no pins, a position < 1, or two items on one position.
    """

    positions: tuple[tuple[str, int], ...]
    extra_items: frozenset[str] = field(init=False, compare=False)

    def __init__(self, positions: Mapping[str, int]) -> None:
        if not isinstance(positions, Mapping):
            raise InvalidPolicyError(f"Pins needs a mapping of item id -> position, got {type(positions).__name__}")
        if not positions:
            raise InvalidPolicyError("Pins needs at least one item id -> position")
        pins = sorted(
            ((_checked_id("Pins", item), _checked_position("Pins", p)) for item, p in positions.items()),
            key=lambda pin: pin[1],
        )
        taken = [p for _, p in pins]
        if len(set(taken)) != len(taken):
            raise InvalidPolicyError(f"Pins puts two items on one position: {dict(pins)}")
        object.__setattr__(self, "positions", tuple(pins))
        object.__setattr__(self, "extra_items", frozenset(item for item, _ in pins))

    def __repr__(self) -> str:
        return f"Pins({dict(self.positions)!r})"

    def apply(self, ranked: RankedList, k: int) -> RankedList:
        """Each pinned item the list holds moved to its position; all items kept, scores unchanged."""
        return _placed(ranked, self.positions)


@dataclass(frozen=True)
class Block:
    """Drop the given items from the list.

    Example: ``Block(["50", "181"])``. The ids are kept sorted and without
    duplicates, so two blocks of the same ids are equal.

    Args:
        item_ids: one or more item ids (an iterable of strings, not a single string).

    Raises:
        InvalidIdError: a single string instead of ids, or an empty or non-string id.
        InvalidInputError: no ids.
    """

    item_ids: tuple[str, ...]

    def __init__(self, item_ids: Iterable[str]) -> None:
        if isinstance(item_ids, str | bytes):
            raise InvalidIdError(f"Block needs a list of item ids, got the single string {item_ids!r}")
        try:
            ids = sorted({_checked_id("Block", i) for i in item_ids})
        except TypeError as exc:
            raise InvalidPolicyError(f"Block needs an iterable of item ids, got {type(item_ids).__name__}") from exc
        if not ids:
            raise InvalidPolicyError("Block needs at least one item id")
        object.__setattr__(self, "item_ids", tuple(ids))

    def apply(self, ranked: RankedList, k: int) -> RankedList:
        """The list without the blocked items, in its order, scores unchanged."""
        blocked = set(self.item_ids)
        keep = [i for i, item in enumerate(ranked.ids) if item not in blocked]
        if len(keep) == len(ranked):
            return ranked
        return ranked.take(np.asarray(keep, dtype=np.int64))
