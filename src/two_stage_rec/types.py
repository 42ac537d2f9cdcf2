"""Value types shared by every backend: metrics, metadata, query and fetch results.

Scores follow one rule everywhere: **higher is better**. Each backend converts
its own distances at its boundary:

* ``"dotproduct"``: score = ``<q, v>``
* ``"cosine"``: score = ``<q, v> / (|q| |v|)``, in [-1, 1]
* ``"euclidean"``: score = ``-|q - v|^2`` (negative squared distance, so 0 is a
  perfect match and larger is closer)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = [
    "Feedback",
    "FetchResult",
    "Filter",
    "FloatMatrix",
    "FloatVector",
    "Metadata",
    "RERANKER_NAMES",
    "RerankerName",
    "MetadataValue",
    "Metric",
    "METRICS",
    "QueryResult",
    "StoreStats",
]

Metric: TypeAlias = Literal["dotproduct", "cosine", "euclidean"]
"""Similarity a store ranks by. The notebook (and the default) is ``"dotproduct"``."""

METRICS: tuple[Metric, ...] = ("dotproduct", "cosine", "euclidean")

Feedback: TypeAlias = Literal["explicit", "implicit"]
"""Ratings per event (explicit) or the events alone (implicit: views, clicks, purchases)."""

RerankerName: TypeAlias = Literal["none", "scoring", "blend"]
"""The second stages a trained bundle offers: ``"none"`` (retrieval order),
``"scoring"`` (the notebook's scoring model: predicted rating, or predicted
relevance for implicit feedback) and ``"blend"`` (retrieval score blended with
the scoring model and an item prior, fitted on held-out interactions)."""

RERANKER_NAMES: tuple[RerankerName, ...] = ("none", "scoring", "blend")

MetadataValue: TypeAlias = str | int | float | bool | list[str]
"""Pinecone's metadata value types: string, number, boolean, list of strings. No nulls."""

Metadata: TypeAlias = Mapping[str, MetadataValue]

Filter: TypeAlias = Mapping[str, object]
"""A metadata filter in the Pinecone filter language, e.g.
``{"genres": {"$in": ["Comedy"]}, "year": {"$gte": 1990}}``; see :mod:`two_stage_rec.filters`."""

FloatMatrix: TypeAlias = npt.NDArray[np.float32]
"""A float32 array of shape (n, d)."""

FloatVector: TypeAlias = npt.NDArray[np.float32]
"""A float32 array of shape (n,)."""

IdMatrix: TypeAlias = npt.NDArray[np.object_]


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Nearest neighbours of a batch of query vectors.

    Rows are queries, columns are ranks. Row ``i`` holds ``counts[i]`` real
    matches in its first columns, sorted by score, best first; the remaining
    columns are padding (id ``""``, score ``-inf``, values NaN). The width is
    ``max(counts)``, never more than the ``top_k`` asked for, so a ``top_k``
    larger than the store returns what exists.

    Attributes:
        ids: object array (n, width) of ``str`` ids.
        scores: float32 array (n, width); higher is better; ``-inf`` pads.
        counts: int64 array (n,); number of real matches per row.
        values: float32 array (n, width, d) of stored vectors when asked for
            with ``include_values=True``, else ``None``.
        metadata: per row, a tuple of ``counts[i]`` metadata mappings when asked
            for with ``include_metadata=True`` (``{}`` for a vector without
            metadata), else ``None``.
    """

    ids: IdMatrix
    scores: FloatMatrix
    counts: npt.NDArray[np.int64]
    values: npt.NDArray[np.float32] | None = None
    metadata: tuple[tuple[Metadata, ...], ...] | None = None

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def row_ids(self, row: int) -> list[str]:
        """The real (unpadded) ids of one query row, best first."""
        return [str(i) for i in self.ids[row, : self.counts[row]]]

    def row_scores(self, row: int) -> FloatVector:
        """The real (unpadded) scores of one query row, descending."""
        return self.scores[row, : self.counts[row]]


@dataclass(frozen=True, slots=True)
class FetchResult:
    """Stored vectors for the ids that were found.

    Attributes:
        ids: found ids, in the order they were asked for.
        vectors: float32 array (len(ids), d).
        metadata: one mapping per found id (``{}`` when none was stored).
        missing: ids that were asked for but are not in the store.
    """

    ids: list[str]
    vectors: FloatMatrix
    metadata: list[Metadata]
    missing: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, FloatVector]:
        """Map each found id to its vector (shape (d,))."""
        return {item_id: self.vectors[i] for i, item_id in enumerate(self.ids)}


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What ``VectorStore.describe()`` reports.

    Attributes:
        dimension: vector dimension d.
        metric: the similarity the store ranks by.
        count: number of vectors stored.
        backend: short backend name (``"memory"``, ``"faiss"``, ``"pinecone"``).
        details: backend-specific facts (index type, namespaces, ...).
    """

    dimension: int
    metric: Metric
    count: int
    backend: str
    details: Mapping[str, object] = field(default_factory=dict)
