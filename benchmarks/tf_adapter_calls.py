"""Per-call latency of the TensorFlow adapters: one batched reranker call vs one call per candidate.

The notebook reranks a user's 50 candidates with two TensorFlow calls per
candidate (``movie_model`` on one title, then ``scoring_model`` on one
concatenated row). :class:`SavedModelReranker` scores all 50 pairs in one
call. This script measures, in one run with the cases interleaved (so that
machine noise hits all of them alike):

* ``reranker_batch_50``: ``SavedModelReranker.score`` on (50, 32) + (50, 32);
* ``reranker_single_x50``: 50 ``score`` calls of one pair each (a whole user);
* ``reranker_single_1``: one ``score`` call on one pair;
* ``raw_batch_50`` / ``raw_single_1``: the loaded model itself called on
  ``tf.concat([u, m], axis=1)`` (the adapter's overhead is the difference);
* ``notebook_loop_50``: the notebook's loop, ``item_model(np.array([id]))`` and
  ``scoring_model(tf.concat([u, m], axis=1))`` per candidate (user embedded once);
* ``embed_1`` / ``embed_50``: ``SavedModelEmbedder.embed`` on 1 and 50 item ids.

Models: by default, TFRS-shaped models of MovieLens-100K's size built here in a
temporary directory with tf-keras (Keras 2, what TensorFlow Recommenders uses;
Keras 3 when tf-keras is missing): towers StringLookup + Embedding(32) over
1,682 item ids, scoring MLP 64 -> 256 -> 64 -> 1 as in the TFRS ranking
tutorial. Weights are random; latency does not depend on them. With
``--models DIR``, the trained ``DIR/item_model`` and ``DIR/scoring_model`` are used.

Usage::

    .venv/bin/python benchmarks/tf_adapter_calls.py [--repeats 300] [--models models/]

Writes ``benchmarks/results/tf_adapter_calls.json``: median, p10 and p90 in
milliseconds per case, and ratios of medians. Absolute numbers depend on the
machine and its load: quote medians and ratios from one run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from two_stage_rec.adapters.tensorflow import SavedModelEmbedder, SavedModelReranker

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import display_path

RESULTS = Path(__file__).resolve().parent / "results" / "tf_adapter_calls.json"
N_ITEMS, DIMENSION, CANDIDATES, SEED = 1682, 32, 50, 0


def build_models(root: Path) -> tuple[Path, Path, str]:
    """An item tower and a scoring MLP of the TFRS tutorial's shape; returns their paths and the route."""
    vocabulary = [str(i) for i in range(1, N_ITEMS + 1)]
    if importlib.util.find_spec("tf_keras") is not None:
        import tensorflow as tf
        import tf_keras

        tf_keras.utils.set_random_seed(SEED)
        tower = tf_keras.Sequential(
            [tf_keras.layers.StringLookup(vocabulary=vocabulary), tf_keras.layers.Embedding(N_ITEMS + 1, DIMENSION)]
        )
        tower(np.array(["1"]))
        tower.save(str(root / "item_model"))
        scoring = tf_keras.Sequential(
            [
                tf_keras.layers.Dense(256, activation="relu"),
                tf_keras.layers.Dense(64, activation="relu"),
                tf_keras.layers.Dense(1),
            ]
        )
        scoring(tf.zeros((1, 2 * DIMENSION)))
        scoring.save(str(root / "scoring_model"))
        return root / "item_model", root / "scoring_model", "tf_keras model.save (SavedModel)"

    import keras

    keras.utils.set_random_seed(SEED)
    keras_tower = keras.Sequential(
        [
            keras.Input(shape=(), dtype="string"),
            keras.layers.StringLookup(vocabulary=vocabulary),
            keras.layers.Embedding(N_ITEMS + 1, DIMENSION),
        ]
    )
    keras_tower.export(str(root / "item_model"), verbose=False)
    keras_scoring = keras.Sequential(
        [
            keras.Input((2 * DIMENSION,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    keras_scoring.export(str(root / "scoring_model"), verbose=False)
    return root / "item_model", root / "scoring_model", "keras 3 model.export"


def summarize(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1e3
    return {
        "median_ms": round(float(np.median(ms)), 4),
        "p10_ms": round(float(np.percentile(ms, 10)), 4),
        "p90_ms": round(float(np.percentile(ms, 90)), 4),
    }


def measure(cases: dict[str, Callable[[], Any]], repeats: int, warmup: int) -> dict[str, dict[str, float]]:
    """Time every case ``repeats`` times, interleaved in a shuffled order each round."""
    for case in cases.values():
        for _ in range(warmup):
            case()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases)
    rng = np.random.default_rng(SEED)
    for _ in range(repeats):
        rng.shuffle(order)
        for name in order:
            start = time.perf_counter()
            cases[name]()
            samples[name].append(time.perf_counter() - start)
    return {name: summarize(times) for name, times in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--models", type=Path, default=None, help="a models/ directory from training")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    import tensorflow as tf

    with tempfile.TemporaryDirectory() as scratch:
        if args.models is not None:
            item_path, scoring_path = args.models / "item_model", args.models / "scoring_model"
            route = f"trained models from {display_path(args.models)}"
        else:
            item_path, scoring_path, route = build_models(Path(scratch))

        embedder = SavedModelEmbedder(item_path)
        reranker = SavedModelReranker(scoring_path)
        loaded_items = tf.saved_model.load(str(item_path))
        loaded_scoring = tf.saved_model.load(str(scoring_path))
        item_model = loaded_items if callable(loaded_items) else loaded_items.serve
        scoring_model = loaded_scoring if callable(loaded_scoring) else loaded_scoring.serve

        rng = np.random.default_rng(SEED)
        item_ids = [str(i) for i in rng.choice(np.arange(1, N_ITEMS + 1), CANDIDATES, replace=False)]
        user = rng.normal(size=(1, embedder.dimension)).astype(np.float32)
        users = np.repeat(user, CANDIDATES, axis=0)
        items = embedder.embed(item_ids)
        pairs = tf.concat([users, items], axis=1)
        one_pair = tf.concat([users[:1], items[:1]], axis=1)

        def notebook_loop() -> None:
            for item_id in item_ids:
                movie = item_model(np.array([item_id]))
                scoring_model(tf.concat([user, movie], axis=1))

        def reranker_single_x50() -> None:
            for i in range(CANDIDATES):
                reranker.score(users[i : i + 1], items[i : i + 1])

        # The batched call must agree with the per-row calls before its speed means anything.
        batched = reranker.score(users, items)
        per_row = np.array([reranker.score(users[i : i + 1], items[i : i + 1])[0] for i in range(CANDIDATES)])
        max_abs_diff = float(np.max(np.abs(batched - per_row)))

        cases: dict[str, Callable[[], Any]] = {
            "reranker_batch_50": lambda: reranker.score(users, items),
            "reranker_single_x50": reranker_single_x50,
            "reranker_single_1": lambda: reranker.score(users[:1], items[:1]),
            "raw_batch_50": lambda: scoring_model(pairs),
            "raw_single_1": lambda: scoring_model(one_pair),
            "notebook_loop_50": notebook_loop,
            "embed_1": lambda: embedder.embed(item_ids[:1]),
            "embed_50": lambda: embedder.embed(item_ids),
        }
        timings = measure(cases, args.repeats, args.warmup)

    def ratio(numerator: str, denominator: str) -> float:
        return round(timings[numerator]["median_ms"] / timings[denominator]["median_ms"], 2)

    results: dict[str, Any] = {
        "description": "median/p10/p90 wall time per case in ms; cases interleaved in one run",
        "environment": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "tensorflow": tf.__version__,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        },
        "config": {
            "models": route,
            "candidates": CANDIDATES,
            "dimension": embedder.dimension,
            "repeats": args.repeats,
            "warmup": args.warmup,
        },
        "batched_vs_per_row_max_abs_diff": max_abs_diff,
        "timings": timings,
        "ratios": {
            "reranker_single_x50_over_batch_50": ratio("reranker_single_x50", "reranker_batch_50"),
            "notebook_loop_50_over_reranker_batch_50": ratio("notebook_loop_50", "reranker_batch_50"),
            "reranker_batch_50_over_single_1": ratio("reranker_batch_50", "reranker_single_1"),
            "reranker_batch_50_over_raw_batch_50": ratio("reranker_batch_50", "raw_batch_50"),
            "embed_50_over_embed_1": ratio("embed_50", "embed_1"),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
