"""``two-stage-rec evaluate`` on the real MovieLens splits with small synthetic models (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthetic_models import write_synthetic_models
from two_stage_rec.cli import app
from two_stage_rec.cli.evaluate import evaluate_protocol
from two_stage_rec.errors import InvalidInputError, ModelError
from two_stage_rec.evaluation.movielens_protocols import MOVIELENS_PROTOCOLS, protocol_spec

runner = CliRunner()


def test_protocols_are_named_and_unknown_ones_rejected() -> None:
    assert set(MOVIELENS_PROTOCOLS) == {"random", "stratified", "temporal", "u1"}
    assert "BPR NDCG@10 0.442" in protocol_spec("stratified").reference
    assert protocol_spec("u1").measure_rating_errors
    with pytest.raises(InvalidInputError, match="unknown protocol"):
        protocol_spec("leave-one-out")


@pytest.mark.integration
def test_models_trained_for_another_protocol_are_refused(movielens_dir: Path, tmp_path: Path) -> None:
    models = write_synthetic_models(tmp_path / "models", data_dir=movielens_dir)  # trained on "random"
    with pytest.raises(ModelError, match="overlap the 'stratified' test set"):
        evaluate_protocol("stratified", models, store="memory", data_dir=movielens_dir, train_if_missing=False)


@pytest.mark.integration
def test_cli_prints_tables_and_writes_json_and_html(movielens_dir: Path, tmp_path: Path) -> None:
    models = write_synthetic_models(tmp_path / "models", protocol="stratified", data_dir=movielens_dir)
    out = tmp_path / "reports"
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--models",
            str(models),
            "--protocol",
            "stratified",
            "--store",
            "memory",
            "--out",
            str(out),
            "--resamples",
            "200",
            "--data-dir",
            str(movielens_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "retrieval" in result.output and "most_popular" in result.output and "NDCG@10" in result.output
    data = json.loads((out / "evaluation-stratified.json").read_text(encoding="utf-8"))
    assert data["name"] == "stratified" and data["n_users"] == 943
    assert set(data["rankers"]) == {"retrieval", "scoring", "blend", "most_popular"}
    assert set(data["comparisons"]) == {"scoring vs retrieval", "blend vs retrieval", "most_popular vs retrieval"}
    # random towers know nothing; the popularity baseline must be far ahead (sanity of the whole pipeline)
    popular = data["rankers"]["most_popular"]["metrics"]["ndcg@10"]
    assert popular == pytest.approx(0.2432, abs=0.002)
    assert data["rankers"]["retrieval"]["metrics"]["ndcg@10"] < popular
    assert data["rating_errors"]["n"] == 25_008
    page = (out / "evaluation-stratified.html").read_text(encoding="utf-8")
    assert page.count("<svg") == 2 and "Paired comparison" in page


@pytest.mark.integration
def test_cli_reports_a_protocol_mismatch_cleanly(movielens_dir: Path, tmp_path: Path) -> None:
    models = write_synthetic_models(tmp_path / "models", data_dir=movielens_dir)
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--models",
            str(models),
            "--protocol",
            "u1",
            "--store",
            "memory",
            "--out",
            str(tmp_path),
            "--data-dir",
            str(movielens_dir),
        ],
    )
    assert result.exit_code == 1 and "trained for the random split" in result.output
