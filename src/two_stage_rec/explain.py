"""Why an item was recommended: the user's nearest history items, where it came from, what ranked it.

:meth:`Recommender.recommend(..., explain=True)
<two_stage_rec.recommender.Recommender.recommend>` attaches an
:class:`Explanation` to each recommendation. The history part costs one
matrix product per user: the cosine similarity of the k recommended items'
vectors to the vectors of the items in the user's history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from two_stage_rec.types import FloatMatrix

__all__ = ["CandidateReason", "Explanation", "nearest_history"]

BECAUSE = 2
"""History items named per recommendation ("because you liked A and B")."""

CONTRIBUTIONS = 3
"""Feature contributions named per recommendation, largest magnitude first."""


@dataclass(frozen=True, slots=True)
class CandidateReason:
    """What a candidate ranker can say about one of its items (see
    :class:`~two_stage_rec.protocols.ExplainsCandidates`).

    Attributes:
        sources: the names of its candidate sources that retrieved the item,
            in merge order (e.g. ``("tower", "item_item")``).
        contributions: ``(feature, contribution)`` pairs, largest magnitude
            first: how much the item's score moves when that feature alone is
            replaced by a reference value (positive: the feature raised it).
    """

    sources: tuple[str, ...]
    contributions: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why one item is in a user's list.

    Attributes:
        because: up to two items from the user's history nearest to this item
            in the item-embedding space, as ``(item id, cosine similarity)``,
            most similar first (higher is more similar, at most 1). Empty when
            the history is unknown (a new user without ``history``) or none of
            its items is in the store.
        candidate_source: where the item came from: ``"index"`` (the vector
            store's nearest neighbours of the user vector), ``"fallback"``
            (the cold-start popularity list), ``"pinned"`` (placed by a
            :class:`~two_stage_rec.policies.rules.Pin`, not retrieved), or,
            for a candidate ranker's own candidates, the names of its sources
            that retrieved the item joined by ``"+"`` (``"tower"``,
            ``"item_item"``, ``"tower+item_item"``; ``"ranker"`` when the
            ranker cannot say).
        retrieval_rank: the item's 1-based rank by retrieval score among the
            request's candidates (after exclusions and the filter), or None
            when it has no retrieval score (fallback, pinned, or a candidate
            the index did not retrieve).
        contributions: the ranker's largest feature contributions to this
            item's score as ``(feature, contribution)``, largest magnitude
            first, when the ranker can give them; else empty.
    """

    because: tuple[tuple[str, float], ...] = ()
    candidate_source: str = "index"
    retrieval_rank: int | None = None
    contributions: tuple[tuple[str, float], ...] = ()


def nearest_history(
    item_vectors: FloatMatrix, history_ids: Sequence[str], history_vectors: FloatMatrix, *, top: int = BECAUSE
) -> list[tuple[tuple[str, float], ...]]:
    """For each item, the ``top`` history items nearest by cosine similarity.

    Args:
        item_vectors: float32 (k, d), the recommended items.
        history_ids: h ids of the user's history items.
        history_vectors: float32 (h, d), their vectors.
        top: history items per recommended item.

    Returns:
        k tuples of ``(history item id, cosine similarity)``, most similar first.
    """
    k = item_vectors.shape[0]
    if k == 0 or not history_ids:
        return [()] * k
    items = _unit_rows(item_vectors)
    history = _unit_rows(history_vectors)
    similarity = items @ history.T  # (k, h): the one matrix product
    take = min(top, len(history_ids))
    best = np.argsort(-similarity, axis=1, kind="stable")[:, :take]
    rows: list[list[float]] = np.take_along_axis(similarity, best, axis=1).tolist()
    return [
        tuple((history_ids[j], round(value, 6)) for j, value in zip(columns, values, strict=True))
        for columns, values in zip(best.tolist(), rows, strict=True)
    ]


def _unit_rows(vectors: FloatMatrix) -> FloatMatrix:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.where(norms > 0, norms, 1.0), dtype=np.float32)
