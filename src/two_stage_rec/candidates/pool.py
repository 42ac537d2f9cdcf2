"""Merge several candidate sources into one pool per user, and measure the pool's recall."""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import numpy.typing as npt

from two_stage_rec.candidates.sources import CandidateSource
from two_stage_rec.errors import InvalidInputError

__all__ = ["MergedCandidates", "candidate_recall", "merge_candidates"]

_ROWS_PER_BLOCK = 64


@dataclass(frozen=True, eq=False)
class _ItemIndex:
    """An item list's id -> column map and its ids as an object array (with a trailing ``""`` for -1)."""

    items: tuple[str, ...]
    column_of: dict[str, int]
    id_table: npt.NDArray[np.object_]


_INDEXES: dict[int, _ItemIndex] = {}
_INDEXES_LOCK = threading.Lock()


def _item_index(items: tuple[str, ...]) -> _ItemIndex:
    """The index of an item list, built once per list object.

    Sources hand out the same tuple on every call, so a lookup by identity
    saves rebuilding a dictionary of the whole catalogue per request (a third
    of a one-user merge before). The entry keeps its tuple alive, so an id is
    never reused while cached; a handful of lists are kept at most.
    """
    found = _INDEXES.get(id(items))
    if found is not None and found.items is items:
        return found
    index = _ItemIndex(items, {item: c for c, item in enumerate(items)}, np.array([*items, ""], dtype=object))
    with _INDEXES_LOCK:
        if len(_INDEXES) >= 8:
            _INDEXES.clear()
        _INDEXES[id(items)] = index
    return index


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
        ids: npt.NDArray[np.object_] = _item_index(self.item_ids).id_table[self.columns]  # -1: the trailing pad
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
    items = tuple(sources[names[0]].item_ids)
    for name in names[1:]:
        other = sources[name].item_ids
        if other is not items and tuple(other) != items:
            raise InvalidInputError(f"source {name!r} scores another item list than {names[0]!r}")
    unknown = sorted(set(depth) - set(sources))
    if unknown:
        raise InvalidInputError(f"depth names unknown sources: {', '.join(unknown)}")
    if any(d < 0 for d in depth.values()):
        raise InvalidInputError(f"depths must be non-negative, got {dict(depth)}")
    user_list = tuple(users)
    if exclude is not None and len(exclude) != len(user_list):
        raise InvalidInputError(f"exclude has {len(exclude)} rows for {len(user_list)} users")
    if len(user_list) == 1:
        return _merge_one(sources, depth, (user_list[0],), items, None if exclude is None else exclude[0])
    n, m = len(user_list), len(items)
    allowed = np.ones((n, m), dtype=bool)
    if exclude is not None:
        column_of = _item_index(items).column_of
        # map(dict.get, ...) looks every id up in C; ids outside the list give -1, dropped below.
        excluded = [
            np.fromiter(map(column_of.get, skip, repeat(-1)), dtype=np.int64, count=len(skip)) for skip in exclude
        ]
        rows = np.repeat(np.arange(n), [columns.size for columns in excluded])
        flat = np.concatenate(excluded) if excluded else np.zeros(0, dtype=np.int64)
        known = flat >= 0
        allowed[rows[known], flat[known]] = False

    dense = {name: np.asarray(sources[name].scores(list(user_list)), dtype=np.float32) for name in names}
    retrieving = [name for name in names if depth.get(name, 0) > 0]
    # Source s adds its best items not taken by the sources before it; they lie within its
    # first depth[s] + (depths before) items. One ranking of every retrieving source at once
    # (rows stacked source by source) gives all of them, and each source's own top.
    reach, before = 0, 0
    for name in retrieving:
        reach = max(reach, depth[name] + before)
        before += depth[name]
    ranked_all = _rank_stacked([dense[name] for name in retrieving], allowed, reach)
    order: list[npt.NDArray[np.int64]] = []
    own_top: dict[str, npt.NDArray[np.int64]] = {}
    for s, name in enumerate(retrieving):
        ranked = ranked_all[s * n : (s + 1) * n]
        own_top[name] = ranked[:, : depth[name]]
        order.append(own_top[name] if not order else _first_untaken(ranked, np.concatenate(order, axis=1), depth[name]))
    if order:
        stacked = np.concatenate(order, axis=1)
        # Move each row's real columns to the front, keeping their order.
        real = stacked >= 0
        counts = real.sum(axis=1).astype(np.int64)
        width = int(counts.max()) if n else 0
        if not real[:, :width].all():
            stacked = np.take_along_axis(stacked, np.argsort(~real, axis=1, kind="stable"), axis=1)
        merged = np.ascontiguousarray(stacked[:, :width])
    else:
        merged = np.full((n, 0), -1, dtype=np.int64)
        counts = np.zeros(n, dtype=np.int64)
    present = merged >= 0
    safe = np.where(present, merged, 0)
    rows = np.arange(n)[:, None]
    scores = {name: np.where(present, dense[name][rows, safe], np.float32(np.nan)) for name in names}
    retrieved_by = {
        name: _member(merged, own_top[name]) if name in own_top else np.zeros(merged.shape, dtype=bool)
        for name in names
    }
    return MergedCandidates(
        users=user_list,
        item_ids=items,
        columns=merged,
        counts=counts,
        scores=scores,
        retrieved_by=retrieved_by,
    )


def _merge_one(
    sources: Mapping[str, CandidateSource],
    depth: Mapping[str, int],
    users: tuple[str],
    items: tuple[str, ...],
    exclude: Collection[str] | None,
) -> MergedCandidates:
    """:func:`merge_candidates` for one user, on 1-D rows.

    The batch path's (n, m) masks, stacked blocks and per-row compactions cost
    more than the work itself for one row; here each retrieving source's
    ranking is one partition of its scores and one sort of its reach, and
    "taken" is a boolean row over the items. Same order, same candidates.
    """
    index = _item_index(items)
    m = len(items)
    barred = np.zeros(0, dtype=np.int64)
    if exclude:
        barred = np.fromiter(map(index.column_of.get, exclude, repeat(-1)), dtype=np.int64, count=len(exclude))
        barred = barred[barred >= 0]
    dense = {
        name: np.asarray(source.scores(list(users)), dtype=np.float32).reshape(-1) for name, source in sources.items()
    }
    taken = np.zeros(m, dtype=bool)
    picked: list[npt.NDArray[np.int64]] = []
    own_top: dict[str, npt.NDArray[np.int64]] = {}
    before = 0
    for name in sources:
        wanted = depth.get(name, 0)
        if wanted <= 0:
            continue
        # The first depth + (depths before) of its ranking hold its picks, whatever the others took.
        ranked = _rank_row(dense[name], barred, wanted + before)
        own_top[name] = ranked[:wanted]
        fresh = ranked[~taken[ranked]][:wanted] if before else own_top[name]
        taken[fresh] = True
        picked.append(fresh)
        before += wanted
    merged = np.concatenate(picked) if len(picked) > 1 else picked[0] if picked else np.zeros(0, dtype=np.int64)
    retrieved_by: dict[str, npt.NDArray[np.bool_]] = {}
    for name in sources:
        if name in own_top:
            mark = np.zeros(m, dtype=bool)
            mark[own_top[name]] = True
            retrieved_by[name] = mark[merged][None, :]
        else:
            retrieved_by[name] = np.zeros((1, merged.size), dtype=bool)
    return MergedCandidates(
        users=users,
        item_ids=items,
        columns=merged[None, :],
        counts=np.array([merged.size], dtype=np.int64),
        scores={name: row[merged][None, :] for name, row in dense.items()},
        retrieved_by=retrieved_by,
    )


def _rank_row(scores: npt.NDArray[np.float32], barred: npt.NDArray[np.int64], k: int) -> npt.NDArray[np.int64]:
    """The best ``k`` columns of one float32 (m,) row outside ``barred``, best first (fewer if fewer remain).

    The order of :func:`~two_stage_rec.scoring.top_k_rows` (score descending, then
    column ascending): a partition finds the k-th best score, every column at
    least as good is kept (ties at the boundary included), and a stable sort of
    those few, in column order, by score breaks ties by column.
    """
    values = scores.copy()
    values[barred] = -np.inf  # scores are finite: -inf marks the barred columns
    m = values.size
    kth = np.partition(values, m - k)[m - k] if k < m else np.float32(-np.inf)
    found = np.flatnonzero(values >= kth)
    if kth == -np.inf:
        found = found[values[found] > -np.inf]
    best: npt.NDArray[np.int64] = found[np.argsort(-values[found], kind="stable")[:k]]
    return best


def _rank_stacked(
    scores: list[npt.NDArray[np.float32]], allowed: npt.NDArray[np.bool_], k: int
) -> npt.NDArray[np.int64]:
    """Each source's best ``k`` allowed columns per user, best first, -1 pads.

    The order of :func:`~two_stage_rec.scoring.top_k_rows` (score descending,
    then column ascending), computed on one int64 key per entry that sorts
    the same way: the score's bits made order-preserving in the high half,
    the column in the low half. Keys are unique, so a partition and a sort
    of the ``k`` smallest give the exact order without tie handling, in a
    handful of calls for the (sources * n, m) block.

    Args:
        scores: per source float32 (n, m), finite, higher is better.
        allowed: bool (n, m).
        k: columns wanted.

    Returns:
        int64 (len(scores) * n, w) rows stacked source by source, w = min(k, the most allowed in a row).
    """
    if allowed.shape[0] > _ROWS_PER_BLOCK:  # blocks of users keep the (rows, m) int64 keys in cache
        step = _ROWS_PER_BLOCK
        parts = [
            _rank_stacked([s[start : start + step] for s in scores], allowed[start : start + step], k)
            for start in range(0, allowed.shape[0], step)
        ]
        width = max(part.shape[1] for part in parts)
        padded = [np.pad(part, ((0, 0), (0, width - part.shape[1])), constant_values=-1) for part in parts]
        # Back to source-major order: each part stacks its own users source by source.
        return np.concatenate(
            [
                np.concatenate([part.reshape(len(scores), -1, width)[source] for part in padded])
                for source in range(len(scores))
            ]
        )
    m = allowed.shape[1]
    block = np.concatenate(scores) if len(scores) > 1 else scores[0]
    usable = np.concatenate([allowed] * len(scores)) if len(scores) > 1 else allowed
    counts = np.minimum(usable.sum(axis=1), k)
    width = int(counts.max()) if counts.size else 0
    if width == 0:
        return np.full((block.shape[0], 0), -1, dtype=np.int64)
    # -0.0 and 0.0 must tie: adding 0.0 turns -0.0 into 0.0.
    negated = (np.float32(0.0) - block).view(np.int32).astype(np.int64)
    # IEEE bits as signed integers order positive floats; flipping the magnitude bits of
    # negative ones orders those too. Disallowed entries sort after every score.
    ordered = np.where(negated < 0, negated ^ 0x7FFFFFFF, negated)
    keys = np.where(usable, (ordered << 32) | np.arange(m, dtype=np.int64), np.iinfo(np.int64).max)
    if width < m:
        keys = np.partition(keys, width - 1, axis=1)[:, :width]
    keys = np.sort(keys, axis=1)[:, :width]
    columns: npt.NDArray[np.int64] = np.where(np.arange(width) < counts[:, None], keys & 0xFFFFFFFF, -1)
    return columns


def _member(columns: npt.NDArray[np.int64], among: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """bool (n, width): ``columns[i, j] >= 0`` is one of row i's ``among`` columns."""
    if among.shape[1] == 0:
        return np.zeros(columns.shape, dtype=bool)
    found: npt.NDArray[np.bool_] = (columns[:, :, None] == among[:, None, :]).any(axis=2) & (columns >= 0)
    return found


def _first_untaken(ranked: npt.NDArray[np.int64], taken: npt.NDArray[np.int64], wanted: int) -> npt.NDArray[np.int64]:
    """Each row's first ``wanted`` columns of ``ranked`` that are not among its ``taken`` (-1 pads), in order.

    Equals ranking again with the taken columns disallowed: the ranking's order
    (score, then column) does not depend on which other columns are allowed.
    """
    keep = (ranked >= 0) & ~_member(ranked, taken)
    keep &= np.cumsum(keep, axis=1) <= wanted
    front = np.argsort(~keep, axis=1, kind="stable")[:, :wanted]
    rows = np.arange(ranked.shape[0])[:, None]
    columns: npt.NDArray[np.int64] = np.where(keep[rows, front], ranked[rows, front], -1)
    return columns


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
