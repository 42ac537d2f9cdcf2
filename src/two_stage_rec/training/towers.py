"""The two towers of the retrieval model: id string -> vector."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from two_stage_rec.training._tf import keras, tf
from two_stage_rec.training.config import RetrievalConfig
from two_stage_rec.types import FloatMatrix

__all__ = ["Tower"]


class Tower:
    """StringLookup -> Embedding [+ Dense(side features)] -> ReLU layers -> Dense(output_dim).

    Index 0 is the out-of-vocabulary row: every key not in ``vocabulary`` maps
    to it, and key ``vocabulary[i]`` to row ``i + 1``.

    Args:
        vocabulary: the keys the tower knows, in row order.
        config: layer widths.
        features: float32 (len(vocabulary) + 1, f) side features per row, or None.
        name: prefix of the layer names.
    """

    def __init__(
        self,
        vocabulary: Sequence[str],
        config: RetrievalConfig,
        *,
        features: npt.NDArray[np.float32] | None = None,
        name: str,
    ) -> None:
        self.vocabulary = list(vocabulary)
        self._row_of = {key: row for row, key in enumerate(self.vocabulary, start=1)}
        self.lookup = keras.layers.StringLookup(
            vocabulary=self.vocabulary, mask_token=None, num_oov_indices=1, name=f"{name}_lookup"
        )
        self.embedding = keras.layers.Embedding(
            len(self.vocabulary) + 1, config.embedding_dim, name=f"{name}_embedding"
        )
        self._features = None if features is None else tf.constant(features, dtype=tf.float32)
        self.feature_projection = (
            None
            if features is None
            else keras.layers.Dense(config.embedding_dim, use_bias=False, name=f"{name}_features")
        )
        self.hidden = [
            keras.layers.Dense(width, activation="relu", name=f"{name}_hidden_{i}")
            for i, width in enumerate(config.hidden_layers)
        ]
        needs_projection = bool(config.hidden_layers) or config.embedding_dim != config.output_dim
        self.projection = keras.layers.Dense(config.output_dim, name=f"{name}_output") if needs_projection else None
        self.output_dim = config.output_dim
        self.from_rows(tf.constant([0], dtype=tf.int64))  # build every layer now

    @property
    def trainable_variables(self) -> list[Any]:
        """The tower's tf.Variables."""
        layers = [self.embedding, self.feature_projection, *self.hidden, self.projection]
        return [v for layer in layers if layer is not None for v in layer.trainable_variables]

    def rows(self, keys: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Row of each key (0 for unknown keys), int64 (n,); what the StringLookup
        computes, done in numpy to keep string tensors out of the training loop."""
        row_of = self._row_of
        return np.fromiter((row_of.get(str(k), 0) for k in np.asarray(keys).reshape(-1)), dtype=np.int64)

    def from_rows(self, rows: Any) -> Any:
        """Tower output for int64 rows, a float32 tensor (n, output_dim)."""
        x = self.embedding(rows)
        if self.feature_projection is not None:
            x = x + self.feature_projection(tf.gather(self._features, rows))
        for layer in self.hidden:
            x = layer(x)
        if self.projection is not None:
            x = self.projection(x)
        return x

    def __call__(self, keys: Any) -> Any:
        """Tower output for a 1-D batch of key strings: float32 tensor (n, output_dim)."""
        return self.from_rows(self.lookup(keys))

    def table(self) -> FloatMatrix:
        """The output for every row, float32 (len(vocabulary) + 1, output_dim); row 0 is
        the unknown-key vector. Exact: the tower depends on the key alone."""
        rows = tf.range(len(self.vocabulary) + 1, dtype=tf.int64)
        return np.asarray(self.from_rows(rows).numpy(), dtype=np.float32)

    def get_weights(self) -> list[npt.NDArray[np.float32]]:
        """Copies of the variable values (for keeping the best epoch)."""
        return [np.array(v.numpy()) for v in self.trainable_variables]

    def set_weights(self, values: list[npt.NDArray[np.float32]]) -> None:
        """Restore values returned by :meth:`get_weights`."""
        for variable, value in zip(self.trainable_variables, values, strict=True):
            variable.assign(value)
