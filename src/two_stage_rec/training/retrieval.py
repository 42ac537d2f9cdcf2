"""Train the two towers with an in-batch softmax (each batch's other items are the negatives)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from two_stage_rec.datasets.interactions import Interactions
from two_stage_rec.training._tf import keras, tf
from two_stage_rec.training.config import RetrievalConfig
from two_stage_rec.training.data import event_weights
from two_stage_rec.training.metrics import factorized_top_k_accuracy
from two_stage_rec.training.progress import EpochProgress
from two_stage_rec.training.towers import Tower

__all__ = ["RetrievalRun", "in_batch_softmax_loss", "log_item_frequency", "train_retrieval", "validation_accuracy"]


@dataclass(frozen=True, slots=True)
class RetrievalRun:
    """Trained towers and how the training went."""

    user_tower: Tower
    item_tower: Tower
    epochs_run: int
    best_epoch: int
    history: list[dict[str, float]]
    wall_time_s: float
    fit_ratings: int


def log_item_frequency(item_rows: npt.NDArray[np.int64], n_rows: int) -> npt.NDArray[np.float32]:
    """log q(item) of sampling an item as a batch negative (items never seen count once)."""
    counts = np.bincount(item_rows, minlength=n_rows).astype(np.float64)
    log_q: npt.NDArray[np.float32] = np.log(np.maximum(counts, 1.0) / counts.sum()).astype(np.float32)
    return log_q


def in_batch_softmax_loss(
    users: Any, items: Any, item_rows: Any, log_q: Any, config: RetrievalConfig, weights: Any = None
) -> Any:
    """Mean softmax cross-entropy of each row's own item against the batch's other items.

    Args:
        users: float32 tensor (b, d) of user vectors; row i with ``items`` row i is a positive pair.
        items: float32 tensor (b, d) of item vectors.
        item_rows: int64 (b,) item rows (to find duplicates and their log q).
        log_q: float32 (n_rows,) log sampling frequency per item row.
        config: temperature, popularity correction, accidental hits, l2.
        weights: float32 (b,) per-row weights of the cross-entropy (mean 1 over
            the log, see :func:`~two_stage_rec.training.data.event_weights`),
            or None for equal weights.
    """
    logits = tf.matmul(users, items, transpose_b=True) / config.temperature
    if config.popularity_correction:
        logits -= tf.gather(log_q, item_rows)[tf.newaxis, :]
    size = tf.shape(item_rows)[0]
    if config.remove_accidental_hits:
        # Another row's positive may be this row's positive too: not a negative.
        same = tf.equal(item_rows[:, tf.newaxis], item_rows[tf.newaxis, :])
        same = tf.logical_and(same, tf.logical_not(tf.eye(size, dtype=tf.bool)))
        logits = tf.where(same, tf.constant(-1e9, logits.dtype), logits)
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.range(size), logits=logits)
    loss = tf.reduce_mean(cross_entropy if weights is None else weights * cross_entropy)
    if config.l2 > 0:
        penalty = tf.reduce_sum(tf.square(users), axis=1) + tf.reduce_sum(tf.square(items), axis=1)
        loss += config.l2 * tf.reduce_mean(penalty)
    return loss


def _make_step(user_tower: Tower, item_tower: Tower, config: RetrievalConfig, log_q: Any) -> Any:
    """A compiled step ``(user_rows, item_rows, weights) -> loss``; weights (b,) float32."""
    optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
    variables = user_tower.trainable_variables + item_tower.trainable_variables
    optimizer.build(variables)
    rows = tf.TensorSpec([None], tf.int64)

    def step(user_rows: Any, item_rows: Any, weights: Any) -> Any:
        with tf.GradientTape() as tape:
            users = user_tower.from_rows(user_rows)
            items = item_tower.from_rows(item_rows)
            loss = in_batch_softmax_loss(users, items, item_rows, log_q, config, weights)
        gradients = tape.gradient(loss, variables)
        optimizer.apply(gradients, variables)
        return loss

    def unweighted(user_rows: Any, item_rows: Any) -> Any:
        return step(user_rows, item_rows, None)

    return (
        tf.function(step, input_signature=[rows, rows, tf.TensorSpec([None], tf.float32)]),
        tf.function(unweighted, input_signature=[rows, rows]),
    )


def validation_accuracy(user_tower: Tower, item_tower: Tower, pairs: Interactions, k: int) -> float:
    """Top-k accuracy of ``pairs`` over every item the item tower knows."""
    users = user_tower.table()[user_tower.rows(pairs.user_ids)]
    items = item_tower.table()[1:]  # the catalogue: known items only
    item_rows = item_tower.rows(pairs.item_ids) - 1  # -1: an unknown item never counts as a hit
    known = item_rows >= 0
    result = factorized_top_k_accuracy(users[known], items, item_rows[known], (k,))
    return result[k] * float(known.mean())


def train_retrieval(
    train: Interactions,
    *,
    user_tower: Tower,
    item_tower: Tower,
    config: RetrievalConfig,
    rng: np.random.Generator,
    validation: Interactions | None = None,
    progress: bool = True,
) -> RetrievalRun:
    """Fit the towers; keep the epoch with the best validation top-k accuracy.

    Args:
        train: events to learn from (each one is a positive pair; a rating,
            when there is one, is not used: retrieval learns what users
            interact with). Weights, when the log has them, weight each
            event's cross-entropy.
        user_tower: a freshly built user tower, updated in place.
        item_tower: a freshly built item tower, updated in place.
        config: optimisation settings.
        rng: drives the batch order.
        validation: held-out pairs for early stopping, or None to run all epochs.
        progress: show a tqdm bar per epoch.
    """
    started = time.perf_counter()
    user_rows = user_tower.rows(train.user_ids)
    item_rows = item_tower.rows(train.item_ids)
    weights = event_weights(train)
    log_q = tf.constant(log_item_frequency(item_rows, len(item_tower.vocabulary) + 1))
    weighted_step, unweighted_step = _make_step(user_tower, item_tower, config, log_q)
    history: list[dict[str, float]] = []
    best_score, best_epoch, best_weights = -1.0, 0, None
    epochs_run = 0
    with EpochProgress("retrieval", config.epochs, enabled=progress) as bar:
        for epoch in range(1, config.epochs + 1):
            epochs_run = epoch
            order = rng.permutation(len(train))
            losses = []
            for start in range(0, len(order), config.batch_size):
                batch = order[start : start + config.batch_size]
                users, items = tf.constant(user_rows[batch]), tf.constant(item_rows[batch])
                # Two compiled steps, so that a log without weights runs exactly the unweighted graph.
                loss = (
                    unweighted_step(users, items)
                    if weights is None
                    else weighted_step(users, items, tf.constant(weights[batch]))
                )
                losses.append(float(loss))
            record = {"epoch": float(epoch), "loss": float(np.mean(losses))}
            if validation is not None:
                score = validation_accuracy(user_tower, item_tower, validation, config.validation_k)
                record[f"validation_top_{config.validation_k}_accuracy"] = score
                if score > best_score:
                    best_score, best_epoch = score, epoch
                    best_weights = (user_tower.get_weights(), item_tower.get_weights())
            history.append(record)
            bar.update(record)
            if validation is not None and epoch - best_epoch >= config.patience:
                break
    if best_weights is not None:
        user_tower.set_weights(best_weights[0])
        item_tower.set_weights(best_weights[1])
    else:
        best_epoch = epochs_run
    return RetrievalRun(
        user_tower=user_tower,
        item_tower=item_tower,
        epochs_run=epochs_run,
        best_epoch=best_epoch,
        history=history,
        wall_time_s=time.perf_counter() - started,
        fit_ratings=len(train),
    )
