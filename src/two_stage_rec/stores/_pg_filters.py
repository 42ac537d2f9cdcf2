"""The Pinecone filter language (see :mod:`two_stage_rec.filters`) as a SQL condition on a JSONB column.

Used by :mod:`two_stage_rec.stores.pgvector`. Every value *and every field
name* of the filter travels as a bound parameter; the SQL text is built only
from the fixed fragments below, so no filter can change the statement.

How each operator keeps the shared semantics (``tests/test_pgvector_store.py``
checks them against :func:`~two_stage_rec.filters.filter_mask`):

* ``$eq`` is JSONB containment, ``metadata @> {"field": value}``: JSONB keeps
  strings, numbers and booleans apart (``true`` never contains ``1``) and
  compares numbers by value (``2`` contains ``2.0``), exactly the filter
  rules. A list of strings holds the value when ``@> {"field": [value]}``.
  Containment and ``?`` (``$exists``) are served by the store's GIN index.
* ``$ne``/``$nin`` are ``NOT`` of ``$eq``/``$in``; the column is never NULL
  (no metadata is ``{}``), so a missing field matches them, as it must.
* ``$gt`` ... compare only JSON numbers; ``CASE`` guards the cast so that a
  string or list value is "no match" rather than a cast error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from two_stage_rec.filters import compile_filter
from two_stage_rec.types import Filter

__all__ = ["filter_sql"]

_COMPARISONS: Final[dict[str, str]] = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_NUMBER_COMPARISON: Final = (
    "(CASE WHEN jsonb_typeof(metadata -> %s::text) = 'number' "
    "THEN (metadata ->> %s::text)::float8 {op} %s::float8 ELSE false END)"
)


def _document(field: str, value: object) -> str:
    """``{field: value}`` as JSON text, bound as a ``%s::jsonb`` parameter."""
    return json.dumps({field: value}, ensure_ascii=False, allow_nan=False)


def _equals(field: str, value: object, params: list[Any]) -> str:
    params.append(_document(field, value))
    if isinstance(value, str):  # a list field holds strings only
        params.append(_document(field, [value]))
        return "(metadata @> %s::jsonb OR metadata @> %s::jsonb)"
    return "metadata @> %s::jsonb"


def _any_equals(field: str, values: list[object], params: list[Any]) -> str:
    return "(" + " OR ".join(_equals(field, value, params) for value in values) + ")"


def _field(field: str, operator: str, operand: Any, params: list[Any]) -> str:
    if operator == "$eq":
        return _equals(field, operand, params)
    if operator == "$ne":
        return "NOT " + _equals(field, operand, params)
    if operator == "$in":
        return _any_equals(field, operand, params)
    if operator == "$nin":
        return "NOT " + _any_equals(field, operand, params)
    if operator in _COMPARISONS:
        params.extend([field, field, float(operand)])
        return _NUMBER_COMPARISON.format(op=_COMPARISONS[operator])
    # $exists: compile_filter has already rejected every other operator
    params.append(field)
    return "(metadata ? %s::text)" if operand else "NOT (metadata ? %s::text)"


def _condition(spec: Mapping[str, Any], params: list[Any]) -> str:
    parts: list[str] = []
    for key, value in spec.items():
        if key in ("$and", "$or"):
            joiner = " AND " if key == "$and" else " OR "
            parts.append("(" + joiner.join(_condition(part, params) for part in value) + ")")
        elif isinstance(value, Mapping):
            parts.extend(_field(key, str(op), operand, params) for op, operand in value.items())
        else:
            parts.append(_field(key, "$eq", value, params))
    if not parts:
        return "true"
    return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"


def filter_sql(spec: Filter | None) -> tuple[str, list[Any]]:
    """A filter as a SQL boolean condition on the column ``metadata`` and its parameters.

    Args:
        spec: a filter in the Pinecone filter language, or None.

    Returns:
        ``(condition, params)``: condition text with one ``%s`` per parameter,
        in order (JSON documents as text, cast to ``jsonb`` in the SQL).

    Raises:
        InvalidFilterError: the filter is malformed (the same checks and
            messages as every other store).
    """
    compile_filter(spec)  # validates first: same errors as every backend
    params: list[Any] = []
    if not spec:
        return "true", params
    return _condition(spec, params), params
