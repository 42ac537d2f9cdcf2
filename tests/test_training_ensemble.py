"""An ensemble of trained models served as one: concatenated towers and one averaging MLP."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest

from two_stage_rec.bundle import load_models
from two_stage_rec.errors import InvalidInputError
from two_stage_rec.rerankers.mlp import MLPReranker
from two_stage_rec.training import TrainedModels, TrainingConfig, export_models, train_models
from two_stage_rec.training._ensemble import concatenate_tables, stack_rerankers
from two_stage_rec.training.pipeline import ENSEMBLE_SEED_STEP


def _member(rng: np.random.Generator, d: int, features: str, hidden: tuple[int, ...]) -> MLPReranker:
    widths = [(3 if features == "concat_product" else 2) * d, *hidden, 1]
    weights = [rng.normal(size=(a, b)) for a, b in itertools.pairwise(widths)]
    biases = [rng.normal(size=b) for b in widths[1:]]
    return MLPReranker(weights, biases, user_dimension=d, features=features)  # type: ignore[arg-type]


@pytest.mark.parametrize("features", ["concat", "concat_product"])
@pytest.mark.parametrize("hidden", [(), (6,), (7, 3)])
def test_the_stacked_mlp_scores_the_mean_of_the_members(features: str, hidden: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(hidden))
    d, count, n = 4, 3, 25
    members = [_member(rng, d, features, hidden) for _ in range(count)]
    users = [rng.normal(size=(n, d)).astype(np.float32) for _ in range(count)]
    items = [rng.normal(size=(n, d)).astype(np.float32) for _ in range(count)]
    stacked = stack_rerankers(members)
    assert stacked.user_dimension == stacked.item_dimension == count * d and stacked.features == features
    expected = np.mean([m.score(u, v) for m, u, v in zip(members, users, items, strict=True)], axis=0)
    got = stacked.score(concatenate_tables(users), concatenate_tables(items))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # The retrieval score of concatenated towers is the sum of the members' dot products.
    np.testing.assert_allclose(
        np.sum(concatenate_tables(users) * concatenate_tables(items), axis=1),
        sum(np.sum(u * v, axis=1) for u, v in zip(users, items, strict=True)),
        rtol=1e-5,
        atol=1e-5,
    )


def test_one_member_is_itself_and_mismatched_members_are_refused() -> None:
    rng = np.random.default_rng(0)
    member = _member(rng, 4, "concat_product", (5,))
    assert stack_rerankers([member]) is member
    with pytest.raises(ValueError, match="at least one"):
        stack_rerankers([])
    with pytest.raises(ValueError, match="differ"):
        stack_rerankers([member, _member(rng, 4, "concat", (5,))])
    with pytest.raises(ValueError, match="differ"):
        stack_rerankers([member, _member(rng, 4, "concat_product", (5, 2))])


@pytest.mark.parametrize("ensemble", [0, -1, True, 1.5])
def test_bad_ensemble_sizes_are_rejected(ensemble: object) -> None:
    with pytest.raises(InvalidInputError, match="ensemble"):
        TrainingConfig(ensemble=ensemble)  # type: ignore[arg-type]


pytest.importorskip("tensorflow", reason="training needs the 'tensorflow' extra")


def _train(**changes: object) -> TrainedModels:
    from test_training import CATALOGUE, TINY, synthetic_log

    config = dataclasses.replace(TINY, **changes)  # type: ignore[arg-type]
    return train_models(
        synthetic_log(1200, 0), test=synthetic_log(300, 1), items=CATALOGUE, config=config, progress=False
    )


@pytest.fixture(scope="module")
def pair() -> tuple[TrainedModels, list[TrainedModels]]:
    from test_training import TINY

    ensemble = _train(ensemble=2)
    members = [_train(seed=TINY.seed + ENSEMBLE_SEED_STEP * m) for m in range(2)]
    return ensemble, members


def test_an_ensemble_is_its_members_side_by_side(pair: tuple[TrainedModels, list[TrainedModels]]) -> None:
    ensemble, members = pair
    assert ensemble.dimension == 2 * members[0].dimension
    assert ensemble.user_keys == members[0].user_keys and ensemble.item_keys == members[0].item_keys
    np.testing.assert_array_equal(ensemble.user_vectors, concatenate_tables([m.user_vectors for m in members]))
    np.testing.assert_array_equal(ensemble.item_unknown, np.concatenate([m.item_unknown for m in members]))
    users, items = ensemble.user_vectors[:10], ensemble.item_vectors[5:15]
    d = members[0].dimension
    expected = np.mean(
        [m.reranker.score(users[:, i * d : (i + 1) * d], items[:, i * d : (i + 1) * d]) for i, m in enumerate(members)],
        axis=0,
    )
    np.testing.assert_allclose(ensemble.reranker.score(users, items), expected, rtol=1e-5, atol=1e-5)
    report = ensemble.report
    assert report.epochs["scoring"] == members[0].report.epochs["scoring"]
    assert report.epochs["scoring_member2"] == members[1].report.epochs["scoring"]
    assert report.history["scoring_member2"] == members[1].report.history["scoring"]
    assert report.config["ensemble"] == 2


def test_an_ensemble_exports_and_loads_in_the_one_model_format(
    pair: tuple[TrainedModels, list[TrainedModels]], tmp_path: Path
) -> None:
    ensemble, _ = pair
    loaded = load_models(export_models(ensemble, tmp_path / "models", saved_models=False), backend="numpy")
    keys = ensemble.user_keys[:3]
    np.testing.assert_allclose(loaded.user_embedder.embed(keys), ensemble.user_vectors[:3], rtol=1e-6)
    users, items = ensemble.user_vectors[:4], ensemble.item_vectors[:4]
    np.testing.assert_array_equal(loaded.reranker.score(users, items), ensemble.reranker.score(users, items))
