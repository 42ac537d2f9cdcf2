"""A linear term beside the scoring MLP, folded into plain ReLU layers for export.

The scoring model may add a linear unit on the first layer's input ``x``
(``[u, v]`` or ``[u, v, u * v]``) to the MLP's output: ``mlp(x) + w . x``
(wide & deep). Through ``u`` and ``v`` it gives per-user and per-item offsets
(the bias terms of matrix factorisation, the towers learning a direction that
carries them); through ``u * v`` a weighted dot product (NeuMF's GMF branch).

The numpy serving path (:class:`~two_stage_rec.rerankers.mlp.MLPReranker`)
and its file format hold a chain of ReLU layers only. The term still fits,
exactly: ``s = relu(s) - relu(-s)``, so two extra units per hidden layer
carry ``relu(s)`` and ``relu(-s)`` from the first layer to the output, where
they add ``s``. The file format is unchanged and serving costs two units per
hidden layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["fold_linear_term"]

_F32 = npt.NDArray[np.float32]


def fold_linear_term(
    weights: Sequence[npt.ArrayLike], biases: Sequence[npt.ArrayLike], linear: npt.ArrayLike
) -> tuple[list[_F32], list[_F32]]:
    """The layers of one ReLU MLP computing ``mlp(x) + linear . x``.

    Args:
        weights: L float matrices, ``weights[0]`` of shape (F, h1), the last
            (h_{L-1}, 1): the MLP (ReLU on hidden layers, linear output).
        biases: L float vectors matching the weights' output widths.
        linear: float (F,) or (F, 1), the linear term's weights on the
            first layer's input; it has no bias (the output layer's is shared).

    Returns:
        ``(weights, biases)`` float32: each hidden layer two units wider (the
        positive and negative parts of ``linear . x``), the output layer
        reading them with weights +1 and -1. With no hidden layer (L = 1) the
        term is added to the output weights.

    Raises:
        ValueError: ``linear`` does not have F entries, or the lists differ in length.
    """
    w = [np.asarray(m, dtype=np.float32) for m in weights]
    b = [np.asarray(v, dtype=np.float32).reshape(-1) for v in biases]
    term = np.asarray(linear, dtype=np.float32).reshape(-1)
    if len(w) == 0 or len(w) != len(b):
        raise ValueError(f"need one bias per weight matrix, got {len(w)} and {len(b)}")
    if term.shape[0] != w[0].shape[0]:
        raise ValueError(f"the linear term has {term.shape[0]} weights for an input of width {w[0].shape[0]}")
    if len(w) == 1:
        return [w[0] + term[:, None]], [b[0]]
    carry = np.array([[1.0, -1.0], [-1.0, 1.0]], np.float32)
    folded_w = [np.concatenate([w[0], term[:, None], -term[:, None]], axis=1)]
    folded_b = [np.concatenate([b[0], np.zeros(2, np.float32)])]
    for matrix, bias in zip(w[1:-1], b[1:-1], strict=True):
        rows, columns = matrix.shape
        layer = np.zeros((rows + 2, columns + 2), np.float32)
        layer[:rows, :columns] = matrix
        # relu(relu(s) - relu(-s)) = relu(s), and likewise for -s: the pair passes through unchanged.
        layer[rows:, columns:] = carry
        folded_w.append(layer)
        folded_b.append(np.concatenate([bias, np.zeros(2, np.float32)]))
    folded_w.append(np.concatenate([w[-1], np.array([[1.0], [-1.0]], np.float32)], axis=0))
    folded_b.append(b[-1])
    return folded_w, folded_b
