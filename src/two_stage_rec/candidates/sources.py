"""The candidate-source contract and the two simplest sources: the towers and popularity."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from two_stage_rec.datasets.interactions import Interactions
from two_stage_rec.errors import InvalidInputError
from two_stage_rec.protocols import Embedder
from two_stage_rec.scoring import exact_scores
from two_stage_rec.types import FloatMatrix, Metric

__all__ = ["CandidateSource", "PopularitySource", "TowerSource", "check_items"]


@runtime_checkable
class CandidateSource(Protocol):
    """Scores every item of a fixed list for a batch of users; higher is better.

    Attributes:
        item_ids: the items scored, in column order (sources merged together
            must share one list).
    """

    @property
    def item_ids(self) -> tuple[str, ...]: ...

    def scores(self, users: Sequence[str]) -> FloatMatrix:
        """float32 (len(users), len(item_ids)) scores, higher is better, all finite."""
        ...


def check_items(items: Sequence[str]) -> tuple[str, ...]:
    """The item list as a tuple of unique, non-empty strings.

    Raises:
        InvalidInputError: empty list, an empty id or a duplicate.
    """
    ids = tuple(str(item) for item in items)
    if not ids:
        raise InvalidInputError("a candidate source needs at least one item")
    if "" in ids:
        raise InvalidInputError("item ids must be non-empty")
    if len(set(ids)) != len(ids):
        raise InvalidInputError("item ids must be unique")
    return ids


class TowerSource:
    """The two towers' retrieval score of every item, computed exactly.

    The same score a vector store ranks by (``metric`` as the store's), so its
    top items are the index's candidates (an approximate index may miss a few).
    """

    def __init__(
        self, user_embedder: Embedder, item_embedder: Embedder, items: Sequence[str], *, metric: Metric = "dotproduct"
    ) -> None:
        """Args:
        user_embedder: the user tower (or its table); unknown users raise as it does.
        item_embedder: the item tower; must know every item.
        items: the item list scored.
        metric: the store's metric.
        """
        self._items = check_items(items)
        self._user_embedder = user_embedder
        self._vectors = np.asarray(item_embedder.embed(list(self._items)), dtype=np.float32)
        self._metric: Metric = metric

    @property
    def item_ids(self) -> tuple[str, ...]:
        return self._items

    @property
    def item_vectors(self) -> FloatMatrix:
        """float32 (len(item_ids), d), the item tower's vectors in column order."""
        return self._vectors

    def user_vectors(self, users: Sequence[str]) -> FloatMatrix:
        """float32 (len(users), d), the user tower's vectors."""
        return np.asarray(self._user_embedder.embed(list(users)), dtype=np.float32)

    def scores(self, users: Sequence[str]) -> FloatMatrix:
        return exact_scores(self.user_vectors(users), self._vectors, self._metric)


class PopularitySource:
    """log(1 + training events) of each item, the same for every user."""

    def __init__(self, log: Interactions | Mapping[str, float], items: Sequence[str]) -> None:
        """Args:
        log: the training events, or item id -> training events.
        items: the item list scored.
        """
        self._items = check_items(items)
        counts = log.item_counts() if isinstance(log, Interactions) else log
        self._row = np.log1p(np.array([counts.get(item, 0) for item in self._items], dtype=np.float32))

    @property
    def item_ids(self) -> tuple[str, ...]:
        return self._items

    def scores(self, users: Sequence[str]) -> FloatMatrix:
        return np.broadcast_to(self._row, (len(users), self._row.size)).astype(np.float32)
