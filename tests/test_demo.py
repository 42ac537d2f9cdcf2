"""The demo command: rendering on synthetic results (unit), and end to end on the
real MovieLens files with small synthetic models (integration, no training)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthetic_models import write_synthetic_models
from two_stage_rec.bundle import read_bundle, read_manifest
from two_stage_rec.cli import app
from two_stage_rec.cli.demo import DemoResult, RatedMovie, ensure_models, render_html, run_demo
from two_stage_rec.recommender import Recommendation

runner = CliRunner()


def recommendation(item: str, title: str, score: float) -> Recommendation:
    return Recommendation(item, score, score / 2, {"title": title, "genres": ["Drama"]}, "reranked")


RESULT = DemoResult(
    user_id="55",
    profile=[RatedMovie("1", "Toy Story (1995)", 5.0), RatedMovie("2", "GoldenEye (1995)", 3.0)],
    retrieval=[recommendation("50", "Star Wars (1977)", 1.0)],
    reranked=[recommendation("64", "Shawshank <Redemption>", 4.5)],
    blended=None,
    recommended="none",
    feedback="explicit",
    candidates=50,
    store="InMemoryVectorStore(dimension=8)",
    models=Path("models"),
    excluded_seen=True,
    trained_now=False,
)


def test_html_shows_both_rankings_and_the_profile_escaped() -> None:
    page = render_html(RESULT)
    assert "Without reranking" in page and "Reranked by predicted rating" in page
    assert "Reranked by learned blend" not in page  # no blend in these models: no third column
    assert "Star Wars (1977)" in page and "Shawshank &lt;Redemption&gt;" in page
    assert "Toy Story (1995)" in page and "★★★★★ 5" in page
    assert "<img" not in page  # no poster function configured: no images, nothing fetched


def test_html_shows_the_blend_column_when_there_is_one() -> None:
    page = render_html(dataclasses.replace(RESULT, blended=[recommendation("98", "Silence of the Lambs", 0.9)]))
    assert "Reranked by learned blend" in page and "Silence of the Lambs" in page
    marked = render_html(dataclasses.replace(RESULT, blended=RESULT.reranked, recommended="blend"))
    assert "Reranked by learned blend — recommended" in marked


def test_implicit_bundles_say_relevance_not_rating_and_show_seen_items() -> None:
    implicit = dataclasses.replace(RESULT, feedback="implicit", profile=[RatedMovie("1", "Toy Story (1995)", None)])
    page = render_html(implicit)
    assert "Reranked by predicted relevance" in page and "predicted rating" not in page.split("<h2>")[1]
    assert "seen" in page


def test_html_has_posters_only_when_a_poster_function_is_given() -> None:
    page = render_html(RESULT, poster_url=lambda movie_id, title: f"https://posters.example/{movie_id}.jpg")
    assert 'src="https://posters.example/50.jpg"' in page and 'src="https://posters.example/1.jpg"' in page


@pytest.mark.integration
def test_ensure_models_keeps_a_complete_bundle_and_does_not_train(movielens_dir: Path, tmp_path: Path) -> None:
    models = write_synthetic_models(tmp_path / "models", data_dir=movielens_dir)
    assert ensure_models(models) is False
    assert (read_manifest(models).split or {})["protocol"] == "random"


def test_bad_store_is_a_usage_error() -> None:
    result = runner.invoke(app, ["demo", "--store", "annoy"])
    flat = " ".join(result.output.replace("│", " ").split())  # the error box wraps lines
    assert result.exit_code == 2 and "'annoy' is not one of 'faiss', 'memory', 'pgvector', 'pinecone'" in flat


@pytest.mark.integration
@pytest.mark.parametrize("store", ["faiss", "memory"])
def test_demo_end_to_end_on_movielens(movielens_dir: Path, tmp_path: Path, store: str) -> None:
    models = write_synthetic_models(tmp_path / "models", data_dir=movielens_dir)
    page = tmp_path / "demo.html"
    result = runner.invoke(
        app,
        [
            "demo",
            "--user",
            "55",
            "--models",
            str(models),
            "--store",
            store,
            "--html",
            str(page),
            "--data-dir",
            str(movielens_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Without reranking" in result.output and "Reranked by predicted rating" in result.output
    assert "Reranked by learned blend — recommended" in result.output
    assert "What user 55 rated (" in result.output
    assert page.is_file() and "Recommendations for user 55" in page.read_text(encoding="utf-8")


@pytest.mark.integration
def test_demo_leaves_out_rated_movies_unless_asked(movielens_dir: Path, tmp_path: Path) -> None:
    models = write_synthetic_models(tmp_path / "models", data_dir=movielens_dir)
    kwargs = {"models_dir": models, "store": "memory", "k": 50, "data_dir": movielens_dir, "progress": False}
    result = run_demo("42", **kwargs)  # type: ignore[arg-type]
    rated = {movie.movie_id for movie in result.profile}
    assert len(rated) == len(read_bundle(models).seen_items["42"]) > 100  # user 42's training ratings
    assert all(movie.rating is not None for movie in result.profile)  # MovieLens: with stars
    assert len(result.retrieval) == 50 and len(result.reranked) == 50
    assert not rated & {r.item_id for r in result.retrieval + result.reranked}
    # the reranked column reorders the same 50 candidates
    assert {r.item_id for r in result.retrieval} == {r.item_id for r in result.reranked}
    assert [r.score for r in result.reranked] == sorted((r.score for r in result.reranked), reverse=True)
    assert result.blended is not None
    assert {r.item_id for r in result.blended} == {r.item_id for r in result.retrieval}
    with_seen = run_demo("42", include_seen=True, **kwargs)  # type: ignore[arg-type]
    assert rated & {r.item_id for r in with_seen.retrieval}  # random vectors: some rated movie is near


@pytest.mark.integration
def test_unknown_user_gets_a_clear_error(movielens_dir: Path, tmp_path: Path) -> None:
    models = write_synthetic_models(tmp_path / "models", data_dir=movielens_dir)
    result = runner.invoke(
        app, ["demo", "--user", "5000", "--models", str(models), "--store", "memory", "--data-dir", str(movielens_dir)]
    )
    assert result.exit_code == 1
    assert "'5000'" in result.output and "1..943" in result.output


@pytest.mark.integration
def test_pinecone_without_configuration_fails_clearly(
    movielens_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PINECONE_API_KEY", "PINECONE_INDEX", "PINECONE_HOST"):
        monkeypatch.delenv(name, raising=False)
    models = write_synthetic_models(tmp_path / "models", data_dir=movielens_dir)
    result = runner.invoke(
        app, ["demo", "--models", str(models), "--store", "pinecone", "--data-dir", str(movielens_dir)]
    )
    assert result.exit_code == 1
    assert "--pinecone-index" in result.output
    monkeypatch.setenv("PINECONE_INDEX", "movies")
    result = runner.invoke(
        app, ["demo", "--models", str(models), "--store", "pinecone", "--data-dir", str(movielens_dir)]
    )
    assert result.exit_code == 1 and "PINECONE_API_KEY" in result.output


@pytest.mark.integration
def test_demo_on_pinecone_gives_the_same_top_movies_as_faiss(
    movielens_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pinecone", reason="the pinecone extra is not installed")
    from two_stage_rec.testing.pinecone_server import PineconeTestServer

    models = write_synthetic_models(tmp_path / "models", data_dir=movielens_dir)
    kwargs = {"models_dir": models, "data_dir": movielens_dir, "progress": False}
    with PineconeTestServer(api_key="pcsk_demo-test-key") as server:
        monkeypatch.setenv("PINECONE_API_KEY", "pcsk_demo-test-key")
        monkeypatch.setenv("PINECONE_CONTROLLER_HOST", server.url)
        on_pinecone = run_demo(
            "55", store="pinecone", store_settings={"index_name": "demo-movies"}, **kwargs  # type: ignore[arg-type]
        )
    on_faiss = run_demo("55", store="faiss", **kwargs)  # type: ignore[arg-type]
    assert "PineconeVectorStore" in on_pinecone.store and "pcsk_demo-test-key" not in on_pinecone.store
    for column in ("retrieval", "reranked", "blended"):
        ids = [r.item_id for r in getattr(on_pinecone, column)]
        assert ids == [r.item_id for r in getattr(on_faiss, column)], column


def test_html_explains_only_the_recommended_column() -> None:
    explained = dataclasses.replace(RESULT, because={"50": ("Toy Story (1995)", "GoldenEye (1995)")})
    page = render_html(explained)
    assert "because you rated Toy Story (1995) and GoldenEye (1995)" in page
    assert page.count("because you") == 1  # Star Wars is only in the recommended (retrieval) column
    assert "because you" not in render_html(RESULT)
    implicit = render_html(dataclasses.replace(explained, feedback="implicit"))
    assert "because you interacted with Toy Story (1995)" in implicit


@pytest.mark.integration
def test_demo_explain_names_rated_movies_nearest_to_each_recommendation(movielens_dir: Path, tmp_path: Path) -> None:
    import numpy as np

    models = write_synthetic_models(tmp_path / "models", data_dir=movielens_dir)
    kwargs = {"models_dir": models, "store": "memory", "data_dir": movielens_dir, "progress": False}
    plain = run_demo("55", **kwargs)  # type: ignore[arg-type]
    explained = run_demo("55", explain=True, **kwargs)  # type: ignore[arg-type]
    assert plain.because == {} and explained.recommended == "blend"
    assert explained.blended is not None and plain.blended is not None
    # the same recommended column, now with reasons for every movie in it
    assert [r.item_id for r in explained.blended] == [r.item_id for r in plain.blended]
    assert set(explained.because) == {r.item_id for r in explained.blended}
    # the reasons are the two rated movies whose item vectors are most cosine-similar
    bundle = read_bundle(models)
    seen = sorted(bundle.seen_items["55"])
    title = {item: bundle.catalogue.label(item) for item in seen}

    def unit(ids: list[str]) -> np.ndarray:
        vectors = np.asarray(bundle.item_embedder.embed(ids), dtype=np.float64)
        return np.asarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))

    history = unit(seen)
    for rec in explained.blended:
        similarity = history @ unit([rec.item_id])[0]
        nearest = [seen[i] for i in np.argsort(-similarity, kind="stable")[:2]]
        assert explained.because[rec.item_id] == tuple(title[i] for i in nearest)


@pytest.mark.integration
def test_demo_cli_explain_flag(movielens_dir: Path, tmp_path: Path) -> None:
    models = write_synthetic_models(tmp_path / "models", data_dir=movielens_dir)
    args = ["demo", "--user", "55", "--models", str(models), "--store", "memory", "--data-dir", str(movielens_dir)]
    plain = runner.invoke(app, args)
    explained = runner.invoke(app, [*args, "--explain"])
    assert plain.exit_code == 0 and explained.exit_code == 0, explained.output
    assert "because you" not in plain.output and "Why these?" not in plain.output
    assert "Why these? Reranked by learned blend (recommended)" in explained.output
    assert "because you rated" in " ".join(explained.output.split())
