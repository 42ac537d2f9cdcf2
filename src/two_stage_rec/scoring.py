"""Exact scores and top-k selection in numpy: the reference every backend is measured against."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from two_stage_rec.types import FloatMatrix, Metric

__all__ = ["exact_scores", "normalize_rows", "top_k_rows"]


def normalize_rows(matrix: FloatMatrix) -> FloatMatrix:
    """Rows scaled to unit length; all-zero rows stay zero (their cosine is 0)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0.0, 1.0, norms)).astype(np.float32, copy=False)


def exact_scores(queries: FloatMatrix, vectors: FloatMatrix, metric: Metric) -> FloatMatrix:
    """Higher-is-better scores of every query against every vector.

    Args:
        queries: float32 (n, d).
        vectors: float32 (m, d).
        metric: ``"dotproduct"`` (dot), ``"cosine"`` (cosine similarity) or
            ``"euclidean"`` (negative squared distance).

    Returns:
        float32 (n, m).
    """
    if metric == "dotproduct":
        dot: FloatMatrix = queries @ vectors.T
        return dot
    if metric == "cosine":
        cosine: FloatMatrix = normalize_rows(queries) @ normalize_rows(vectors).T
        return cosine
    # -|q - v|^2 = 2 q.v - |q|^2 - |v|^2, clipped at 0 against rounding.
    squared: FloatMatrix = (
        np.einsum("ij,ij->i", queries, queries)[:, None]
        - 2.0 * (queries @ vectors.T)
        + np.einsum("ij,ij->i", vectors, vectors)[None, :]
    )
    negated: FloatMatrix = -np.maximum(squared, 0.0).astype(np.float32, copy=False)
    return negated


def top_k_rows(
    scores: FloatMatrix, k: int, allowed: npt.NDArray[np.bool_] | None = None
) -> tuple[npt.NDArray[np.int64], FloatMatrix, npt.NDArray[np.int64]]:
    """Best k columns of each row, sorted descending.

    Args:
        scores: float32 (n, m), higher is better.
        k: columns wanted per row.
        allowed: optional bool (m,) or (n, m) mask; disallowed columns never appear.

    Returns:
        (columns, scores, counts): int64 (n, w) column indices (-1 pads), float32
        (n, w) scores (-inf pads) and int64 (n,) real counts, with
        w = min(k, max count). Ties are broken by lower column index.
    """
    n, m = scores.shape
    if allowed is not None:
        scores = np.where(allowed, scores, -np.inf).astype(np.float32, copy=False)
        available = np.broadcast_to(allowed, (n, m)).sum(axis=1).astype(np.int64)
    else:
        available = np.full(n, m, dtype=np.int64)
    counts = np.minimum(available, k)
    width = int(counts.max()) if n else 0
    if width == 0:
        return np.full((n, 0), -1, np.int64), np.empty((n, 0), np.float32), counts
    if width < m:
        part = np.argpartition(-scores, width - 1, axis=1)[:, :width]
        # argpartition takes an arbitrary subset of the columns tied with the
        # width-th best score; take the lowest-indexed ones instead, as documented.
        threshold = np.take_along_axis(scores, part, axis=1).min(axis=1, keepdims=True)
        above, tied = scores > threshold, scores == threshold
        needed = width - above.sum(axis=1, keepdims=True)
        ambiguous = np.flatnonzero(tied.sum(axis=1) > needed[:, 0])
        if ambiguous.size:
            tied_rows = tied[ambiguous]
            first_tied = tied_rows & (np.cumsum(tied_rows, axis=1, dtype=np.int32) <= needed[ambiguous])
            part[ambiguous] = np.nonzero(above[ambiguous] | first_tied)[1].reshape(ambiguous.size, width)
    else:
        part = np.broadcast_to(np.arange(m), (n, m))
    part_scores = np.take_along_axis(scores, part, axis=1)
    # lexsort: primary key descending score, secondary ascending column.
    order = np.lexsort((part, -part_scores), axis=1)
    columns = np.take_along_axis(part, order, axis=1).astype(np.int64)
    top = np.take_along_axis(part_scores, order, axis=1)
    pad = np.arange(width)[None, :] >= counts[:, None]
    columns[pad] = -1
    top = np.where(pad, -np.inf, top).astype(np.float32, copy=False)
    return columns, top, counts
