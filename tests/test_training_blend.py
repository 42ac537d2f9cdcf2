"""train_with_blend on a tiny synthetic rating log: the recipe runs end to end and saves a loadable blend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from two_stage_rec.artifacts import load_models
from two_stage_rec.datasets import Ratings
from two_stage_rec.rerankers.blend import BLEND_FILE, BlendReranker

pytest.importorskip("tensorflow", reason="training needs the 'tensorflow' extra")

from two_stage_rec.training import RetrievalConfig, ScoringConfig, TrainingConfig
from two_stage_rec.training.blend import BLEND_REPORT_FILE, train_with_blend

TINY = TrainingConfig(
    retrieval=RetrievalConfig(embedding_dim=8, output_dim=8, epochs=1, batch_size=64, validation_fraction=0.0),
    scoring=ScoringConfig(hidden_layers=(8,), epochs=1, batch_size=64, validation_fraction=0.0),
    eval_k=(5,),
)


def tiny_ratings(n_users: int = 60, n_items: int = 40, per_user: int = 15) -> Ratings:
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(1, n_users + 1), per_user)
    items = np.concatenate([rng.choice(np.arange(1, n_items + 1), per_user, replace=False) for _ in range(n_users)])
    return Ratings(
        user_ids=users,
        item_ids=items,
        ratings=rng.integers(1, 6, users.size),
        timestamps=np.arange(users.size),
    )


def test_train_with_blend_saves_models_and_a_blend_for_them(tmp_path: Path) -> None:
    ratings = tiny_ratings()
    items = [str(i) for i in range(1, 41)]
    trained = train_with_blend(ratings, items=items, config=TINY, candidates=20, progress=False)
    assert trained.report["holdout_ratings"] + trained.report["fit_ratings"] == len(ratings)
    assert 0.0 <= trained.report["item_prior_r2_after_move"] <= 1.0 + 1e-9
    assert trained.blend.rating_model is trained.models.reranker
    target = trained.save(tmp_path / "models", saved_models=False)

    models = load_models(target)
    blend = BlendReranker.load(target / BLEND_FILE, rating_model=models.reranker)
    users = models.user_embedder.embed(["1", "2"])
    vectors = models.item_embedder.embed(["3", "4"])
    np.testing.assert_allclose(blend.score(users, vectors), trained.blend.score(users, vectors), rtol=1e-5)
    assert json.loads((target / BLEND_REPORT_FILE).read_text())["candidates"] == 20
