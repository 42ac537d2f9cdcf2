"""The learned ranking stage: features, the numpy tree ensemble, fitting on held-out items.

LightGBM (the ``ranking`` extra) is needed to fit; the numpy evaluation of a
fitted ensemble is checked against LightGBM's own predictions, and a
hand-built ensemble checks LightGBM's missing-value rules without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from two_stage_rec.candidates import MergedCandidates, TowerSource, merge_candidates
from two_stage_rec.datasets import Catalogue, Interactions
from two_stage_rec.embedders.table import TableEmbedder
from two_stage_rec.errors import InvalidInputError, ModelError
from two_stage_rec.rerankers.feature_ranker import FeatureRanker, RankerParams, TreeEnsemble, fit_feature_ranker
from two_stage_rec.rerankers.features import CONTEXT_FEATURES, CandidateFeatures
from two_stage_rec.rerankers.ranking_stage import RankingStage, fit_on_holdout

N_USERS, N_ITEMS = 60, 40


def lightgbm_or_skip() -> None:
    pytest.importorskip("lightgbm", reason='fitting needs LightGBM: pip install "two-stage-rec[ranking]"')


def world(seed: int = 0) -> tuple[Interactions, Interactions, TableEmbedder, TableEmbedder, Catalogue, list[str]]:
    """Users pick items close to their vector, plus a popularity the towers do not see."""
    rng = np.random.default_rng(seed)
    items = [f"m{j}" for j in range(N_ITEMS)]
    users = [f"u{i}" for i in range(N_USERS)]
    u = rng.normal(size=(N_USERS, 4)).astype(np.float32)
    v = rng.normal(size=(N_ITEMS, 4)).astype(np.float32)
    popularity = np.linspace(2.0, -2.0, N_ITEMS)
    rows_u, rows_i, times = [], [], []
    for i in range(N_USERS):
        utility = u[i] @ v.T + popularity + rng.gumbel(size=N_ITEMS)
        for t, j in enumerate(np.argsort(-utility)[:10]):
            rows_u.append(users[i])
            rows_i.append(items[j])
            times.append(1_000 * i + t)
    log = Interactions.from_arrays(user_ids=rows_u, item_ids=rows_i, timestamps=times)
    last = np.array([t % 1_000 >= 8 for t in times])  # each user's last two picks are held out
    genres = ["Drama", "Comedy", "Action"]
    catalogue = Catalogue.from_records(
        items, [{"genres": [genres[j % 3]], "year": 1990 + j % 7} for j in range(N_ITEMS)]
    )
    return log.take(~last), log.take(last), TableEmbedder(users, u), TableEmbedder(items, v), catalogue, items


def stage(
    history: Interactions,
    user_embedder: TableEmbedder,
    item_embedder: TableEmbedder,
    catalogue: Catalogue,
    items: list[str],
) -> RankingStage:
    return RankingStage.for_models(
        history,
        user_embedder=user_embedder,
        item_embedder=item_embedder,
        items=items,
        catalogue=catalogue,
        depth={"tower": 10, "item_item": 10},
        item_item_l2=5.0,
    )


def test_features_have_one_named_column_each_and_nan_padding() -> None:
    train, _, users, items_embedder, catalogue, items = world()
    built = stage(train, users, items_embedder, catalogue, items)
    merged, features = built.candidates(["u0", "u1"], [train.items_by_user()[u] for u in ("u0", "u1")])
    names = built.feature_names
    assert features.shape == (*merged.columns.shape, len(names))
    assert names[-len(CONTEXT_FEATURES) :] == CONTEXT_FEATURES
    present = merged.present
    assert np.isnan(features[~present]).all()
    rank = features[..., names.index("tower:rank")]
    for row in range(2):
        real = rank[row, present[row]]
        assert sorted(real.tolist()) == list(range(real.size))
        gap = features[row, present[row], names.index("tower:gap")]
        assert gap.max() == 0.0
    genre = features[..., names.index("affinity:genre")][present]
    assert ((genre >= 0) & (genre <= 1 + 1e-6)).all()
    assert np.isnan(features[..., names.index("scoring:score")][present]).all()  # no scoring model given


class HalfDot:
    """A scoring model: half the dot product plus one (any deterministic pair score will do)."""

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        scores: np.ndarray = ((users * items).sum(axis=1) * 0.5 + 1.0).astype(np.float32)
        return scores


def twice(merged: MergedCandidates) -> MergedCandidates:
    """One user's candidates as two identical rows: the batch path's input for the same numbers."""
    return MergedCandidates(
        users=merged.users * 2,
        item_ids=merged.item_ids,
        columns=np.repeat(merged.columns, 2, axis=0),
        counts=np.repeat(merged.counts, 2),
        scores={name: np.repeat(s, 2, axis=0) for name, s in merged.scores.items()},
        retrieved_by={name: np.repeat(r, 2, axis=0) for name, r in merged.retrieved_by.items()},
    )


@pytest.mark.parametrize("recent", [5, 12])  # 12: longer than every history, so the recent slots are padded
def test_one_users_features_equal_the_batch_paths(recent: int) -> None:
    """One user takes the 1-D path; the batch path over the same candidates is the reference, bit for bit."""
    train, _, users, items_embedder, catalogue, items = world()
    with_new = TableEmbedder([*users.keys, "new"], np.vstack([users.vectors, np.ones((1, 4), np.float32)]))
    built = stage(train, with_new, items_embedder, catalogue, items)
    tower = built.sources["tower"]
    assert isinstance(tower, TowerSource)
    seen = train.items_by_user()
    for scoring in (HalfDot(), None):
        features = CandidateFeatures(train, tower, scoring=scoring, catalogue=catalogue, recent=recent)
        for user in ("u0", "u1", "u7", "new"):  # "new" has no history
            one = merge_candidates(built.sources, built.depth, [user], exclude=[seen.get(user, set())])
            single = features.build(one)
            assert single.shape == (1, one.columns.shape[1], len(built.feature_names))
            assert single.dtype == np.float32 and not np.isnan(single).all(axis=2).any()
            np.testing.assert_array_equal(single[0], features.build(twice(one))[0])
            # Again, from the user's summary cached by the first call: the same bits.
            np.testing.assert_array_equal(features.build(one), single)


def test_features_reject_candidates_over_another_item_list() -> None:
    train, _, users, items_embedder, _, items = world()
    other = TowerSource(users, items_embedder, items[:-1])
    merged = merge_candidates({"tower": other}, {"tower": 5}, ["u0"])
    with pytest.raises(InvalidInputError):
        CandidateFeatures(train, TowerSource(users, items_embedder, items)).build(merged)


def hand_built() -> TreeEnsemble:
    # Tree 0: x0 <= 0.5 (NaN goes right) ? leaf 1.0 : leaf 2.0
    # Tree 1: x1 <= 0 with "Zero" missing (0 and NaN go left) ? leaf 10 : leaf 20
    # Tree 2: x0 <= -1 with "None" missing (NaN counts as 0) ? leaf 100 : leaf 200
    return TreeEnsemble(
        feature=np.array([0, 1, 0], np.int32),
        threshold=np.array([0.5, 0.0, -1.0]),
        left=np.array([~0, ~2, ~4], np.int32),
        right=np.array([~1, ~3, ~5], np.int32),
        default_left=np.array([False, True, False]),
        missing=np.array([2, 1, 0], np.int8),
        leaf_value=np.array([1.0, 2.0, 10.0, 20.0, 100.0, 200.0]),
        roots=np.array([0, 1, 2], np.int32),
        n_features=2,
    )


def test_tree_ensemble_follows_lightgbms_missing_value_rules() -> None:
    rows = np.array([[0.0, 1.0], [np.nan, 0.0], [1.0, np.nan], [-2.0, -1.0]])
    np.testing.assert_array_equal(hand_built().predict(rows), [1 + 20 + 200, 2 + 10 + 200, 2 + 10 + 200, 1 + 10 + 100])


def test_feature_ranker_round_trips_and_pads_score_minus_infinity(tmp_path: Path) -> None:
    ranker = FeatureRanker(("a", "b"), hand_built())
    x = np.array([[[0.0, 1.0], [np.nan, np.nan]]])
    scores = ranker.score(x)
    assert scores[0, 0] == 221.0 and scores[0, 1] == -np.inf
    loaded = FeatureRanker.load(ranker.save(tmp_path / "ranker.npz"))
    assert loaded.feature_names == ("a", "b")
    np.testing.assert_array_equal(loaded.score(x), scores)
    (tmp_path / "bad.npz").write_bytes(b"not a ranker")
    with pytest.raises(ModelError):
        FeatureRanker.load(tmp_path / "bad.npz")
    with pytest.raises(InvalidInputError):
        FeatureRanker(("a",), hand_built())


def test_numpy_trees_equal_lightgbms_predictions() -> None:
    lightgbm_or_skip()
    import lightgbm

    rng = np.random.default_rng(1)
    x = rng.normal(size=(3_000, 5))
    x[rng.random(x.shape) < 0.1] = np.nan
    x[rng.random(x.shape) < 0.05] = 0.0
    y = (np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 1]) ** 2 > 1.0).astype(int)
    # 7 leaves: evaluated through per-tree tables; 31 leaves: walked level by level.
    for missing, leaves in ((True, 7), (False, 7), (True, 31), (False, 31)):
        params = {"objective": "binary", "num_leaves": leaves, "verbosity": -1, "num_threads": 1}
        params.update(use_missing=missing, zero_as_missing=not missing)
        booster = lightgbm.train(params, lightgbm.Dataset(x, label=y), num_boost_round=30)
        trees = TreeEnsemble.from_lightgbm(booster.dump_model())
        expected = booster.predict(x, raw_score=True)
        np.testing.assert_allclose(trees.predict(x), expected, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(trees.predict(x[:3]), expected[:3], rtol=1e-9, atol=1e-9)


def test_fit_learns_a_planted_signal() -> None:
    lightgbm_or_skip()
    rng = np.random.default_rng(2)
    labels = rng.random((200, 20)) < 0.1
    features = rng.normal(size=(200, 20, 3)).astype(np.float32)
    features[..., 1] += 2.0 * labels  # column 1 tells the positives apart
    features[0, 15:] = np.nan  # padding
    labels[0, 15:] = False
    ranker = fit_feature_ranker(
        features, labels, ["noise", "signal", "more noise"], params=RankerParams(min_data_in_leaf=20)
    )
    scores = ranker.score(features)
    assert np.isneginf(scores[0, 15:]).all()
    users = labels.any(axis=1) & ~labels.all(axis=1)
    positive_mean = np.mean([scores[i][labels[i]].mean() for i in np.flatnonzero(users)])
    negative_mean = np.mean([scores[i][~labels[i] & np.isfinite(scores[i])].mean() for i in np.flatnonzero(users)])
    assert positive_mean > negative_mean
    assert ranker.report["gain_importance"]["signal"] == max(ranker.report["gain_importance"].values())
    with pytest.raises(InvalidInputError, match="nothing to learn"):
        fit_feature_ranker(features, np.zeros_like(labels), ["a", "b", "c"])


def test_fit_on_holdout_then_serve_with_other_models() -> None:
    lightgbm_or_skip()
    train, test, users, items_embedder, catalogue, items = world()
    seen = train.items_by_user()
    fitted = fit_on_holdout(
        stage(train, users, items_embedder, catalogue, items),
        seen,
        test.items_by_user(),
        params=RankerParams(min_data_in_leaf=20, n_trees=20),
    )
    assert fitted.ranker is not None
    assert 0.0 <= fitted.report["cross_fit_ndcg@10"] <= 1.0
    assert fitted.report["users"] == N_USERS
    # Served from a stage built on other events (as after retraining on everything): same features, same ranker.
    serving = stage(Interactions.concatenate([train, test]), users, items_embedder, catalogue, items).with_ranker(
        fitted.ranker
    )
    everything = Interactions.concatenate([train, test]).items_by_user()
    ids = serving.recommend(["u0", "u1"], 5, exclude=[everything["u0"], everything["u1"]])
    assert ids.shape == (2, 5)
    assert not set(ids[0].tolist()) & everything["u0"]
    with pytest.raises(InvalidInputError, match="no ranker"):
        stage(train, users, items_embedder, catalogue, items).recommend(["u0"], 5)
    without_item_item = RankingStage.for_models(
        train, user_embedder=users, item_embedder=items_embedder, items=items, item_item_l2=None
    )
    with pytest.raises(InvalidInputError, match="other features"):
        without_item_item.with_ranker(fitted.ranker)
