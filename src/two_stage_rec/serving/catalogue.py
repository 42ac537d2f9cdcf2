"""Live catalogue updates: items added, changed or removed while the service answers.

An update reaches the two places a recommendation can come from, so they
never disagree for long:

* the vector store (retrieval): new and changed items are embedded by the
  bundle's item tower and upserted; removed items are deleted. The local
  stores allow this while queries run (``concurrent_writes = True``).
* the cold-start fallback (:class:`CatalogueFallback`): a popularity ranking
  whose item list is replaced copy-on-write, so a request reads one
  consistent version and never waits for a writer. A removed item leaves
  it *before* it leaves the store; an item added again takes back its place
  by its popularity score, and a new one joins at the end (score 0: nobody
  has interacted with it yet).

Only items the item tower knows can be added (an item's vector comes from
the tower, never from the request); others are refused, by name.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from two_stage_rec.bundle import Bundle
from two_stage_rec.errors import InvalidInputError, UnknownKeyError
from two_stage_rec.filters import compile_filter
from two_stage_rec.recommender import Recommender
from two_stage_rec.types import Filter, Metadata
from two_stage_rec.validation import check_ids, check_metadata

__all__ = ["CatalogueFallback", "delete_items", "upsert_items"]


@dataclass(frozen=True, slots=True)
class _Ranking:
    ids: tuple[str, ...]
    scores: tuple[float, ...]
    metadata: Mapping[str, Metadata]


class CatalogueFallback:
    """Recommend the most popular items; the item list may change while it serves.

    A :class:`~two_stage_rec.protocols.Fallback`. Reads take the current
    ranking (one reference) and never wait; writes build a new ranking and
    replace the reference (writers are serialised among themselves).

    Args:
        ranked_item_ids: item ids, most popular first.
        scores: popularity scores, same order, higher is better.
        metadata: item id -> metadata, for filters and for the recommendations.
    """

    def __init__(
        self,
        ranked_item_ids: Sequence[str],
        *,
        scores: Sequence[float],
        metadata: Mapping[str, Metadata] | None = None,
    ) -> None:
        if len(scores) != len(ranked_item_ids):
            raise InvalidInputError(f"{len(scores)} scores for {len(ranked_item_ids)} items")
        known = dict(metadata or {})
        self._ranking = _Ranking(
            tuple(str(i) for i in ranked_item_ids),
            tuple(float(s) for s in scores),
            {item: known.get(item, {}) for item in ranked_item_ids},
        )
        # What each item scored when the ranking was made: an item removed and added again takes back its place.
        self._popularity = dict(zip(self._ranking.ids, self._ranking.scores, strict=True))
        self._writer = threading.Lock()

    @classmethod
    def from_bundle(cls, bundle: Bundle) -> CatalogueFallback:
        """The bundle's catalogue by training events, most first; items nobody interacted with last (score 0)."""
        catalogue = bundle.catalogue
        ranked = [item for item in bundle.popularity if item in catalogue]
        counted = set(ranked)
        scores = [float(bundle.popularity[item]) for item in ranked]
        for item in catalogue.item_ids:
            if item not in counted:
                ranked.append(item)
                scores.append(0.0)
        return cls(ranked, scores=scores, metadata=catalogue.metadata_by_id())

    def __repr__(self) -> str:
        return f"CatalogueFallback(items={len(self._ranking.ids)})"

    def __len__(self) -> int:
        return len(self._ranking.ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._ranking.metadata

    def top(
        self, k: int, *, exclude: Collection[str] = (), filter: Filter | None = None
    ) -> list[tuple[str, float, Metadata]]:
        """The k most popular ``(item id, score, metadata)`` not excluded and passing the filter."""
        ranking = self._ranking  # one version for the whole call
        predicate = compile_filter(filter) if filter else None
        excluded = exclude if isinstance(exclude, set | frozenset) else set(exclude)
        chosen: list[tuple[str, float, Metadata]] = []
        for item_id, score in zip(ranking.ids, ranking.scores, strict=True):
            if item_id in excluded:
                continue
            metadata = ranking.metadata[item_id]
            if predicate is not None and not predicate(metadata):
                continue
            chosen.append((item_id, score, metadata))
            if len(chosen) == k:
                break
        return chosen

    def upsert(self, item_ids: Sequence[str], metadata: Sequence[Metadata]) -> None:
        """Add items or replace their metadata (they keep their rank).

        An added item is ranked by the popularity it had when this fallback was
        made (0 for an item it never held: after every item with a higher or
        equal score).
        """
        with self._writer:
            ranking = self._ranking
            updated = dict(ranking.metadata)
            new = [item for item in dict.fromkeys(item_ids) if item not in updated]
            updated.update(zip(item_ids, metadata, strict=True))
            ids, scores = list(ranking.ids), list(ranking.scores)
            for item in new:
                score = self._popularity.get(item, 0.0)
                # Scores are descending: the place after the last score >= this one.
                position = next((row for row, value in enumerate(scores) if value < score), len(scores))
                ids.insert(position, item)
                scores.insert(position, score)
            self._ranking = _Ranking(tuple(ids), tuple(scores), updated)

    def delete(self, item_ids: Collection[str]) -> None:
        """Remove items; unknown ids are ignored."""
        doomed = set(item_ids)
        with self._writer:
            ranking = self._ranking
            if not doomed & ranking.metadata.keys():
                return
            keep = [row for row, item in enumerate(ranking.ids) if item not in doomed]
            self._ranking = _Ranking(
                tuple(ranking.ids[row] for row in keep),
                tuple(ranking.scores[row] for row in keep),
                {item: value for item, value in ranking.metadata.items() if item not in doomed},
            )


def label_of(item_id: str, metadata: Metadata) -> str:
    """An item's display title: its ``title`` or ``name`` metadata field, else the id (as the catalogue's)."""
    for key in ("title", "name"):
        value = metadata.get(key)
        if isinstance(value, str) and value:
            return value
    return item_id


def upsert_items(
    recommender: Recommender,
    fallback: CatalogueFallback | None,
    titles: dict[str, str],
    item_ids: Sequence[str],
    metadata: Sequence[Metadata],
) -> int:
    """Embed items with the item tower and write them to the store, the fallback and the title table.

    Everything is checked before anything is written.

    Returns:
        The number of items written.

    Raises:
        UnknownKeyError: the item tower has no vector for some ids (``keys`` lists them all).
        InvalidInputError: invalid ids or metadata, or the recommender has no item embedder.
    """
    if recommender.item_embedder is None:
        raise InvalidInputError("this service has no item embedder, so it cannot embed new items")
    ids = check_ids(item_ids)
    checked = check_metadata(ids, metadata)
    assert checked is not None  # metadata was given
    try:
        vectors = np.asarray(recommender.item_embedder.embed(ids), dtype=np.float32)
    except UnknownKeyError as exc:
        raise UnknownKeyError(exc.keys, what="item id") from exc
    recommender.store.upsert(ids, vectors, checked)
    if fallback is not None:
        fallback.upsert(ids, checked)
    for item_id, item_metadata in zip(ids, checked, strict=True):
        titles[item_id] = label_of(item_id, item_metadata)
    return len(ids)


def delete_items(
    recommender: Recommender, fallback: CatalogueFallback | None, titles: dict[str, str], item_ids: Sequence[str]
) -> None:
    """Remove items from the fallback, then the store, then the title table (unknown ids are ignored).

    The fallback goes first so that from the moment the store no longer returns
    an item, no part of the service does.
    """
    ids = check_ids(item_ids, allow_empty_batch=False, require_unique=False)
    if fallback is not None:
        fallback.delete(ids)
    recommender.store.delete(ids)
    for item_id in ids:
        titles.pop(item_id, None)
