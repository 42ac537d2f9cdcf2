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
