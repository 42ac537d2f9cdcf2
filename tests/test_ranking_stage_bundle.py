"""The ranking stage in a bundle: written, read back without LightGBM, and served by ``assemble``.

Tiny synthetic data (the world of ``tests/test_feature_ranker.py``); fitting needs LightGBM.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from test_feature_ranker import lightgbm_or_skip, stage, world
from two_stage_rec.assembly import AssembledRecommender, assemble
from two_stage_rec.bundle import (
    RANKER,
    RANKER_HISTORY,
    RANKER_ITEM_ITEM,
    RANKER_STAGE,
    Bundle,
    read_bundle,
    read_manifest,
    write_bundle,
)
from two_stage_rec.errors import InvalidInputError, UnknownUserError
from two_stage_rec.rerankers.ranking_stage import RankingStage, fit_on_holdout
from two_stage_rec.types import RerankerName


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RankingStage]:
    lightgbm_or_skip()
    train, held_out, users, item_embedder, catalogue, items = world()
    fitted_stage = fit_on_holdout(
        stage(train, users, item_embedder, catalogue, items), train.items_by_user(), held_out.items_by_user()
    )
    path = tmp_path_factory.mktemp("ranker") / "bundle"
    write_bundle(
        path,
        user_keys=list(users.keys),
        user_vectors=users.embed(list(users.keys)),
        item_keys=items,
        item_vectors=item_embedder.embed(items),
        catalogue=catalogue,
        train=train,
        recommended="ranker",
        ranking_stage=fitted_stage,
    )
    return path, fitted_stage


@pytest.fixture(scope="module")
def bundle(fitted: tuple[Path, RankingStage]) -> Bundle:
    return read_bundle(fitted[0])


@pytest.fixture()
def served(bundle: Bundle) -> AssembledRecommender:
    return assemble(bundle, store="memory")


def test_the_stage_files_are_listed_in_the_manifest(fitted: tuple[Path, RankingStage]) -> None:
    manifest = read_manifest(fitted[0])
    assert {RANKER, RANKER_ITEM_ITEM, RANKER_HISTORY, RANKER_STAGE} <= set(manifest.files)
    assert manifest.recommended == "ranker"


def test_the_read_stage_ranks_as_the_written_one(fitted: tuple[Path, RankingStage], bundle: Bundle) -> None:
    written = fitted[1]
    loaded = bundle.ranking_stage
    assert loaded is not None and loaded.feature_names == written.feature_names
    assert dict(loaded.depth) == dict(written.depth)
    users = [f"u{i}" for i in range(20)]
    seen = [bundle.seen_items[u] for u in users]
    merged_w, features_w = written.candidates(users, seen)
    merged_l, features_l = loaded.candidates(users, seen)
    np.testing.assert_array_equal(merged_w.columns, merged_l.columns)
    np.testing.assert_allclose(features_w, features_l, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(written.recommend(users, 5, exclude=seen), loaded.recommend(users, 5, exclude=seen))


def test_ranker_is_offered_and_recommended(bundle: Bundle) -> None:
    assert "ranker" in bundle.rerankers
    assert bundle.resolve_reranker() == ("ranker", None)


def test_assembled_serving_answers_through_the_same_api(served: AssembledRecommender, bundle: Bundle) -> None:
    assert served.reranker_name == "ranker"
    stage_ = bundle.ranking_stage
    assert stage_ is not None
    got = served.recommend("u3", k=5)
    assert [r.item_id for r in got] == list(stage_.recommend(["u3"], 5, exclude=[bundle.seen_items["u3"]])[0])
    assert all(r.source == "reranked" for r in got)
    scores = [r.score for r in got]
    assert scores == sorted(scores, reverse=True)
    assert not {r.item_id for r in got} & bundle.seen_items["u3"]
    assert all(r.metadata == bundle.catalogue.metadata_by_id()[r.item_id] for r in got)
    assert all(np.isfinite(r.retrieval_score) for r in got)
    batch = served.recommend_batch(["u3", "u4"], k=5)
    assert [r.item_id for r in batch[0]] == [r.item_id for r in got]


def test_exclusions_include_seen_and_filters_apply(served: AssembledRecommender, bundle: Bundle) -> None:
    first = served.recommend("u5", k=3)
    again = served.recommend("u5", k=3, exclude={first[0].item_id})
    assert first[0].item_id not in {r.item_id for r in again}
    with_seen = served.recommend("u5", k=40, include_seen=True)
    assert {r.item_id for r in with_seen} & bundle.seen_items["u5"]
    dramas = served.recommend("u5", k=10, filter={"genres": {"$in": ["Drama"]}})
    assert dramas and all("Drama" in r.metadata["genres"] for r in dramas)  # type: ignore[operator]
    none_match = served.recommend("u5", k=10, filter={"year": {"$gt": 3000}})
    assert none_match == []


def test_unknown_users_get_the_fallback_and_k_is_checked(served: AssembledRecommender, bundle: Bundle) -> None:
    mixed = served.recommend_batch(["nobody", "u1"], k=4)
    assert [r.source for r in mixed[0]] == ["fallback"] * 4
    assert [r.source for r in mixed[1]] == ["reranked"] * 4
    with pytest.raises(InvalidInputError):
        served.recommend("u1", k=0)
    with pytest.raises(InvalidInputError):
        served.recommend("u1", k=10, candidates=5)
    strict = assemble(bundle, store="memory", fallback=False)
    with pytest.raises(UnknownUserError):
        strict.recommend("nobody", k=3)


def test_rerank_false_and_other_stages_still_use_the_store(served: AssembledRecommender, bundle: Bundle) -> None:
    assert {r.source for r in served.recommend("u2", k=5, rerank=False)} == {"retrieval"}
    plain = assemble(bundle, store="memory", reranker="none")
    assert {r.source for r in plain.recommend("u2", k=5)} == {"retrieval"}


def test_recommended_ranker_needs_the_stage(tmp_path: Path, fitted: tuple[Path, RankingStage]) -> None:
    train, _, users, item_embedder, catalogue, items = world()
    with pytest.raises(InvalidInputError, match="ranking stage"):
        write_bundle(
            tmp_path / "b",
            user_keys=list(users.keys),
            user_vectors=users.embed(list(users.keys)),
            item_keys=items,
            item_vectors=item_embedder.embed(items),
            catalogue=catalogue,
            train=train,
            recommended="ranker",
        )


def test_evaluate_split_reports_the_ranker(bundle: Bundle) -> None:
    from two_stage_rec.workflow import evaluate_split

    train, held_out, *_ = world()
    result = evaluate_split(bundle, train, held_out, k=5, candidates=20, n_resamples=200)
    assert "ranker" in result.rankers and "ranker vs retrieval" in result.comparisons
    assert 0.0 <= result.rankers["ranker"].metrics["ndcg@5"] <= 1.0


def test_choose_second_stage_takes_the_ranker_only_when_best() -> None:
    from two_stage_rec.training.blend import choose_second_stage

    base: dict[RerankerName, float] = {"none": 0.2, "scoring": 0.1, "blend": 0.25}
    assert choose_second_stage(base) == "blend"
    assert choose_second_stage({**base, "ranker": 0.25}) == "blend"
    assert choose_second_stage({**base, "ranker": 0.3}) == "ranker"
    with pytest.raises(InvalidInputError):
        choose_second_stage({"none": 0.2, "ranker": 0.3})


def test_items_deleted_from_the_store_are_not_served(bundle: Bundle) -> None:
    served = assemble(bundle, store="memory")
    before = [r.item_id for r in served.recommend("u6", k=5)]
    served.store.delete(before[:2])
    after = [r.item_id for r in served.recommend("u6", k=5)]
    assert len(after) == 5 and not set(before[:2]) & set(after)
    assert after[:3] == before[2:]


def test_the_service_answers_with_the_ranking_stage(bundle: Bundle) -> None:
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    from fastapi.testclient import TestClient

    from two_stage_rec.serving.app import create_bundle_app

    served = assemble(bundle, store="memory")
    expected = served.recommend_batch(["u7", "nobody"], k=4)
    with TestClient(create_bundle_app(assemble(bundle, store="memory"))) as client:
        for user, want in zip(["u7", "nobody"], expected, strict=True):
            response = client.get(f"/recommendations/{user}", params={"k": 4})
            assert response.status_code == 200, response.text
            items = response.json()["items"]
            assert [item["item_id"] for item in items] == [r.item_id for r in want]
        filtered = client.get("/recommendations/u7", params={"k": 4, "filter": '{"genres": {"$in": ["Comedy"]}}'})
        assert filtered.status_code == 200, filtered.text
        comedies = filtered.json()["items"]
        assert comedies and all("Comedy" in item["metadata"]["genres"] for item in comedies)


def test_without_lightgbm_the_stage_is_skipped_unless_requested(monkeypatch: pytest.MonkeyPatch) -> None:
    from two_stage_rec.errors import MissingDependencyError
    from two_stage_rec.training import blend

    def missing(module: str, *, extra: str, package: str | None = None) -> None:
        raise MissingDependencyError(module, extra)

    monkeypatch.setattr(blend, "require", missing)
    wanted, note = blend._ranking_stage_wanted(None)
    assert not wanted and note["trained"] is False and "two-stage-rec[ranking]" in note["reason"]
    with pytest.raises(MissingDependencyError, match=r"two-stage-rec\[ranking\]"):
        blend._ranking_stage_wanted(True)
    assert blend._ranking_stage_wanted(False)[0] is False


def test_the_demo_shows_the_ranking_stage_marked_as_recommended(fitted: tuple[Path, RankingStage]) -> None:
    from two_stage_rec.cli.demo import render_html, run_demo

    path, _ = fitted
    bundle = read_bundle(path)
    user = sorted(bundle.seen_items)[0]
    result = run_demo(user, models_dir=path, store="memory", k=3, candidates=10, progress=False)
    assert result.staged is not None and len(result.staged) == 3
    with assemble(bundle, store="memory") as served:  # the recommended stage is the ranker
        assert [r.item_id for r in result.staged] == [r.item_id for r in served.recommend(user, k=3, candidates=10)]
    assert not {r.item_id for r in result.staged} & bundle.seen_items[user]
    assert "Learned ranking stage — recommended" in render_html(result)


def test_explanations_name_the_stage_sources_and_feature_contributions(served: AssembledRecommender) -> None:
    plain = served.recommend("u6", k=5)
    explained = served.recommend("u6", k=5, explain=True)
    assert [r.item_id for r in explained] == [r.item_id for r in plain]
    stage_sources = {"tower", "item_item", "popularity"}
    ranker = served.recommender.candidate_ranker
    assert ranker is not None
    names = set(ranker._ranker.feature_names)  # type: ignore[attr-defined]
    for rec in explained:
        assert rec.explanation is not None
        assert set(rec.explanation.candidate_source.split("+")) <= stage_sources
        assert rec.explanation.contributions
        assert {feature for feature, _ in rec.explanation.contributions} <= names
        magnitudes = [abs(value) for _, value in rec.explanation.contributions]
        assert magnitudes == sorted(magnitudes, reverse=True)


def test_a_contribution_is_the_score_change_when_the_feature_takes_the_candidates_mean(
    served: AssembledRecommender,
) -> None:
    ranker = served.recommender.candidate_ranker
    top = served.recommend("u6", k=1)[0]
    seen = served.seen("u6")
    (reason,) = ranker.explain(["u6"], [[top.item_id]], exclude=[seen], filter=None)[0]  # type: ignore[union-attr]
    stage = ranker._stage  # type: ignore[union-attr]
    merged, features = stage.candidates(["u6"], [seen | ranker._unservable])  # type: ignore[union-attr]
    column = merged.ids[0].tolist().index(top.item_id)
    x = features[0, column]
    names = list(ranker._ranker.feature_names)  # type: ignore[union-attr]
    for feature, value in reason.contributions:
        f = names.index(feature)
        candidates = features[0][merged.present[0]][:, f]
        finite = candidates[np.isfinite(candidates)]
        changed = x.copy()
        changed[f] = np.float32(finite.mean())
        expected = ranker._ranker.score(x[None])[0] - ranker._ranker.score(changed[None])[0]  # type: ignore[union-attr]
        assert value == pytest.approx(float(expected), abs=1e-5)


def test_one_user_ranking_equals_the_batch_rows(served: AssembledRecommender, bundle: Bundle) -> None:
    """One user takes the stage ranker's 1-D path; each batch row is the reference (ids exact)."""
    ranker = served.recommender.candidate_ranker
    assert ranker is not None
    users = ["u0", "u3", "u5", "u7"]
    seen = [bundle.seen_items[user] for user in users]
    for k, filter in ((5, None), (500, None), (10, {"genres": {"$in": ["Drama"]}})):
        ids, scores, retrieval = ranker.rank(users, k, exclude=seen, filter=filter)
        for row, (user, skip) in enumerate(zip(users, seen, strict=True)):
            one_ids, one_scores, one_retrieval = ranker.rank([user], k, exclude=[skip], filter=filter)
            assert one_ids.shape == (1, k) and one_scores.dtype == np.float32
            assert one_ids[0].tolist() == ids[row].tolist()
            np.testing.assert_allclose(one_scores[0], scores[row], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(one_retrieval[0], retrieval[row], rtol=1e-5, atol=1e-6)
