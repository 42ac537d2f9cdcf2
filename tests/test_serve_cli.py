"""``assemble`` and ``two-stage-rec serve`` on the real MovieLens-100K catalogue,
with a small synthetic bundle (numpy backend) standing in for trained models."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from synthetic_models import write_synthetic_models
from two_stage_rec import ModelError
from two_stage_rec.assembly import assemble
from two_stage_rec.cli import app as cli_app
from two_stage_rec.serving import create_app

pytestmark = pytest.mark.integration

DIMENSION = 16


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory, movielens_dir: Path) -> Path:
    """A random bundle for every ML-100K user and movie but movie 1682 (random 80/20 split)."""
    root = tmp_path_factory.mktemp("models") / "bundle"
    return write_synthetic_models(root, dimension=DIMENSION, seed=3, data_dir=movielens_dir, drop_items=("1682",))


def test_assembled_bundle_is_served_with_its_recommended_reranker(models_dir: Path) -> None:
    served = assemble(models_dir, store="memory")
    assert served.indexed == 1681 and served.reranker_name == "blend"
    assert served.label("50") == "Star Wars (1977)"
    client = TestClient(create_app(served.recommender, seen_items=served.bundle.seen_items))
    items = client.get("/recommendations/42", params={"k": 10}).json()["items"]
    assert len(items) == 10
    assert not {item["item_id"] for item in items} & served.seen("42")
    assert all(item["title"] == served.label(item["item_id"]) for item in items)
    assert all(item["source"] == "reranked" for item in items)
    # An unknown user gets the most popular movies of the training split; Star Wars leads.
    newcomer = client.get("/recommendations/new-user", params={"k": 3}).json()["items"]
    popularity = served.bundle.popularity
    assert newcomer[0]["item_id"] == "50" and newcomer[0]["score"] == float(popularity["50"])
    assert {item["source"] for item in newcomer} == {"fallback"}


def test_faiss_and_memory_stores_serve_the_same_recommendations(models_dir: Path) -> None:
    pytest.importorskip("faiss", reason="the faiss extra is not installed")
    memory = assemble(models_dir, store="memory", fallback=False)
    faiss = assemble(models_dir, store="faiss", fallback=False)
    users = ["1", "42", "500"]
    for a, b in zip(memory.recommend_batch(users, k=5), faiss.recommend_batch(users, k=5), strict=True):
        assert [r.item_id for r in a] == [r.item_id for r in b]
        assert [r.score for r in a] == pytest.approx([r.score for r in b], rel=1e-5)


def test_assemble_rejects_a_directory_that_is_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not a models bundle"):
        assemble(tmp_path, store="memory")


def test_serve_command_builds_the_app_and_runs_uvicorn(
    models_dir: Path, movielens_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: dict[str, object] = {}

    def fake_run(app: FastAPI, *, host: str, port: int, log_level: str, access_log: bool) -> None:
        served.update(app=app, host=host, port=port, log_level=log_level, access_log=access_log)

    # Running uvicorn for real is covered in test_serving.py; here only the wiring.
    monkeypatch.setattr("two_stage_rec.serving.run", fake_run)
    result = CliRunner().invoke(
        cli_app,
        ["serve", "--models", str(models_dir), "--store", "memory", "--port", "8123"],
    )
    assert result.exit_code == 0, result.output
    assert (served["host"], served["port"], served["log_level"]) == ("127.0.0.1", 8123, "info")
    assert served["access_log"] is False  # uvicorn's own access log: the service writes JSON lines instead
    app = served["app"]
    assert isinstance(app, FastAPI)
    client = TestClient(app)
    assert client.get("/stats").json()["count"] == 1681
    assert client.get("/recommendations/7").status_code == 200


def test_serve_command_reports_a_bad_models_dir_cleanly(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--models", str(tmp_path), "--store", "memory"])
    assert result.exit_code == 1
    assert "error:" in result.output and "not a models bundle" in result.output
    assert "Traceback" not in result.output
