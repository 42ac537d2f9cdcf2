"""Every script in examples/ runs, as a user would run it (a subprocess with this interpreter)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synthetic_models import write_synthetic_models

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(script: str, *args: str, data_dir: Path | None = None, cwd: Path | None = None) -> str:
    env = dict(os.environ)
    if data_dir is not None:
        env["TWO_STAGE_REC_DATA"] = str(data_dir)
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def test_every_example_is_covered_here() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == ["notebook_walkthrough.py", "quickstart.py"]


def test_quickstart_prints_five_filtered_recommendations() -> None:
    lines = run("quickstart.py").strip().splitlines()
    assert len(lines) == 5
    for line in lines:
        item, _score, metadata = line.split(" ", 2)
        assert item.startswith("movie-") and item != "movie-7"
        assert int(metadata.split(":")[1].strip(" }")) >= 1995  # the year filter held


@pytest.mark.integration
def test_walkthrough_with_existing_models(movielens_dir: Path, tmp_path: Path) -> None:
    models = write_synthetic_models(tmp_path / "models")
    out = run("notebook_walkthrough.py", "--models", str(models), data_dir=movielens_dir, cwd=tmp_path)
    assert "Using the models in" in out and "indexed 1682 movies" in out
    assert "User 42 rated 183 movies" in out and "User 55 rated 21 movies" in out
    assert "| retrieval |" in out and "| reranked |" in out and "| most_popular |" in out
    assert "| blend |" in out  # the synthetic models directory holds a blend reranker


@pytest.mark.integration
@pytest.mark.slow
def test_walkthrough_trains_when_no_models_exist(movielens_dir: Path, tmp_path: Path) -> None:
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("training needs the tensorflow extra")
    out = run(
        "notebook_walkthrough.py",
        "--models",
        str(tmp_path / "m"),
        "--epochs",
        "1",
        "--users",
        "55",
        data_dir=movielens_dir,
        cwd=tmp_path,
    )
    assert "Training the two towers" in out and "retrieval/test/top_100_accuracy" in out
    assert (tmp_path / "m" / "user_embeddings.npz").is_file()
    assert "User 55 rated 21 movies" in out and "| reranked |" in out
