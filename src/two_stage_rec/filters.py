"""Metadata filters in the Pinecone filter language, evaluated the same way by every store.

A filter is a mapping. Each key is either a metadata field, whose value is a
literal (shorthand for ``$eq``) or a mapping of operators, or one of the
logical operators ``$and`` / ``$or`` holding a non-empty list of filters.
Several keys in one mapping are combined with AND::

    {"genre": {"$in": ["comedy", "drama"]}, "year": {"$gte": 1990}}
    {"$or": [{"genre": "comedy"}, {"rating": {"$gt": 4.5}}]}

Operators and their semantics (identical on every backend):

============  ===================  ==========================================
operator      operand              matches a vector whose field ...
============  ===================  ==========================================
``$eq``       str, number, bool    equals the operand
``$ne``       str, number, bool    does not equal it (or is missing)
``$in``       non-empty list       equals one of the operands
``$nin``      non-empty list       equals none of them (or is missing)
``$gt`` ...   number               ``$gt $gte $lt $lte``: compares as numbers
``$exists``   bool                 is present (``True``) / absent (``False``)
============  ===================  ==========================================

Values are compared by type: ``True`` never equals ``1`` and ``"1"`` never
equals ``1``. A field holding a list of strings matches ``$eq``/``$in`` when
any element matches, and ``$ne``/``$nin`` when no element does; number
comparisons never match a string or list. A missing field matches only
``$ne``, ``$nin`` and ``$exists: False``. ``{}`` matches everything.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

from two_stage_rec.errors import InvalidFilterError
from two_stage_rec.types import Filter, Metadata

__all__ = [
    "MetadataColumn",
    "Predicate",
    "column_key",
    "compile_filter",
    "filter_mask",
    "filter_mask_columns",
    "matches",
]

Predicate = Callable[[Metadata], bool]

_COMPARISONS: Final[dict[str, Callable[[float, float], bool]]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}
_FIELD_OPERATORS: Final = frozenset({"$eq", "$ne", "$in", "$nin", "$exists", *_COMPARISONS})


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | bool) or _is_number(value)


def _same(stored: object, wanted: object) -> bool:
    """Type-aware equality: bools, numbers and strings never equal one another."""
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return isinstance(stored, bool) and isinstance(wanted, bool) and stored == wanted
    if _is_number(stored) and _is_number(wanted):
        return stored == wanted
    return isinstance(stored, str) and isinstance(wanted, str) and stored == wanted


def _any_equal(stored: object, wanted: Sequence[object]) -> bool:
    elements = stored if isinstance(stored, list) else [stored]
    return any(_same(element, option) for element in elements for option in wanted)


_MISSING: Final = object()


def _field_predicate(field: str, operator: str, operand: object) -> Predicate:
    if operator in ("$eq", "$ne"):
        if not _is_scalar(operand):
            raise InvalidFilterError(f"{operator} on {field!r} needs a string, number or bool, got {operand!r}")
        options = [operand]
        if operator == "$eq":
            return lambda md: field in md and _any_equal(md[field], options)
        return lambda md: field not in md or not _any_equal(md[field], options)
    if operator in ("$in", "$nin"):
        if not isinstance(operand, list) or not operand or not all(_is_scalar(o) for o in operand):
            raise InvalidFilterError(
                f"{operator} on {field!r} needs a non-empty list of strings, numbers or bools, got {operand!r}"
            )
        choices = list(operand)
        if operator == "$in":
            return lambda md: field in md and _any_equal(md[field], choices)
        return lambda md: field not in md or not _any_equal(md[field], choices)
    if operator in _COMPARISONS:
        if not _is_number(operand):
            raise InvalidFilterError(f"{operator} on {field!r} needs a number, got {operand!r}")
        compare = _COMPARISONS[operator]

        def comparison(md: Metadata) -> bool:
            stored = md.get(field, _MISSING)
            return _is_number(stored) and compare(stored, operand)  # type: ignore[arg-type]

        return comparison
    if operator == "$exists":
        if not isinstance(operand, bool):
            raise InvalidFilterError(f"$exists on {field!r} needs true or false, got {operand!r}")
        return (lambda md: field in md) if operand else (lambda md: field not in md)
    raise InvalidFilterError(
        f"unknown operator {operator!r} on field {field!r}; expected one of {sorted(_FIELD_OPERATORS)}"
    )


def _all_of(predicates: list[Predicate]) -> Predicate:
    if len(predicates) == 1:
        return predicates[0]
    return lambda md: all(p(md) for p in predicates)


def _any_of(predicates: list[Predicate]) -> Predicate:
    return lambda md: any(p(md) for p in predicates)


def _compile(spec: object, path: str) -> Predicate:
    if not isinstance(spec, Mapping):
        raise InvalidFilterError(f"filter at {path} must be a mapping, got {type(spec).__name__}")
    predicates: list[Predicate] = []
    for key, value in spec.items():
        if not isinstance(key, str) or not key:
            raise InvalidFilterError(f"filter keys must be non-empty strings, got {key!r} at {path}")
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise InvalidFilterError(f"{key} at {path} needs a non-empty list of filters")
            parts = [_compile(part, f"{path}.{key}[{i}]") for i, part in enumerate(value)]
            if key == "$and":
                predicates.append(_all_of(parts))
            else:
                predicates.append(_any_of(parts))
        elif key.startswith("$"):
            raise InvalidFilterError(f"{key!r} at {path} is not a logical operator; use $and or $or")
        elif isinstance(value, Mapping):
            if not value:
                raise InvalidFilterError(f"field {key!r} at {path} has an empty operator mapping")
            for op_name, operand in value.items():
                predicates.append(_field_predicate(key, str(op_name), operand))
        else:
            predicates.append(_field_predicate(key, "$eq", value))
    if not predicates:
        return lambda md: True
    return _all_of(predicates)


def compile_filter(spec: Filter | None) -> Predicate:
    """Validate a filter once and return a predicate over one metadata mapping.

    Raises:
        InvalidFilterError: the filter is malformed (unknown operator, wrong
            operand type, empty ``$and``/``$or`` list, ...).
    """
    if spec is None:
        return lambda md: True
    return _compile(spec, "$")


def matches(spec: Filter | None, metadata: Metadata) -> bool:
    """True when ``metadata`` satisfies the filter ``spec``."""
    return compile_filter(spec)(metadata)


def filter_mask(spec: Filter | None, metadata: Sequence[Metadata]) -> npt.NDArray[np.bool_]:
    """Evaluate a filter over many metadata mappings.

    Returns:
        bool array (len(metadata),), True where the filter matches.
    """
    predicate = compile_filter(spec)  # validates the whole filter first, with the same errors as everywhere
    if not spec:
        return np.ones(len(metadata), dtype=np.bool_)
    try:
        return _mask(spec, _LazyColumns(metadata), len(metadata))
    except TypeError:  # an unhashable stored value (not valid metadata): evaluate item by item
        return np.fromiter((predicate(md) for md in metadata), dtype=np.bool_, count=len(metadata))


# ------------------------------------------------------- evaluating over many items
#
# A leaf condition (one operator on one field) depends only on that field's value,
# and a catalogue holds few distinct values per field (genres, years, flags). So
# masks are evaluated on a columnar form of the metadata: per field, the code of
# each item's value and the list of distinct values. Each leaf is evaluated once
# per distinct value and its answers are mapped back to the items with numpy,
# instead of calling the whole predicate on every item. The leaf predicates are
# the very ones compile_filter builds, so the semantics are identical by
# construction (tests/test_filters_mask.py compares the two).
#
# filter_mask builds the columns it needs on the fly (on 1M items with 20 genres
# ~10x faster than the predicate per item); a store that keeps the columns up to
# date as it writes (FaissVectorStore) calls filter_mask_columns and skips that
# pass over the items altogether.


class MetadataColumn(NamedTuple):
    """One metadata field in columnar form, as :func:`filter_mask_columns` reads it.

    Attributes:
        codes: integer array (n,): item ``i`` holds ``values[codes[i]]``, or
            lacks the field when ``codes[i] == -1``.
        values: the distinct values (strings, numbers, bools or lists of
            strings); two values that a filter tells apart (``True``, ``1``,
            ``"1"``) must be distinct entries (see :func:`column_key`).
    """

    codes: npt.NDArray[np.integer]
    values: Sequence[object]


def column_key(value: object) -> object:
    """A dict key under which equal metadata values share one :class:`MetadataColumn` entry.

    ``True``, ``1`` and ``1.0`` are equal (and hash alike) in Python but not to
    a filter, so the key carries the type; lists are unhashable and become tuples.
    """
    if type(value) is str:
        return value
    if isinstance(value, list):
        return (list, tuple(value))
    return (type(value), value)


def filter_mask_columns(spec: Filter | None, columns: Mapping[str, MetadataColumn], size: int) -> npt.NDArray[np.bool_]:
    """Evaluate a filter over metadata held in columnar form.

    Same answers as :func:`filter_mask` over the items the columns describe,
    without reading the items: the cost is a few numpy passes over ``size``
    codes per leaf condition, plus one predicate call per distinct value.

    Args:
        spec: the filter (validated here, with the usual errors).
        columns: field -> :class:`MetadataColumn` whose ``codes`` hold at
            least ``size`` entries; a field absent from ``columns`` is absent
            from every item.
        size: number of items n.

    Returns:
        bool array (n,), True where the filter matches.

    Raises:
        InvalidFilterError: the filter is malformed.
    """
    compile_filter(spec)
    if not spec:
        return np.ones(size, dtype=np.bool_)
    return _mask(spec, _FixedColumns(columns), size)


_ABSENT: Final = MetadataColumn(np.empty(0, dtype=np.intp), ())


class _FixedColumns:
    """Columns a store keeps up to date; unknown fields are absent everywhere."""

    def __init__(self, columns: Mapping[str, MetadataColumn]) -> None:
        self._columns = columns

    def get(self, field: str) -> MetadataColumn:
        return self._columns.get(field, _ABSENT)


class _LazyColumns:
    """Columns built from a list of metadata mappings, one field at a time, when first asked for."""

    def __init__(self, metadata: Sequence[Metadata]) -> None:
        self._metadata = metadata
        self._columns: dict[str, MetadataColumn] = {}

    def get(self, field: str) -> MetadataColumn:
        if field not in self._columns:
            codes: dict[object, int] = {}
            distinct: list[object] = []
            per_item: list[int] = []
            append = per_item.append
            for md in self._metadata:
                value = md.get(field, _MISSING)
                if value is _MISSING:
                    append(-1)
                    continue
                key = column_key(value)
                code = codes.get(key)
                if code is None:
                    code = codes[key] = len(distinct)
                    distinct.append(value)
                append(code)
            self._columns[field] = MetadataColumn(np.array(per_item, dtype=np.intp), distinct)
        return self._columns[field]


def _leaf_mask(
    field: str, predicate: Predicate, columns: _FixedColumns | _LazyColumns, size: int
) -> npt.NDArray[np.bool_]:
    codes, distinct = columns.get(field)
    codes = codes[:size]
    # One answer per distinct value, then the answer for "field missing" last, so code -1 picks it.
    answers = np.array([*(predicate({field: value}) for value in distinct), predicate({})], dtype=np.bool_)  # type: ignore[dict-item]
    if codes.shape[0] < size:  # an absent field: no item holds it
        return np.full(size, answers[-1], dtype=np.bool_)
    hits = np.flatnonzero(answers)
    if hits.size == answers.size:
        return np.ones(size, dtype=np.bool_)
    if hits.size == 0:
        return np.zeros(size, dtype=np.bool_)
    if hits.size == 1:  # the common {"genre": "x"}: one comparison pass beats a gather
        equal: npt.NDArray[np.bool_] = codes == (hits[0] if hits[0] < len(distinct) else -1)
        return equal
    gathered: npt.NDArray[np.bool_] = answers[codes]
    return gathered


def _mask(spec: Mapping[str, object], columns: _FixedColumns | _LazyColumns, size: int) -> npt.NDArray[np.bool_]:
    """The mask of an already validated filter: AND over its keys, as _compile combines them."""
    result: npt.NDArray[np.bool_] | None = None
    for key, value in spec.items():
        if key in ("$and", "$or"):
            parts = [_mask(part, columns, size) for part in value]  # type: ignore[attr-defined]
            part_mask = np.logical_and.reduce(parts) if key == "$and" else np.logical_or.reduce(parts)
            result = part_mask if result is None else result & part_mask
        elif isinstance(value, Mapping):
            for op_name, operand in value.items():
                leaf = _leaf_mask(key, _field_predicate(key, str(op_name), operand), columns, size)
                result = leaf if result is None else result & leaf
        else:
            leaf = _leaf_mask(key, _field_predicate(key, "$eq", value), columns, size)
            result = leaf if result is None else result & leaf
    return np.ones(size, dtype=np.bool_) if result is None else result
