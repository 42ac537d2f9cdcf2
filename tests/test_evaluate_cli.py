"""``two-stage-rec evaluate`` on the real MovieLens splits with small synthetic models (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthetic_models import write_synthetic_models
from two_stage_rec.cli import app
from two_stage_rec.cli.evaluate import evaluate_protocol, parse_trade_offs
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


def test_trade_offs_are_parsed_and_bad_ones_refused() -> None:
    assert parse_trade_offs("0, 0.1,0.9") == (0.0, 0.1, 0.9)
    with pytest.raises(InvalidInputError, match=r"in \[0, 1\]"):
        parse_trade_offs("0,1.5")
    with pytest.raises(InvalidInputError, match="separated by commas"):
        parse_trade_offs("0;0.3")


@pytest.mark.integration
def test_cli_reports_diversity_and_the_mmr_curve(movielens_dir: Path, tmp_path: Path) -> None:
    models = write_synthetic_models(tmp_path / "models", protocol="stratified", data_dir=movielens_dir)
    out = tmp_path / "reports"
    args = ["evaluate", "--models", str(models), "--protocol", "stratified", "--store", "memory"]
    args += ["--out", str(out), "--resamples", "200", "--data-dir", str(movielens_dir)]
    result = runner.invoke(app, [*args, "--diversity-curve", "0.5,0.9", "--diversity-field", "genres"])
    assert result.exit_code == 0, result.output
    assert "ILD@10" in result.output and "MMR's trade-off" in result.output
    data = json.loads((out / "evaluation-stratified.json").read_text(encoding="utf-8"))
    for ranker in data["rankers"].values():
        metrics = ranker["metrics"]
        assert 0.0 <= metrics["ild@10"] <= 2.0 and metrics["novelty@10"] >= 0.0 and 0 < metrics["coverage@10"] <= 1
    curve = data["diversity_curve"]
    assert list(curve["rows"]) == ["mmr_0.0", "mmr_0.5", "mmr_0.9"] and curve["field"] == "genres"
    assert curve["n_users"] == 943 and curve["catalog_size"] == 1682
    rows = [curve["rows"][name]["metrics"] for name in curve["rows"]]
    # λ = 0 is the recommended pipeline (the synthetic bundle recommends the blend) as evaluate ranked it
    assert rows[0]["ndcg@10"] == pytest.approx(data["rankers"]["blend"]["metrics"]["ndcg@10"], abs=1e-9)
    assert rows[0]["ild@10"] == pytest.approx(data["rankers"]["blend"]["metrics"]["ild@10"], rel=1e-5)
    # more weight on variety: the lists' items get less alike and span more genres
    assert rows[0]["ild@10"] < rows[1]["ild@10"] < rows[2]["ild@10"]
    assert rows[0]["distinct_genres@10"] < rows[2]["distinct_genres@10"]
    assert curve["rows"]["mmr_0.9"]["ndcg_vs_first"]["n_users"] == 943
    page = (out / "evaluation-stratified.html").read_text(encoding="utf-8")
    assert page.count("<svg") == 3 and "MMR over λ" in page


@pytest.mark.integration
def test_cli_refuses_a_bad_trade_off_before_writing(movielens_dir: Path, tmp_path: Path) -> None:
    models = write_synthetic_models(tmp_path / "models", protocol="stratified", data_dir=movielens_dir)
    out = tmp_path / "reports"
    args = ["evaluate", "--models", str(models), "--protocol", "stratified", "--store", "memory"]
    result = runner.invoke(app, [*args, "--out", str(out), "--diversity-curve", "0,2"])
    assert result.exit_code == 1 and "in [0, 1]" in result.output
    assert not out.exists()
