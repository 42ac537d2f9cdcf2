"""Diversity policies: maximal marginal relevance over item vectors, caps per metadata value.

A ranker scores each candidate on its own, so its top 10 is often ten
near-copies (five sequels, one genre). :class:`MMR` trades a little relevance
for variety in the item-embedding space; :class:`MaxPerValue` is a hard cap
("at most 2 per genre in the top 10") on a metadata field.

Both read the list's *order*, never the scale of its scores: ranker scores
have no fixed scale (a predicted rating, a dot product, a log-odds), and a
policy earlier in the chain (a boost) may have reordered the list without
rescoring it. Neither changes a score; both return every item they were given.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from two_stage_rec.errors import InvalidPolicyError
from two_stage_rec.policies.base import RankedList
from two_stage_rec.types import Metadata

__all__ = ["MMR", "MMRSimilarity", "MaxPerValue", "Relevance"]

MMRSimilarity: TypeAlias = Literal["cosine", "dotproduct"]
"""How :class:`MMR` compares two items' vectors (higher is more similar)."""

Relevance: TypeAlias = Literal["minmax", "rank"]
"""How :class:`MMR` turns a list into relevances in [0, 1] (see :class:`MMR`)."""


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def list_relevance(ranked: RankedList, how: Relevance) -> npt.NDArray[np.float64]:
    """Relevance in [0, 1] of each item of ``ranked``, non-increasing along the list, 1 for the first.

    ``"rank"``: ``1 - i / (m - 1)`` for the item at position ``i`` of ``m``.
    ``"minmax"``: the list's scores sorted best first and scaled to [0, 1]
    (``(s - min) / (max - min)`` over the finite scores; ``-inf``, as an item
    a pin brought in has, counts as the minimum), then given out by position,
    so the relevance follows the list's current order even after a policy
    reordered it, and keeps the gaps between the ranker's scores.

    Returns:
        float64 (m,).
    """
    m = len(ranked)
    if m <= 1:
        return np.ones(m, dtype=np.float64)
    if how == "rank":
        return 1.0 - np.arange(m, dtype=np.float64) / (m - 1)
    scores = ranked.scores.astype(np.float64)
    finite = np.isfinite(scores)
    if not finite.any():
        return np.ones(m, dtype=np.float64)
    low, high = float(scores[finite].min()), float(scores[finite].max())
    clipped = np.clip(np.where(np.isnan(scores), low, scores), low, high)
    profile = np.sort(clipped)[::-1]
    if high == low:
        return np.ones(m, dtype=np.float64)
    return (profile - low) / (high - low)


def _similarity_matrix(vectors: npt.NDArray[np.float32], metric: MMRSimilarity) -> npt.NDArray[np.float64]:
    """Item-item similarity source: the vectors, unit-normalised for cosine (a zero vector stays zero)."""
    matrix = vectors.astype(np.float64)
    if metric == "cosine":
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    return matrix


@dataclass(frozen=True)
class MMR:
    """Maximal marginal relevance: re-pick the top k for relevance and variety.

    Greedy, as in Carbonell & Goldstein (1998). With ``S`` the items picked
    so far (empty at first), each step picks, among the items not yet picked,

    ``argmax_i  (1 - λ) · rel(i) - λ · max_{j in S} sim(i, j)``

    (the max over an empty ``S`` is 0; ties go to the item higher in the list),
    for ``k`` steps. The picked items come first in pick order, then every
    other item in its original order. ``λ = trade_off``:

    * ``0``: pure relevance, the list is returned unchanged (the same object);
    * larger: more weight on being unlike what is already picked;
    * ``1``: pure diversity after the first item (which is always the list's
      first: it has the highest relevance and nothing to be similar to).

    ``rel`` is the list's relevance in [0, 1] (:func:`list_relevance`): the
    ranker's scores have no fixed scale, so they are normalised per list to
    be commensurable with a cosine similarity. ``"minmax"`` (the default)
    keeps the gaps between the scores, ``(s - min) / (max - min)``;
    ``"rank"`` uses the position alone, ``1 - i / (m - 1)``. On
    MovieLens-100K ``"minmax"`` loses less NDCG@10 for the same diversity at
    every λ measured (benchmarks/diversity.py, docs/guides/evaluation.md):
    where the ranker is sure (a wide score gap) the item stays, and where
    scores nearly tie, trading one item for a more varied one costs little
    relevance; ranks make every neighbouring pair look equally far apart.

    ``sim`` is the cosine of the item vectors (default; in [-1, 1], so
    commensurable with ``rel``) or their dot product (only meaningful when
    the vectors are normalised or of a known scale).

    Cost: ``k`` steps of one (m, d) matrix-vector product, O(k·m·d), for m
    candidates of dimension d; needs :attr:`RankedList.vectors`
    (``needs_vectors`` is True, so the recommender fetches them).

    Args:
        trade_off: λ in [0, 1].
        metric: item-item similarity, ``"cosine"`` or ``"dotproduct"``.
        relevance: ``"minmax"`` or ``"rank"`` (see above).

    Raises:
        InvalidInputError: λ outside [0, 1] or not a number, an unknown
            metric or relevance; at apply time, a list without vectors.
    """

    trade_off: float
    metric: MMRSimilarity = field(default="cosine", kw_only=True)
    relevance: Relevance = field(default="minmax", kw_only=True)
    needs_vectors: bool = field(default=True, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _is_real(self.trade_off) or not 0.0 <= float(self.trade_off) <= 1.0:
            raise InvalidPolicyError(f"MMR trade_off must be a number in [0, 1], got {self.trade_off!r}")
        object.__setattr__(self, "trade_off", float(self.trade_off))
        if self.metric not in ("cosine", "dotproduct"):
            raise InvalidPolicyError(f"MMR metric must be 'cosine' or 'dotproduct', got {self.metric!r}")
        if self.relevance not in ("rank", "minmax"):
            raise InvalidPolicyError(f"MMR relevance must be 'rank' or 'minmax', got {self.relevance!r}")

    def apply(self, ranked: RankedList, k: int) -> RankedList:
        """The first ``min(k, m)`` items re-picked by MMR, the rest after them in their order.

        Args:
            ranked: m candidates with vectors (m, d).
            k: the final list's length (k >= 1).

        Returns:
            All m items, scores unchanged.

        Raises:
            InvalidInputError: ``ranked.vectors`` is None.
        """
        if self.trade_off == 0.0 or len(ranked) <= 1:
            return ranked
        if ranked.vectors is None:
            raise InvalidPolicyError("MMR needs the items' vectors; build the RankedList with vectors=")
        order = mmr_order(
            _similarity_matrix(ranked.vectors, self.metric),
            list_relevance(ranked, self.relevance),
            self.trade_off,
            min(k, len(ranked)),
        )
        return ranked.take(order)


def mmr_order(
    unit: npt.NDArray[np.float64], relevance: npt.NDArray[np.float64], trade_off: float, steps: int
) -> npt.NDArray[np.int64]:
    """The MMR permutation: ``steps`` greedy picks, then the unpicked in their order.

    Args:
        unit: float64 (m, d); ``unit @ unit.T`` is the item-item similarity.
        relevance: float64 (m,), higher is better.
        trade_off: λ in [0, 1].
        steps: picks to make (<= m).

    Returns:
        int64 (m,), a permutation of 0..m-1.
    """
    m = relevance.shape[0]
    gain = (1.0 - trade_off) * relevance
    # Running max similarity of each item to the picked set; 0 for the empty set.
    closest = np.zeros(m, dtype=np.float64)
    available = np.ones(m, dtype=np.bool_)
    picked: list[int] = []
    for step in range(steps):
        value = gain - trade_off * closest if step else gain.copy()
        value[~available] = -np.inf
        best = int(np.argmax(value))  # argmax returns the first maximum: ties go to the higher item
        picked.append(best)
        available[best] = False
        similarity = unit @ unit[best]
        closest = similarity if step == 0 else np.maximum(closest, similarity)
    rest = np.flatnonzero(available)
    return np.concatenate([np.asarray(picked, dtype=np.int64), rest.astype(np.int64)])


def _value_keys(value: object) -> set[Hashable]:
    """The cap keys of one metadata value: one per element of a list, typed so ``True`` and ``1`` differ."""
    elements = value if isinstance(value, list) else [value]
    keys: set[Hashable] = set()
    for element in elements:
        if isinstance(element, Hashable):
            keys.add((type(element).__name__, element))
    return keys


@dataclass(frozen=True)
class MaxPerValue:
    """At most ``limit`` items per value of a metadata field within the top k.

    Walks the list in order and keeps an item in the top k unless one of its
    values of ``field`` already has ``limit`` items there. A list-valued field
    (``genres``) counts the item once for *each* of its values, and the item
    is over the cap when *any* of them is full: with ``MaxPerValue("genres", 2)``
    a Comedy|Romance film needs room in both Comedy and Romance. Items
    lacking the field (or with an empty list) are never capped and count
    towards nothing. Values compare by type, as in filters (``True`` is not ``1``).

    Items over the cap are demoted, not dropped: everything not placed in the
    top k follows it in its original order, so the list keeps all its items
    and k results remain whenever k exist; if fewer than k items fit under
    the caps, demoted items fill the rest of the top k.

    Args:
        field: the metadata field, e.g. ``"genres"``.
        limit: items per value (>= 1).

    Raises:
        InvalidInputError: empty field name or limit < 1.
    """

    field: str
    limit: int

    def __post_init__(self) -> None:
        if not isinstance(self.field, str) or not self.field:
            raise InvalidPolicyError(f"MaxPerValue field must be a non-empty string, got {self.field!r}")
        if not _is_int(self.limit) or self.limit < 1:
            raise InvalidPolicyError(f"MaxPerValue limit must be an integer >= 1, got {self.limit!r}")
        object.__setattr__(self, "limit", int(self.limit))

    def apply(self, ranked: RankedList, k: int) -> RankedList:
        """The top k under the caps, then every other item in its order.

        Args:
            ranked: m candidates (metadata is read; vectors are not).
            k: the final list's length (k >= 1).

        Returns:
            All m items, scores unchanged.
        """
        counts: dict[Hashable, int] = {}
        top: list[int] = []
        for index, metadata in enumerate(ranked.metadata):
            if len(top) == k:
                break
            keys = self._keys(metadata)
            if any(counts.get(key, 0) >= self.limit for key in keys):
                continue
            for key in keys:
                counts[key] = counts.get(key, 0) + 1
            top.append(index)
        if top == list(range(len(top))):
            return ranked  # nothing demoted
        chosen = set(top)
        rest = [i for i in range(len(ranked)) if i not in chosen]
        return ranked.take(np.asarray(top + rest, dtype=np.int64))

    def _keys(self, metadata: Metadata) -> set[Hashable]:
        if self.field not in metadata:
            return set()
        return _value_keys(metadata[self.field])
