"""Merge several candidate sources into one pool per user, and measure the pool's recall."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from two_stage_rec.candidates.sources import CandidateSource
from two_stage_rec.errors import InvalidInputError
from two_stage_rec.scoring import top_k_rows

__all__ = ["MergedCandidates", "candidate_recall", "merge_candidates"]


@dataclass(frozen=True, eq=False)
class MergedCandidates:
    """Each user's merged candidates, with every source's score of every candidate.

    Row ``i`` holds ``counts[i]`` real candidates in its first columns; the
    rest is padding (column -1, id ``""``, scores NaN, ``retrieved_by`` False).
    Candidates are ordered source by source (in the order the sources were
    given, each best first), a candidate retrieved by several sources
    appearing once, where its first source put it.

    Attributes:
        users: the n users.
        item_ids: the sources' shared item list.
        columns: int64 (n, width) positions into ``item_ids``; -1 pads.
        counts: int64 (n,) real candidates per row.
        scores: source name -> float32 (n, width) that source's score of each
            candidate (including those another source retrieved); NaN pads.
        retrieved_by: source name -> bool (n, width), the source put the
            candidate among its own top items.
    """

    users: tuple[str, ...]
    item_ids: tuple[str, ...]
    columns: npt.NDArray[np.int64]
    counts: npt.NDArray[np.int64]
    scores: dict[str, npt.NDArray[np.float32]]
    retrieved_by: dict[str, npt.NDArray[np.bool_]]

    @property
    def ids(self) -> npt.NDArray[np.object_]:
        """object (n, width) candidate ids; ``""`` pads."""
        table = np.array([*self.item_ids, ""], dtype=object)
        ids: npt.NDArray[np.object_] = table[self.columns]  # -1 picks the trailing pad
        return ids

    @property
    def present(self) -> npt.NDArray[np.bool_]:
        """bool (n, width), True for real candidates."""
        return self.columns >= 0

    def labels(self, relevant: Sequence[Collection[str]]) -> npt.NDArray[np.bool_]:
        """bool (n, width): the candidate is among the user's ``relevant`` items (one collection per user)."""
        if len(relevant) != len(self.users):
            raise InvalidInputError(f"{len(relevant)} relevant sets for {len(self.users)} users")
        ids = self.ids
        return np.array(
            [[item in wanted for item in row] for row, wanted in zip(ids, relevant, strict=True)], dtype=bool
        ).reshape(ids.shape)


def merge_candidates(
    sources: Mapping[str, CandidateSource],
    depth: Mapping[str, int],
    users: Sequence[str],
    *,
    exclude: Sequence[Collection[str]] | None = None,
) -> MergedCandidates:
    """Each source's ``depth[name]`` best items per user, merged.

    Args:
        sources: name -> source; all must share one ``item_ids`` list. A source
            with depth 0 retrieves nothing but still scores every candidate.
        depth: name -> candidates that source contributes per user (>= 0).
            Sources missing from ``depth`` contribute none.
        users: the n users.
        exclude: per user, items never to retrieve (e.g. the user's seen items).

    Returns:
        A :class:`MergedCandidates`; width = the largest merged count (at most
        the sum of depths).

    Raises:
        InvalidInputError: no source, sources with different item lists, a
            negative depth, an unknown name in ``depth`` or ``exclude`` of the
            wrong length.
    """
    if not sources:
        raise InvalidInputError("merge_candidates needs at least one source")
    names = list(sources)
    items = sources[names[0]].item_ids
    for name in names[1:]:
        if tuple(sources[name].item_ids) != tuple(items):
            raise InvalidInputError(f"source {name!r} scores another item list than {names[0]!r}")
    unknown = sorted(set(depth) - set(sources))
    if unknown:
        raise InvalidInputError(f"depth names unknown sources: {', '.join(unknown)}")
    if any(d < 0 for d in depth.values()):
        raise InvalidInputError(f"depths must be non-negative, got {dict(depth)}")
    user_list = tuple(users)
    if exclude is not None and len(exclude) != len(user_list):
        raise InvalidInputError(f"exclude has {len(exclude)} rows for {len(user_list)} users")
    n, m = len(user_list), len(items)
    column_of = {item: c for c, item in enumerate(items)}
    allowed = np.ones((n, m), dtype=bool)
    for row, skip in enumerate(exclude or ()):
        allowed[row, [column_of[i] for i in skip if i in column_of]] = False

    dense = {name: np.asarray(sources[name].scores(list(user_list)), dtype=np.float32) for name in names}
    picked = np.zeros((n, m), dtype=bool)
    order: list[npt.NDArray[np.int64]] = []
    for name in names:
        if depth.get(name, 0) == 0:
            continue
        columns, _, _ = top_k_rows(dense[name], depth[name], allowed & ~picked)
        order.append(columns)
        rows = np.repeat(np.arange(n), columns.shape[1])
        flat = columns.reshape(-1)
        picked[rows[flat >= 0], flat[flat >= 0]] = True
    if order:
        stacked = np.concatenate(order, axis=1)
        # Move each row's real columns to the front, keeping their order.
        key = np.where(stacked >= 0, 0, 1)
        stacked = np.take_along_axis(stacked, np.argsort(key, axis=1, kind="stable"), axis=1)
        counts = (stacked >= 0).sum(axis=1).astype(np.int64)
        width = int(counts.max()) if n else 0
        merged = stacked[:, :width]
    else:
        merged = np.full((n, 0), -1, dtype=np.int64)
        counts = np.zeros(n, dtype=np.int64)
    present = merged >= 0
    safe = np.where(present, merged, 0)
    scores = {
        name: np.where(present, np.take_along_axis(dense[name], safe, axis=1), np.nan).astype(np.float32)
        for name in names
    }
    retrieved_by: dict[str, npt.NDArray[np.bool_]] = {}
    for name in names:
        own = depth.get(name, 0)
        if own == 0:
            retrieved_by[name] = np.zeros(merged.shape, dtype=bool)
            continue
        columns, _, _ = top_k_rows(dense[name], own, allowed)
        mine = np.zeros((n, m), dtype=bool)
        rows = np.repeat(np.arange(n), columns.shape[1])
        flat = columns.reshape(-1)
        mine[rows[flat >= 0], flat[flat >= 0]] = True
        retrieved_by[name] = present & np.take_along_axis(mine, safe, axis=1)
    return MergedCandidates(
        users=user_list,
        item_ids=tuple(items),
        columns=merged,
        counts=counts,
        scores=scores,
        retrieved_by=retrieved_by,
    )


def candidate_recall(
    candidate_ids: npt.ArrayLike, relevant: Sequence[Collection[str]], cutoffs: Sequence[int] | None = None
) -> dict[int, npt.NDArray[np.float64]]:
    """Share of each user's relevant items among their first ``k`` candidates: the ceiling of any reranker.

    Args:
        candidate_ids: object (n, width) candidate ids, best first, ``""`` pads.
        relevant: n collections of relevant item ids (users with none get recall 0).
        cutoffs: the k's (default: just the width).

    Returns:
        k -> float64 (n,) recall@k per user (hits in the first k / relevant items).
    """
    ids = np.asarray(candidate_ids, dtype=object)
    if ids.ndim != 2 or ids.shape[0] != len(relevant):
        raise InvalidInputError(f"need (n, width) ids for {len(relevant)} users, got shape {ids.shape}")
    ks = [ids.shape[1]] if cutoffs is None else [int(k) for k in cutoffs]
    if any(k < 1 for k in ks):
        raise InvalidInputError(f"cut-offs must be positive, got {ks}")
    hits = np.array([[item in wanted for item in row] for row, wanted in zip(ids, relevant, strict=True)], dtype=bool)
    hits = hits.reshape(ids.shape)
    sizes = np.array([len(r) for r in relevant], dtype=np.float64)
    cumulative = np.cumsum(hits, axis=1)
    out: dict[int, npt.NDArray[np.float64]] = {}
    for k in ks:
        found = cumulative[:, min(k, ids.shape[1]) - 1] if ids.shape[1] else np.zeros(len(relevant))
        out[k] = np.divide(found, sizes, out=np.zeros_like(sizes), where=sizes > 0)
    return out
