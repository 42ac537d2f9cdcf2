"""What to recommend to a user the embedder has never seen: the most popular items."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from two_stage_rec.errors import InvalidInputError
from two_stage_rec.filters import compile_filter
from two_stage_rec.types import Filter, Metadata

__all__ = ["PopularityFallback"]


class PopularityFallback:
    """Recommend items in a fixed popularity order, honouring exclusions and filters.

    Args:
        ranked_item_ids: item ids, most popular first (e.g. by number of ratings).
        scores: optional popularity scores, same order, higher is better
            (e.g. rating counts); defaults to ``len - rank``.
        metadata: optional item id -> metadata, so that filters apply and
            recommendations carry metadata.
    """

    def __init__(
        self,
        ranked_item_ids: Sequence[str],
        *,
        scores: Sequence[float] | None = None,
        metadata: Mapping[str, Metadata] | None = None,
    ) -> None:
        self._ids = [str(i) for i in ranked_item_ids]
        if not self._ids:
            raise InvalidInputError("a popularity fallback needs at least one item")
        if scores is not None and len(scores) != len(self._ids):
            raise InvalidInputError(f"{len(scores)} scores for {len(self._ids)} items")
        self._scores = [float(s) for s in scores] if scores is not None else [
            float(len(self._ids) - rank) for rank in range(len(self._ids))
        ]
        self._metadata = dict(metadata or {})

    @classmethod
    def from_interactions(
        cls, item_ids: Sequence[str], *, metadata: Mapping[str, Metadata] | None = None
    ) -> PopularityFallback:
        """Rank items by how often they occur in an interaction log (one id per event)."""
        counts: dict[str, int] = {}
        for item_id in item_ids:
            counts[str(item_id)] = counts.get(str(item_id), 0) + 1
        ranked = sorted(counts, key=lambda i: (-counts[i], i))
        return cls(ranked, scores=[counts[i] for i in ranked], metadata=metadata)

    def __repr__(self) -> str:
        return f"PopularityFallback(items={len(self._ids)})"

    def top(
        self, k: int, *, exclude: Collection[str] = (), filter: Filter | None = None
    ) -> list[tuple[str, float, Metadata]]:
        """The k most popular (item id, score, metadata) not excluded and passing the filter."""
        predicate = compile_filter(filter)
        excluded = set(exclude)
        chosen: list[tuple[str, float, Metadata]] = []
        for item_id, score in zip(self._ids, self._scores, strict=True):
            if item_id in excluded:
                continue
            metadata = self._metadata.get(item_id, {})
            if filter and not predicate(metadata):
                continue
            chosen.append((item_id, score, metadata))
            if len(chosen) == k:
                break
        return chosen
