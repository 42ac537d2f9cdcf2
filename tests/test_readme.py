"""The README's Python examples run as written.

The fenced ``python`` blocks are read from README.md itself, so an edit that
breaks an example breaks this test. The first block needs only synthetic
vectors (and FAISS). The second serves a trained bundle through ``assemble``:
it runs, unchanged, in a folder whose ``models/`` is a bundle written by a
deliberately tiny training on the real ML-100K ratings (the session fixture
``tiny_movielens_models``: the example needs a valid bundle, not good models);
the third (fold-in, explanations, policies) runs in the same folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def readme_examples() -> list[str]:
    return PYTHON_BLOCK.findall(README.read_text("utf-8"))


def run_example(source: str) -> None:
    exec(compile(source, f"{README.name} example", "exec"), {"__name__": "readme_example"})


def test_readme_has_the_three_examples() -> None:
    # If the README gains or loses an example, this file must say how to run it.
    examples = readme_examples()
    assert len(examples) == 3
    assert "Recommender(" in examples[0] and "assemble(" in examples[1] and "history=" in examples[2]


def test_synthetic_vectors_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("faiss", reason="the README example uses FaissVectorStore (extra: faiss)")
    run_example(readme_examples()[0])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5  # k=5, and 500 of the 1000 items pass the filter
    for line in lines:
        item_id, _score, metadata = line.split(" ", 2)
        assert item_id.startswith("movie-") and item_id != "movie-7"
        assert int(metadata.split(":")[1].strip(" }")) >= 1995


@pytest.mark.integration
def test_trained_models_example_runs(
    tiny_movielens_models: Path,
    movielens_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("faiss", reason="the README example uses store='faiss' (extra: faiss)")
    from two_stage_rec.bundle import read_bundle
    from two_stage_rec.datasets import movielens_100k

    data = movielens_100k(movielens_dir)
    # assemble() leaves out what the user interacted with in the bundle's training split.
    seen = read_bundle(tiny_movielens_models).seen_items["55"]
    (tmp_path / "models").symlink_to(tiny_movielens_models, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TWO_STAGE_REC_DATA", str(movielens_dir))
    run_example(readme_examples()[1])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5
    # Titles repeat across movie ids, so "not seen" is checked on ids whose title is unique.
    ids_by_title: dict[str, list[str]] = {}
    for movie in data.movies:
        ids_by_title.setdefault(movie.title, []).append(movie.id_str)
    for line in lines:
        title, score = line.rsplit(" ", 1)
        assert title in ids_by_title
        if len(ids_by_title[title]) == 1:
            assert ids_by_title[title][0] not in seen
        float(score)


@pytest.mark.integration
def test_fold_in_explain_and_policies_example_runs(
    tiny_movielens_models: Path,
    movielens_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("faiss", reason="the README example uses the default store, FAISS (extra: faiss)")
    (tmp_path / "models").symlink_to(tiny_movielens_models, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TWO_STAGE_REC_DATA", str(movielens_dir))
    run_example(readme_examples()[2])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert all(" - because you liked " in line and " and " in line.split(" - because you liked ")[1] for line in lines)
