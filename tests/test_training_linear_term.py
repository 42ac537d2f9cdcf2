"""The scoring model's linear term: folded into plain ReLU layers, the numpy path computes what Keras does."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from two_stage_rec.rerankers.mlp import MLPReranker
from two_stage_rec.training import ScoringConfig, TrainingConfig, export_models, train_models
from two_stage_rec.training._linear_term import fold_linear_term

tf = pytest.importorskip("tensorflow", reason="the Keras side needs the 'tensorflow' extra")


def _mlp(rng: np.random.Generator, widths: list[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    weights = [rng.normal(size=(a, b)).astype(np.float32) for a, b in itertools.pairwise(widths)]
    biases = [rng.normal(size=b).astype(np.float32) for b in widths[1:]]
    return weights, biases


def _forward(weights: list[np.ndarray], biases: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    for index, (w, b) in enumerate(zip(weights, biases, strict=True)):
        x = x.astype(np.float64) @ w + b
        if index < len(weights) - 1:
            x = np.maximum(x, 0.0)
    return x[:, 0]


@pytest.mark.parametrize("widths", [[9, 1], [9, 5, 1], [9, 6, 4, 1]])
def test_folded_layers_compute_the_mlp_plus_the_linear_term(widths: list[int]) -> None:
    rng = np.random.default_rng(len(widths))
    weights, biases = _mlp(rng, widths)
    linear = rng.normal(size=widths[0]).astype(np.float32)
    x = rng.normal(size=(50, widths[0])).astype(np.float32)
    folded_w, folded_b = fold_linear_term(weights, biases, linear)
    # Hidden layers grow by the two carry units; the input and output widths do not change.
    assert [w.shape for w in folded_w[:-1]] == [
        (a + 2 * (i > 0), b + 2) for i, (a, b) in enumerate(itertools.pairwise(widths[:-1]))
    ]
    assert folded_w[0].shape[0] == widths[0] and folded_w[-1].shape[1] == 1
    expected = _forward(weights, biases, x) + x.astype(np.float64) @ linear
    np.testing.assert_allclose(_forward(folded_w, folded_b, x), expected, rtol=1e-5, atol=1e-5)
    reranker = MLPReranker(folded_w, folded_b, user_dimension=3, features="concat_product")
    np.testing.assert_allclose(
        reranker.score(x[:, :3], x[:, 3:6]),
        _forward(folded_w, folded_b, np.concatenate([x[:, :6], x[:, :3] * x[:, 3:6]], axis=1)),
        rtol=1e-5,
        atol=1e-5,
    )


def test_a_zero_term_leaves_the_scores_unchanged() -> None:
    rng = np.random.default_rng(0)
    weights, biases = _mlp(rng, [6, 4, 1])
    x = rng.normal(size=(20, 6)).astype(np.float32)
    folded_w, folded_b = fold_linear_term(weights, biases, np.zeros(6))
    np.testing.assert_allclose(_forward(folded_w, folded_b, x), _forward(weights, biases, x), rtol=1e-6)


def test_a_term_of_the_wrong_width_is_rejected() -> None:
    weights, biases = _mlp(np.random.default_rng(0), [6, 4, 1])
    with pytest.raises(ValueError, match="width 6"):
        fold_linear_term(weights, biases, np.zeros(5))
    with pytest.raises(ValueError, match="one bias per weight"):
        fold_linear_term(weights, biases[:1], np.zeros(6))


@pytest.mark.parametrize("features", ["concat", "concat_product"])
@pytest.mark.parametrize("hidden", [(), (8, 4)])
def test_the_numpy_export_equals_the_keras_model(features: str, hidden: tuple[int, ...]) -> None:
    from two_stage_rec.training.scoring import _MLP

    config = ScoringConfig(hidden_layers=hidden, features=features, linear_term=True)  # type: ignore[arg-type]
    model = _MLP(5, 5, config, initial_output=3.0)
    rng = np.random.default_rng(1)
    # The term starts at zero; give it (and the MLP) weights that matter.
    for variable in model.trainable_variables:
        variable.assign(rng.normal(size=variable.shape).astype(np.float32))
    assert model.linear is not None and float(np.abs(model.linear.kernel.numpy()).sum()) > 0
    pairs = rng.normal(size=(64, 10)).astype(np.float32)
    keras_scores = np.asarray(model(tf.constant(pairs)).numpy())
    reranker = model.reranker(features)
    np.testing.assert_allclose(reranker.forward(pairs), keras_scores, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(reranker.score(pairs[:, :5], pairs[:, 5:]), keras_scores, rtol=1e-4, atol=1e-4)
    assert [w.shape[1] for w, _ in reranker.layers()] == [*(width + 2 for width in hidden), 1]


def test_a_trained_model_with_the_term_exports_and_its_saved_model_agrees(tmp_path: Path) -> None:
    from test_training import CATALOGUE, TINY, synthetic_log

    config = TrainingConfig(
        retrieval=TINY.retrieval,
        scoring=ScoringConfig(hidden_layers=(8,), epochs=3, batch_size=64, learning_rate=0.01, linear_term=True),
        seed=3,
        eval_k=TINY.eval_k,
    )
    models = train_models(
        synthetic_log(1200, 0), test=synthetic_log(300, 1), items=CATALOGUE, config=config, progress=False
    )
    assert models.report.metrics["scoring/test/rmse"] < 1.5
    assert [w.shape[1] for w, _ in models.reranker.layers()] == [10, 1]
    folder = export_models(models, tmp_path / "models")
    loaded = MLPReranker.load(folder / "scoring_mlp.npz")
    pairs = np.concatenate([models.user_vectors[:7], models.item_vectors[:7]], axis=1)
    np.testing.assert_array_equal(loaded.forward(pairs), models.reranker.forward(pairs))
    module = tf.saved_model.load(str(folder / "scoring_model"))
    np.testing.assert_allclose(
        np.asarray(module(tf.constant(pairs)))[:, 0], models.reranker.forward(pairs), rtol=1e-5, atol=1e-5
    )
