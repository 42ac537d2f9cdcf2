"""Train on the full MovieLens-100K, explicit and implicit, and check the results against
floors well below the benchmarks' goals (benchmarks/train_quality.py and
benchmarks/implicit_quality.py track the goals themselves)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from two_stage_rec import Recommender
from two_stage_rec.bundle import load_models
from two_stage_rec.datasets import Interactions, movielens_100k, per_user_split, random_split
from two_stage_rec.evaluation import evaluate
from two_stage_rec.evaluation.evaluate import StageRanking
from two_stage_rec.rerankers.ranking_stage import RankingStage
from two_stage_rec.stores.memory import InMemoryVectorStore
from two_stage_rec.training import TrainedModels, TrainingConfig, export_models, train_models
from two_stage_rec.training.blend import train_pipeline
from two_stage_rec.types import RERANKER_NAMES

pytestmark = pytest.mark.integration
pytest.importorskip("tensorflow", reason="training needs the 'tensorflow' extra")

CATALOGUE = [str(i) for i in range(1, 1683)]


@pytest.fixture(scope="session")
def explicit(movielens_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainedModels, Path]:
    """The library defaults on the notebook's split (random 80/20, seed 42), saved with SavedModels."""
    train, test = random_split(movielens_100k(movielens_dir).interactions, 0.2, seed=42)
    models = train_models(train, test=test, items=CATALOGUE, config=TrainingConfig(seed=42), progress=False)
    return models, export_models(models, tmp_path_factory.mktemp("trained") / "models")


def test_report_metrics_clear_the_floors(explicit: tuple[TrainedModels, Path]) -> None:
    report = explicit[0].report
    metrics = report.metrics
    # Ranking every user by popularity reaches 0.30 here; the benchmark measures ~0.40.
    assert metrics["retrieval/test/top_100_accuracy"] >= 0.25
    # Predicting each item's train mean gives ~1.03; the benchmark measures ~0.90 on this split.
    assert metrics["scoring/test/rmse"] <= 1.0
    assert report.data == {
        "train_ratings": 80_000,
        "test_ratings": 20_000,
        "users": 943,
        "items": 1682,
        "retrieval_fit_ratings": 0,
        "scoring_fit_ratings": 76_000,
        "test_unknown_users": 0,
        "test_unknown_items": report.data["test_unknown_items"],
    }
    assert report.seed == 42 and report.versions["tensorflow"] != "not installed"
    assert report.feedback == "explicit"


def test_numpy_and_tensorflow_backends_agree_on_real_models(explicit: tuple[TrainedModels, Path]) -> None:
    numpy_models = load_models(explicit[1], backend="numpy")
    tf_models = load_models(explicit[1], backend="tensorflow")
    users = [str(u) for u in range(1, 944)]
    np.testing.assert_allclose(numpy_models.user_embedder.embed(users), tf_models.user_embedder.embed(users), atol=1e-5)
    V = numpy_models.item_embedder.embed(CATALOGUE)
    np.testing.assert_allclose(V, tf_models.item_embedder.embed(CATALOGUE), atol=1e-5)
    U = numpy_models.user_embedder.embed(["42"] * len(CATALOGUE))
    np.testing.assert_allclose(numpy_models.reranker.score(U, V), tf_models.reranker.score(U, V), atol=1e-5)


def test_saved_models_are_callable_as_in_the_notebook(explicit: tuple[TrainedModels, Path]) -> None:
    tf = pytest.importorskip("tensorflow")
    user_model = tf.saved_model.load(str(explicit[1] / "user_model"))
    item_model = tf.saved_model.load(str(explicit[1] / "item_model"))
    scoring_model = tf.saved_model.load(str(explicit[1] / "scoring_model"))
    u = user_model(np.array(["42"]))
    m = item_model(np.array(["50"]))
    assert u.shape == (1, 32) and m.shape == (1, 32)
    assert scoring_model(tf.concat([u, m], axis=1)).shape == (1, 1)


def _stage_ranking(stage: RankingStage) -> StageRanking:
    def ranking(users: list[str], exclude: list[set[str]], depth: int) -> np.ndarray:
        return stage.recommend(users, depth, exclude=exclude)

    return ranking


def _opaque(ids: np.ndarray, prefix: str) -> list[str]:
    return [f"{prefix}-{hashlib.sha1(key.encode()).hexdigest()[:10]}" for key in ids.tolist()]


def test_implicit_feedback_with_opaque_ids_ranks_well(movielens_dir: Path) -> None:
    """The stratified protocol as implicit feedback: no ratings, ids that carry no order or meaning."""
    ratings = movielens_100k(movielens_dir).interactions
    log = Interactions.from_arrays(user_ids=_opaque(ratings.user_ids, "u"), item_ids=_opaque(ratings.item_ids, "i"))
    catalogue = _opaque(np.array(CATALOGUE), "i")
    train, test = per_user_split(log, 0.25, seed=42)
    trained = train_pipeline(train, test=test, items=catalogue, progress=False)

    models = trained.models
    assert models.report.feedback == "implicit" and trained.report["feedback"] == "implicit"
    assert set(trained.report["validation_ndcg@10"]) == set(RERANKER_NAMES)
    assert trained.recommended in RERANKER_NAMES
    # Events against uniformly drawn unseen movies; chance is 0.5, the benchmark measures ~0.9.
    assert models.report.metrics["scoring/test/auc"] >= 0.8
    recommender = Recommender(
        user_embedder=models.user_embedder(),
        item_embedder=models.item_embedder(),
        store=InMemoryVectorStore(dimension=models.dimension),
    )
    recommender.index_items(catalogue)
    result = evaluate(
        recommender,
        train,
        test,
        k=10,
        candidates=50,
        rerankers={"blend": trained.blend, "scoring": models.reranker},
        stages={"ranker": _stage_ranking(trained.ranking_stage)} if trained.ranking_stage is not None else None,
        n_resamples=200,
    )
    served = {"none": "retrieval", "scoring": "scoring", "blend": "blend", "ranker": "ranker"}[trained.recommended]
    # Most popular reaches ~0.24 here; the benchmark's goal is 0.45.
    assert result.metric(served, "ndcg") >= 0.35
    assert result.metric(served, "ndcg") > result.metric("most_popular", "ndcg") + 0.1
