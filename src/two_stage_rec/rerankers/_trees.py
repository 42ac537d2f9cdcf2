"""Fast numpy evaluation of a LightGBM tree ensemble: every split decided at once, then a table per tree.

Why: serving the learned ranking stage scores 100 candidates per user with
about a hundred small trees, and one request must stay within a few
hundred microseconds. Walking trees node by node (one gather per level) or
testing each row's splits in a ``(rows, trees, splits)`` gather spends most of
that time indexing. Here the work is a handful of whole-array operations:

1. **Decisions.** The rows are transposed once, so that the feature column
   every split tests is a contiguous row; one gather of those rows and one
   comparison against the split thresholds decide every split of every tree
   for every row (``(splits, rows)`` booleans). Missing values then follow
   LightGBM's rules (``tree.h``, ``NumericalDecision``): a NaN counts as 0 at
   ``"None"`` splits and goes the default way at ``"NaN"`` and ``"Zero"``
   splits, where a value within ``1e-35`` of zero does too.
2. **Trees of at most** :data:`MAX_TABLE_SPLITS` **splits** (the default
   ranker's trees of 7 leaves have 6): a tree's decisions, as the bits of a
   small integer, index a table of its leaf value for every pattern of
   decisions, built once. **Larger trees** are walked level by level, every
   tree and row at once, reading the decisions of step 1.
3. The trees' values are summed per row over a ``(rows, trees)`` block, in
   tree order, as the reference walk did (the same float64 sums).

Float32 rows (what :class:`~two_stage_rec.rerankers.features.CandidateFeatures`
builds) are compared without a float64 copy: for a float32 ``x`` and a
float64 threshold ``t``, ``x <= t`` exactly when ``x <= t32``, the largest
float32 not above ``t``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_TABLE_SPLITS", "MISSING_NAN", "MISSING_NONE", "MISSING_ZERO", "CompiledTrees", "compile_trees"]

MISSING_NONE, MISSING_ZERO, MISSING_NAN = 0, 1, 2
"""LightGBM's missing-value handling of a numerical split: none (NaN counts as 0), zero, NaN."""

ZERO_THRESHOLD = np.float64(1e-35)  # LightGBM's kZeroThreshold, compared in float64
MAX_TABLE_SPLITS = 12
"""Trees with at most this many splits are evaluated through a table of 2**splits leaf values."""
ROWS_PER_BLOCK = 1024  # keeps a block's (splits, rows) decisions within the CPU caches


@dataclass(frozen=True, eq=False)
class CompiledTrees:
    """An ensemble rearranged for :meth:`predict`; built by :func:`compile_trees`.

    Slot ``i`` is one test of a split: for the table strategy slot ``j * trees
    + t`` is the ``j``-th split of tree ``t`` (padding slots repeat a real
    test; their bits do not change the table's value); for the walk, slot
    ``i`` is node ``i``.

    Attributes:
        slot_feature: intp (slots,) feature column each slot tests.
        threshold64: float64 (slots,) its threshold.
        threshold32: float32 (slots,) the largest float32 not above it.
        nan_left: bool (slots,) where a NaN goes.
        zero_slots: intp (z,) the slots of ``"Zero"`` splits (0 and NaN go the default way).
        zero_left: bool (z,) their default direction.
        n_trees: trees summed.
        n_features: width of the rows.
        table: float64 (trees * 2**width,) leaf value per decision pattern, or None (walk).
        width: splits per tree in the table (the largest tree's).
        bit_weights: uint8 or uint16 (width,) 2**j, the weight of a tree's j-th decision in its pattern.
        table_start: intp (trees,) where each tree's entries start in ``table``.
        left, right, roots: int64 children and roots for the walk (``c < 0`` is leaf ``~c``).
        leaf_value: float64 (leaves,) for the walk.
    """

    slot_feature: npt.NDArray[np.intp]
    threshold64: npt.NDArray[np.float64]
    threshold32: npt.NDArray[np.float32]
    nan_left: npt.NDArray[np.bool_]
    zero_slots: npt.NDArray[np.intp]
    zero_left: npt.NDArray[np.bool_]
    n_trees: int
    n_features: int
    table: npt.NDArray[np.float64] | None
    width: int
    bit_weights: npt.NDArray[np.unsignedinteger]
    table_start: npt.NDArray[np.intp]
    left: npt.NDArray[np.int64]
    right: npt.NDArray[np.int64]
    roots: npt.NDArray[np.int64]
    leaf_value: npt.NDArray[np.float64]

    def predict(self, rows: npt.NDArray[np.float32] | npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Sum of the trees' leaf values per row.

        Args:
            rows: float32 or float64 (n, n_features), checked by the caller; NaN is missing.

        Returns:
            float64 (n,).
        """
        n = rows.shape[0]
        if n == 0 or self.n_trees == 0:
            return np.zeros(n)
        if n <= ROWS_PER_BLOCK:
            return self._block(rows)
        return np.concatenate(
            [self._block(rows[start : start + ROWS_PER_BLOCK]) for start in range(0, n, ROWS_PER_BLOCK)]
        )

    def _block(self, rows: npt.NDArray[np.float32] | npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        goes_left = self._decisions(rows)
        if self.table is None:
            return self._walk(goes_left)
        return self._lookup(goes_left)

    def _decisions(self, rows: npt.NDArray[np.float32] | npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """bool (slots, n): the row goes left at the slot's split."""
        columns: npt.NDArray[np.floating] = np.ascontiguousarray(rows.T)  # (F, n): a split's feature is one row
        threshold: npt.NDArray[np.floating] = self.threshold32 if columns.dtype == np.float32 else self.threshold64
        goes_left: npt.NDArray[np.bool_] = columns[self.slot_feature] <= threshold[:, None]  # NaN: False
        missing = np.isnan(columns)
        with_nan = missing.any(axis=1)
        if with_nan.any():
            slots = np.flatnonzero(with_nan[self.slot_feature])
            goes_left[slots] = np.where(missing[self.slot_feature[slots]], self.nan_left[slots, None], goes_left[slots])
        if self.zero_slots.size:
            near_zero = np.abs(columns[self.slot_feature[self.zero_slots]]) <= ZERO_THRESHOLD
            goes_left[self.zero_slots] = np.where(near_zero, self.zero_left[:, None], goes_left[self.zero_slots])
        return goes_left

    def _lookup(self, goes_left: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
        """Each tree's decisions as the bits of its pattern, then its table entry."""
        assert self.table is not None
        n = goes_left.shape[1]
        bits = goes_left.reshape(self.width, self.n_trees, n).view(np.uint8)
        # Bit j of a tree's pattern is its j-th decision: one weighted sum over the splits
        # (einsum's integer loop; five times faster than shifting bit by bit).
        pattern = np.einsum("s,stn->tn", self.bit_weights, bits)
        # C-ordered (rows, trees) values summed along trees: numpy's pairwise sum along a contiguous
        # axis, as the reference walk adds them (a transposed block would be added one by one).
        index = np.ascontiguousarray(pattern.T) + self.table_start
        values: npt.NDArray[np.float64] = self.table[index]
        summed: npt.NDArray[np.float64] = values.sum(axis=1)
        return summed

    def _walk(self, goes_left: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
        """Every row down every tree, one level per step, reading the decisions."""
        n = goes_left.shape[1]
        node = np.broadcast_to(self.roots, (n, self.n_trees)).copy()
        row = np.broadcast_to(np.arange(n)[:, None], node.shape)
        active = node >= 0
        while active.any():
            at = node[active]
            node[active] = np.where(goes_left[at, row[active]], self.left[at], self.right[at])
            active = node >= 0
        summed: npt.NDArray[np.float64] = self.leaf_value[~node].sum(axis=1)
        return summed


def _float32_floor(threshold: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """The largest float32 not above each threshold (so ``x32 <= t`` iff ``x32 <= result``)."""
    with np.errstate(over="ignore"):  # beyond float32's range: inf, stepped back below
        rounded = threshold.astype(np.float32)
    above = rounded.astype(np.float64) > threshold
    floor: npt.NDArray[np.float32] = np.where(above, np.nextafter(rounded, np.float32(-np.inf)), rounded)
    return floor


def _tree_splits(
    roots: npt.NDArray[np.int64], left: npt.NDArray[np.int64], right: npt.NDArray[np.int64]
) -> list[list[int]]:
    """Each tree's split nodes, depth first."""
    per_tree: list[list[int]] = []
    left_list, right_list = left.tolist(), right.tolist()
    for root in roots.tolist():
        found: list[int] = []
        stack = [root]
        while stack:
            node = stack.pop()
            if node >= 0:
                found.append(node)
                stack += [left_list[node], right_list[node]]
        per_tree.append(found)
    return per_tree


def compile_trees(
    *,
    feature: npt.NDArray[np.int32],
    threshold: npt.NDArray[np.float64],
    left: npt.NDArray[np.int32],
    right: npt.NDArray[np.int32],
    default_left: npt.NDArray[np.bool_],
    missing: npt.NDArray[np.int8],
    leaf_value: npt.NDArray[np.float64],
    roots: npt.NDArray[np.int32],
    n_features: int,
) -> CompiledTrees:
    """Rearrange an ensemble's flat arrays (as :class:`~two_stage_rec.rerankers.feature_ranker.TreeEnsemble`
    holds them) for :meth:`CompiledTrees.predict`. Costs a few milliseconds for a hundred small trees."""
    left64, right64, roots64 = (np.asarray(a, dtype=np.int64) for a in (left, right, roots))
    thresholds = np.asarray(threshold, dtype=np.float64)
    missing_codes = np.asarray(missing)
    defaults = np.asarray(default_left, dtype=bool)
    # A NaN counts as 0 at "None" splits, and goes the default way at the others.
    nan_left_of_node: npt.NDArray[np.bool_] = np.where(missing_codes == MISSING_NONE, thresholds >= 0.0, defaults)
    per_tree = _tree_splits(roots64, left64, right64)
    width = max((len(nodes) for nodes in per_tree), default=0)
    n_trees = len(per_tree)
    table: npt.NDArray[np.float64] | None = None
    if width <= MAX_TABLE_SPLITS and width > 0:
        # Slot j * trees + t: tree t's j-th split; a shorter tree's padding repeats its first test
        # (or node 0 for a single leaf): its bit selects between equal table entries.
        slot_node = np.zeros((width, n_trees), dtype=np.int64)
        position = np.zeros(thresholds.size, dtype=np.int64)  # a split's bit within its tree
        for tree, nodes in enumerate(per_tree):
            slot_node[: len(nodes), tree] = nodes
            slot_node[len(nodes) :, tree] = nodes[0] if nodes else 0
            position[nodes] = np.arange(len(nodes))
        patterns = np.arange(1 << width, dtype=np.int64)
        node = np.broadcast_to(roots64[:, None], (n_trees, patterns.size)).copy()
        inner = node >= 0
        while inner.any():
            at = node[inner]
            goes_left = (np.broadcast_to(patterns, node.shape)[inner] >> position[at]) & 1 == 1
            node[inner] = np.where(goes_left, left64[at], right64[at])
            inner = node >= 0
        table = np.ascontiguousarray(np.asarray(leaf_value, dtype=np.float64)[~node]).reshape(-1)
        slots = slot_node.reshape(-1)
    else:
        slots = np.arange(thresholds.size, dtype=np.int64)
        width = 0
    slot_threshold = thresholds[slots] if slots.size else np.zeros(0)
    zero = np.flatnonzero(missing_codes[slots] == MISSING_ZERO) if slots.size else np.zeros(0, dtype=np.intp)
    return CompiledTrees(
        slot_feature=np.asarray(feature, dtype=np.intp)[slots] if slots.size else np.zeros(0, dtype=np.intp),
        threshold64=slot_threshold,
        threshold32=_float32_floor(slot_threshold),
        nan_left=nan_left_of_node[slots] if slots.size else np.zeros(0, dtype=bool),
        zero_slots=zero.astype(np.intp),
        zero_left=defaults[slots][zero] if slots.size else np.zeros(0, dtype=bool),
        n_trees=n_trees,
        n_features=int(n_features),
        table=table,
        width=width,
        bit_weights=(1 << np.arange(width)).astype(np.uint8 if width <= 8 else np.uint16),
        table_start=np.arange(n_trees, dtype=np.intp) << width,
        left=left64,
        right=right64,
        roots=roots64,
        leaf_value=np.asarray(leaf_value, dtype=np.float64),
    )
