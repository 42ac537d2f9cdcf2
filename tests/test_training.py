"""Training, export and the numpy serving path, on tiny synthetic logs (seconds).

Explicit feedback (ratings) and implicit feedback (the same events without
ratings, or with weights) go through the same ``train_models``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from two_stage_rec.bundle import (
    ITEM_EMBEDDINGS,
    ITEM_MODEL,
    SCORING_MLP,
    SCORING_MODEL,
    USER_EMBEDDINGS,
    USER_MODEL,
    load_models,
)
from two_stage_rec.datasets import Interactions
from two_stage_rec.errors import (
    DimensionMismatchError,
    EmptyBatchError,
    InvalidInputError,
    ModelError,
    UnknownKeyError,
)
from two_stage_rec.recommender import Recommender
from two_stage_rec.rerankers.mlp import MLPReranker
from two_stage_rec.stores.memory import InMemoryVectorStore
from two_stage_rec.training import (
    RetrievalConfig,
    ScoringConfig,
    TrainedModels,
    TrainingConfig,
    TrainingReport,
    export_models,
    factorized_top_k_accuracy,
    sampled_auc,
    train_models,
)
from two_stage_rec.training.data import NegativeSampler, event_weights
from two_stage_rec.training.metrics import binary_log_loss

tf = pytest.importorskip("tensorflow", reason="training needs the 'tensorflow' extra")

N_USERS, N_ITEMS = 40, 60
NUMPY_FILES = [USER_EMBEDDINGS, ITEM_EMBEDDINGS, SCORING_MLP]
SAVED_MODELS = [USER_MODEL, ITEM_MODEL, SCORING_MODEL]


def missing_artifacts(path: Path, names: list[str]) -> list[str]:
    return [name for name in names if not (path / name).exists()]


CATALOGUE = [str(i) for i in range(1, N_ITEMS + 1)]  # item "60" is never rated: catalogue-only


def synthetic_log(n: int, seed: int) -> Interactions:
    """Users like items of their own group (id mod 3): a pattern a tiny model can learn.

    Integer ids, which become the strings "1".."40" and "1".."59" (the export
    tests below ask the SavedModels for user "12" and item "50").
    """
    rng = np.random.default_rng(seed)
    users = rng.integers(1, N_USERS + 1, n)
    same_group = rng.random(n) < 0.8
    items = rng.integers(1, N_ITEMS, n)  # 1..59
    shift = (users - items) % 3
    items = np.where(same_group, np.clip(items + shift, 1, N_ITEMS - 1), items)
    ratings = np.where((users - items) % 3 == 0, 4.5, 2.0) + rng.normal(0, 0.3, n)
    return Interactions.from_arrays(user_ids=users, item_ids=items, ratings=ratings.astype(np.float32))


def opaque_implicit_log(n: int, seed: int) -> Interactions:
    """The same pattern as implicit feedback with opaque string ids ("u-12", "sku-50"), no ratings."""
    log = synthetic_log(n, seed)
    return Interactions.from_arrays(
        user_ids=np.char.add("u-", log.user_ids), item_ids=np.char.add("sku-", log.item_ids)
    )


OPAQUE_CATALOGUE = [f"sku-{i}" for i in range(1, N_ITEMS + 1)]


TINY = TrainingConfig(
    retrieval=RetrievalConfig(embedding_dim=8, output_dim=4, epochs=3, batch_size=64, learning_rate=0.02),
    scoring=ScoringConfig(hidden_layers=(8,), epochs=4, batch_size=64, learning_rate=0.01),
    seed=7,
    eval_k=(1, 10),
)


def train_tiny(seed: int = 7, **overrides: object) -> TrainedModels:
    config = TrainingConfig(retrieval=TINY.retrieval, scoring=TINY.scoring, seed=seed, eval_k=TINY.eval_k)
    return train_models(
        synthetic_log(1200, 0),
        test=synthetic_log(300, 1),
        items=CATALOGUE,
        config=config,
        progress=False,
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def models() -> TrainedModels:
    return train_tiny()


@pytest.fixture(scope="module")
def exported(models: TrainedModels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_models(models, tmp_path_factory.mktemp("models"))


# ------------------------------------------------------------------ training


def test_shapes_and_vocabularies(models: TrainedModels) -> None:
    assert models.user_vectors.shape == (N_USERS, 4) and models.user_vectors.dtype == np.float32
    assert models.item_vectors.shape == (N_ITEMS, 4)
    assert models.item_keys[:N_ITEMS] == CATALOGUE  # the catalogue order is kept
    assert models.user_unknown.shape == (4,) and models.item_unknown.shape == (4,)
    assert (models.reranker.user_dimension, models.reranker.item_dimension) == (4, 4)
    assert np.isfinite(models.user_vectors).all() and np.isfinite(models.item_vectors).all()


def test_report_holds_metrics_epochs_and_circumstances(models: TrainedModels) -> None:
    report = models.report
    for split in ("train", "test"):
        for k in (1, 10):
            assert 0.0 <= report.metrics[f"retrieval/{split}/top_{k}_accuracy"] <= 1.0
        assert report.metrics[f"scoring/{split}/rmse"] > 0
    assert report.metrics["retrieval/test/top_1_accuracy"] <= report.metrics["retrieval/test/top_10_accuracy"]
    assert 1 <= report.epochs["retrieval_best"] <= report.epochs["retrieval"] <= 3
    assert 1 <= report.epochs["scoring_best"] <= report.epochs["scoring"] <= 4
    assert set(report.wall_time_s) >= {"retrieval", "scoring"}
    assert report.seed == 7 and report.config["retrieval"]["output_dim"] == 4
    assert report.versions["tensorflow"] == tf.__version__
    assert report.data["train_ratings"] == 1200 and report.data["test_ratings"] == 300
    assert len(report.history["retrieval"]) == report.epochs["retrieval"]


def test_the_model_learns_the_pattern(models: TrainedModels) -> None:
    # Better than chance: top-10 of 60 items by chance is 1/6; the group pattern makes it much easier.
    assert models.report.metrics["retrieval/train/top_10_accuracy"] > 0.25
    # The ratings have std ~1.2 around their mean; the MLP must beat predicting the mean.
    ratings = synthetic_log(300, 1).ratings
    assert ratings is not None
    assert models.report.metrics["scoring/test/rmse"] < float(ratings.std())


def test_same_seed_same_weights_and_metrics(models: TrainedModels) -> None:
    again = train_tiny()
    np.testing.assert_array_equal(again.user_vectors, models.user_vectors)
    np.testing.assert_array_equal(again.item_vectors, models.item_vectors)
    for (w1, b1), (w2, b2) in zip(again.reranker.layers(), models.reranker.layers(), strict=True):
        np.testing.assert_array_equal(w1, w2)
        np.testing.assert_array_equal(b1, b2)
    assert again.report.metrics == models.report.metrics


def test_another_seed_gives_other_weights(models: TrainedModels) -> None:
    other = train_tiny(seed=8)
    assert not np.array_equal(other.user_vectors, models.user_vectors)


def test_frozen_towers_are_left_as_retrieval_trained_them(models: TrainedModels) -> None:
    def frozen(scoring_epochs: int) -> TrainedModels:
        config = TrainingConfig(
            retrieval=TINY.retrieval,
            scoring=ScoringConfig(hidden_layers=(8,), epochs=scoring_epochs, batch_size=64, fine_tune_towers=False),
            seed=7,
        )
        return train_models(synthetic_log(1200, 0), items=CATALOGUE, config=config, progress=False)

    one, three = frozen(1), frozen(3)
    np.testing.assert_array_equal(one.item_vectors, three.item_vectors)  # the scoring stage left them alone
    assert not np.array_equal(one.item_vectors, models.item_vectors)  # fine-tuning (the default) moves them
    assert not np.array_equal(one.reranker.layers()[0][0], three.reranker.layers()[0][0])


def test_joint_training_without_a_retrieval_stage() -> None:
    config = TrainingConfig(
        retrieval=RetrievalConfig(embedding_dim=8, output_dim=4, epochs=0),
        scoring=ScoringConfig(hidden_layers=(8,), epochs=2, batch_size=64, learning_rate_schedule="constant"),
    )
    models = train_models(synthetic_log(1200, 0), test=synthetic_log(300, 1), config=config, progress=False)
    assert models.report.epochs["retrieval"] == 0 and models.report.history["retrieval"] == []
    assert "validation_top_100_accuracy" in models.report.history["scoring"][0]
    with pytest.raises(InvalidInputError, match="untrained"):
        TrainingConfig(retrieval=RetrievalConfig(epochs=0), scoring=ScoringConfig(fine_tune_towers=False))


def test_side_features_change_the_towers() -> None:
    features = {str(i): np.eye(3, dtype=np.float32)[i % 3] for i in range(1, N_ITEMS + 1)}
    config = TrainingConfig(
        retrieval=RetrievalConfig(
            embedding_dim=8, output_dim=4, epochs=2, batch_size=64, use_side_features=True, validation_fraction=0
        ),
        scoring=ScoringConfig(hidden_layers=(4,), epochs=1, validation_fraction=0),
        seed=3,
    )
    with_features = train_models(
        synthetic_log(600, 0), items=CATALOGUE, item_features=features, config=config, progress=False
    )
    without = train_models(synthetic_log(600, 0), items=CATALOGUE, config=config, progress=False)
    assert with_features.item_vectors.shape == without.item_vectors.shape
    assert not np.allclose(with_features.item_vectors, without.item_vectors)
    assert with_features.report.epochs["retrieval"] == 2  # no validation slice: every epoch runs


def test_tower_table_equals_the_keras_tower_on_strings() -> None:
    from two_stage_rec.training.towers import Tower

    features = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    config = RetrievalConfig(embedding_dim=6, output_dim=3, hidden_layers=(5,))
    tower = Tower(["a", "b", "c"], config, features=features, name="t")
    keys = np.array(["c", "a", "zzz", "b"])
    expected = tower(tf.constant(keys)).numpy()
    np.testing.assert_allclose(tower.table()[tower.rows(keys)], expected, atol=1e-5)
    np.testing.assert_array_equal(tower.rows(keys), [3, 1, 0, 2])  # unknown -> row 0, as StringLookup


class LooksLikeALog:
    """The old duck-typed rating log: arrays, but not an Interactions."""

    user_ids = np.array([1, 2])
    item_ids = np.array([1, 2])
    ratings = np.array([3.0, 4.0], np.float32)


def test_bad_input_is_rejected_before_training() -> None:
    empty = Interactions.from_arrays(user_ids=np.array([], str), item_ids=np.array([], str))
    with pytest.raises(EmptyBatchError):
        train_models(empty, progress=False)
    with pytest.raises(EmptyBatchError, match="test"):
        train_models(synthetic_log(10, 0), test=empty, progress=False)
    with pytest.raises(InvalidInputError, match=r"Interactions\.from_arrays"):
        train_models(LooksLikeALog(), progress=False)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="duplicates"):
        train_models(synthetic_log(10, 0), items=["1", "1"], progress=False)


@pytest.mark.parametrize(
    "make",
    [
        lambda: RetrievalConfig(batch_size=0),
        lambda: RetrievalConfig(epochs=-1),
        lambda: ScoringConfig(retrieval_weight=-1.0),
        lambda: ScoringConfig(dropout=1.0),
        lambda: ScoringConfig(learning_rate_schedule="step"),  # type: ignore[arg-type]
        lambda: RetrievalConfig(temperature=-1.0),
        lambda: RetrievalConfig(validation_fraction=1.0),
        lambda: ScoringConfig(hidden_layers=(0,)),
        lambda: ScoringConfig(features="dot"),  # type: ignore[arg-type]
        lambda: TrainingConfig(eval_k=(0,)),
        lambda: ScoringConfig(negatives=0),
        lambda: ScoringConfig(negative_sampling="hard"),  # type: ignore[arg-type]
    ],
)
def test_bad_config_is_rejected(make: object) -> None:
    with pytest.raises(InvalidInputError):
        make()  # type: ignore[operator]


# ------------------------------------------------------------------ implicit feedback and weights


def train_implicit(log: Interactions | None = None, **scoring: object) -> TrainedModels:
    config = TrainingConfig(
        retrieval=TINY.retrieval,
        scoring=ScoringConfig(hidden_layers=(8,), epochs=4, batch_size=64, learning_rate=0.01, **scoring),  # type: ignore[arg-type]
        seed=7,
        eval_k=TINY.eval_k,
    )
    return train_models(
        opaque_implicit_log(1200, 0) if log is None else log,
        test=opaque_implicit_log(300, 1),
        items=OPAQUE_CATALOGUE,
        config=config,
        progress=False,
    )


@pytest.fixture(scope="module")
def implicit_models() -> TrainedModels:
    return train_implicit()


def test_implicit_feedback_trains_a_relevance_model(implicit_models: TrainedModels) -> None:
    report = implicit_models.report
    assert report.feedback == "implicit"
    assert implicit_models.item_keys[:N_ITEMS] == OPAQUE_CATALOGUE
    assert not [key for key in report.metrics if key.endswith("rmse")]
    # Events against uniformly drawn items their user never touched: 0.5 is chance.
    assert report.metrics["scoring/test/auc"] > 0.75 and report.metrics["scoring/train/auc"] > 0.75
    assert report.metrics["retrieval/test/top_10_accuracy"] > 1 / 6  # chance: 10 of 60
    history = report.history["scoring"]
    assert {"validation_auc", "validation_log_loss"} <= set(history[0])
    assert history[report.epochs["scoring_best"] - 1]["validation_auc"] == max(h["validation_auc"] for h in history)


def test_the_relevance_model_outputs_logits_that_rank_a_users_group_first(implicit_models: TrainedModels) -> None:
    users = implicit_models.user_embedder().embed(["u-3"] * 59)
    items = implicit_models.item_embedder().embed([f"sku-{i}" for i in range(1, 60)])
    logits = implicit_models.reranker.score(users, items)
    in_group = np.array([(3 - i) % 3 == 0 for i in range(1, 60)])
    assert logits.dtype == np.float32 and (logits < 0).any()  # a logit, not a probability or a rating
    assert logits[in_group].mean() > logits[~in_group].mean()


def test_implicit_training_is_deterministic_and_sampling_changes_it(implicit_models: TrainedModels) -> None:
    again = train_implicit()
    np.testing.assert_array_equal(again.item_vectors, implicit_models.item_vectors)
    assert again.report.metrics == implicit_models.report.metrics
    popularity = train_implicit(negative_sampling="popularity")
    assert not np.array_equal(popularity.item_vectors, implicit_models.item_vectors)
    assert popularity.report.metrics["scoring/test/auc"] > 0.6


def test_equal_weights_train_like_no_weights_and_skewed_weights_do_not(implicit_models: TrainedModels) -> None:
    log = opaque_implicit_log(1200, 0)
    equal = Interactions.from_arrays(user_ids=log.user_ids, item_ids=log.item_ids, weights=np.full(len(log), 3.0))
    # Weights are scaled to mean 1, so equal weights are no weights (up to float rounding).
    np.testing.assert_allclose(train_implicit(equal).item_vectors, implicit_models.item_vectors, atol=1e-4)
    heavy = np.where(np.char.endswith(log.item_ids, "7"), 20.0, 1.0)
    skewed = Interactions.from_arrays(user_ids=log.user_ids, item_ids=log.item_ids, weights=heavy)
    assert not np.allclose(train_implicit(skewed).item_vectors, implicit_models.item_vectors, atol=1e-3)


def test_weights_also_weight_explicit_ratings(models: TrainedModels) -> None:
    log = synthetic_log(1200, 0)
    assert log.ratings is not None
    weighted = Interactions.from_arrays(
        user_ids=log.user_ids, item_ids=log.item_ids, ratings=log.ratings, weights=np.full(len(log), 2.0)
    )
    same = train_models(weighted, test=synthetic_log(300, 1), items=CATALOGUE, config=TINY, progress=False)
    np.testing.assert_allclose(same.user_vectors, models.user_vectors, atol=1e-4)
    assert same.report.metrics["scoring/test/rmse"] == pytest.approx(
        models.report.metrics["scoring/test/rmse"], abs=1e-3
    )


def test_an_explicit_model_measured_on_implicit_test_events_reports_no_rmse() -> None:
    config = TrainingConfig(retrieval=TINY.retrieval, scoring=ScoringConfig(hidden_layers=(4,), epochs=1), eval_k=(10,))
    models = train_models(
        synthetic_log(600, 0), test=synthetic_log(100, 1).without_ratings(), config=config, progress=False
    )
    assert "scoring/train/rmse" in models.report.metrics and "scoring/test/rmse" not in models.report.metrics
    assert models.report.feedback == "explicit"


def test_negative_sampler_skips_row_zero_and_flags_known_events() -> None:
    known_users = np.array([1, 1, 2], np.int64)
    known_items = np.array([1, 2, 3], np.int64)
    sampler = NegativeSampler(5, known_users=known_users, known_items=known_items, kind="uniform")
    items, valid = sampler.sample(np.array([1, 2], np.int64), 2000, np.random.default_rng(0))
    assert items.shape == valid.shape == (4000,) and items.min() == 1 and items.max() == 4
    first, second = items[:2000], items[2000:]  # user 1's draws, then user 2's
    np.testing.assert_array_equal(valid[:2000], ~np.isin(first, [1, 2]))
    np.testing.assert_array_equal(valid[2000:], second != 3)
    assert np.bincount(first, minlength=5)[1:].min() > 400  # uniform: about 500 each
    skewed = NegativeSampler(
        5, known_users=known_users, known_items=known_items, counts=np.array([0, 81, 1, 1, 0]), kind="popularity"
    )
    draws, _ = skewed.sample(np.array([0], np.int64), 4000, np.random.default_rng(1))
    share = np.bincount(draws, minlength=5)[1:] / 4000
    expected = np.array([81**0.75, 1, 1, 1]) / (81**0.75 + 3)  # count ** 0.75; an unseen item counts once
    np.testing.assert_allclose(share, expected, atol=0.03)


def test_event_weights_are_scaled_to_mean_one() -> None:
    log = Interactions.from_arrays(user_ids=["u-1", "u-2"], item_ids=["sku-1", "sku-1"], weights=[1.0, 3.0])
    weights = event_weights(log)
    assert weights is not None and weights.dtype == np.float32
    np.testing.assert_allclose(weights, np.array([0.5, 1.5]))
    assert event_weights(Interactions.from_arrays(user_ids=["u-1"], item_ids=["sku-1"])) is None


def test_sampled_auc_and_log_loss_match_hand_computed_values() -> None:
    positive = np.array([2.0, 0.0])
    negative = np.array([[1.0, 3.0, 2.0], [-1.0, -2.0, 5.0]])
    # event 0: beats 1, loses to 3, ties 2 -> 1.5 of 3; event 1: beats -1 and -2; the 5 is masked out
    valid = np.array([[True, True, True], [True, True, False]])
    assert sampled_auc(positive, negative, valid) == pytest.approx((1.5 + 2) / 5)
    assert np.isnan(sampled_auc(positive, negative, np.zeros((2, 3), bool)))
    logits, labels = np.array([0.0, 2.0, -1.0]), np.array([1.0, 1.0, 0.0])
    expected = np.mean([np.log(2.0), np.log1p(np.exp(-2.0)), np.log1p(np.exp(-1.0))])
    assert binary_log_loss(logits, labels) == pytest.approx(expected)
    assert binary_log_loss([1000.0], [0.0]) == pytest.approx(1000.0)  # no overflow


# ------------------------------------------------------------------ export


def test_export_writes_the_whole_layout(exported: Path) -> None:
    assert missing_artifacts(exported, NUMPY_FILES) == [] and missing_artifacts(exported, SAVED_MODELS) == []
    assert not [p for p in exported.iterdir() if p.name.startswith(".export-")]  # staging cleaned up
    report = json.loads((exported / "training_report.json").read_text())
    assert report["seed"] == 7 and "export" in report["wall_time_s"]
    assert TrainingReport.load(exported).metrics == report["metrics"]


def test_saved_models_are_callable_as_in_the_notebook(exported: Path, models: TrainedModels) -> None:
    user_model = tf.saved_model.load(str(exported / "user_model"))
    item_model = tf.saved_model.load(str(exported / "item_model"))
    scoring_model = tf.saved_model.load(str(exported / "scoring_model"))
    u = user_model(np.array(["12"]))
    m = item_model(np.array(["50"]))
    assert u.shape == (1, 4) and m.shape == (1, 4) and u.dtype == tf.float32
    assert scoring_model(tf.concat([u, m], axis=1)).shape == (1, 1)
    many = item_model(np.array(CATALOGUE))
    assert scoring_model(tf.concat([tf.repeat(u, N_ITEMS, axis=0), many], axis=1)).shape == (N_ITEMS, 1)
    # The serving signature exists too (loaders of Keras `model.export()` output use it).
    out = user_model.signatures["serving_default"](keys=tf.constant(["12"]))
    np.testing.assert_array_equal(next(iter(out.values())).numpy(), u.numpy())
    # An unknown id gets the tower's unknown-key vector, as a StringLookup tower would.
    np.testing.assert_allclose(user_model(np.array(["nobody"])).numpy()[0], models.user_unknown, atol=1e-6)


def test_numpy_path_reproduces_the_saved_models(exported: Path) -> None:
    loaded = load_models(exported, backend="numpy")
    user_model = tf.saved_model.load(str(exported / "user_model"))
    item_model = tf.saved_model.load(str(exported / "item_model"))
    scoring_model = tf.saved_model.load(str(exported / "scoring_model"))
    users = [str(u) for u in range(1, N_USERS + 1)]
    U = loaded.user_embedder.embed(users)
    V = loaded.item_embedder.embed(CATALOGUE)
    np.testing.assert_allclose(U, user_model(np.array(users)).numpy(), atol=1e-5)
    np.testing.assert_allclose(V, item_model(np.array(CATALOGUE)).numpy(), atol=1e-5)
    rows = np.random.default_rng(0).integers(0, [N_USERS, N_ITEMS], size=(500, 2))
    pairs_u, pairs_v = U[rows[:, 0]], V[rows[:, 1]]
    tf_scores = scoring_model(tf.concat([pairs_u, pairs_v], axis=1)).numpy()[:, 0]
    np.testing.assert_allclose(loaded.reranker.score(pairs_u, pairs_v), tf_scores, atol=1e-5)


def test_tensorflow_backend_loads_through_the_adapters(exported: Path) -> None:
    numpy_models = load_models(exported, backend="numpy")
    tf_models = load_models(exported, backend="tensorflow")
    keys = ["3", "17"]
    np.testing.assert_allclose(tf_models.user_embedder.embed(keys), numpy_models.user_embedder.embed(keys), atol=1e-5)
    U = numpy_models.user_embedder.embed(["3"] * 5)
    V = numpy_models.item_embedder.embed(["1", "2", "3", "4", "60"])
    np.testing.assert_allclose(tf_models.reranker.score(U, V), numpy_models.reranker.score(U, V), atol=1e-5)
    assert tf_models.report is not None and tf_models.report.seed == 7


def test_loaded_models_serve_a_recommender(exported: Path) -> None:
    loaded = load_models(exported)
    store = InMemoryVectorStore(dimension=loaded.item_embedder.dimension, metric="dotproduct")
    recommender = Recommender(
        user_embedder=loaded.user_embedder, item_embedder=loaded.item_embedder, store=store, reranker=loaded.reranker
    )
    recommender.index_items(CATALOGUE)
    reranked = recommender.recommend("5", k=5, candidates=20)
    plain = recommender.recommend("5", k=5, candidates=20, rerank=False)
    assert len(reranked) == 5 and {r.source for r in reranked} == {"reranked"}
    assert [r.score for r in reranked] == sorted((r.score for r in reranked), reverse=True)
    assert [r.retrieval_score for r in plain] == sorted((r.retrieval_score for r in plain), reverse=True)
    with pytest.raises(UnknownKeyError):
        loaded.user_embedder.embed(["nobody"])


def test_numpy_only_export_skips_saved_models(models: TrainedModels, tmp_path: Path) -> None:
    export_models(models, tmp_path, saved_models=False)
    assert missing_artifacts(tmp_path, NUMPY_FILES) == []
    assert missing_artifacts(tmp_path, SAVED_MODELS) == ["user_model", "item_model", "scoring_model"]
    assert load_models(tmp_path).report is not None


# ------------------------------------------------------------------ loading errors


def test_incomplete_directory_is_a_model_error(exported: Path, tmp_path: Path) -> None:
    copy = tmp_path / "models"
    shutil.copytree(exported, copy)
    (copy / "scoring_mlp.npz").unlink()
    shutil.rmtree(copy / "item_model")
    with pytest.raises(ModelError, match=r"missing scoring_mlp\.npz"):
        load_models(copy)
    with pytest.raises(ModelError, match="missing item_model"):
        load_models(copy, backend="tensorflow")
    with pytest.raises(ModelError, match="does not exist"):
        load_models(tmp_path / "absent")
    with pytest.raises(InvalidInputError):
        load_models(copy, backend="torch")  # type: ignore[arg-type]


def test_corrupt_files_are_model_errors(exported: Path, tmp_path: Path) -> None:
    copy = tmp_path / "models"
    shutil.copytree(exported, copy)
    (copy / "scoring_mlp.npz").write_bytes(b"not an npz")
    with pytest.raises(ModelError, match="scoring MLP"):
        load_models(copy)
    shutil.copy(exported / "scoring_mlp.npz", copy / "scoring_mlp.npz")
    (copy / "training_report.json").write_text("{}")
    with pytest.raises(ModelError, match="training report"):
        load_models(copy)


def test_mismatched_dimensions_are_rejected(exported: Path, tmp_path: Path) -> None:
    copy = tmp_path / "models"
    shutil.copytree(exported, copy)
    wide = MLPReranker([np.ones((10, 1), np.float32)], [np.zeros(1, np.float32)], user_dimension=5)
    wide.save(copy / "scoring_mlp.npz")
    with pytest.raises(DimensionMismatchError):
        load_models(copy)


# ------------------------------------------------------------------ numpy pieces


def test_mlp_reranker_matches_a_hand_computed_forward_pass(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w0, b0 = rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    w1, b1 = rng.normal(size=(3, 1)).astype(np.float32), rng.normal(size=1).astype(np.float32)
    reranker = MLPReranker([w0, w1], [b0, b1], user_dimension=2, features="concat_product")
    U, V = rng.normal(size=(7, 2)).astype(np.float32), rng.normal(size=(7, 2)).astype(np.float32)
    x = np.concatenate([U, V, U * V], axis=1)
    expected = (np.maximum(x @ w0 + b0, 0) @ w1 + b1)[:, 0]
    scores = reranker.score(U, V)
    assert scores.dtype == np.float32 and scores.shape == (7,)
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    again = MLPReranker.load(reranker.save(tmp_path / "mlp.npz"))
    np.testing.assert_array_equal(again.score(U, V), scores)
    assert again.features == "concat_product"


def test_mlp_reranker_rejects_bad_shapes() -> None:
    reranker = MLPReranker([np.ones((4, 1), np.float32)], [np.zeros(1, np.float32)], user_dimension=2)
    with pytest.raises(DimensionMismatchError):
        reranker.score(np.ones((3, 3), np.float32), np.ones((3, 1), np.float32))
    with pytest.raises(InvalidInputError, match="3 user vectors for 2"):
        reranker.score(np.ones((3, 2), np.float32), np.ones((2, 2), np.float32))
    with pytest.raises(ModelError, match="one output unit"):
        MLPReranker([np.ones((4, 2), np.float32)], [np.zeros(2, np.float32)], user_dimension=2)
    with pytest.raises(ModelError, match="do not chain"):
        MLPReranker([np.ones((4, 3)), np.ones((2, 1))], [np.zeros(3), np.zeros(1)], user_dimension=2)
    with pytest.raises(ModelError, match="3 \\* user_dimension"):
        MLPReranker([np.ones((4, 1))], [np.zeros(1)], user_dimension=2, features="concat_product")


def test_factorized_top_k_matches_a_brute_force_ranking() -> None:
    rng = np.random.default_rng(1)
    users, items = rng.normal(size=(50, 3)), rng.normal(size=(30, 3))
    truth = rng.integers(0, 30, 50)
    result = factorized_top_k_accuracy(users.astype(np.float32), items.astype(np.float32), truth, (1, 5, 30), chunk=7)
    order = np.argsort(-(users @ items.T), axis=1)
    for k in (1, 5, 30):
        expected = np.mean([truth[i] in order[i, :k] for i in range(50)])
        assert result[k] == pytest.approx(expected)
    assert result[30] == 1.0
