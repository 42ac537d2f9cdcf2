"""The one place training imports TensorFlow and Keras (extra: ``tensorflow``)."""

from __future__ import annotations

from typing import Any

from two_stage_rec._optional import require

__all__ = ["keras", "seed_everything", "tf"]

tf: Any = require("tensorflow", extra="tensorflow")
keras: Any = require("keras", extra="tensorflow")


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and TensorFlow and make TF ops deterministic.

    Op determinism is process-wide (TensorFlow offers no narrower switch); it
    costs little on CPU and makes the same seed give the same weights.
    """
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
