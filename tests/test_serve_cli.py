"""``build_recommender`` and ``two-stage-rec serve`` on the real MovieLens-100K catalogue,
with a small synthetic models directory (numpy backend) standing in for trained models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from two_stage_rec import ModelError
from two_stage_rec.artifacts import ITEM_EMBEDDINGS, SCORING_MLP, USER_EMBEDDINGS
from two_stage_rec.cli import app as cli_app
from two_stage_rec.datasets import MovieLens100K, movielens_100k
from two_stage_rec.embedders.table import TableEmbedder
from two_stage_rec.pipeline import build_recommender
from two_stage_rec.rerankers.mlp import MLPReranker
from two_stage_rec.serving import create_app

pytestmark = pytest.mark.integration

DIMENSION = 16


@pytest.fixture(scope="module")
def movielens(movielens_dir: Path) -> MovieLens100K:
    return movielens_100k(movielens_dir)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory, movielens: MovieLens100K) -> Path:
    """Random towers for every ML-100K user and movie but movie 1682, and a random 2-layer MLP."""
    rng = np.random.default_rng(3)
    root = tmp_path_factory.mktemp("models")
    users = [str(u) for u in np.unique(movielens.ratings.user_ids)]
    movies = [m for m in movielens.movies.ids_str() if m != "1682"]
    TableEmbedder(users, rng.normal(size=(len(users), DIMENSION))).save(root / USER_EMBEDDINGS)
    TableEmbedder(movies, rng.normal(size=(len(movies), DIMENSION))).save(root / ITEM_EMBEDDINGS)
    weights = [rng.normal(size=(2 * DIMENSION, 8)), rng.normal(size=(8, 1))]
    MLPReranker(weights, [np.zeros(8), np.zeros(1)], user_dimension=DIMENSION).save(root / SCORING_MLP)
    return root


def test_build_recommender_indexes_the_catalogue_and_serves_it(models_dir: Path, movielens: MovieLens100K) -> None:
    built = build_recommender(models_dir, store="memory", data=movielens)
    assert built.indexed == 1681  # every movie the item table knows
    assert built.item_titles["50"] == "Star Wars (1977)"
    assert len(built.seen_items) == 943 and len(built.seen_items["42"]) == len(movielens.ratings.for_user(42))
    client = TestClient(create_app(built.recommender, item_titles=built.item_titles, seen_items=built.seen_items))
    items = client.get("/recommendations/42", params={"k": 10}).json()["items"]
    assert len(items) == 10
    assert not {item["item_id"] for item in items} & built.seen_items["42"]
    assert all(item["title"] == movielens.movies[item["item_id"]].title for item in items)
    assert all(item["source"] == "reranked" for item in items)
    # An unknown user gets the most-rated movies; Star Wars (583 ratings) leads.
    newcomer = client.get("/recommendations/new-user", params={"k": 3}).json()["items"]
    assert newcomer[0]["item_id"] == "50" and newcomer[0]["score"] == 583.0
    assert {item["source"] for item in newcomer} == {"fallback"}


def test_faiss_and_memory_stores_serve_the_same_recommendations(models_dir: Path, movielens: MovieLens100K) -> None:
    pytest.importorskip("faiss", reason="the faiss extra is not installed")
    memory = build_recommender(models_dir, store="memory", data=movielens, fallback=False).recommender
    faiss = build_recommender(models_dir, store="faiss", data=movielens, fallback=False).recommender
    users = ["1", "42", "500"]
    for a, b in zip(memory.recommend_batch(users, k=5), faiss.recommend_batch(users, k=5), strict=True):
        assert [r.item_id for r in a] == [r.item_id for r in b]
        assert [r.score for r in a] == pytest.approx([r.score for r in b], rel=1e-5)


def test_build_recommender_rejects_an_incomplete_models_dir(tmp_path: Path, movielens: MovieLens100K) -> None:
    with pytest.raises(ModelError, match="missing"):
        build_recommender(tmp_path, store="memory", data=movielens)


def test_serve_command_builds_the_app_and_runs_uvicorn(
    models_dir: Path, movielens_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: dict[str, object] = {}

    def fake_run(app: FastAPI, *, host: str, port: int, log_level: str) -> None:
        served.update(app=app, host=host, port=port, log_level=log_level)

    # Running uvicorn for real is covered in test_serving.py; here only the wiring.
    monkeypatch.setattr("two_stage_rec.serving.run", fake_run)
    result = CliRunner().invoke(
        cli_app,
        ["serve", "--models", str(models_dir), "--store", "memory", "--data-dir", str(movielens_dir), "--port", "8123"],
    )
    assert result.exit_code == 0, result.output
    assert (served["host"], served["port"], served["log_level"]) == ("127.0.0.1", 8123, "info")
    app = served["app"]
    assert isinstance(app, FastAPI)
    client = TestClient(app)
    assert client.get("/stats").json()["count"] == 1681
    assert client.get("/recommendations/7").status_code == 200


def test_serve_command_reports_a_bad_models_dir_cleanly(tmp_path: Path, movielens_dir: Path) -> None:
    result = CliRunner().invoke(
        cli_app, ["serve", "--models", str(tmp_path), "--store", "memory", "--data-dir", str(movielens_dir)]
    )
    assert result.exit_code == 1
    assert "error:" in result.output and "missing user_embeddings.npz" in result.output
    assert "Traceback" not in result.output
