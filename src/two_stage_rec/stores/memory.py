"""An exact vector store in plain numpy: the reference answer for every other store."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt

from two_stage_rec.errors import InvalidInputError
from two_stage_rec.filters import filter_mask
from two_stage_rec.scoring import exact_scores, top_k_rows
from two_stage_rec.types import METRICS, FetchResult, Filter, Metadata, Metric, QueryResult, StoreStats
from two_stage_rec.validation import as_query_matrix, check_ids, check_top_k, check_upsert

__all__ = ["InMemoryVectorStore"]

_EMPTY_METADATA: Metadata = {}


class ReadWriteLock:
    """Many readers at once, or one writer; a waiting writer holds back new readers.

    Not reentrant: a method that holds it must not call another that takes it.
    Readers pay two uncontended lock round trips (about a microsecond).
    """

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the lock shared: no writer runs until the block ends."""
        with self._changed:
            while self._writing or self._writers_waiting:
                self._changed.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._changed:
                self._readers -= 1
                if not self._readers:
                    self._changed.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the lock exclusively: no reader or other writer runs until the block ends."""
        with self._changed:
            self._writers_waiting += 1
            try:
                while self._writing or self._readers:
                    self._changed.wait()
            finally:
                self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._changed:
                self._writing = False
                self._changed.notify_all()


def check_store_config(dimension: int, metric: str) -> None:
    """Shared constructor checks: a positive int dimension and a known metric."""
    if isinstance(dimension, bool) or not isinstance(dimension, int | np.integer) or dimension < 1:
        raise InvalidInputError(f"dimension must be a positive integer, got {dimension!r}")
    if metric not in METRICS:
        raise InvalidInputError(f"metric must be one of {METRICS}, got {metric!r}")


class InMemoryVectorStore:
    """Exact brute-force search over a numpy matrix.

    Every query scores all stored vectors (O(n * count * d)), so it is exact
    and simple, and fast enough up to a few hundred thousand vectors.

    Thread safety: every method may be called from any thread at any time
    (``concurrent_writes = True``). Queries run concurrently with one another;
    a write waits for running queries and runs alone (a readers-writer lock),
    so a query sees the store wholly before or wholly after each write.

    Args:
        dimension: vector length d.
        metric: ``"dotproduct"`` (default, as in the notebook), ``"cosine"``
            or ``"euclidean"``. Scores are higher-is-better for all three.
    """

    is_exact = True
    supports_persistence = False
    returns_values = True
    concurrent_writes = True

    def __init__(self, *, dimension: int, metric: Metric = "dotproduct") -> None:
        check_store_config(dimension, metric)
        self._lock = ReadWriteLock()
        self._dimension = int(dimension)
        self._metric: Metric = metric
        self._ids: list[str] = []
        self._row_of: dict[str, int] = {}
        self._vectors = np.empty((0, self._dimension), dtype=np.float32)
        self._metadata: list[Metadata] = []

    def __repr__(self) -> str:
        return f"InMemoryVectorStore(dimension={self._dimension}, metric={self._metric!r}, count={len(self._ids)})"

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def dimension(self) -> int:
        """Vector dimension d."""
        return self._dimension

    @property
    def metric(self) -> Metric:
        """The similarity ranked by."""
        return self._metric

    def upsert(
        self,
        ids: Sequence[str],
        vectors: npt.ArrayLike,
        metadata: Sequence[Metadata] | None = None,
    ) -> int:
        """Insert or overwrite; the batch is validated in full first. Returns n."""
        id_list, matrix, metadata_copies = check_upsert(ids, vectors, metadata, self._dimension)
        with self._lock.writing():
            return self._upsert(id_list, matrix, metadata_copies)

    def _upsert(
        self, id_list: list[str], matrix: npt.NDArray[np.float32], metadata_copies: Sequence[Metadata] | None
    ) -> int:
        new_ids = [i for i in id_list if i not in self._row_of]
        if new_ids:
            start = len(self._ids)
            self._vectors = np.concatenate([self._vectors, np.empty((len(new_ids), self._dimension), np.float32)])
            for offset, item_id in enumerate(new_ids):
                self._row_of[item_id] = start + offset
            self._ids.extend(new_ids)
            self._metadata.extend(_EMPTY_METADATA for _ in new_ids)
        rows = np.fromiter((self._row_of[i] for i in id_list), dtype=np.int64, count=len(id_list))
        self._vectors[rows] = matrix
        for position, row in enumerate(rows):
            self._metadata[row] = metadata_copies[position] if metadata_copies is not None else _EMPTY_METADATA
        return len(id_list)

    def query(
        self,
        vectors: npt.ArrayLike,
        top_k: int,
        *,
        filter: Filter | None = None,
        include_values: bool = False,
        include_metadata: bool = False,
    ) -> QueryResult:
        """Exact top-k; see :meth:`two_stage_rec.VectorStore.query`."""
        queries = as_query_matrix(vectors, self._dimension)
        k = check_top_k(top_k)
        with self._lock.reading():
            allowed = filter_mask(filter, self._metadata) if filter else None
            scores = exact_scores(queries, self._vectors, self._metric)
            rows, top_scores, _ = top_k_rows(scores, k, allowed)
            return QueryResult.from_positions(
                rows,
                top_scores,
                ids=self._ids,
                vectors=self._vectors if include_values else None,
                metadata=self._metadata if include_metadata else None,
            )

    def fetch(self, ids: Sequence[str]) -> FetchResult:
        """Stored vectors and metadata for the ids that exist; others go to ``missing``."""
        id_list = check_ids(ids, allow_empty_batch=True, require_unique=False)
        with self._lock.reading():
            found = [i for i in id_list if i in self._row_of]
            rows = [self._row_of[i] for i in found]
            return FetchResult(
                ids=found,
                vectors=self._vectors[rows].copy(),
                metadata=[dict(self._metadata[r]) for r in rows],
                missing=[i for i in id_list if i not in self._row_of],
            )

    def delete(self, ids: Sequence[str]) -> None:
        """Remove ids; unknown ids are ignored."""
        id_list = check_ids(ids, allow_empty_batch=True, require_unique=False)
        with self._lock.writing():
            doomed = {i for i in id_list if i in self._row_of}
            if not doomed:
                return
            keep = [row for row, item_id in enumerate(self._ids) if item_id not in doomed]
            self._ids = [self._ids[r] for r in keep]
            self._metadata = [self._metadata[r] for r in keep]
            self._vectors = self._vectors[keep]
            self._row_of = {item_id: row for row, item_id in enumerate(self._ids)}

    def describe(self) -> StoreStats:
        """Dimension, metric and count."""
        return StoreStats(dimension=self._dimension, metric=self._metric, count=len(self._ids), backend="memory")
