"""Several trained models as one: towers side by side, scoring MLPs averaged, in the one-model formats.

An ensemble of K members (same configuration, different seeds) serves as a
single model without any new file format:

* the towers' outputs are concatenated, ``U = [u_1, ..., u_K]`` and
  ``V = [v_1, ..., v_K]`` (width K * d), so the retrieval score ``U . V`` is
  the sum of the members' dot products: their retrieval scores added;
* one :class:`~two_stage_rec.rerankers.mlp.MLPReranker` holds the K MLPs as
  blocks: its first layer reads each member's own ``u_m``, ``v_m`` (and
  ``u_m * v_m``, which the ``"concat_product"`` input ``[U, V, U * V]``
  contains block by block), the hidden layers are block-diagonal, and the
  output layer averages the K outputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from two_stage_rec.rerankers.mlp import MLPReranker
from two_stage_rec.types import FloatMatrix

__all__ = ["concatenate_tables", "stack_rerankers"]


def concatenate_tables(tables: Sequence[FloatMatrix]) -> FloatMatrix:
    """The members' tables (rows in the same key order), side by side: float32 (n, K * d)."""
    return np.ascontiguousarray(np.concatenate([np.asarray(t, np.float32) for t in tables], axis=1))


def stack_rerankers(rerankers: Sequence[MLPReranker]) -> MLPReranker:
    """One MLP scoring ``[U, V]`` (concatenated towers) as the mean of the members' scores.

    Args:
        rerankers: K >= 1 MLPs with the same pair features, the same user and
            item widths and the same number of layers (the members of one
            configuration).

    Returns:
        An :class:`MLPReranker` of user and item width K * d whose
        ``score(U, V)`` is ``mean_m(rerankers[m].score(u_m, v_m))`` (higher is
        better, as each member's).

    Raises:
        ValueError: no rerankers, or they differ in features, widths or depth.
    """
    if not rerankers:
        raise ValueError("an ensemble needs at least one member")
    first = rerankers[0]
    layouts = {(r.features, r.user_dimension, r.item_dimension, len(r.layers())) for r in rerankers}
    if len(layouts) != 1:
        raise ValueError(f"the members differ in features, widths or depth: {sorted(layouts)}")
    if len(rerankers) == 1:
        return first
    count = len(rerankers)
    du, di = first.user_dimension, first.item_dimension
    members = [r.layers() for r in rerankers]
    # Where member m's rows of its first layer go in the ensemble's first-layer input.
    sources = [(0, du, count * 0, du), (du, di, count * du, di)]
    if first.features == "concat_product":
        sources.append((du + di, du, count * (du + di), du))
    input_width = sum(width for _, width, _, _ in sources) * count
    weights: list[FloatMatrix] = []
    biases = []
    for depth in range(len(members[0])):
        blocks = [layers[depth] for layers in members]
        outputs = [w.shape[1] for w, _ in blocks]
        last = depth == len(members[0]) - 1
        rows = input_width if depth == 0 else sum(w.shape[0] for w, _ in blocks)
        matrix = np.zeros((rows, 1 if last else sum(outputs)), np.float32)
        row_start, column_start = 0, 0
        for m, (w, _) in enumerate(blocks):
            columns = slice(0, 1) if last else slice(column_start, column_start + w.shape[1])
            scale = 1.0 / count if last else 1.0
            if depth == 0:
                for source, width, block_start, block_width in sources:
                    target = block_start + m * block_width
                    matrix[target : target + width, columns] = w[source : source + width] * scale
            else:
                matrix[row_start : row_start + w.shape[0], columns] = w * scale
            row_start += w.shape[0]
            column_start += w.shape[1]
        weights.append(matrix)
        if last:
            biases.append(np.mean([b for _, b in blocks], axis=0).astype(np.float32))
        else:
            biases.append(np.concatenate([b for _, b in blocks]).astype(np.float32))
    return MLPReranker(weights, biases, user_dimension=count * du, features=first.features)
