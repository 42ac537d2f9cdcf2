"""Shared fixtures. Integration tests read the real MovieLens-100K files from the
folder named by TWO_STAGE_REC_DATA (``make test`` sets it when it finds a local
copy; see the Makefile)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def movielens_dir() -> Path:
    """The local ml-100k folder, or skip with the reason when it is not configured."""
    configured = os.environ.get("TWO_STAGE_REC_DATA")
    if not configured:
        pytest.skip("TWO_STAGE_REC_DATA is not set; integration tests need a local ml-100k folder")
    path = Path(configured)
    if not (path / "u.data").is_file():
        pytest.skip(f"TWO_STAGE_REC_DATA={path} holds no u.data")
    return path


@pytest.fixture(scope="session")
def tiny_movielens_models(movielens_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete bundle (with SavedModels) for ML-100K's random 80/20 split, trained by the real pipeline.

    Trained for one joint epoch with small towers, so that examples which
    need *a* trained bundle (README, docs pages) run in seconds; it is not a
    good model and no test should judge its quality.
    """
    pytest.importorskip("tensorflow", reason="training the example models needs the 'tensorflow' extra")
    from two_stage_rec.training import RetrievalConfig, ScoringConfig, TrainingConfig
    from two_stage_rec.workflow import train_movielens_bundle

    tiny = TrainingConfig(
        retrieval=RetrievalConfig(embedding_dim=8, output_dim=8, validation_fraction=0.0),
        scoring=ScoringConfig(hidden_layers=(8,), epochs=1, validation_fraction=0.0),
        eval_k=(10,),
    )
    out = tmp_path_factory.mktemp("tiny-models") / "models"
    return train_movielens_bundle(
        out, data_dir=movielens_dir, config=tiny, saved_models=True, measure=False, progress=False
    ).path
