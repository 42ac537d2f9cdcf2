"""Train the scoring MLP on pairs of frozen tower outputs: ``[u, v]`` -> rating (MSE)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from two_stage_rec.rerankers.mlp import MLPReranker
from two_stage_rec.training._tf import keras, tf
from two_stage_rec.training.config import ScoringConfig
from two_stage_rec.training.metrics import rmse
from two_stage_rec.training.progress import EpochProgress
from two_stage_rec.types import FloatMatrix

__all__ = ["ScoringRun", "train_scoring"]


@dataclass(frozen=True, slots=True)
class ScoringRun:
    """The trained MLP (as its numpy twin) and how the training went."""

    reranker: MLPReranker
    epochs_run: int
    best_epoch: int
    history: list[dict[str, float]]
    wall_time_s: float


class _MLP:
    """The Keras layers of the scoring MLP; ``features`` is formed inside, as in the export."""

    def __init__(self, input_width: int, user_dimension: int, config: ScoringConfig, mean_rating: float) -> None:
        self.user_dimension = user_dimension
        self.product = config.features == "concat_product"
        self.layers = [
            keras.layers.Dense(width, activation="relu", name=f"scoring_hidden_{i}")
            for i, width in enumerate(config.hidden_layers)
        ]
        # Starting at the mean rating saves the first epochs from learning the offset.
        self.layers.append(
            keras.layers.Dense(1, name="scoring_output", bias_initializer=keras.initializers.Constant(mean_rating))
        )
        self(tf.zeros([1, input_width]))

    def __call__(self, pairs: Any) -> Any:
        x = pairs
        if self.product:
            x = tf.concat([x, x[:, : self.user_dimension] * x[:, self.user_dimension :]], axis=1)
        for layer in self.layers:
            x = layer(x)
        return x[:, 0]

    @property
    def trainable_variables(self) -> list[Any]:
        return [v for layer in self.layers for v in layer.trainable_variables]

    def get_weights(self) -> list[npt.NDArray[np.float32]]:
        return [np.array(v.numpy()) for v in self.trainable_variables]

    def set_weights(self, values: list[npt.NDArray[np.float32]]) -> None:
        for variable, value in zip(self.trainable_variables, values, strict=True):
            variable.assign(value)

    def kernels(self) -> list[Any]:
        return [layer.kernel for layer in self.layers]


def _make_step(model: _MLP, config: ScoringConfig) -> Any:
    optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
    variables = model.trainable_variables
    optimizer.build(variables)

    def step(pairs: Any, ratings: Any) -> Any:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(pairs) - ratings))
            if config.l2 > 0:
                loss += config.l2 * tf.add_n([tf.reduce_sum(tf.square(k)) for k in model.kernels()])
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    signature = [tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.float32)]
    return tf.function(step, input_signature=signature)


def train_scoring(
    pairs: FloatMatrix,
    ratings: npt.NDArray[np.float32],
    *,
    user_dimension: int,
    config: ScoringConfig,
    rng: np.random.Generator,
    validation: tuple[FloatMatrix, npt.NDArray[np.float32]] | None = None,
    progress: bool = True,
) -> ScoringRun:
    """Fit the MLP; keep the epoch with the lowest validation RMSE.

    Args:
        pairs: float32 (n, d_user + d_item): ``[user_vector, item_vector]`` per rating.
        ratings: float32 (n,) targets.
        user_dimension: d_user.
        config: layers and optimisation settings.
        rng: drives the batch order.
        validation: held-out (pairs, ratings) for early stopping, or None.
        progress: show a tqdm bar per epoch.
    """
    started = time.perf_counter()
    model = _MLP(pairs.shape[1], user_dimension, config, float(ratings.mean()))
    step = _make_step(model, config)
    history: list[dict[str, float]] = []
    best_score, best_epoch, best_weights = np.inf, 0, None
    epochs_run = 0
    with EpochProgress("scoring", config.epochs, enabled=progress) as bar:
        for epoch in range(1, config.epochs + 1):
            epochs_run = epoch
            order = rng.permutation(len(ratings))
            losses = []
            for start in range(0, len(order), config.batch_size):
                batch = order[start : start + config.batch_size]
                losses.append(float(step(tf.constant(pairs[batch]), tf.constant(ratings[batch]))))
            record = {"epoch": float(epoch), "loss": float(np.mean(losses))}
            if validation is not None:
                score = rmse(model(tf.constant(validation[0])).numpy(), validation[1])
                record["validation_rmse"] = score
                if score < best_score:
                    best_score, best_epoch, best_weights = score, epoch, model.get_weights()
            history.append(record)
            bar.update(record)
            if validation is not None and epoch - best_epoch >= config.patience:
                break
    if best_weights is not None:
        model.set_weights(best_weights)
    else:
        best_epoch = epochs_run
    reranker = MLPReranker(
        [np.asarray(layer.kernel.numpy()) for layer in model.layers],
        [np.asarray(layer.bias.numpy()) for layer in model.layers],
        user_dimension=user_dimension,
        features=config.features,
    )
    return ScoringRun(
        reranker=reranker,
        epochs_run=epochs_run,
        best_epoch=best_epoch,
        history=history,
        wall_time_s=time.perf_counter() - started,
    )
