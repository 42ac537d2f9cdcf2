"""Every script in examples/ runs, as a user would run it (a subprocess with this interpreter)."""

from __future__ import annotations

import importlib.util
import os
import re
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
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == ["notebook_walkthrough.py", "own_data.py", "quickstart.py"]


def test_quickstart_prints_five_filtered_recommendations() -> None:
    lines = run("quickstart.py").strip().splitlines()
    assert len(lines) == 5
    for line in lines:
        item, _score, metadata = line.split(" ", 2)
        assert item.startswith("movie-") and item != "movie-7"
        assert int(metadata.split(":")[1].strip(" }")) >= 1995  # the year filter held


@pytest.mark.slow
def test_own_data_trains_a_bundle_and_recommends(tmp_path: Path) -> None:
    for extra, module in (("tensorflow", "tensorflow"), ("data", "pandas"), ("data", "pyarrow")):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"the example trains on CSV files: it needs the '{extra}' extra ({module})")
    lines = run("own_data.py", cwd=tmp_path).strip().splitlines()
    assert lines[0] == "read Catalogue(items=160, metadata=['category', 'name', 'price', 'tags'])"
    assert lines[1].startswith("read Interactions(") and lines[1].endswith("implicit, timestamps, weights)")
    assert lines[2].startswith("held out: {'kind': 'temporal', 'test_fraction': 0.2, 'seed': 42};")
    assert re.fullmatch(r"bundle: implicit feedback, recommended reranker '(none|scoring|blend|ranker)'", lines[3])
    # The learned ranking stage ("ranker") is trained, and measured, when LightGBM is installed.
    stage = importlib.util.find_spec("lightgbm") is not None
    end = 9 if stage else 8
    measured = [re.fullmatch(r"  held-out NDCG@10 of (\w+): ([\d.]+)", line) for line in lines[4:end]]
    held_out = {match[1]: float(match[2]) for match in measured if match}
    assert set(held_out) == {"retrieval", "scoring", "blend", "most_popular", *(["ranker"] if stage else [])}
    # Each customer buys mostly from one category: even a tiny model beats recommending the best sellers.
    assert held_out["retrieval"] > held_out["most_popular"]
    blocks = [lines[end : end + 4], lines[end + 4 : end + 8], lines[end + 8 : end + 12]]
    assert len(lines) == end + 12
    for header, *recommendations in blocks:
        assert header.endswith("):") and len(recommendations) == 3
        for line in recommendations:
            item_id, *_ = line.split()
            assert item_id.startswith("sku-")
    known, other, stranger = blocks
    assert "mostly" in known[0] and "mostly" in other[0] and stranger[0] == "c-new-visitor (0 events, never seen):"
    assert all(not line.endswith("fallback") for line in known[1:] + other[1:])
    assert all(line.endswith("fallback") for line in stranger[1:])


@pytest.mark.integration
def test_walkthrough_with_existing_models(movielens_dir: Path, tmp_path: Path) -> None:
    models = write_synthetic_models(tmp_path / "models", data_dir=movielens_dir)
    out = run("notebook_walkthrough.py", "--models", str(models), data_dir=movielens_dir, cwd=tmp_path)
    assert "Using the models in" in out and "indexed 1682 movies" in out
    assert "training measured 'blend' best" in out  # what the synthetic bundle's manifest says
    assert "User 42 rated 183 movies" in out and "User 55 rated 21 movies" in out
    assert "by predicted rating" in out and "recommended (blend)" in out
    # evaluate_bundle measures every second stage the bundle holds, and the baseline.
    assert "| retrieval |" in out and "| scoring |" in out and "| blend |" in out and "| most_popular |" in out


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
    assert (tmp_path / "m" / "bundle.json").is_file()
    assert "User 55 rated 21 movies" in out and "| scoring |" in out and "| blend |" in out
