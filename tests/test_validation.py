"""Input checks every store runs before writing: typed errors, nothing half-accepted."""

from __future__ import annotations

import numpy as np
import pytest

from two_stage_rec.errors import (
    DimensionMismatchError,
    DuplicateIdError,
    EmptyBatchError,
    InvalidIdError,
    InvalidInputError,
    InvalidMetadataError,
    LimitExceededError,
    NonFiniteVectorError,
)
from two_stage_rec.validation import as_query_matrix, check_ids, check_metadata, check_top_k, check_upsert


def test_check_upsert_returns_float32_contiguous_copies() -> None:
    vectors = np.arange(12, dtype=np.float64).reshape(3, 4)[:, ::1]
    metadata = [{"tags": ["a"]}, {}, {"n": 1}]
    ids, matrix, copies = check_upsert(["a", "b", "c"], vectors, metadata, 4)
    assert ids == ["a", "b", "c"]
    assert matrix.dtype == np.float32 and matrix.flags.c_contiguous and matrix.shape == (3, 4)
    assert copies == metadata
    metadata[0]["tags"].append("mutated later")  # type: ignore[attr-defined]
    assert copies is not None and copies[0] == {"tags": ["a"]}


def test_a_single_vector_is_a_batch_of_one() -> None:
    _, matrix, _ = check_upsert(["a"], [1.0, 2.0], None, 2)
    assert matrix.shape == (1, 2)
    assert as_query_matrix(np.zeros(2), 2).shape == (1, 2)


@pytest.mark.parametrize(
    ("vectors", "expected"),
    [
        (np.zeros((2, 3)), 3),
        (np.zeros(5), 5),
        (np.zeros((2, 2, 4)), 4),
    ],
)
def test_wrong_shape_is_a_dimension_mismatch(vectors: np.ndarray, expected: int) -> None:
    with pytest.raises(DimensionMismatchError) as info:
        check_upsert(["a", "b"], vectors, None, 4)
    assert info.value.expected == 4 and info.value.got == expected
    assert isinstance(info.value, ValueError)


def test_non_numeric_vectors_are_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="numeric"):
        check_upsert(["a"], [["x", "y"]], None, 2)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rows_are_named(bad: float) -> None:
    vectors = np.zeros((4, 2), np.float32)
    vectors[2, 1] = bad
    with pytest.raises(NonFiniteVectorError, match=r"\[2\]"):
        check_upsert(list("abcd"), vectors, None, 2)


def test_ids_and_vectors_must_have_the_same_length() -> None:
    with pytest.raises(InvalidInputError, match="2 ids but 3 vectors"):
        check_upsert(["a", "b"], np.zeros((3, 2)), None, 2)


def test_empty_query_batch() -> None:
    with pytest.raises(EmptyBatchError):
        as_query_matrix(np.zeros((0, 3)), 3)
    with pytest.raises(EmptyBatchError):
        as_query_matrix([], 3)


def test_check_ids_rules() -> None:
    with pytest.raises(InvalidIdError, match="single string"):
        check_ids("abc")
    with pytest.raises(EmptyBatchError):
        check_ids([])
    assert check_ids([], allow_empty_batch=True) == []
    for bad in ("", 7, None):
        with pytest.raises(InvalidIdError):
            check_ids(["ok", bad])  # type: ignore[list-item]
    with pytest.raises(InvalidIdError, match="limit is 3"):
        check_ids(["abcd"], max_length=3)
    assert check_ids(["x", "x"], require_unique=False) == ["x", "x"]


def test_duplicate_ids_are_all_listed() -> None:
    with pytest.raises(DuplicateIdError) as info:
        check_ids(["a", "b", "a", "c", "b"])
    assert sorted(info.value.duplicates) == ["a", "b"]
    assert "'a'" in str(info.value)


def test_check_metadata_accepts_pinecone_types() -> None:
    entries = [{"s": "x", "i": 1, "f": 2.5, "b": True, "l": ["a", "b"], "empty": []}]
    assert check_metadata(["a"], entries) == entries
    assert check_metadata(["a"], None) is None


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"a": 1}, "sequence of mappings"),
        ([{"a": 1}], "1 metadata entries for 2 ids"),
        (["not a mapping", {}], "not a mapping"),
        ([{1: "x"}, {}], "non-string or empty key"),
        ([{"": "x"}, {}], "non-string or empty key"),
        ([{"k": None}, {}], "null"),
        ([{"k": float("nan")}, {}], "not finite"),
        ([{"k": {"nested": 1}}, {}], "type dict"),
        ([{"k": [1, 2]}, {}], "type list"),
        ([{"k": ("a",)}, {}], "type tuple"),
    ],
)
def test_invalid_metadata(metadata: object, message: str) -> None:
    with pytest.raises(InvalidMetadataError, match=message):
        check_metadata(["a", "b"], metadata)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "3", None])
def test_top_k_must_be_a_positive_int(bad: object) -> None:
    with pytest.raises(InvalidInputError):
        check_top_k(bad)  # type: ignore[arg-type]


def test_top_k_accepts_numpy_ints_and_enforces_a_maximum() -> None:
    assert check_top_k(np.int64(3)) == 3
    assert check_top_k(10_000, maximum=10_000) == 10_000
    with pytest.raises(LimitExceededError):
        check_top_k(10_001, maximum=10_000)
