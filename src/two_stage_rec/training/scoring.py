"""Train the scoring MLP on tower outputs: ``[u, v]`` -> a score, higher is better.

What the MLP learns depends on the feedback in the log:

* explicit (``ratings`` present): the rating, by mean squared error (the
  notebook's scoring model);
* implicit (``ratings is None``): relevance, by binary cross-entropy with
  logits of each event (label 1) against ``negatives`` items sampled per event
  (label 0); the output is the logit of "the user interacts with the item".

Two ways to treat the towers, chosen by :attr:`ScoringConfig.fine_tune_towers`:

* frozen towers: only the MLP learns (the notebook's setup);
* fine-tuned towers (default): the towers learn too, from the scoring loss plus
  ``retrieval_weight`` times the in-batch softmax, so their dot products still
  retrieve while their vectors also carry what the MLP needs. Both metrics are
  measured on the final towers.

Event weights (``Interactions.weights``), scaled to mean 1, weight each
event's term: its squared error or its positive cross-entropy, and its
in-batch softmax term. Sampled negatives count once each.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from two_stage_rec.datasets.interactions import Interactions
from two_stage_rec.rerankers.mlp import MLPReranker
from two_stage_rec.training._linear_term import fold_linear_term
from two_stage_rec.training._tf import keras, tf
from two_stage_rec.training.config import RetrievalConfig, ScoringConfig
from two_stage_rec.training.data import NegativeSampler, event_weights
from two_stage_rec.training.metrics import binary_log_loss, rmse_or_nan, sampled_auc
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

    def __init__(self, user_dimension: int, item_dimension: int, config: ScoringConfig, initial_output: float) -> None:
        self.user_dimension = user_dimension
        self.product = config.features == "concat_product"
        self.dropout = config.dropout
        self._dropout = keras.layers.Dropout(config.dropout, name="scoring_dropout")
        self.layers = [
            keras.layers.Dense(width, activation="relu", name=f"scoring_hidden_{i}")
            for i, width in enumerate(config.hidden_layers)
        ]
        # Starting at the right offset saves the first epochs from learning it.
        self.layers.append(
            keras.layers.Dense(1, name="scoring_output", bias_initializer=keras.initializers.Constant(initial_output))
        )
        # Starts at zero: the model begins as the plain MLP and the term grows only where it helps.
        self.linear = (
            keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros", name="scoring_linear")
            if config.linear_term
            else None
        )
        self(tf.zeros([1, user_dimension + item_dimension]))

    def __call__(self, pairs: Any, *, training: bool = False) -> Any:
        """Scores, float32 (n,), for pairs (n, d_user + d_item); ``training``
        applies dropout after each hidden layer (the export has none: inference).
        The linear term, when configured, reads the first layer's input and is never dropped."""
        inputs = pairs
        if self.product:
            inputs = tf.concat([inputs, inputs[:, : self.user_dimension] * inputs[:, self.user_dimension :]], axis=1)
        x = inputs
        for layer in self.layers[:-1]:
            x = layer(x)
            if training and self.dropout > 0:
                x = self._dropout(x, training=True)
        output = self.layers[-1](x)[:, 0]
        if self.linear is not None:
            output += self.linear(inputs)[:, 0]
        return output

    def _all_layers(self) -> list[Any]:
        return self.layers if self.linear is None else [*self.layers, self.linear]

    @property
    def trainable_variables(self) -> list[Any]:
        return [v for layer in self._all_layers() for v in layer.trainable_variables]

    def kernels(self) -> list[Any]:
        return [layer.kernel for layer in self._all_layers()]

    def reranker(self, features: Any) -> MLPReranker:
        weights = [np.asarray(layer.kernel.numpy()) for layer in self.layers]
        biases = [np.asarray(layer.bias.numpy()) for layer in self.layers]
        if self.linear is not None:
            weights, biases = fold_linear_term(weights, biases, np.asarray(self.linear.kernel.numpy()))
        return MLPReranker(weights, biases, user_dimension=self.user_dimension, features=features)


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


class _Steps:
    """The compiled training steps; each shares one optimizer and one regularised objective."""

    def __init__(
        self,
        model: _MLP,
        user_tower: Tower,
        item_tower: Tower,
        config: ScoringConfig,
        retrieval: RetrievalConfig,
        log_q: Any,
        steps_per_epoch: int,
    ) -> None:
        self.model, self.user_tower, self.item_tower = model, user_tower, item_tower
        self.config, self.retrieval, self.log_q = config, retrieval, log_q
        self.optimizer = keras.optimizers.Adam(learning_rate=_learning_rate(config, steps_per_epoch))
        self.variables = list(model.trainable_variables)
        if config.fine_tune_towers:
            self.variables += user_tower.trainable_variables + item_tower.trainable_variables
        self.optimizer.build(self.variables)

    def _towers(self, user_rows: Any, item_rows: Any) -> tuple[Any, Any]:
        users = self.user_tower.from_rows(user_rows)
        items = self.item_tower.from_rows(item_rows)
        if not self.config.fine_tune_towers:
            users, items = tf.stop_gradient(users), tf.stop_gradient(items)
        return users, items

    def _objective(self, data_loss: Any, users: Any, items: Any, item_rows: Any, weights: Any) -> Any:
        config = self.config
        loss = data_loss
        if config.fine_tune_towers and config.retrieval_weight > 0:
            loss += config.retrieval_weight * in_batch_softmax_loss(
                users, items, item_rows, self.log_q, self.retrieval, weights
            )
        if config.fine_tune_towers and config.tower_l2 > 0:
            penalty = tf.reduce_sum(tf.square(users), axis=1) + tf.reduce_sum(tf.square(items), axis=1)
            loss += config.tower_l2 * tf.reduce_mean(penalty)
        if config.l2 > 0:
            loss += config.l2 * tf.add_n([tf.reduce_sum(tf.square(k)) for k in self.model.kernels()])
        return loss

    def _apply(self, tape: Any, loss: Any) -> Any:
        self.optimizer.apply(tape.gradient(loss, self.variables), self.variables)
        return loss

    def explicit(self, *, weighted: bool) -> Any:
        """``(user_rows, item_rows, ratings[, weights]) -> loss``: squared error of the rating."""

        def step(user_rows: Any, item_rows: Any, ratings: Any, weights: Any = None) -> Any:
            with tf.GradientTape() as tape:
                users, items = self._towers(user_rows, item_rows)
                predicted = self.model(tf.concat([users, items], axis=1), training=True)
                squared = tf.square(predicted - ratings)
                loss = self._objective(
                    tf.reduce_mean(squared if weights is None else weights * squared), users, items, item_rows, weights
                )
            return self._apply(tape, loss)

        rows, values = tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.float32)
        if weighted:
            return tf.function(step, input_signature=[rows, rows, values, values])

        # A log without weights runs exactly the graph it always ran: same seed, same weights.
        def unweighted(user_rows: Any, item_rows: Any, ratings: Any) -> Any:
            return step(user_rows, item_rows, ratings)

        return tf.function(unweighted, input_signature=[rows, rows, values])

    def implicit(self) -> Any:
        """``(user_rows, item_rows, weights, negative_items, negative_weights) -> loss``.

        Binary cross-entropy with logits: the b events (label 1, weighted) and
        their b * m sampled negatives (label 0; weight 0 for a draw that is a
        known event), averaged over all b * (m + 1) terms.
        """

        def step(user_rows: Any, item_rows: Any, weights: Any, negative_items: Any, negative_weights: Any) -> Any:
            with tf.GradientTape() as tape:
                users, items = self._towers(user_rows, item_rows)
                negatives = self.item_tower.from_rows(negative_items)
                if not self.config.fine_tune_towers:
                    negatives = tf.stop_gradient(negatives)
                per_event = tf.shape(negative_items)[0] // tf.shape(user_rows)[0]
                negative_users = tf.repeat(users, per_event, axis=0)
                positive_logits = self.model(tf.concat([users, items], axis=1), training=True)
                negative_logits = self.model(tf.concat([negative_users, negatives], axis=1), training=True)
                positive_terms = tf.nn.sigmoid_cross_entropy_with_logits(
                    labels=tf.ones_like(positive_logits), logits=positive_logits
                )
                negative_terms = tf.nn.sigmoid_cross_entropy_with_logits(
                    labels=tf.zeros_like(negative_logits), logits=negative_logits
                )
                terms = tf.cast(tf.shape(positive_logits)[0] + tf.shape(negative_logits)[0], tf.float32)
                data_loss = (
                    tf.reduce_sum(weights * positive_terms) + tf.reduce_sum(negative_weights * negative_terms)
                ) / terms
                loss = self._objective(data_loss, users, items, item_rows, weights)
            return self._apply(tape, loss)

        rows, values = tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.float32)
        return tf.function(step, input_signature=[rows, rows, values, rows, values])


def _positive_counts(item_rows: npt.NDArray[np.int64], n_rows: int) -> npt.NDArray[np.int64]:
    return np.bincount(item_rows, minlength=n_rows).astype(np.int64)


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
    """Fit the MLP (and, when configured, the towers); keep the epoch that validates best.

    Explicit feedback (``train.ratings`` set) validates by RMSE of the held-out
    ratings (lower is better); implicit feedback by the AUC of the held-out
    events against ``config.negatives`` negatives each, sampled once before
    the first epoch (higher is better).

    Args:
        train: events to learn from; explicit or implicit (see the module docstring).
        user_tower: the trained (or fresh) user tower; updated in place
            when ``config.fine_tune_towers``.
        item_tower: the item tower, likewise.
        config: layers and optimisation settings.
        retrieval: the retrieval loss's settings (used when fine-tuning).
        rng: drives the batch order and the negative samples.
        validation: held-out events for early stopping (same feedback as
            ``train``), or None to run all epochs.
        progress: show a tqdm bar per epoch.
    """
    started = time.perf_counter()
    implicit = train.ratings is None
    user_rows = user_tower.rows(train.user_ids)
    item_rows = item_tower.rows(train.item_ids)
    weights = event_weights(train)
    n_item_rows = len(item_tower.vocabulary) + 1
    # The MLP starts at the mean rating, or at the logit of the base rate (1 event per `negatives` draws).
    initial = float(np.log(1.0 / config.negatives)) if train.ratings is None else float(train.ratings.mean())
    model = _MLP(user_tower.output_dim, item_tower.output_dim, config, initial)
    log_q = tf.constant(log_item_frequency(item_rows, n_item_rows))
    steps_per_epoch = -(-len(train) // config.batch_size)
    steps = _Steps(model, user_tower, item_tower, config, retrieval, log_q, steps_per_epoch)
    kept = list(steps.variables)
    sampler: NegativeSampler | None = None
    if implicit:
        step = steps.implicit()
        sampler = NegativeSampler(
            n_item_rows,
            known_users=user_rows,
            known_items=item_rows,
            counts=_positive_counts(item_rows, n_item_rows),
            kind=config.negative_sampling,
        )
    else:
        step = steps.explicit(weighted=weights is not None)
    check = None if validation is None else _Validation(validation, user_tower, item_tower, config, train, rng)
    history: list[dict[str, float]] = []
    best_score, best_epoch, best_values = -np.inf, 0, None
    epochs_run = 0
    with EpochProgress("scoring", config.epochs, enabled=progress) as bar:
        for epoch in range(1, config.epochs + 1):
            epochs_run = epoch
            order = rng.permutation(len(train))
            losses = []
            for start in range(0, len(order), config.batch_size):
                batch = order[start : start + config.batch_size]
                users, items = tf.constant(user_rows[batch]), tf.constant(item_rows[batch])
                if sampler is not None:
                    negatives, valid = sampler.sample(user_rows[batch], config.negatives, rng)
                    batch_weights = np.ones(len(batch), np.float32) if weights is None else weights[batch]
                    loss = step(
                        users,
                        items,
                        tf.constant(batch_weights),
                        tf.constant(negatives),
                        tf.constant(valid.astype(np.float32)),
                    )
                else:
                    assert train.ratings is not None
                    ratings = tf.constant(train.ratings[batch])
                    loss = (
                        step(users, items, ratings)
                        if weights is None
                        else step(users, items, ratings, tf.constant(weights[batch]))
                    )
                losses.append(float(loss))
            record = {"epoch": float(epoch), "loss": float(np.mean(losses))}
            if check is not None:
                score = check.measure(model, record)
                if config.fine_tune_towers:
                    k = retrieval.validation_k
                    record[f"validation_top_{k}_accuracy"] = validation_accuracy(user_tower, item_tower, check.log, k)
                if score > best_score:
                    best_score, best_epoch, best_values = score, epoch, _values(kept)
            history.append(record)
            bar.update(record)
            if check is not None and epoch - best_epoch >= config.patience:
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


class _Validation:
    """The early-stopping measurement; :meth:`measure` returns a score where higher is better."""

    def __init__(
        self,
        log: Interactions,
        user_tower: Tower,
        item_tower: Tower,
        config: ScoringConfig,
        train: Interactions,
        rng: np.random.Generator,
    ) -> None:
        self.log = log
        self.user_tower, self.item_tower = user_tower, item_tower
        self.user_rows = tf.constant(user_tower.rows(log.user_ids))
        self.item_rows = tf.constant(item_tower.rows(log.item_ids))
        self.implicit = train.ratings is None
        if self.implicit:
            n_rows = len(item_tower.vocabulary) + 1
            users = user_tower.rows(log.user_ids)
            train_users, train_items = user_tower.rows(train.user_ids), item_tower.rows(train.item_ids)
            # A user's held-out events are positives too: never count them as validation negatives.
            sampler = NegativeSampler(
                n_rows,
                known_users=np.concatenate([train_users, users]),
                known_items=np.concatenate([train_items, item_tower.rows(log.item_ids)]),
                counts=_positive_counts(train_items, n_rows),
                kind=config.negative_sampling,
            )
            self.per_event = config.negatives
            negatives, self.valid = sampler.sample(users, config.negatives, rng)
            self.negative_users = tf.constant(np.repeat(users, config.negatives))
            self.negatives = tf.constant(negatives)

    def measure(self, model: _MLP, record: dict[str, float]) -> float:
        users = self.user_tower.from_rows(self.user_rows)
        scores = np.asarray(model(tf.concat([users, self.item_tower.from_rows(self.item_rows)], axis=1)).numpy())
        if not self.implicit:
            assert self.log.ratings is not None
            error = rmse_or_nan(scores, self.log.ratings)
            record["validation_rmse"] = error
            return -error
        negative_pairs = tf.concat(
            [self.user_tower.from_rows(self.negative_users), self.item_tower.from_rows(self.negatives)], axis=1
        )
        negative = np.asarray(model(negative_pairs).numpy()).reshape(-1, self.per_event)
        auc = sampled_auc(scores, negative, self.valid.reshape(-1, self.per_event))
        logits = np.concatenate([scores, negative[self.valid.reshape(-1, self.per_event)]])
        labels = np.concatenate([np.ones(len(scores)), np.zeros(len(logits) - len(scores))])
        record["validation_auc"] = auc
        record["validation_log_loss"] = binary_log_loss(logits, labels)
        return auc
