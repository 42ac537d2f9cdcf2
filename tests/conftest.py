"""Shared fixtures. Integration tests read the real MovieLens-100K files from the
folder named by TWO_STAGE_REC_DATA (here: ../shared/data/ml-100k)."""

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
    """A complete models directory (SavedModels and numpy files) for every ML-100K user and movie.

    Trained for one joint epoch with small towers, so that examples
    which need *a* trained models directory (README, docs pages) run in
    seconds; it is not a good model and no test should judge its quality.
    """
    pytest.importorskip("tensorflow", reason="training the example models needs the 'tensorflow' extra")
    from two_stage_rec.datasets import movielens_100k
    from two_stage_rec.training import RetrievalConfig, ScoringConfig, TrainingConfig, train_models

    data = movielens_100k(movielens_dir)
    tiny = TrainingConfig(
        retrieval=RetrievalConfig(embedding_dim=8, output_dim=8, validation_fraction=0.0),
        scoring=ScoringConfig(hidden_layers=(8,), epochs=1, validation_fraction=0.0),
        eval_k=(10,),
    )
    models = train_models(data.ratings, items=data.movies.ids_str(), config=tiny, progress=False)
    return models.save(tmp_path_factory.mktemp("tiny-models") / "models")
