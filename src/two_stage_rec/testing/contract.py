"""The behaviour every :class:`~two_stage_rec.VectorStore` must show, as pytest tests.

Protocols only check method names; this suite checks behaviour. Subclass
:class:`VectorStoreContract` in a test module (fsspec style) and return a new,
empty store from :meth:`~VectorStoreContract.make_store`::

    from two_stage_rec.testing import VectorStoreContract

    class TestMyStore(VectorStoreContract):
        min_recall = 0.9  # only for approximate stores (is_exact False)

        def make_store(self, dimension, metric):
            return MyStore(dimension=dimension, metric=metric)

The suite reads the store's capabilities instead of asking the subclass to
switch tests off:

* ``is_exact``: exact stores must equal a numpy oracle
  (:mod:`two_stage_rec.scoring`) on ids and scores; approximate stores must
  reach the subclass's ``min_recall`` (recall@10 against that oracle) and
  still return true, descending scores for whatever they return.
* ``returns_values`` (optional, default True): stores that declare it False
  skip the ``include_values`` tests and say why.
* ``supports_persistence``: stores that declare it must be
  :class:`~two_stage_rec.protocols.Persistent` and round-trip through
  ``store.save(directory)`` / ``type(store).load(directory)``; the others skip
  that test and say why.

Eventually consistent backends override :meth:`~VectorStoreContract.wait_for_consistency`,
which the suite calls after every write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from two_stage_rec.errors import (
    DimensionMismatchError,
    DuplicateIdError,
    EmptyBatchError,
    InvalidFilterError,
    InvalidIdError,
    InvalidInputError,
    InvalidMetadataError,
    MissingDependencyError,
    NonFiniteVectorError,
)
from two_stage_rec.filters import filter_mask
from two_stage_rec.protocols import Persistent, VectorStore, returns_values
from two_stage_rec.scoring import exact_scores, top_k_rows
from two_stage_rec.types import METRICS, FloatMatrix, Metadata, Metric, QueryResult

try:
    import pytest
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError("pytest and hypothesis", "testing") from exc

__all__ = ["FILTER_CASES", "VectorStoreContract", "filter_strategy", "metadata_table"]

_Filter = Mapping[str, Any]

# ----------------------------------------------------------------- test data

_WORDS = ("a", "b", "c")


def _vectors(n: int, dimension: int, seed: int) -> FloatMatrix:
    return np.random.default_rng(seed).normal(size=(n, dimension)).astype(np.float32)


def _ids(n: int, prefix: str = "item") -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


def metadata_table(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """Metadata that exercises every corner of the filter language.

    Fields are sometimes missing; ``tags`` holds lists of strings (sometimes
    empty); ``mixed`` holds a string, an int, a float or a bool so that the
    type-aware comparisons (``True`` is not ``1``, ``"1"`` is not ``1``) are
    tested; ``year``/``rating`` mix ints and floats.
    """
    rng = np.random.default_rng(seed)
    mixed_values: tuple[Any, ...] = ("1", 1, 1.0, True, False, 0, "a")
    table: list[dict[str, Any]] = []
    for _ in range(n):
        entry: dict[str, Any] = {}
        if rng.random() < 0.8:
            entry["genre"] = str(rng.choice(_WORDS))
        if rng.random() < 0.8:
            entry["year"] = int(rng.integers(0, 4))
        if rng.random() < 0.7:
            entry["rating"] = float(rng.choice([0.5, 1.0, 2.5, 3.0]))
        if rng.random() < 0.7:
            size = int(rng.integers(0, 3))
            entry["tags"] = sorted({str(t) for t in rng.choice(_WORDS, size=size)})
        if rng.random() < 0.6:
            entry["flag"] = bool(rng.random() < 0.5)
        if rng.random() < 0.7:
            entry["mixed"] = mixed_values[int(rng.integers(0, len(mixed_values)))]
        table.append(entry)
    return table


FILTER_CASES: tuple[tuple[str, _Filter], ...] = (
    ("match_all", {}),
    ("eq_shorthand", {"genre": "a"}),
    ("eq_string", {"genre": {"$eq": "b"}}),
    ("eq_int_matches_float", {"year": {"$eq": 2.0}}),
    ("eq_bool_is_not_int", {"mixed": {"$eq": True}}),
    ("eq_int_is_not_bool_or_string", {"mixed": {"$eq": 1}}),
    ("eq_string_is_not_number", {"mixed": "1"}),
    ("ne", {"genre": {"$ne": "a"}}),
    ("ne_bool", {"flag": {"$ne": True}}),
    ("in", {"genre": {"$in": ["a", "c"]}}),
    ("in_mixed_types", {"mixed": {"$in": [0, "a"]}}),
    ("nin", {"year": {"$nin": [0, 1]}}),
    ("gt", {"year": {"$gt": 1}}),
    ("gte", {"rating": {"$gte": 1.0}}),
    ("lt", {"rating": {"$lt": 2.5}}),
    ("lte", {"year": {"$lte": 1}}),
    ("gt_ignores_bools", {"mixed": {"$gt": 0}}),
    ("range_on_one_field", {"year": {"$gte": 1, "$lt": 3}}),
    ("exists", {"flag": {"$exists": True}}),
    ("not_exists", {"genre": {"$exists": False}}),
    ("list_eq", {"tags": "a"}),
    ("list_in", {"tags": {"$in": ["b", "c"]}}),
    ("list_ne", {"tags": {"$ne": "a"}}),
    ("list_nin", {"tags": {"$nin": ["a", "b"]}}),
    ("missing_field_ne", {"nowhere": {"$ne": "a"}}),
    ("missing_field_eq", {"nowhere": "a"}),
    ("several_fields_are_and", {"genre": "a", "flag": False}),
    ("and", {"$and": [{"genre": {"$in": ["a", "b"]}}, {"year": {"$gte": 2}}]}),
    ("or", {"$or": [{"genre": "c"}, {"rating": {"$gt": 2.0}}]}),
    (
        "nested",
        {"$or": [{"$and": [{"genre": "a"}, {"tags": "b"}]}, {"flag": True, "year": {"$lt": 2}}]},
    ),
    ("nothing_matches", {"genre": "zzz"}),
)
"""Hand-written filters, one or more per operator, named for test ids."""


def filter_strategy() -> st.SearchStrategy[dict[str, Any]]:
    """Random filters over the fields of :func:`metadata_table` (plus a missing one)."""
    fields = st.sampled_from(["genre", "year", "rating", "tags", "flag", "mixed", "nowhere"])
    scalar = st.one_of(
        st.sampled_from((*_WORDS, "1")),
        st.integers(0, 3),
        st.sampled_from([0.5, 1.0, 2.5, 3.0]),
        st.booleans(),
    )
    number = st.one_of(st.integers(-1, 4), st.sampled_from([0.5, 1.0, 2.5, 3.0]))
    condition = st.one_of(
        scalar,
        st.builds(lambda op, v: {op: v}, st.sampled_from(["$eq", "$ne"]), scalar),
        st.builds(lambda op, v: {op: v}, st.sampled_from(["$in", "$nin"]), st.lists(scalar, min_size=1, max_size=3)),
        st.builds(lambda op, v: {op: v}, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), number),
        st.builds(lambda v: {"$exists": v}, st.booleans()),
    )
    leaf = st.dictionaries(fields, condition, min_size=1, max_size=2)

    def combine(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
        parts = st.lists(children, min_size=1, max_size=3)
        return st.one_of(
            st.builds(lambda xs: {"$and": xs}, parts),
            st.builds(lambda xs: {"$or": xs}, parts),
        )

    return st.recursive(leaf, combine, max_leaves=6)


# ------------------------------------------------------------------ checking


def _oracle_check(
    result: QueryResult,
    queries: FloatMatrix,
    vectors: FloatMatrix,
    ids: Sequence[str],
    metric: Metric,
    k: int,
    *,
    exact: bool,
    tolerance: float,
    allowed: npt.NDArray[np.bool_] | None = None,
) -> float:
    """Assert what holds for every store; for exact ones, equality with the oracle. Returns recall."""
    scores = exact_scores(queries, vectors, metric)
    columns, top, counts = top_k_rows(scores, k, allowed)
    column_of = {item_id: j for j, item_id in enumerate(ids)}
    allowed_row = np.ones(len(ids), np.bool_) if allowed is None else allowed
    assert len(result) == queries.shape[0]
    assert result.counts.tolist() == counts.tolist(), "each row must hold min(top_k, matching vectors)"
    hits = 0
    for row in range(queries.shape[0]):
        got_ids = result.row_ids(row)
        got_scores = np.asarray(result.row_scores(row), dtype=np.float64)
        assert len(set(got_ids)) == len(got_ids), f"row {row} repeats an id: {got_ids}"
        unknown = [i for i in got_ids if i not in column_of]
        assert not unknown, f"row {row} returned ids that were never stored or were deleted: {unknown}"
        got_columns = [column_of[i] for i in got_ids]
        assert allowed_row[got_columns].all(), f"row {row} returned ids the filter excludes"
        assert np.all(np.diff(got_scores) <= tolerance), f"row {row} scores are not descending: {got_scores}"
        np.testing.assert_allclose(
            got_scores,
            scores[row, got_columns],
            rtol=tolerance,
            atol=tolerance,
            err_msg=f"row {row}: returned scores are not the true higher-is-better {metric} scores",
        )
        want_columns = columns[row, : counts[row]]
        hits += len(set(got_columns) & set(want_columns.tolist()))
        if exact and counts[row]:
            want_scores = top[row, : counts[row]].astype(np.float64)
            np.testing.assert_allclose(got_scores, want_scores, rtol=tolerance, atol=tolerance)
            # Ids must match wherever the oracle's score is not tied (within
            # tolerance) with a neighbour; tied ids may come in either order.
            gaps = np.abs(np.diff(want_scores)) > tolerance * (1.0 + np.abs(want_scores[1:]))
            distinct = np.concatenate([[True], gaps]) & np.concatenate([gaps, [True]])
            want_ids = [ids[c] for c in want_columns]
            for position in np.flatnonzero(distinct):
                assert got_ids[position] == want_ids[position], f"row {row} rank {position}"
    total = int(counts.sum())
    return hits / total if total else 1.0


# ------------------------------------------------------------------ the suite


class VectorStoreContract:
    """Subclass (as ``Test...``) and implement :meth:`make_store` to run the suite.

    Attributes:
        dimension: vector dimension used throughout.
        min_recall: required recall@10 for approximate stores (``is_exact``
            False); must be set by subclasses testing one.
        score_tolerance: relative and absolute tolerance on scores.
        oracle_size: vectors stored for the oracle/recall test.
        selective_size: vectors stored for the "filter still returns k" test.
    """

    dimension: ClassVar[int] = 16
    min_recall: ClassVar[float | None] = None
    score_tolerance: ClassVar[float] = 1e-4
    oracle_size: ClassVar[int] = 600
    selective_size: ClassVar[int] = 400

    # ------------------------------------------------------------ hooks

    def make_store(self, dimension: int, metric: Metric) -> VectorStore:
        """Return a new, empty store. Subclasses must implement this."""
        raise NotImplementedError("subclass VectorStoreContract and implement make_store(dimension, metric)")

    def wait_for_consistency(self, store: VectorStore) -> None:
        """Called after every write; eventually consistent backends wait here. Default: nothing."""

    # ---------------------------------------------------------- helpers

    def _store(self, metric: Metric = "dotproduct") -> VectorStore:
        return self.make_store(self.dimension, metric)

    def _upsert(
        self,
        store: VectorStore,
        ids: Sequence[str],
        vectors: npt.ArrayLike,
        metadata: Sequence[Metadata] | None = None,
    ) -> None:
        assert store.upsert(ids, vectors, metadata) == len(ids)
        self.wait_for_consistency(store)

    def _delete(self, store: VectorStore, ids: Sequence[str]) -> None:
        store.delete(ids)
        self.wait_for_consistency(store)

    def _filled(
        self, n: int, metric: Metric = "dotproduct", *, seed: int = 0, with_metadata: bool = False
    ) -> tuple[VectorStore, list[str], FloatMatrix, list[dict[str, Any]] | None]:
        store = self._store(metric)
        ids = _ids(n)
        vectors = _vectors(n, self.dimension, seed)
        metadata = metadata_table(n) if with_metadata else None
        self._upsert(store, ids, vectors, metadata)
        return store, ids, vectors, metadata

    def _queries(self, n: int, seed: int = 99) -> FloatMatrix:
        return _vectors(n, self.dimension, seed)

    # ------------------------------------------------------- basic facts

    def test_satisfies_the_protocol(self) -> None:
        store = self._store()
        assert isinstance(store, VectorStore)
        assert isinstance(store.is_exact, bool)
        assert isinstance(store.supports_persistence, bool)

    @pytest.mark.parametrize("metric", METRICS)
    def test_starts_empty(self, metric: Metric) -> None:
        store = self._store(metric)
        assert store.dimension == self.dimension
        assert store.metric == metric
        stats = store.describe()
        assert (stats.count, stats.dimension, stats.metric) == (0, self.dimension, metric)
        result = store.query(self._queries(3), top_k=5)
        assert result.counts.tolist() == [0, 0, 0]
        assert result.ids.shape == (3, 0) and result.scores.shape == (3, 0)
        fetched = store.fetch(["item-0"])
        assert fetched.ids == [] and fetched.missing == ["item-0"]

    def test_describe_counts_writes_and_deletes(self) -> None:
        store, ids, _, _ = self._filled(30)
        assert store.describe().count == 30
        self._delete(store, ids[:10])
        assert store.describe().count == 20

    # --------------------------------------------------------- ranking

    @pytest.mark.parametrize("metric", METRICS)
    def test_query_matches_numpy_oracle(self, metric: Metric) -> None:
        store, ids, vectors, _ = self._filled(self.oracle_size, metric)
        queries = self._queries(25)
        k = 10
        result = store.query(queries, top_k=k)
        assert result.ids.shape == (25, k) and result.scores.dtype == np.float32
        recall = _oracle_check(
            result, queries, vectors, ids, metric, k, exact=store.is_exact, tolerance=self.score_tolerance
        )
        if store.is_exact:
            assert recall == 1.0
        else:
            if self.min_recall is None:
                pytest.fail(f"{type(store).__name__} is approximate; the test class must declare min_recall")
            assert recall >= self.min_recall, f"recall@{k} {recall:.3f} < stated min_recall {self.min_recall}"

    @pytest.mark.parametrize("metric", ["cosine", "euclidean"])
    def test_a_stored_vector_is_its_own_best_match(self, metric: Metric) -> None:
        store, ids, vectors, _ = self._filled(50, metric)
        result = store.query(vectors[:5], top_k=1)
        assert [result.row_ids(r)[0] for r in range(5)] == ids[:5]
        best = 1.0 if metric == "cosine" else 0.0  # higher is better: -distance peaks at 0
        np.testing.assert_allclose(result.scores[:, 0], best, atol=1e-4)

    def test_single_vector_query_is_a_batch_of_one(self) -> None:
        store, _, vectors, _ = self._filled(20)
        one = store.query(vectors[3], top_k=4)
        batch = store.query(vectors[3:4], top_k=4)
        assert len(one) == 1 and one.row_ids(0) == batch.row_ids(0)

    def test_top_k_larger_than_the_store_returns_what_exists(self) -> None:
        store, ids, _, _ = self._filled(5)
        result = store.query(self._queries(2), top_k=50)
        assert result.counts.tolist() == [5, 5]
        assert result.ids.shape == (2, 5)
        assert sorted(result.row_ids(0)) == sorted(ids)

    # ------------------------------------------------- upsert and delete

    def test_upsert_overwrites_vector_and_metadata(self) -> None:
        store, ids, vectors, _ = self._filled(40, "euclidean")
        self._upsert(store, ids, vectors, [{"version": 1}] * len(ids))
        replacement = _vectors(1, self.dimension, seed=1234) * 3.0
        self._upsert(store, ["item-3"], replacement, [{"version": 2, "genre": "new"}])
        assert store.describe().count == 40
        fetched = store.fetch(["item-3"])
        np.testing.assert_allclose(fetched.vectors, replacement, rtol=1e-6)
        assert dict(fetched.metadata[0]) == {"version": 2, "genre": "new"}
        found = store.query(replacement, top_k=1, include_metadata=True)
        assert found.row_ids(0) == ["item-3"]
        assert abs(float(found.scores[0, 0])) < 1e-3
        assert found.metadata is not None and dict(found.metadata[0][0]) == {"version": 2, "genre": "new"}
        # The old vector is gone: querying it must not find item-3 at distance 0.
        old = store.query(vectors[3], top_k=40)
        assert old.row_ids(0).count("item-3") == 1
        assert old.row_ids(0)[0] != "item-3"

    def test_upsert_without_metadata_clears_it(self) -> None:
        store, ids, vectors, _ = self._filled(10)
        self._upsert(store, ids[:1], vectors[:1], [{"genre": "a"}])
        self._upsert(store, ids[:1], vectors[:1])
        assert dict(store.fetch(ids[:1]).metadata[0]) == {}
        assert store.query(vectors[:1], top_k=10, filter={"genre": "a"}).counts.tolist() == [0]

    def test_repeated_overwrites_keep_one_copy(self) -> None:
        store, ids, _, _ = self._filled(30)
        for round_ in range(40):
            self._upsert(store, ids[:3], _vectors(3, self.dimension, seed=500 + round_))
        assert store.describe().count == 30
        result = store.query(self._queries(4), top_k=30)
        for row in range(4):
            assert sorted(result.row_ids(row)) == sorted(ids)
        final = _vectors(3, self.dimension, seed=539)
        np.testing.assert_allclose(store.fetch(ids[:3]).vectors, final, rtol=1e-6)

    def test_delete_removes_ids(self) -> None:
        store, ids, vectors, _ = self._filled(50)
        doomed = ids[::3]
        self._delete(store, doomed)
        assert store.describe().count == 50 - len(doomed)
        assert store.fetch(doomed).missing == doomed
        result = store.query(vectors[:5], top_k=50)
        for row in range(5):
            returned = result.row_ids(row)
            assert not set(returned) & set(doomed)
            assert sorted(returned) == sorted(set(ids) - set(doomed))

    def test_deleting_a_missing_id_is_harmless(self) -> None:
        empty = self._store()
        self._delete(empty, ["never-stored"])
        assert empty.describe().count == 0
        store, ids, _, _ = self._filled(10)
        self._delete(store, ["never-stored", ids[0], ids[0]])
        self._delete(store, [ids[0]])
        assert store.describe().count == 9

    def test_a_deleted_id_can_come_back(self) -> None:
        store, ids, vectors, _ = self._filled(20)
        self._delete(store, ids[:5])
        self._upsert(store, ids[:5], vectors[:5] * 2.0, [{"back": True}] * 5)
        assert store.describe().count == 20
        np.testing.assert_allclose(store.fetch(ids[:5]).vectors, vectors[:5] * 2.0, rtol=1e-6)
        assert sorted(store.query(vectors[:1], top_k=20, filter={"back": True}).row_ids(0)) == sorted(ids[:5])

    # ----------------------------------------------------- invalid input

    _BAD_BATCHES: ClassVar[tuple[str, ...]] = (
        "wrong_dimension",
        "nan",
        "inf",
        "empty_batch",
        "duplicate_ids",
        "empty_id",
        "non_string_id",
        "fewer_vectors_than_ids",
        "metadata_null",
        "metadata_nested_mapping",
        "metadata_list_of_numbers",
        "metadata_count_mismatch",
    )

    def _bad_batch(self, case: str) -> tuple[list[Any], FloatMatrix, list[Any] | None, type[Exception]]:
        d = self.dimension
        good = _vectors(2, d, seed=77)
        ids: list[Any] = ["item-0", "brand-new"]
        metadata: list[Any] = [{"genre": "x"}, {"genre": "y"}]
        if case == "wrong_dimension":
            return ids, _vectors(2, d + 1, seed=77), metadata, DimensionMismatchError
        if case in ("nan", "inf"):
            bad = good.copy()
            bad[1, 0] = np.nan if case == "nan" else np.inf
            return ids, bad, metadata, NonFiniteVectorError
        if case == "empty_batch":
            return [], np.empty((0, d), np.float32), None, EmptyBatchError
        if case == "duplicate_ids":
            return ["brand-new", "brand-new"], good, metadata, DuplicateIdError
        if case == "empty_id":
            return ["brand-new", ""], good, metadata, InvalidIdError
        if case == "non_string_id":
            return ["brand-new", 7], good, metadata, InvalidIdError
        if case == "fewer_vectors_than_ids":
            return [*ids, "third"], good, None, InvalidInputError
        if case == "metadata_null":
            return ids, good, [{"genre": "x"}, {"genre": None}], InvalidMetadataError
        if case == "metadata_nested_mapping":
            return ids, good, [{"genre": "x"}, {"genre": {"deep": 1}}], InvalidMetadataError
        if case == "metadata_list_of_numbers":
            return ids, good, [{"genre": "x"}, {"genre": [1, 2]}], InvalidMetadataError
        if case == "metadata_count_mismatch":
            return ids, good, [{"genre": "x"}], InvalidMetadataError
        raise AssertionError(f"unknown case {case}")

    @pytest.mark.parametrize("case", _BAD_BATCHES)
    def test_invalid_batch_raises_typed_error_and_writes_nothing(self, case: str) -> None:
        store, ids, vectors, _ = self._filled(10)
        self._upsert(store, ids[:1], vectors[:1], [{"genre": "kept"}])
        bad_ids, bad_vectors, bad_metadata, error = self._bad_batch(case)
        with pytest.raises(error):
            store.upsert(bad_ids, bad_vectors, bad_metadata)
        self.wait_for_consistency(store)
        assert store.describe().count == 10
        fetched = store.fetch(["item-0", "brand-new", "third"])
        assert fetched.ids == ["item-0"] and fetched.missing == ["brand-new", "third"]
        np.testing.assert_allclose(fetched.vectors, vectors[:1], rtol=1e-6)
        assert dict(fetched.metadata[0]) == {"genre": "kept"}

    @pytest.mark.parametrize("case", ["wrong_dimension", "nan", "empty", "zero_top_k", "bool_top_k"])
    def test_invalid_query_raises_typed_error(self, case: str) -> None:
        store, _, vectors, _ = self._filled(10)
        queries: Any = vectors[:2]
        top_k: Any = 3
        error: type[Exception] = InvalidInputError
        if case == "wrong_dimension":
            queries, error = _vectors(2, self.dimension + 1, seed=1), DimensionMismatchError
        elif case == "nan":
            queries = vectors[:2].copy()
            queries[0, 0] = np.nan
            error = NonFiniteVectorError
        elif case == "empty":
            queries, error = np.empty((0, self.dimension), np.float32), EmptyBatchError
        elif case == "zero_top_k":
            top_k = 0
        else:
            top_k = True
        with pytest.raises(error):
            store.query(queries, top_k=top_k)

    @pytest.mark.parametrize(
        "bad_filter",
        [
            {"genre": {"$regex": "a"}},
            {"$not": {"genre": "a"}},
            {"genre": {"$in": []}},
            {"genre": {"$in": "a"}},
            {"year": {"$gt": "1990"}},
            {"genre": {"$exists": 1}},
            {"$and": []},
            {"$or": {"genre": "a"}},
            {"genre": {}},
            {"genre": None},
        ],
        ids=repr,
    )
    def test_invalid_filter_raises(self, bad_filter: _Filter) -> None:
        store, _, vectors, _ = self._filled(10, with_metadata=True)
        with pytest.raises(InvalidFilterError):
            store.query(vectors[:1], top_k=3, filter=bad_filter)

    # ------------------------------------------------------------ fetch

    def test_fetch_returns_stored_vectors_and_reports_missing(self) -> None:
        store, _, vectors, metadata = self._filled(20, "cosine", with_metadata=True)
        assert metadata is not None
        asked = ["item-7", "nope", "item-2", "also-nope"]
        fetched = store.fetch(asked)
        assert fetched.ids == ["item-7", "item-2"]
        assert fetched.missing == ["nope", "also-nope"]
        assert fetched.vectors.shape == (2, self.dimension) and fetched.vectors.dtype == np.float32
        # Cosine stores must hand back the vectors as given, not normalised copies.
        np.testing.assert_allclose(fetched.vectors, vectors[[7, 2]], rtol=1e-6)
        assert [dict(m) for m in fetched.metadata] == [metadata[7], metadata[2]]
        assert fetched.as_dict().keys() == {"item-7", "item-2"}

    def test_fetch_of_only_missing_ids(self) -> None:
        store, _, _, _ = self._filled(5)
        fetched = store.fetch(["x", "y"])
        assert fetched.ids == [] and fetched.missing == ["x", "y"]
        assert fetched.vectors.shape == (0, self.dimension)

    def _skip_without_values(self, store: VectorStore) -> None:
        if not returns_values(store):
            pytest.skip(f"{type(store).__name__} declares returns_values=False")

    @pytest.mark.parametrize("metric", METRICS)
    def test_include_values_and_metadata_return_what_was_stored(self, metric: Metric) -> None:
        store, ids, vectors, metadata = self._filled(30, metric, with_metadata=True)
        assert metadata is not None
        self._skip_without_values(store)
        result = store.query(self._queries(3), top_k=8, include_values=True, include_metadata=True)
        assert result.values is not None and result.values.shape == (3, 8, self.dimension)
        assert result.metadata is not None and len(result.metadata) == 3
        column_of = {item_id: j for j, item_id in enumerate(ids)}
        for row in range(3):
            got = [column_of[i] for i in result.row_ids(row)]
            np.testing.assert_allclose(result.values[row, : len(got)], vectors[got], rtol=1e-6)
            assert [dict(m) for m in result.metadata[row]] == [metadata[j] for j in got]
        plain = store.query(self._queries(3), top_k=8)
        assert plain.values is None and plain.metadata is None

    @pytest.mark.parametrize(("include_values", "include_metadata"), [(False, False), (True, True), (True, False)])
    def test_results_are_well_formed(self, include_values: bool, include_metadata: bool) -> None:
        """Types, dtypes and shapes as :meth:`QueryResult.validate` checks them, and padding as documented."""
        store, _, _, _ = self._filled(12, with_metadata=True)
        if include_values:
            self._skip_without_values(store)
        result = store.query(
            self._queries(3), top_k=8, filter={"genre": {"$in": ["a", "b"]}},
            include_values=include_values, include_metadata=include_metadata,
        )  # fmt: skip
        assert isinstance(result, QueryResult)
        result.validate(
            type(store).__name__, queries=3, dimension=self.dimension, values=include_values, metadata=include_metadata
        )
        assert result.ids.dtype == object and result.counts.dtype == np.int64
        assert result.ids.shape[1] == int(result.counts.max(initial=0)), "the width is max(counts)"
        for row, count in enumerate(result.counts.tolist()):
            assert all(isinstance(i, str) and i for i in result.ids[row, :count].tolist())
            assert result.ids[row, count:].tolist() == [""] * (result.ids.shape[1] - count)
            assert np.isneginf(result.scores[row, count:]).all()

    def test_include_values_pads_with_nan(self) -> None:
        store, _, _, _ = self._filled(3)
        self._skip_without_values(store)
        result = store.query(self._queries(1), top_k=5, include_values=True, filter={})
        assert result.values is not None and result.values.shape == (1, 3, self.dimension)
        assert np.isfinite(result.values).all()
        store2, _, _, _ = self._filled(6, with_metadata=True)
        wide = store2.query(self._queries(2), top_k=6, include_values=True, filter={"genre": "a"})
        assert wide.values is not None
        for row in range(2):
            assert np.isnan(wide.values[row, wide.counts[row] :]).all()

    # ---------------------------------------------------------- filters

    @pytest.mark.parametrize(("name", "spec"), FILTER_CASES, ids=[name for name, _ in FILTER_CASES])
    def test_filter_agrees_with_numpy_oracle(self, name: str, spec: _Filter) -> None:
        n = 60
        store, ids, vectors, metadata = self._filled(n, with_metadata=True)
        assert metadata is not None
        allowed = filter_mask(spec, metadata)
        queries = self._queries(3)
        everything = store.query(queries, top_k=n, filter=spec)
        expected = sorted(ids[j] for j in np.flatnonzero(allowed))
        for row in range(3):
            assert sorted(everything.row_ids(row)) == expected, name
        few = store.query(queries, top_k=5, filter=spec)
        _oracle_check(
            few, queries, vectors, ids, "dotproduct", 5,
            exact=store.is_exact, tolerance=self.score_tolerance, allowed=allowed,
        )  # fmt: skip

    def test_filters_agree_with_oracle_on_random_filters(self) -> None:
        n = 60
        store, ids, _, metadata = self._filled(n, with_metadata=True)
        assert metadata is not None
        queries = self._queries(2)

        @settings(max_examples=50, deadline=None, derandomize=True, database=None)
        @given(spec=filter_strategy())
        def check(spec: dict[str, Any]) -> None:
            allowed = filter_mask(spec, metadata)
            expected = sorted(ids[j] for j in np.flatnonzero(allowed))
            result = store.query(queries, top_k=n, filter=spec)
            for row in range(2):
                assert sorted(result.row_ids(row)) == expected, spec
            few = store.query(queries[:1], top_k=3, filter=spec)
            assert few.counts.tolist() == [min(3, len(expected))], spec
            assert set(few.row_ids(0)) <= set(expected), spec

        check()

    def test_filter_returns_k_when_k_matches_exist(self) -> None:
        """A selective filter whose matches all score worst must still fill top_k.

        A post-filter over an over-fetched candidate list would return
        nothing here: every vector that passes the filter is further from the
        queries than every vector that fails it.
        """
        n = self.selective_size
        rng = np.random.default_rng(3)
        queries = np.abs(_vectors(5, self.dimension, seed=4)) + np.float32(0.5)  # all in the positive orthant
        vectors = np.abs(rng.normal(size=(n, self.dimension))).astype(np.float32)
        rare = np.arange(n) % 20 == 0  # 5% of the store
        vectors[rare] *= -1.0  # negative dot product with every query: ranked last
        ids = _ids(n)
        metadata = [{"rare": bool(flag)} for flag in rare]
        store = self._store("dotproduct")
        self._upsert(store, ids, vectors, metadata)
        k = 10
        result = store.query(queries, top_k=k, filter={"rare": True})
        assert result.counts.tolist() == [k] * 5
        _oracle_check(
            result, queries, vectors, ids, "dotproduct", k,
            exact=store.is_exact, tolerance=self.score_tolerance, allowed=rare,
        )  # fmt: skip
        everything = store.query(queries, top_k=n, filter={"rare": True})
        assert everything.counts.tolist() == [int(rare.sum())] * 5

    # ------------------------------------------------------ persistence

    def test_persistence_capability_is_honest(self) -> None:
        store = self._store("dotproduct")
        assert isinstance(store, Persistent) == store.supports_persistence

    def test_save_load_round_trip(self, tmp_path: Path) -> None:
        store, ids, vectors, _ = self._filled(self.oracle_size, "cosine", with_metadata=True)
        if not store.supports_persistence:
            pytest.skip(f"{type(store).__name__} declares supports_persistence=False")
        assert isinstance(store, Persistent)
        self._delete(store, ids[:10])
        self._upsert(store, ids[10:15], vectors[10:15] * 2.0, [{"genre": "changed"}] * 5)
        target = tmp_path / "saved store"
        store.save(target)
        loaded = type(store).load(target)
        before, after = store.describe(), loaded.describe()
        assert (after.count, after.dimension, after.metric) == (before.count, before.dimension, before.metric)
        assert loaded.is_exact == store.is_exact
        fetched_before, fetched_after = store.fetch(ids), loaded.fetch(ids)
        assert fetched_after.ids == fetched_before.ids and fetched_after.missing == ids[:10]
        np.testing.assert_array_equal(fetched_after.vectors, fetched_before.vectors)
        assert fetched_after.metadata == fetched_before.metadata
        queries = self._queries(5)
        spec: _Filter = {"genre": {"$in": ["a", "changed"]}}
        for query_filter in (None, spec):
            want = store.query(queries, top_k=10, filter=query_filter)
            got = loaded.query(queries, top_k=10, filter=query_filter)
            assert got.ids.tolist() == want.ids.tolist()
            np.testing.assert_allclose(got.scores, want.scores, rtol=1e-6)
        # The loaded copy is a working store, independent of the original.
        self._upsert(loaded, ["after-load"], vectors[:1])
        assert loaded.describe().count == before.count + 1
        assert store.describe().count == before.count
        store.save(target)  # saving over a previous save
        assert type(store).load(target).describe().count == before.count
