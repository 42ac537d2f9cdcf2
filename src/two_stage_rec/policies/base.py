"""The post-ranking step: what a policy sees and returns.

A ranking puts candidates in order of predicted relevance. A *policy* then
shapes the final list by what relevance alone does not see: variety
(:mod:`~two_stage_rec.policies.diversity`), business rules
(:mod:`~two_stage_rec.policies.rules`). Policies are applied in order, each
to the previous one's output, and the recommender keeps the first k::

    from two_stage_rec.policies import MMR, MaxPerValue

    recommender.recommend("42", k=10, policies=[MMR(0.3), MaxPerValue("genres", 2)])

A policy works on one user's list at a time (:class:`RankedList`): its
outcome for one user never depends on another's, and the lists are short
(the candidates, tens to hundreds), so a loop over users costs less than the
padding a batched form would need.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from two_stage_rec.errors import InvalidInputError
from two_stage_rec.types import FloatMatrix, FloatVector, Metadata

__all__ = ["AddsItems", "NeedsVectors", "Policy", "RankedList", "apply_policies"]


@dataclass(frozen=True, eq=False)
class RankedList:
    """One user's ranked candidates, best first.

    Attributes:
        ids: m item ids.
        scores: float32 (m,), the score each item is ranked by, higher is
            better. A policy that reorders may leave them as they were (the
            list's order is what counts); one that rescores (a boost) changes them.
        metadata: m metadata mappings (``{}`` when an item has none).
        positions: int64 (m,), each item's position in the list the
            recommender first handed to the policies; a policy never changes
            them, so the recommender can map the final list back.
        vectors: float32 (m, d) item vectors, or None. Set when a policy in
            the chain declares ``needs_vectors`` (:class:`NeedsVectors`).
    """

    ids: tuple[str, ...]
    scores: FloatVector
    metadata: tuple[Metadata, ...]
    positions: npt.NDArray[np.int64]
    vectors: FloatMatrix | None = None

    def __post_init__(self) -> None:
        m = len(self.ids)
        if self.scores.shape != (m,) or self.positions.shape != (m,) or len(self.metadata) != m:
            raise InvalidInputError(
                f"a RankedList needs m ids, scores, metadata and positions; got {m} ids, "
                f"scores {self.scores.shape}, {len(self.metadata)} metadata, positions {self.positions.shape}"
            )
        if self.vectors is not None and (self.vectors.ndim != 2 or self.vectors.shape[0] != m):
            raise InvalidInputError(f"a RankedList of {m} items got vectors of shape {self.vectors.shape}")

    @classmethod
    def of(
        cls,
        ids: Sequence[str],
        scores: npt.ArrayLike,
        metadata: Sequence[Metadata] | None = None,
        *,
        vectors: npt.ArrayLike | None = None,
    ) -> RankedList:
        """A list in the given order, positions 0..m-1 (``metadata`` defaults to ``{}`` each)."""
        m = len(ids)
        return cls(
            ids=tuple(str(i) for i in ids),
            scores=np.asarray(scores, dtype=np.float32).reshape(m),
            metadata=tuple(metadata) if metadata is not None else tuple({} for _ in range(m)),
            positions=np.arange(m, dtype=np.int64),
            vectors=None if vectors is None else np.asarray(vectors, dtype=np.float32),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, order: Sequence[int] | npt.NDArray[np.int64]) -> RankedList:
        """The items at ``order`` (positions into this list), in that order: a reordering or a subset."""
        index = np.asarray(order, dtype=np.int64).reshape(-1)
        return RankedList(
            ids=tuple(self.ids[i] for i in index.tolist()),
            scores=self.scores[index],
            metadata=tuple(self.metadata[i] for i in index.tolist()),
            positions=self.positions[index],
            vectors=None if self.vectors is None else self.vectors[index],
        )

    def rescored(self, scores: npt.ArrayLike) -> RankedList:
        """This list re-sorted by new scores (float (m,), higher is better; ties keep the current order)."""
        new = np.asarray(scores, dtype=np.float32).reshape(len(self))
        order = np.argsort(-new, kind="stable")
        with_scores = RankedList(self.ids, new, self.metadata, self.positions, self.vectors)
        return with_scores.take(order)


@runtime_checkable
class Policy(Protocol):
    """A step after ranking: one user's ranked candidates in, the shaped list out.

    A policy is pure: the same list gives the same answer, and the input is
    not changed. It may reorder, rescore or drop items (never invent one: new
    items come through :class:`AddsItems`), and should return the whole list
    it keeps, not just the first k, so that a later policy still has items to
    choose from; the recommender keeps the first k at the end.
    """

    def apply(self, ranked: RankedList, k: int) -> RankedList:
        """Shape ``ranked`` for a final list of ``k`` items (k >= 1).

        Returns:
            The kept items, best first (usually all of them, reordered).
        """
        ...


@runtime_checkable
class NeedsVectors(Protocol):
    """A policy that reads item vectors (:attr:`RankedList.vectors`), e.g. MMR."""

    needs_vectors: bool


@runtime_checkable
class AddsItems(Protocol):
    """A policy that may place items the ranking did not return (e.g. a pinned item).

    The recommender looks ``extra_items`` up in the store before the
    policies run and appends those it finds, that pass the request's filter
    and are not excluded, at the end of the list with score ``-inf``.
    """

    extra_items: frozenset[str]


def apply_policies(ranked: RankedList, policies: Sequence[Policy], k: int) -> RankedList:
    """``ranked`` through each policy in order, cut to its first ``k`` items.

    Raises:
        InvalidInputError: k < 1, or a policy returned something other than a
            :class:`RankedList` or an item that was not in its input.
    """
    if k < 1:
        raise InvalidInputError(f"k must be positive, got {k}")
    current = ranked
    for policy in policies:
        shaped = policy.apply(current, k)
        if not isinstance(shaped, RankedList):
            name = type(policy).__name__
            raise InvalidInputError(f"{name}.apply returned a {type(shaped).__name__}, not a RankedList")
        if not set(shaped.positions.tolist()) <= set(current.positions.tolist()):
            raise InvalidInputError(f"{type(policy).__name__}.apply returned items that were not in its input")
        current = shaped
    return current.take(np.arange(min(k, len(current)), dtype=np.int64))


def needs_vectors(policies: Sequence[Policy]) -> bool:
    """Whether any policy reads item vectors."""
    return any(isinstance(p, NeedsVectors) and p.needs_vectors for p in policies)


def extra_items(policies: Sequence[Policy]) -> frozenset[str]:
    """Every item any policy may add (see :class:`AddsItems`)."""
    found: frozenset[str] = frozenset()
    for policy in policies:
        if isinstance(policy, AddsItems):
            found |= policy.extra_items
    return found
