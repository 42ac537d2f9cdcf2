"""How FaissVectorStore's vectors map into the space its FAISS index searches, and back.

Three spaces, one per metric and index layout:

* **as given** (dot product on flat and HNSW, euclidean everywhere): FAISS
  holds the vectors as they were upserted.
* **unit rows** (cosine): FAISS holds normalised rows and searches by inner
  product; the store keeps each vector's norm (4 bytes) to hand back the
  vector as given (``unit * norm``, within two float32 roundings).
* **inner product as L2** (dot product on IVF): an IVF index assigns vectors
  to cells by L2 distance to k-means centroids, a poor proxy for inner product
  when item norms vary (measured at 1M items: recall@50 0.86 at 32 probes).
  Every item ``x`` gets one more coordinate ``sqrt(M² - ‖x‖²)``, so that all
  items have norm ``M``, and queries get ``0``. Then
  ``‖q' - x'‖² = ‖q‖² + M² - 2 q·x``: the L2 order *is* the inner-product
  order, exactly, and the IVF index is built and searched with L2. ``M`` (the
  norm bound) must be at least every stored item's norm; see
  :data:`NORM_HEADROOM` for how it is chosen and kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from two_stage_rec.scoring import normalize_rows
from two_stage_rec.types import FloatMatrix, Metric

__all__ = ["NORM_HEADROOM", "IndexSpace", "row_norms"]

NORM_HEADROOM: Final = 1.25
"""The norm bound ``M`` of an augmented space is set to this times the largest
item norm when the IVF index is trained, so that later upserts of somewhat
longer vectors still fit. An upsert that brings a longer vector retrains the
index with a new bound (one slow write, as for HNSW compaction). Headroom
costs little recall: on 200k clustered items of ``benchmarks/scale.py`` (IVF,
1024 cells) recall@50 was 0.9945 with it against 0.9948 with a bound of
exactly the largest norm at 32 probes, 0.9863 against 0.9872 at 16."""


def row_norms(vectors: FloatMatrix) -> npt.NDArray[np.float64]:
    """Euclidean norm of each row, float64 (n,)."""
    norms: npt.NDArray[np.float64] = np.sqrt(np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64))
    return norms


@dataclass(frozen=True, slots=True)
class IndexSpace:
    """The space a FAISS index works in.

    Attributes:
        metric: the store's metric.
        dimension: the store's vector dimension d.
        norm_bound: ``M`` for an augmented (inner product as L2) space, else None.
    """

    metric: Metric
    dimension: int
    norm_bound: float | None = None

    @property
    def augmented(self) -> bool:
        """True when inner product is searched as L2 over one extra coordinate."""
        return self.norm_bound is not None

    @property
    def index_dimension(self) -> int:
        """Dimension of the vectors FAISS holds: d, or d + 1 when augmented."""
        return self.dimension + 1 if self.augmented else self.dimension

    @property
    def uses_l2(self) -> bool:
        """Whether FAISS ranks by L2 distance (euclidean, or augmented) rather than inner product."""
        return self.metric == "euclidean" or self.augmented

    def fits(self, vectors: FloatMatrix) -> bool:
        """Whether every row can be placed in this space (augmented: norm at most ``M``)."""
        if self.norm_bound is None or vectors.shape[0] == 0:
            return True
        return bool(row_norms(vectors).max() <= self.norm_bound)

    def items(self, vectors: FloatMatrix) -> FloatMatrix:
        """Item vectors (n, d) as given -> float32 (n, index_dimension) as FAISS holds them."""
        if self.metric == "cosine":
            return normalize_rows(vectors)
        if self.norm_bound is None:
            return np.ascontiguousarray(vectors, dtype=np.float32)
        squared = np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64)
        # max(0, .): rounding may leave the longest item a hair above M².
        extra = np.sqrt(np.maximum(self.norm_bound**2 - squared, 0.0))
        return np.hstack([vectors, extra[:, None]]).astype(np.float32, copy=False)

    def queries(self, vectors: FloatMatrix) -> FloatMatrix:
        """Query vectors (n, d) -> float32 (n, index_dimension) as FAISS is searched with."""
        if self.metric == "cosine":
            return normalize_rows(vectors)
        if self.norm_bound is None:
            return np.ascontiguousarray(vectors, dtype=np.float32)
        return np.hstack([vectors, np.zeros((vectors.shape[0], 1), dtype=np.float32)]).astype(np.float32, copy=False)

    def given(self, stored: FloatMatrix, norms: npt.NDArray[np.float32] | None) -> FloatMatrix:
        """Vectors FAISS holds (n, index_dimension) -> float32 (n, d) as they were upserted.

        Args:
            stored: rows reconstructed from the index.
            norms: float32 (n,) norms of the upserted vectors (cosine only).
        """
        if self.metric == "cosine":
            assert norms is not None
            return (stored * norms[:, None]).astype(np.float32, copy=False)
        if self.norm_bound is not None:
            return np.ascontiguousarray(stored[:, : self.dimension])
        return stored
