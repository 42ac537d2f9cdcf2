"""The Pinecone filter language: hand-written cases per operator, and its errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from two_stage_rec.errors import InvalidFilterError
from two_stage_rec.filters import compile_filter, filter_mask, matches

MOVIE: dict[str, Any] = {
    "genre": "comedy",
    "year": 1995,
    "rating": 4.5,
    "tags": ["funny", "classic"],
    "adult": False,
    "code": "1",
}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # $eq and its shorthand; types never mix
        ({"genre": "comedy"}, True),
        ({"genre": {"$eq": "drama"}}, False),
        ({"year": 1995.0}, True),
        ({"adult": False}, True),
        ({"adult": 0}, False),
        ({"code": 1}, False),
        ({"year": "1995"}, False),
        # $ne
        ({"genre": {"$ne": "drama"}}, True),
        ({"genre": {"$ne": "comedy"}}, False),
        ({"adult": {"$ne": 0}}, True),
        ({"missing": {"$ne": "x"}}, True),
        # $in / $nin
        ({"genre": {"$in": ["drama", "comedy"]}}, True),
        ({"genre": {"$in": ["drama"]}}, False),
        ({"year": {"$in": [1994, 1995]}}, True),
        ({"genre": {"$nin": ["drama"]}}, True),
        ({"genre": {"$nin": ["comedy", "drama"]}}, False),
        ({"missing": {"$nin": ["x"]}}, True),
        ({"missing": {"$in": ["x"]}}, False),
        # number comparisons
        ({"year": {"$gt": 1994}}, True),
        ({"year": {"$gt": 1995}}, False),
        ({"year": {"$gte": 1995}}, True),
        ({"rating": {"$lt": 4.5}}, False),
        ({"rating": {"$lte": 4.5}}, True),
        ({"year": {"$gte": 1990, "$lt": 2000}}, True),
        ({"genre": {"$gt": 0}}, False),  # strings never compare as numbers
        ({"adult": {"$lt": 1}}, False),  # nor do bools
        ({"missing": {"$lt": 1}}, False),
        # $exists
        ({"genre": {"$exists": True}}, True),
        ({"genre": {"$exists": False}}, False),
        ({"missing": {"$exists": False}}, True),
        # list-valued fields: any element for $eq/$in, no element for $ne/$nin
        ({"tags": "funny"}, True),
        ({"tags": {"$in": ["sad", "classic"]}}, True),
        ({"tags": {"$ne": "funny"}}, False),
        ({"tags": {"$ne": "sad"}}, True),
        ({"tags": {"$nin": ["sad", "funny"]}}, False),
        ({"tags": {"$gt": 0}}, False),
        # logic
        ({}, True),
        ({"genre": "comedy", "year": 1994}, False),
        ({"$and": [{"genre": "comedy"}, {"year": {"$gt": 1990}}]}, True),
        ({"$and": [{"genre": "comedy"}, {"year": {"$gt": 2000}}]}, False),
        ({"$or": [{"genre": "drama"}, {"rating": {"$gte": 4}}]}, True),
        ({"$or": [{"genre": "drama"}, {"rating": {"$gte": 5}}]}, False),
        ({"$or": [{"$and": [{"adult": True}, {"year": 1995}]}, {"tags": "classic"}]}, True),
        ({"$and": [{}]}, True),
        ({"$or": [{"genre": "drama"}], "year": 1995}, False),
    ],
    ids=repr,
)
def test_operator_semantics(spec: dict[str, Any], expected: bool) -> None:
    assert matches(spec, MOVIE) is expected


def test_none_and_empty_filters_match_everything() -> None:
    assert matches(None, {}) and matches({}, {}) and matches({}, MOVIE)


def test_empty_list_field_matches_only_negations() -> None:
    empty: dict[str, Any] = {"tags": []}
    assert not matches({"tags": "a"}, empty)
    assert matches({"tags": {"$ne": "a"}}, empty)
    assert matches({"tags": {"$nin": ["a"]}}, empty)
    assert matches({"tags": {"$exists": True}}, empty)


def test_filter_mask_over_many() -> None:
    table: list[dict[str, Any]] = [{"g": "a", "n": 1}, {"g": "b"}, {}, {"g": ["a", "c"], "n": 3.0}]
    np.testing.assert_array_equal(filter_mask({"g": "a"}, table), [True, False, False, True])
    np.testing.assert_array_equal(filter_mask({"n": {"$gte": 1}}, table), [True, False, False, True])
    np.testing.assert_array_equal(filter_mask(None, table), [True] * 4)
    mask = filter_mask({"g": "a"}, [])
    assert mask.shape == (0,) and mask.dtype == np.bool_


def test_compiled_filter_is_reusable() -> None:
    predicate = compile_filter({"year": {"$lt": 2000}})
    assert predicate(MOVIE) and not predicate({"year": 2001}) and predicate({"year": 1})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"genre": {"$regex": "com"}}, "unknown operator"),
        ({"$not": {"genre": "comedy"}}, "not a logical operator"),
        ({"$and": []}, "non-empty list"),
        ({"$or": {"genre": "comedy"}}, "non-empty list"),
        ({"$and": ["genre"]}, "must be a mapping"),
        ({"genre": {}}, "empty operator mapping"),
        ({"genre": None}, "needs a string, number or bool"),
        ({"genre": ["comedy"]}, "needs a string, number or bool"),
        ({"genre": {"$eq": ["comedy"]}}, "needs a string, number or bool"),
        ({"genre": {"$in": []}}, "non-empty list"),
        ({"genre": {"$in": "comedy"}}, "non-empty list"),
        ({"genre": {"$nin": [["nested"]]}}, "non-empty list"),
        ({"year": {"$gt": "1990"}}, "needs a number"),
        ({"year": {"$lte": True}}, "needs a number"),
        ({"genre": {"$exists": 1}}, "true or false"),
        ({"": "x"}, "non-empty strings"),
        ({1: "x"}, "non-empty strings"),
    ],
    ids=repr,
)
def test_malformed_filters_raise(spec: Any, message: str) -> None:
    with pytest.raises(InvalidFilterError, match=message) as info:
        compile_filter(spec)
    assert isinstance(info.value, ValueError)


def test_a_filter_that_is_not_a_mapping_raises() -> None:
    with pytest.raises(InvalidFilterError, match="must be a mapping"):
        compile_filter(["genre"])  # type: ignore[arg-type]


def test_errors_name_where_in_the_filter_they_are() -> None:
    with pytest.raises(InvalidFilterError, match=r"\$\.\$or\[1\]"):
        compile_filter({"$or": [{"genre": "comedy"}, {"$nope": 1}]})


def test_errors_are_raised_when_compiling_not_when_matching() -> None:
    # An invalid branch of $or must fail even if an earlier branch would match.
    with pytest.raises(InvalidFilterError):
        filter_mask({"$or": [{"genre": "comedy"}, {"year": {"$gt": "x"}}]}, [MOVIE])
