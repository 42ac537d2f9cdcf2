"""QueryResult's builders pad for a store, and validate() names a store that breaks the contract."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from two_stage_rec import InvalidResultError, QueryResult, Recommender, StoreError
from two_stage_rec.embedders import TableEmbedder
from two_stage_rec.stores.memory import InMemoryVectorStore

D = 3


def _rows() -> dict[str, Any]:
    return {
        "ids": [["a", "b"], [], ["c"]],
        "scores": [[0.9, 0.5], [], np.array([0.7], np.float64)],
        "values": [np.ones((2, D)), np.empty((0, D)), [[2.0, 2.0, 2.0]]],
        "metadata": [({"n": 1}, {}), (), ({"n": 3},)],
    }


def test_from_rows_pads_ids_scores_values_and_keeps_metadata_unpadded() -> None:
    rows = _rows()
    result = QueryResult.from_rows(
        rows["ids"], rows["scores"], values=rows["values"], metadata=rows["metadata"], dimension=D
    )
    assert result.counts.dtype == np.int64 and result.counts.tolist() == [2, 0, 1]
    assert result.ids.dtype == object and result.ids.tolist() == [["a", "b"], ["", ""], ["c", ""]]
    assert result.scores.dtype == np.float32
    np.testing.assert_allclose(result.scores[0], [0.9, 0.5], rtol=1e-6)
    assert np.isneginf(result.scores[1]).all() and np.isneginf(result.scores[2, 1])
    assert result.values is not None and result.values.shape == (3, 2, D) and result.values.dtype == np.float32
    np.testing.assert_array_equal(result.values[0], 1.0)
    np.testing.assert_array_equal(result.values[2, 0], 2.0)
    assert np.isnan(result.values[1]).all() and np.isnan(result.values[2, 1]).all()
    assert result.metadata == (({"n": 1}, {}), (), ({"n": 3},))
    assert result.row_ids(2) == ["c"]
    assert result.validate("test", queries=3, dimension=D, values=True, metadata=True) is result


def test_from_rows_without_payload_and_without_matches() -> None:
    result = QueryResult.from_rows([[], []], [[], []])
    assert result.ids.shape == (2, 0) and result.scores.shape == (2, 0) and result.counts.tolist() == [0, 0]
    assert result.values is None and result.metadata is None
    empty_values = QueryResult.from_rows([[]], [[]], values=[[]], dimension=D)
    assert empty_values.values is not None and empty_values.values.shape == (1, 0, D)
    result.validate("test", queries=2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scores": [[0.9], [], [0.7]]}, "row 0 has 2 ids but 1 scores"),
        ({"scores": [[0.9, 0.5], []]}, "2 rows of scores for 3 rows of ids"),
        ({"metadata": [({"n": 1},), (), ({"n": 3},)]}, "row 0 has 2 ids but 1 metadata"),
        ({"values": [np.ones((2, D + 1)), np.empty((0, D)), [[2.0, 2.0, 2.0]]]}, "values of row 0 have shape"),
        ({"dimension": None}, "needs the dimension"),
    ],
)
def test_from_rows_rejects_rows_that_disagree(change: dict[str, Any], message: str) -> None:
    arguments = {**_rows(), "dimension": D, **change}
    with pytest.raises(InvalidResultError, match=message):
        QueryResult.from_rows(arguments.pop("ids"), arguments.pop("scores"), **arguments)


@pytest.mark.parametrize("table_kind", ["list", "array"])
def test_from_positions_equals_from_rows(table_kind: str) -> None:
    table_ids = ["a", "b", "c", "d"]
    vectors = np.arange(4 * D, dtype=np.float32).reshape(4, D)
    metadata: list[dict[str, Any]] = [{"n": n} for n in range(4)]
    positions = np.array([[3, 1], [-1, -1], [2, -1]], dtype=np.int64)
    scores = np.array([[0.9, 0.5], [np.nan, np.nan], [0.7, 0.0]], dtype=np.float32)
    ids = np.array(table_ids, dtype=object) if table_kind == "array" else table_ids
    got = QueryResult.from_positions(positions, scores, ids=ids, vectors=vectors, metadata=metadata)
    want = QueryResult.from_rows(
        [["d", "b"], [], ["c"]],
        [[0.9, 0.5], [], [0.7]],
        values=[vectors[[3, 1]], vectors[[]], vectors[[2]]],
        metadata=[(metadata[3], metadata[1]), (), (metadata[2],)],
        dimension=D,
    )
    assert got.ids.tolist() == want.ids.tolist()
    assert got.counts.tolist() == want.counts.tolist()
    np.testing.assert_array_equal(got.scores, want.scores)  # the same float32 values, copied
    assert got.values is not None and want.values is not None
    np.testing.assert_array_equal(got.values, want.values)
    assert got.metadata == want.metadata
    plain = QueryResult.from_positions(positions[:1], scores[:1], ids=ids)
    assert plain.values is None and plain.metadata is None and plain.counts.tolist() == [2]


def _good() -> QueryResult:
    return QueryResult.from_rows([["a", "b"], ["c"]], [[0.9, 0.5], [0.7]], values=[np.ones((2, D)), np.ones((1, D))],
                                 metadata=[({}, {}), ({},)], dimension=D)  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"counts": [2, 1]}, "counts is a list, not a numpy array"),
        ({"ids": [["a", "b"], ["c", ""]]}, "ids is a list"),
        ({"scores": np.zeros((2, 2), np.float64)}, "scores must be float32"),
        ({"scores": np.zeros((2, 3), np.float32)}, "scores must be float32 \\(2, 2\\)"),
        ({"counts": np.array([2.0, 1.0])}, "counts must be an integer array"),
        ({"counts": np.array([3, 1])}, "counts must lie in \\[0, 2\\]"),
        ({"values": np.ones((2, 2, D + 1), np.float32)}, "values must be float32 \\(2, 2, 3\\)"),
        ({"values": None}, "values were asked for"),
        ({"metadata": None}, "metadata was asked for"),
        ({"metadata": (({}, {}),)}, "metadata has 1 rows for 2 queries"),
        ({"metadata": (({}, {}), ())}, "metadata row 1 must be a tuple of counts\\[1\\] = 1 mappings"),
    ],
)
def test_validate_names_the_store_and_the_problem(change: dict[str, Any], message: str) -> None:
    broken = dataclasses.replace(_good(), **change)
    with pytest.raises(InvalidResultError, match=f"MyStore returned an invalid QueryResult: {message}") as caught:
        broken.validate("MyStore", queries=2, dimension=D, values=True, metadata=True)
    assert isinstance(caught.value, StoreError) and isinstance(caught.value, TypeError)


def test_validate_checks_the_row_count() -> None:
    with pytest.raises(InvalidResultError, match="2 rows for 3 query vectors"):
        _good().validate("MyStore", queries=3)


class ListCountsStore(InMemoryVectorStore):
    """A third-party store's classic mistake: counts as a Python list."""

    def query(self, vectors, top_k, *, filter=None, include_values=False, include_metadata=False):  # type: ignore[no-untyped-def]
        result = super().query(
            vectors, top_k, filter=filter, include_values=include_values, include_metadata=include_metadata
        )
        return dataclasses.replace(result, counts=result.counts.tolist())


class TupleStore(InMemoryVectorStore):
    def query(self, vectors, top_k, *, filter=None, include_values=False, include_metadata=False):  # type: ignore[no-untyped-def]
        result = super().query(vectors, top_k, filter=filter)
        return result.ids, result.scores


@pytest.mark.parametrize(
    ("store_type", "message"),
    [
        (ListCountsStore, "ListCountsStore returned an invalid QueryResult: counts is a list"),
        (TupleStore, "TupleStore returned a tuple from query\\(\\), not a QueryResult"),
    ],
)
def test_recommender_fails_clearly_on_a_broken_store(store_type: type[InMemoryVectorStore], message: str) -> None:
    vectors = np.eye(D, dtype=np.float32)
    store = store_type(dimension=D)
    store.upsert(["x", "y", "z"], vectors)
    recommender = Recommender(user_embedder=TableEmbedder(["u"], vectors[:1]), store=store)
    with pytest.raises(InvalidResultError, match=message):
        recommender.recommend("u", k=2)
