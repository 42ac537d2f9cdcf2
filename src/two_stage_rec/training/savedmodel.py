"""TensorFlow SavedModels callable exactly as the notebook calls its models.

* a keyed-vector model: ``model(np.array(["42"]))`` -> float32 (1, d);
* the scoring model: ``model(tf.concat([u, m], axis=1))`` -> float32 (n, 1).

Each is a ``tf.Module`` whose ``__call__`` is a ``tf.function`` with an
``input_signature``, saved with that function as ``serving_default`` too, so
that both ``loaded(x)`` and ``loaded.signatures["serving_default"](x)`` work
(loaders made for Keras ``model.export()`` output look for the latter).
Neither needs Keras to load.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from two_stage_rec.rerankers.mlp import MLPReranker
from two_stage_rec.training._tf import tf
from two_stage_rec.types import FloatMatrix, FloatVector

__all__ = ["keyed_vectors_module", "save_module", "scoring_module"]


def keyed_vectors_module(keys: list[str], vectors: FloatMatrix, unknown: FloatVector) -> Any:
    """A module mapping a 1-D string batch to rows of ``vectors``; unknown keys get ``unknown``.

    The towers' output depends on the key alone, so their output table *is*
    the tower: looking rows up reproduces it exactly and is the fastest serve.
    """
    dimension = int(vectors.shape[1])

    class KeyedVectors(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(name="keyed_vectors")
            initializer = tf.lookup.KeyValueTensorInitializer(
                tf.constant(keys, dtype=tf.string), tf.range(1, len(keys) + 1, dtype=tf.int64)
            )
            self.table = tf.lookup.StaticHashTable(initializer, default_value=tf.constant(0, tf.int64))
            rows = np.vstack([unknown.reshape(1, dimension), vectors]).astype(np.float32)
            self.vectors = tf.Variable(rows, trainable=False, name="vectors")

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="keys")])  # type: ignore[untyped-decorator]
        def __call__(self, keys: Any) -> Any:
            return tf.gather(self.vectors, self.table.lookup(keys))

    return KeyedVectors()


def scoring_module(reranker: MLPReranker) -> Any:
    """The scoring MLP as a module on ``[u, v]`` pairs (n, d_user + d_item) -> (n, 1)."""
    user_dimension = reranker.user_dimension
    width = user_dimension + reranker.item_dimension
    product = reranker.features == "concat_product"
    layers = reranker.layers()

    class ScoringModel(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(name="scoring_model")
            self.kernels = [tf.Variable(w, trainable=False, name=f"kernel_{i}") for i, (w, _) in enumerate(layers)]
            self.biases = [tf.Variable(b, trainable=False, name=f"bias_{i}") for i, (_, b) in enumerate(layers)]

        @tf.function(input_signature=[tf.TensorSpec([None, width], tf.float32, name="pairs")])  # type: ignore[untyped-decorator]
        def __call__(self, pairs: Any) -> Any:
            x = pairs
            if product:
                x = tf.concat([x, x[:, :user_dimension] * x[:, user_dimension:]], axis=1)
            last = len(self.kernels) - 1
            for index, (kernel, bias) in enumerate(zip(self.kernels, self.biases, strict=True)):
                x = tf.matmul(x, kernel) + bias
                if index < last:
                    x = tf.nn.relu(x)
            return x

    return ScoringModel()


def save_module(module: Any, path: str | os.PathLike[str]) -> None:
    """Save with ``__call__`` also exported as the ``serving_default`` signature."""
    tf.saved_model.save(
        module, os.fspath(path), signatures={"serving_default": module.__call__.get_concrete_function()}
    )
