"""train_pipeline on tiny synthetic logs with opaque string ids, explicit and implicit.

The recipe runs end to end, reports NDCG@10 of the three second stages on its
validation split, recommends one of them, and returns a blend that works with
the final models (including after a save/load round trip of its weights).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from two_stage_rec.datasets import Interactions, per_user_split
from two_stage_rec.errors import EmptyBatchError, InvalidInputError
from two_stage_rec.rerankers.blend import BlendReranker
from two_stage_rec.types import RERANKER_NAMES

pytest.importorskip("tensorflow", reason="training needs the 'tensorflow' extra")

from two_stage_rec.training import RetrievalConfig, ScoringConfig, TrainingConfig
from two_stage_rec.training.blend import NDCG_CUTOFF, PipelineTraining, choose_second_stage, train_pipeline

TINY = TrainingConfig(
    retrieval=RetrievalConfig(embedding_dim=8, output_dim=8, epochs=1, batch_size=64, validation_fraction=0.0),
    scoring=ScoringConfig(hidden_layers=(8,), epochs=1, batch_size=64, validation_fraction=0.0),
    eval_k=(5,),
)
N_USERS, N_ITEMS, PER_USER = 60, 40, 15
CATALOGUE = [f"sku-{i}" for i in range(1, N_ITEMS + 1)]
NDCG_KEY = f"validation_ndcg@{NDCG_CUTOFF}"


def tiny_log(*, implicit: bool) -> Interactions:
    """Each user "u-<n>" picks 15 of 40 items "sku-<m>", most from their own third of the catalogue."""
    rng = np.random.default_rng(0)
    users, items = [], []
    for user in range(1, N_USERS + 1):
        liked = np.arange(1, N_ITEMS + 1)[(np.arange(N_ITEMS) % 3) == user % 3]
        picks = (
            rng.choice(liked, 10, replace=False).tolist()
            + rng.choice(np.setdiff1d(np.arange(1, N_ITEMS + 1), liked), PER_USER - 10, replace=False).tolist()
        )
        users += [f"u-{user}"] * PER_USER
        items += [f"sku-{item}" for item in picks]
    ratings = None if implicit else rng.integers(1, 6, len(users)).astype(np.float32)
    return Interactions.from_arrays(user_ids=users, item_ids=items, ratings=ratings, timestamps=np.arange(len(users)))


@pytest.fixture(scope="module", params=["explicit", "implicit"])
def trained(request: pytest.FixtureRequest) -> tuple[Interactions, PipelineTraining]:
    log, test = per_user_split(tiny_log(implicit=request.param == "implicit"), 0.2, seed=1)
    return log, train_pipeline(log, test=test, items=CATALOGUE, config=TINY, candidates=20, progress=False)


def test_the_report_holds_the_three_ndcgs_and_the_choice(trained: tuple[Interactions, PipelineTraining]) -> None:
    log, result = trained
    report = result.report
    assert result.recommended in RERANKER_NAMES and report["recommended"] == result.recommended
    assert set(report[NDCG_KEY]) == set(RERANKER_NAMES)
    assert all(0.0 <= value <= 1.0 for value in report[NDCG_KEY].values())
    assert result.recommended == choose_second_stage(report[NDCG_KEY])
    assert report["feedback"] == ("implicit" if log.ratings is None else "explicit")
    assert report["config"] == "custom" and report["candidates"] == 20
    assert report["holdout_ratings"] + report["fit_ratings"] == len(log)
    assert report["validation_users"] == N_USERS and len(report["blend_cross_fit_weights"]) == 2
    assert 0.0 <= report["item_prior_r2_after_move"] <= 1.0 + 1e-9


def test_the_blend_serves_with_the_final_models(trained: tuple[Interactions, PipelineTraining], tmp_path: Path) -> None:
    log, result = trained
    assert result.blend.rating_model is result.models.reranker
    assert result.models.report.feedback == ("implicit" if log.ratings is None else "explicit")
    assert result.models.item_keys == CATALOGUE
    users = result.models.user_embedder().embed(["u-1", "u-2"])
    vectors = result.models.item_embedder().embed(["sku-3", "sku-4"])
    scores = result.blend.score(users, vectors)
    assert scores.shape == (2,) and np.isfinite(scores).all()
    again = BlendReranker.load(result.blend.save(tmp_path / "blend.npz"), rating_model=result.models.reranker)
    np.testing.assert_allclose(again.score(users, vectors), scores, rtol=1e-5)
    assert result.reranker("none") is None
    assert result.reranker("scoring") is result.models.reranker and result.reranker("blend") is result.blend
    assert result.reranker() is result.reranker(result.recommended)
    with pytest.raises(InvalidInputError):
        result.reranker("mmr")  # type: ignore[arg-type]


def test_the_test_log_is_measured_with_the_feedbacks_metric(trained: tuple[Interactions, PipelineTraining]) -> None:
    log, result = trained
    metrics = result.models.report.metrics
    if log.ratings is None:
        assert 0.0 <= metrics["scoring/test/auc"] <= 1.0 and "scoring/test/rmse" not in metrics
    else:
        assert metrics["scoring/test/rmse"] > 0 and "scoring/test/auc" not in metrics
    assert "retrieval/test/top_5_accuracy" in metrics


def test_choice_prefers_the_simpler_stage_on_ties() -> None:
    assert choose_second_stage({"none": 0.3, "scoring": 0.3, "blend": 0.3}) == "none"
    assert choose_second_stage({"none": 0.2, "scoring": 0.3, "blend": 0.3}) == "blend"
    assert choose_second_stage({"none": 0.2, "scoring": 0.31, "blend": 0.3}) == "scoring"
    with pytest.raises(InvalidInputError):
        choose_second_stage({"none": 0.2, "blend": 0.3})


def test_bad_input_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match="candidates"):
        train_pipeline(tiny_log(implicit=True), config=TINY, candidates=5, progress=False)
    with pytest.raises(EmptyBatchError):
        train_pipeline(tiny_log(implicit=True).take(np.arange(0)), config=TINY, progress=False)
    with pytest.raises(InvalidInputError, match="Interactions"):
        train_pipeline(([["u-1"], ["sku-1"]]), config=TINY, progress=False)  # type: ignore[arg-type]
