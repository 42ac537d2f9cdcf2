"""The FAISS store's columnar metadata cache answers every filter as filter_mask does on the items.

Random write sequences (set, clear, compact) against a plain list of metadata
mappings; after each, random filters must give the same mask both ways.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from two_stage_rec.filters import MetadataColumn, filter_mask, filter_mask_columns
from two_stage_rec.stores._faiss_columns import MetadataColumns
from two_stage_rec.testing.contract import filter_strategy

# Values that collide in Python but not in a filter (True == 1 == 1.0), lists, and missing fields.
VALUES = st.one_of(
    st.sampled_from(["a", "b", "c", "1", 0, 1, 2, 1.0, 2.5, 3.0, True, False]),
    st.lists(st.sampled_from(["a", "b", "c"]), max_size=3),
)
ENTRY = st.dictionaries(st.sampled_from(["genre", "year", "rating", "tags", "flag", "mixed"]), VALUES, max_size=4)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.lists(st.integers(0, 19), min_size=1, max_size=5, unique=True), st.data()),
        st.tuples(st.just("clear"), st.lists(st.integers(0, 19), max_size=5, unique=True), st.none()),
        st.tuples(st.just("compact"), st.none(), st.none()),
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(ops=OPS, specs=st.lists(filter_strategy(), min_size=1, max_size=4))
def test_columns_agree_with_filter_mask_after_any_writes(ops: list[Any], specs: list[dict[str, Any]]) -> None:
    columns = MetadataColumns()
    size = 20
    columns.reserve(size)
    reference: list[dict[str, Any]] = [{} for _ in range(size)]
    for op, slots, data in ops:
        if op == "set":
            entries = [data.draw(ENTRY) for _ in slots]
            columns.set(slots, entries)
            for slot, entry in zip(slots, entries, strict=True):
                reference[slot] = entry
        elif op == "clear":
            columns.clear(np.array(slots, dtype=np.int64))
            for slot in slots:
                reference[slot] = {}
        else:  # drop the empty slots, renumbering the rest, as the store compacts
            live = np.array([i for i, md in enumerate(reference) if md], dtype=np.int64)
            reference = [reference[i] for i in live.tolist()]
            columns.compact(live, reference)
            size = len(reference)
            if size < 20:  # grow back so later ops may address slots 0..19
                columns.reserve(20)
                reference += [{} for _ in range(20 - size)]
                size = 20
    for spec in specs:
        np.testing.assert_array_equal(columns.mask(spec, size), filter_mask(spec, reference), err_msg=str(spec))


def test_a_field_no_item_has_is_missing_everywhere() -> None:
    codes = np.array([0, -1, 1], dtype=np.int32)
    columns = {"genre": MetadataColumn(codes, ["a", "b"])}
    assert filter_mask_columns({"genre": "a"}, columns, 3).tolist() == [True, False, False]
    assert filter_mask_columns({"genre": {"$ne": "a"}}, columns, 3).tolist() == [False, True, True]
    assert filter_mask_columns({"nowhere": {"$exists": False}}, columns, 3).tolist() == [True, True, True]
    assert filter_mask_columns({"nowhere": "a"}, columns, 3).tolist() == [False, False, False]
    assert filter_mask_columns({"genre": {"$in": ["a", "b"]}}, columns, 3).tolist() == [True, False, True]
    assert filter_mask_columns(None, columns, 3).tolist() == [True, True, True]
