"""filter_mask (evaluated per distinct field value) agrees with the per-item predicate of compile_filter."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from two_stage_rec.errors import InvalidFilterError
from two_stage_rec.filters import compile_filter, filter_mask

# Values chosen to collide in Python but not in a filter: True == 1 == 1.0, "1" vs 1.
SCALARS = st.sampled_from(["a", "b", "1", "", 0, 1, 2, 1.0, 2.5, -3, True, False])
VALUES = st.one_of(SCALARS, st.lists(st.sampled_from(["a", "b", "1"]), max_size=3))
FIELDS = st.sampled_from(["genre", "year", "flag"])
METADATA = st.lists(st.dictionaries(FIELDS, VALUES, max_size=3), max_size=30)


def leaf() -> st.SearchStrategy[dict[str, Any]]:
    scalar_ops = st.sampled_from(["$eq", "$ne"])
    list_ops = st.sampled_from(["$in", "$nin"])
    number_ops = st.sampled_from(["$gt", "$gte", "$lt", "$lte"])
    numbers = st.sampled_from([0, 1, 1.5, 2, -3])
    return st.one_of(
        st.builds(lambda f, v: {f: v}, FIELDS, SCALARS),
        st.builds(lambda f, o, v: {f: {o: v}}, FIELDS, scalar_ops, SCALARS),
        st.builds(lambda f, o, v: {f: {o: v}}, FIELDS, list_ops, st.lists(SCALARS, min_size=1, max_size=3)),
        st.builds(lambda f, o, v: {f: {o: v}}, FIELDS, number_ops, numbers),
        st.builds(lambda f, v: {f: {"$exists": v}}, FIELDS, st.booleans()),
        st.builds(lambda f, a, b: {f: {"$gte": a, "$lt": b}}, FIELDS, numbers, numbers),
    )


FILTERS = st.recursive(
    leaf(),
    lambda inner: st.one_of(
        st.builds(lambda parts: {"$and": parts}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda parts: {"$or": parts}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda a, b: {**a, **b}, inner, inner),
    ),
    max_leaves=6,
)


@settings(max_examples=120, deadline=None)
@given(spec=FILTERS, metadata=METADATA)
def test_mask_equals_the_per_item_predicate(spec: dict[str, Any], metadata: list[dict[str, Any]]) -> None:
    predicate = compile_filter(spec)
    expected = np.array([predicate(md) for md in metadata], dtype=np.bool_)
    np.testing.assert_array_equal(filter_mask(spec, metadata), expected)


def test_type_distinctions_survive_grouping_by_value() -> None:
    metadata = [{"x": True}, {"x": 1}, {"x": 1.0}, {"x": "1"}, {}, {"x": ["1"]}]
    assert filter_mask({"x": True}, metadata).tolist() == [True, False, False, False, False, False]
    assert filter_mask({"x": 1}, metadata).tolist() == [False, True, True, False, False, False]
    assert filter_mask({"x": "1"}, metadata).tolist() == [False, False, False, True, False, True]
    assert filter_mask({"x": {"$ne": 1}}, metadata).tolist() == [True, False, False, True, True, True]


def test_empty_and_missing_filters_match_everything_and_bad_ones_raise() -> None:
    metadata = [{"a": 1}, {}]
    assert filter_mask(None, metadata).tolist() == [True, True]
    assert filter_mask({}, metadata).tolist() == [True, True]
    assert filter_mask({"a": 1}, []).shape == (0,)
    with pytest.raises(InvalidFilterError):
        filter_mask({"a": {"$regex": "x"}}, metadata)


def test_unhashable_stored_values_fall_back_to_the_predicate() -> None:
    metadata: list[dict[str, Any]] = [{"a": {"nested": 1}}, {"a": "x"}]
    assert filter_mask({"a": "x"}, metadata).tolist() == [False, True]
