"""A scoring MLP evaluated in numpy: the fast serving path for a trained scoring model.

The file format (``scoring_mlp.npz``, no pickle) is written by
:func:`two_stage_rec.training.export_models` and holds:

* ``W0 .. W{L-1}``: float32 weight matrices, ``W0`` of shape (features, h1);
* ``b0 .. b{L-1}``: float32 biases;
* ``user_dimension``: int, width of the user half of the input;
* ``features``: ``"concat"`` or ``"concat_product"`` (see :data:`PairFeatures`);
* ``format_version``: int, 1.

Hidden layers use ReLU, the last layer is linear and has one unit: the
predicted rating (higher is better).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, TypeAlias, cast

import numpy as np
import numpy.typing as npt

from two_stage_rec.errors import DimensionMismatchError, InvalidInputError, ModelError
from two_stage_rec.types import FloatMatrix, FloatVector

__all__ = ["FORMAT_VERSION", "MLPReranker", "PairFeatures"]

FORMAT_VERSION = 1

PairFeatures: TypeAlias = Literal["concat", "concat_product"]
"""What the first layer sees for a pair (u, v):

* ``"concat"``: ``[u, v]`` (the notebook's scoring model);
* ``"concat_product"``: ``[u, v, u * v]`` -- the element-wise product lets a
  small MLP express a (weighted) dot product, which it cannot learn cheaply
  from the concatenation alone. The exported SavedModel still takes ``[u, v]``
  and forms the product inside.
"""

_FEATURES: tuple[PairFeatures, ...] = ("concat", "concat_product")


class MLPReranker:
    """Score (user, item) vector pairs with a ReLU MLP; the reranker protocol in numpy.

    Args:
        weights: L float arrays, ``weights[0]`` of shape (features, h1), the
            last of shape (h_{L-1}, 1).
        biases: L float arrays matching the weights' output widths.
        user_dimension: d_user, the width of the user half of the input.
        features: how a pair is turned into the first layer's input; see
            :data:`PairFeatures`.

    Raises:
        ModelError: the layer shapes do not chain, or the output is not one unit.

    Thread safety: ``score`` is read-only and safe to call concurrently.
    """

    def __init__(
        self,
        weights: Sequence[npt.ArrayLike],
        biases: Sequence[npt.ArrayLike],
        *,
        user_dimension: int,
        features: PairFeatures = "concat",
    ) -> None:
        if features not in _FEATURES:
            raise ModelError(f"features must be one of {_FEATURES}, got {features!r}")
        if len(weights) == 0 or len(weights) != len(biases):
            raise ModelError(f"need one bias per weight matrix, got {len(weights)} and {len(biases)}")
        self._weights = [np.asarray(w, dtype=np.float32) for w in weights]
        self._biases = [np.asarray(b, dtype=np.float32).reshape(-1) for b in biases]
        width = self._weights[0].shape[0] if self._weights[0].ndim == 2 else -1
        for index, (w, b) in enumerate(zip(self._weights, self._biases, strict=True)):
            if w.ndim != 2 or w.shape[0] != width or b.shape != (w.shape[1],):
                raise ModelError(f"layer {index}: weights {w.shape} and bias {b.shape} do not chain from {width}")
            width = w.shape[1]
        if width != 1:
            raise ModelError(f"the last layer must have one output unit, got {width}")
        self._user_dimension = int(user_dimension)
        self._features: PairFeatures = features
        input_width = self._weights[0].shape[0]
        item_dimension = input_width - user_dimension if features == "concat" else input_width // 3
        if features == "concat_product" and (3 * user_dimension != input_width):
            raise ModelError(
                f"'concat_product' needs a first layer of width 3 * user_dimension "
                f"({3 * user_dimension}), got {input_width}"
            )
        if user_dimension < 1 or item_dimension < 1:
            raise ModelError(f"user_dimension {user_dimension} does not fit an input of width {input_width}")
        self._item_dimension = int(item_dimension)

    def __repr__(self) -> str:
        widths = [w.shape[1] for w in self._weights]
        return (
            f"MLPReranker(input={self.user_dimension}+{self.item_dimension}, "
            f"features={self._features!r}, layers={widths})"
        )

    @property
    def user_dimension(self) -> int:
        """Width d_user of the user vectors ``score`` expects."""
        return self._user_dimension

    @property
    def item_dimension(self) -> int:
        """Width d_item of the item vectors ``score`` expects."""
        return self._item_dimension

    @property
    def input_width(self) -> int:
        """d_user + d_item, the width of the pairs ``[u, v]`` scored (see :meth:`forward`)."""
        return self._user_dimension + self._item_dimension

    @property
    def features(self) -> PairFeatures:
        """How pairs are turned into the first layer's input."""
        return self._features

    def layers(self) -> list[tuple[FloatMatrix, FloatVector]]:
        """Copies of the (weights, bias) pairs, first layer first."""
        return [(w.copy(), b.copy()) for w, b in zip(self._weights, self._biases, strict=True)]

    def score(self, user_vectors: FloatMatrix, item_vectors: FloatMatrix) -> FloatVector:
        """Predicted rating of ``item_vectors[i]`` for ``user_vectors[i]``.

        Args:
            user_vectors: float array (n, user_dimension).
            item_vectors: float array (n, item_dimension).

        Returns:
            float32 array (n,); higher is better (a rating-like score).

        Raises:
            DimensionMismatchError: a side has the wrong width.
            InvalidInputError: the two sides have different row counts.
        """
        users = np.asarray(user_vectors, dtype=np.float32)
        items = np.asarray(item_vectors, dtype=np.float32)
        if users.ndim != 2 or users.shape[1] != self._user_dimension:
            raise DimensionMismatchError(self._user_dimension, users.shape[-1], "user vectors")
        if items.ndim != 2 or items.shape[1] != self._item_dimension:
            raise DimensionMismatchError(self._item_dimension, items.shape[-1], "item vectors")
        if users.shape[0] != items.shape[0]:
            raise InvalidInputError(f"got {users.shape[0]} user vectors for {items.shape[0]} item vectors")
        if self._features == "concat_product":
            # The first layer's input in one concatenation (via forward() it took two).
            return self._layers(np.concatenate([users, items, users * items], axis=1))
        return self._layers(np.concatenate([users, items], axis=1))

    def forward(self, pairs: FloatMatrix) -> FloatVector:
        """Score concatenated pairs ``[u, v]`` (n, d_user + d_item), as the notebook's
        ``scoring_model(tf.concat([u, m], axis=1))`` does; returns float32 (n,)."""
        x = np.asarray(pairs, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self._user_dimension + self._item_dimension:
            raise DimensionMismatchError(self._user_dimension + self._item_dimension, x.shape[-1], "pairs")
        if self._features == "concat_product":
            x = np.concatenate([x, x[:, : self._user_dimension] * x[:, self._user_dimension :]], axis=1)
        return self._layers(x)

    def _layers(self, x: FloatMatrix) -> FloatVector:
        """The MLP on first-layer inputs (n, features); float32 (n,)."""
        last = len(self._weights) - 1
        for index, (w, b) in enumerate(zip(self._weights, self._biases, strict=True)):
            x = x @ w
            x += b  # in place: one temporary per layer fewer than `x @ w + b`
            if index < last:
                np.maximum(x, 0.0, out=x)
        return cast(FloatVector, x[:, 0].astype(np.float32, copy=False))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``scoring_mlp.npz`` in the format described in this module's docstring."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, npt.NDArray[np.generic]] = {
            "user_dimension": np.array(self._user_dimension, dtype=np.int64),
            "features": np.array(self._features),
            "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        }
        for index, (w, b) in enumerate(zip(self._weights, self._biases, strict=True)):
            arrays[f"W{index}"] = w
            arrays[f"b{index}"] = b
        with open(target, "wb") as handle:
            np.savez(handle, **arrays)  # type: ignore[arg-type]
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MLPReranker:
        """Read a file written by :meth:`save`.

        Raises:
            ModelError: the file is missing, not an NPZ of this format, or its
                layers do not chain.
        """
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                version = int(data["format_version"])
                if version != FORMAT_VERSION:
                    raise ModelError(f"{path}: scoring MLP format {version}, this library reads {FORMAT_VERSION}")
                count = sum(1 for name in data.files if name.startswith("W"))
                weights = [np.asarray(data[f"W{i}"]) for i in range(count)]
                biases = [np.asarray(data[f"b{i}"]) for i in range(count)]
                user_dimension = int(data["user_dimension"])
                features = str(data["features"])
        except ModelError:
            raise
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise ModelError(f"{path} is not a scoring MLP file (scoring_mlp.npz): {exc}") from exc
        if features not in _FEATURES:
            raise ModelError(f"{path}: unknown pair features {features!r}")
        return cls(weights, biases, user_dimension=user_dimension, features=features)
