"""Train the scoring MLP on tower outputs: ``[u, v]`` -> rating (MSE).

Two ways, chosen by :attr:`ScoringConfig.fine_tune_towers`:

* frozen towers: only the MLP learns (the notebook's setup);
* fine-tuned towers (default): the towers learn too, from the rating loss plus
  ``retrieval_weight`` times the in-batch softmax, so their dot products still
  retrieve while their vectors also carry what the MLP needs to predict a
  rating. Both metrics are measured on the final towers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from two_stage_rec.rerankers.mlp import MLPReranker
from two_stage_rec.training._tf import keras, tf
from two_stage_rec.training.config import RetrievalConfig, ScoringConfig
from two_stage_rec.training.data import Interactions
from two_stage_rec.training.metrics import rmse
from two_stage_rec.training.progress import EpochProgress
from two_stage_rec.training.retrieval import in_batch_softmax_loss, log_item_frequency, validation_accuracy
from two_stage_rec.training.towers import Tower

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

    def __init__(self, user_dimension: int, item_dimension: int, config: ScoringConfig, mean_rating: float) -> None:
        self.user_dimension = user_dimension
        self.product = config.features == "concat_product"
        self.dropout = config.dropout
        self._dropout = keras.layers.Dropout(config.dropout, name="scoring_dropout")
        self.layers = [
            keras.layers.Dense(width, activation="relu", name=f"scoring_hidden_{i}")
            for i, width in enumerate(config.hidden_layers)
        ]
        # Starting at the mean rating saves the first epochs from learning the offset.
        self.layers.append(
            keras.layers.Dense(1, name="scoring_output", bias_initializer=keras.initializers.Constant(mean_rating))
        )
        self(tf.zeros([1, user_dimension + item_dimension]))

    def __call__(self, pairs: Any, *, training: bool = False) -> Any:
        """Predicted ratings, float32 (n,), for pairs (n, d_user + d_item); ``training``
        applies dropout after each hidden layer (the export has none: inference)."""
        x = pairs
        if self.product:
            x = tf.concat([x, x[:, : self.user_dimension] * x[:, self.user_dimension :]], axis=1)
        for layer in self.layers[:-1]:
            x = layer(x)
            if training and self.dropout > 0:
                x = self._dropout(x, training=True)
        return self.layers[-1](x)[:, 0]

    @property
    def trainable_variables(self) -> list[Any]:
        return [v for layer in self.layers for v in layer.trainable_variables]

    def kernels(self) -> list[Any]:
        return [layer.kernel for layer in self.layers]

    def reranker(self, features: Any) -> MLPReranker:
        return MLPReranker(
            [np.asarray(layer.kernel.numpy()) for layer in self.layers],
            [np.asarray(layer.bias.numpy()) for layer in self.layers],
            user_dimension=self.user_dimension,
            features=features,
        )


def _values(variables: list[Any]) -> list[npt.NDArray[np.float32]]:
    return [np.array(v.numpy()) for v in variables]


def _restore(variables: list[Any], values: list[npt.NDArray[np.float32]]) -> None:
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


def _learning_rate(config: ScoringConfig, steps_per_epoch: int) -> Any:
    if config.learning_rate_schedule == "constant":
        return config.learning_rate
    # Cosine decay to 5 %: late epochs take small steps, so the epoch early stopping
    # keeps is a settled model rather than a lucky point in a noisy trajectory.
    return keras.optimizers.schedules.CosineDecay(
        config.learning_rate, decay_steps=config.epochs * steps_per_epoch, alpha=0.05
    )


def _make_step(
    model: _MLP,
    user_tower: Tower,
    item_tower: Tower,
    config: ScoringConfig,
    retrieval: RetrievalConfig,
    log_q: Any,
    steps_per_epoch: int,
) -> Any:
    optimizer = keras.optimizers.Adam(learning_rate=_learning_rate(config, steps_per_epoch))
    variables = list(model.trainable_variables)
    if config.fine_tune_towers:
        variables += user_tower.trainable_variables + item_tower.trainable_variables
    optimizer.build(variables)

    def step(user_rows: Any, item_rows: Any, ratings: Any) -> Any:
        with tf.GradientTape() as tape:
            users = user_tower.from_rows(user_rows)
            items = item_tower.from_rows(item_rows)
            if not config.fine_tune_towers:
                users, items = tf.stop_gradient(users), tf.stop_gradient(items)
            predicted = model(tf.concat([users, items], axis=1), training=True)
            loss = tf.reduce_mean(tf.square(predicted - ratings))
            if config.fine_tune_towers and config.retrieval_weight > 0:
                loss += config.retrieval_weight * in_batch_softmax_loss(users, items, item_rows, log_q, retrieval)
            if config.fine_tune_towers and config.tower_l2 > 0:
                penalty = tf.reduce_sum(tf.square(users), axis=1) + tf.reduce_sum(tf.square(items), axis=1)
                loss += config.tower_l2 * tf.reduce_mean(penalty)
            if config.l2 > 0:
                loss += config.l2 * tf.add_n([tf.reduce_sum(tf.square(k)) for k in model.kernels()])
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    rows = tf.TensorSpec([None], tf.int64)
    return tf.function(step, input_signature=[rows, rows, tf.TensorSpec([None], tf.float32)])


def train_scoring(
    train: Interactions,
    *,
    user_tower: Tower,
    item_tower: Tower,
    config: ScoringConfig,
    retrieval: RetrievalConfig,
    rng: np.random.Generator,
    validation: Interactions | None = None,
    progress: bool = True,
) -> ScoringRun:
    """Fit the MLP (and, when configured, the towers); keep the epoch with the lowest validation RMSE.

    Args:
        train: ratings to learn from.
        user_tower: the trained (or fresh) user tower; updated in place
            when ``config.fine_tune_towers``.
        item_tower: the item tower, likewise.
        config: layers and optimisation settings.
        retrieval: the retrieval loss's settings (used when fine-tuning).
        rng: drives the batch order.
        validation: held-out ratings for early stopping, or None to run all epochs.
        progress: show a tqdm bar per epoch.
    """
    started = time.perf_counter()
    user_rows = user_tower.rows(train.users)
    item_rows = item_tower.rows(train.items)
    model = _MLP(user_tower.output_dim, item_tower.output_dim, config, float(train.ratings.mean()))
    log_q = tf.constant(log_item_frequency(item_rows, len(item_tower.vocabulary) + 1))
    steps_per_epoch = -(-len(train) // config.batch_size)
    step = _make_step(model, user_tower, item_tower, config, retrieval, log_q, steps_per_epoch)
    kept = list(model.trainable_variables)
    if config.fine_tune_towers:
        kept += user_tower.trainable_variables + item_tower.trainable_variables
    if validation is not None:
        validation_rows = (
            tf.constant(user_tower.rows(validation.users)),
            tf.constant(item_tower.rows(validation.items)),
        )
    history: list[dict[str, float]] = []
    best_score, best_epoch, best_values = np.inf, 0, None
    epochs_run = 0
    with EpochProgress("scoring", config.epochs, enabled=progress) as bar:
        for epoch in range(1, config.epochs + 1):
            epochs_run = epoch
            order = rng.permutation(len(train))
            losses = []
            for start in range(0, len(order), config.batch_size):
                batch = order[start : start + config.batch_size]
                losses.append(
                    float(
                        step(
                            tf.constant(user_rows[batch]),
                            tf.constant(item_rows[batch]),
                            tf.constant(train.ratings[batch]),
                        )
                    )
                )
            record = {"epoch": float(epoch), "loss": float(np.mean(losses))}
            if validation is not None:
                pairs = tf.concat(
                    [user_tower.from_rows(validation_rows[0]), item_tower.from_rows(validation_rows[1])], axis=1
                )
                score = rmse(model(pairs).numpy(), validation.ratings)
                record["validation_rmse"] = score
                if config.fine_tune_towers:
                    k = retrieval.validation_k
                    record[f"validation_top_{k}_accuracy"] = validation_accuracy(user_tower, item_tower, validation, k)
                if score < best_score:
                    best_score, best_epoch, best_values = score, epoch, _values(kept)
            history.append(record)
            bar.update(record)
            if validation is not None and epoch - best_epoch >= config.patience:
                break
    if best_values is not None:
        _restore(kept, best_values)
    else:
        best_epoch = epochs_run
    return ScoringRun(
        reranker=model.reranker(config.features),
        epochs_run=epochs_run,
        best_epoch=best_epoch,
        history=history,
        wall_time_s=time.perf_counter() - started,
    )
