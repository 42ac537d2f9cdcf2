"""two_stage_rec.fold_in: user vectors from a few interactions, without retraining.

Each method is checked against a user vector that generated the synthetic
data: the ridge fold-in recovers it exactly in the noiseless full-rank case,
the learned fold-in when its map is exactly linear, the mean fold-in when the
history's mean points along it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from test_bundle import write_synthetic_bundle
from two_stage_rec.bundle import read_bundle
from two_stage_rec.errors import (
    DimensionMismatchError,
    EmptyBatchError,
    InvalidInputError,
    NonFiniteVectorError,
)
from two_stage_rec.fold_in import (
    DEFAULT_METHOD,
    LearnedFoldIn,
    MeanFoldIn,
    RidgeFoldIn,
    SplitFoldIn,
    default_fold_in,
    fit_fold_in,
)
from two_stage_rec.protocols import FoldIn

D = 4
F32 = npt.NDArray[np.float32]


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def cosine(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


# ----------------------------------------------------------------------------- ridge


def test_ridge_recovers_the_generating_vector_exactly_from_noiseless_ratings() -> None:
    gen = rng(1)
    truths = gen.normal(size=(3, D))
    histories = [gen.normal(size=(h, D)).astype(np.float32) for h in (4, 7, 20)]  # each spans R^4
    ratings = [(v.astype(np.float64) @ u).astype(np.float32) for v, u in zip(histories, truths, strict=True)]
    fold = RidgeFoldIn(D, l2=1e-9, positive_target=0.0, rating_slope=1.0, rating_centre=0.0)
    got = fold.fold_in(histories, ratings=ratings, priors=[None] * 3)
    assert got.dtype == np.float32 and got.shape == (3, D)
    np.testing.assert_allclose(got, truths, atol=1e-4)


def test_ridge_matches_its_closed_form_with_negatives_and_priors() -> None:
    gen = rng(2)
    items = gen.normal(size=(30, D))
    popularity = gen.random(30)
    popularity /= popularity.sum()
    gram = (items * popularity[:, None]).T @ items
    mean_item = popularity @ items
    mean_user = gen.normal(size=D)
    fold = RidgeFoldIn(
        D,
        mean_user=mean_user,
        gram=gram,
        mean_item=mean_item,
        positive_target=2.0,
        negative_target=-0.5,
        negative_weight=3.0,
        l2=0.7,
        rating_slope=0.4,
        rating_centre=3.0,
    )
    histories = [items[[0, 5, 9]], items[[3]], items[[1, 2, 4, 6, 7, 8]]]
    ratings: list[F32 | None] = [np.array([5, 1, 3], np.float32), None, np.array([4, 4, 2, 5, 1, 3], np.float32)]
    prior = gen.normal(size=D).astype(np.float32)
    priors: list[F32 | None] = [None, prior, None]
    got = fold.fold_in([h.astype(np.float32) for h in histories], ratings=ratings, priors=priors)
    lam = 0.7 * np.trace(gram) / D
    for row, (v, r, p) in enumerate(zip(histories, ratings, priors, strict=True)):
        v64 = v.astype(np.float32).astype(np.float64)
        targets = 2.0 + (0.0 if r is None else 0.4 * (r.astype(np.float64) - 3.0))
        start = mean_user if p is None else p.astype(np.float64)
        system = v64.T @ v64 + 3.0 * gram + lam * np.eye(D)
        right = v64.T @ (np.ones(len(v)) * targets) + 3.0 * -0.5 * mean_item + lam * start
        np.testing.assert_allclose(got[row], np.linalg.solve(system, right), rtol=1e-4, atol=1e-5)


def test_ridge_with_a_strong_prior_returns_the_prior_and_without_one_the_mean_user() -> None:
    gen = rng(3)
    mean_user = gen.normal(size=D)
    prior = gen.normal(size=D).astype(np.float32)
    fold = RidgeFoldIn(D, mean_user=mean_user, l2=1e9)
    history = gen.normal(size=(2, D)).astype(np.float32)
    got = fold.fold_in([history, history], ratings=[None, None], priors=[prior, None])
    np.testing.assert_allclose(got[0], prior, atol=1e-5)
    np.testing.assert_allclose(got[1], mean_user, atol=1e-5)


def test_ridge_ignores_ratings_without_a_slope_and_uses_them_with_one() -> None:
    gen = rng(4)
    history = gen.normal(size=(5, D)).astype(np.float32)
    stars = np.array([5, 1, 4, 2, 3], np.float32)
    flat = RidgeFoldIn(D, rating_slope=0.0)
    np.testing.assert_array_equal(
        flat.fold_in([history], ratings=[stars], priors=[None]), flat.fold_in([history], ratings=[None], priors=[None])
    )
    sloped = RidgeFoldIn(D, rating_slope=1.0, rating_centre=3.0)
    assert not np.allclose(
        sloped.fold_in([history], ratings=[stars], priors=[None]),
        sloped.fold_in([history], ratings=[None], priors=[None]),
    )


def test_ridge_batches_are_the_users_one_by_one() -> None:
    gen = rng(5)
    fold = RidgeFoldIn(D, mean_user=gen.normal(size=D), gram=np.eye(D), mean_item=np.zeros(D), negative_weight=1.0)
    histories = [gen.normal(size=(h, D)).astype(np.float32) for h in (1, 9, 3, 30)]
    together = fold.fold_in(histories, ratings=[None] * 4, priors=[None] * 4)
    for row, history in enumerate(histories):
        alone = fold.fold_in([history], ratings=[None], priors=[None])
        np.testing.assert_allclose(together[row], alone[0], rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- mean


def test_mean_points_along_the_generating_vector_with_the_trained_norm() -> None:
    gen = rng(6)
    truth = gen.normal(size=D)
    noise = gen.normal(size=(3, D))
    history = np.vstack([truth + noise, truth - noise]).astype(np.float32)  # mean is exactly truth
    got = MeanFoldIn(D, scale=2.5).fold_in([history], ratings=[None], priors=[None])
    assert got.dtype == np.float32 and got.shape == (1, D)
    np.testing.assert_allclose(got[0], 2.5 * truth / np.linalg.norm(truth), rtol=1e-5)
    unscaled = MeanFoldIn(D).fold_in([history], ratings=[None], priors=[None])
    np.testing.assert_allclose(unscaled[0], truth, rtol=1e-5, atol=1e-6)


def test_mean_weights_items_by_rating_above_the_users_lowest() -> None:
    history = np.eye(D, dtype=np.float32)[:3]
    got = MeanFoldIn(D).fold_in([history], ratings=[np.array([3.0, 5.0, 4.0], np.float32)], priors=[None])
    # weights r - min + 1 = 1, 3, 2
    np.testing.assert_allclose(got[0], np.array([1, 3, 2, 0]) / 6.0, rtol=1e-6)
    same = MeanFoldIn(D).fold_in([history], ratings=[np.full(3, 4.0, np.float32)], priors=[None])
    np.testing.assert_allclose(same[0], history.mean(axis=0), rtol=1e-6)


def test_mean_pulls_a_known_user_towards_the_prior_by_its_strength() -> None:
    history = np.ones((2, D), np.float32)
    prior = np.zeros(D, np.float32)
    got = MeanFoldIn(D, prior_strength=6.0).fold_in([history, history], ratings=[None, None], priors=[prior, None])
    np.testing.assert_allclose(got[0], np.full(D, 2.0 / 8.0), rtol=1e-6)  # (6 * 0 + 2 * 1) / (6 + 2)
    np.testing.assert_allclose(got[1], np.ones(D), rtol=1e-6)


# ----------------------------------------------------------------------------- learned


def clustered(seed: int) -> tuple[F32, F32, npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Users whose items all share one vector z (their cluster's) and whose vector is exactly z @ M + c.

    Returns ``(users, items, events, owners, generating)``: ``items`` are the
    40 cluster centres, ``generating[k]`` the vector of a user of cluster k.
    """
    gen = rng(seed)
    centres = gen.normal(size=(40, D))
    mapping = gen.normal(size=(D, D))
    offset = gen.normal(size=D)
    cluster = gen.integers(0, 40, size=400)
    counts = gen.integers(1, 50, size=400)
    owners = np.repeat(np.arange(400), counts)
    users = (centres[cluster] @ mapping + offset).astype(np.float32)
    return users, centres.astype(np.float32), cluster[owners], owners, centres @ mapping + offset


def test_learned_recovers_an_exactly_linear_map_at_every_history_size() -> None:
    users, centres, events, owners, generating = clustered(seed=7)
    fold = LearnedFoldIn.fit(users, centres, events, owners, l2=1e-9)
    for h in (1, 4, 13, 60):
        histories = [np.repeat(centres[k : k + 1], h, axis=0) for k in range(3)]
        got = fold.fold_in(histories, ratings=[None] * 3, priors=[None] * 3)
        assert got.shape == (3, D) and got.dtype == np.float32
        np.testing.assert_allclose(got, generating[:3], atol=1e-3)


def test_learned_shrinks_short_histories_more_on_noisy_data() -> None:
    gen = rng(8)
    n_users, n_items = 600, 200
    item_vectors = gen.normal(size=(n_items, D)).astype(np.float32)
    users = gen.normal(size=(n_users, D)).astype(np.float32)
    histories = [np.argsort(-(item_vectors @ u))[:30] for u in users]
    owners = np.repeat(np.arange(n_users), 30)
    fold = LearnedFoldIn.fit(users, item_vectors, np.concatenate(histories), owners)
    assert fold.sizes[0] == 1 and fold.dimension == D
    one, many = (np.linalg.norm(fold.maps[i][:D]) for i in (0, -1))
    assert one < many
    # on a user it never saw, more history gives a vector closer to theirs
    new_user = gen.normal(size=D)
    best = np.argsort(-(item_vectors @ new_user))[:30]
    close = [
        cosine(fold.fold_in([item_vectors[best[:h]]], ratings=[None], priors=[None])[0], new_user) for h in (1, 30)
    ]
    assert close[1] > close[0] and close[1] > 0.9


# ----------------------------------------------------------------------------- fitting


def synthetic_log(seed: int = 9) -> tuple[list[str], F32, dict[str, set[str]], dict[str, F32], F32]:
    """Users who interacted with the 25 items they score highest, out of 300."""
    gen = rng(seed)
    item_vectors = gen.normal(size=(300, D)).astype(np.float32)
    users = (gen.normal(size=(500, D)) + 0.5).astype(np.float32)
    ids = [f"u{i}" for i in range(500)]
    items = {f"i{j}": item_vectors[j] for j in range(300)}
    histories = {ids[i]: {f"i{j}" for j in np.argsort(-(item_vectors @ u))[:25]} for i, u in enumerate(users)}
    return ids, users, histories, items, item_vectors


@pytest.mark.parametrize("method", ["mean", "ridge", "learned"])
def test_each_fitted_method_points_a_new_user_along_their_generating_vector(method: str) -> None:
    ids, users, histories, items, item_vectors = synthetic_log()
    fold = fit_fold_in(ids, users, histories, items, method=method)  # type: ignore[arg-type]
    assert isinstance(fold, FoldIn)
    new_users = (rng(10).normal(size=(20, D)) + 0.5).astype(np.float32)
    picked = [item_vectors[np.argsort(-(item_vectors @ u))[:10]] for u in new_users]
    got = fold.fold_in(picked, ratings=[None] * 20, priors=[None] * 20)
    assert got.shape == (20, D) and got.dtype == np.float32
    similarity = [cosine(g, u) for g, u in zip(got, new_users, strict=True)]
    assert np.median(similarity) > 0.9, similarity
    # a folded-in user ranks their own history items high, as their generating vector does
    overlap = np.mean(
        [
            len(set(np.argsort(-(item_vectors @ g))[:10]) & set(np.argsort(-(item_vectors @ u))[:10])) / 10
            for g, u in zip(got, new_users, strict=True)
        ]
    )
    assert overlap > 0.5


def test_fitted_ridge_lands_where_trained_users_are() -> None:
    ids, users, histories, items, _ = synthetic_log()
    fold = fit_fold_in(ids, users, histories, items, method="ridge")
    # fold in the trained users themselves from their full histories: close to their trained vectors
    picked = [np.stack([items[i] for i in sorted(histories[u])]) for u in ids[:50]]
    got = fold.fold_in(picked, ratings=[None] * 50, priors=[None] * 50)
    ratio = np.median(np.linalg.norm(got, axis=1)) / np.median(np.linalg.norm(users[:50], axis=1))
    assert 0.5 < ratio < 2.0
    assert np.median([cosine(g, u) for g, u in zip(got, users[:50], strict=True)]) > 0.9


def test_fit_takes_an_embed_callable_and_ratings() -> None:
    ids, users, histories, items, _ = synthetic_log()

    def embed(keys: Sequence[str]) -> F32:
        return np.stack([items[k] for k in keys])

    scores = {u: {i: float(users[n] @ items[i]) for i in histories[u]} for n, u in enumerate(ids)}
    fold = fit_fold_in(ids, users, histories, embed, ratings=scores, method="ridge")
    assert "rating_slope" in repr(fold)
    assert isinstance(fold, RidgeFoldIn) and fold.rating_slope > 0
    plain = fit_fold_in(ids, users, histories, embed, method="ridge")
    assert isinstance(plain, RidgeFoldIn) and plain.rating_slope == 0.0


def test_default_fold_in_of_a_bundle(tmp_path: Path) -> None:
    bundle = read_bundle(write_synthetic_bundle(tmp_path / "models"))
    fold = default_fold_in(bundle)
    assert isinstance(fold, FoldIn)
    assert type(fold).__name__.lower().startswith(DEFAULT_METHOD)
    user = sorted(bundle.seen_items)[0]
    history = sorted(bundle.seen_items[user])
    got = fold.fold_in([bundle.item_embedder.embed(history)], ratings=[None], priors=[None])
    assert got.shape == (1, bundle.item_embedder.dimension) and np.isfinite(got).all()


def test_fit_refuses_bad_input() -> None:
    ids, users, histories, items, _ = synthetic_log()
    with pytest.raises(InvalidInputError, match="one user vector per user id"):
        fit_fold_in(ids[:3], users, histories, items)
    with pytest.raises(InvalidInputError, match="no trained user has a history"):
        fit_fold_in(ids, users, {}, items)
    with pytest.raises(InvalidInputError, match="have no vector"):
        fit_fold_in(ids, users, {ids[0]: {"nope"}}, items)
    with pytest.raises(InvalidInputError, match="method must be"):
        fit_fold_in(ids, users, histories, items, method="average")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="lack the rating"):
        fit_fold_in(ids, users, histories, items, ratings={}, method="ridge")


# ----------------------------------------------------------------------------- the contract, for every method


def every_method() -> list[tuple[str, Callable[[], FoldIn]]]:
    ids, users, histories, items, _ = synthetic_log()
    return [
        ("mean", lambda: MeanFoldIn(D, scale=1.0)),
        ("ridge", lambda: RidgeFoldIn(D)),
        ("learned", lambda: fit_fold_in(ids, users, histories, items, method="learned")),
    ]


@pytest.fixture(params=every_method(), ids=lambda pair: pair[0])
def fold(request: pytest.FixtureRequest) -> FoldIn:
    name_and_factory: tuple[str, Callable[[], FoldIn]] = request.param
    return name_and_factory[1]()


def test_shapes_dtypes_and_ratings_none_or_given(fold: FoldIn) -> None:
    gen = rng(11)
    histories = [gen.normal(size=(h, D)).astype(np.float32) for h in (1, 2, 6)]
    ratings: list[F32 | None] = [None, np.array([1.0, 5.0], np.float32), np.arange(6, dtype=np.float32)]
    got = fold.fold_in(histories, ratings=ratings, priors=[None, gen.normal(size=D).astype(np.float32), None])
    assert got.shape == (3, D) and got.dtype == np.float32 and np.isfinite(got).all()
    assert fold.fold_in([], ratings=[], priors=[]).shape == (0, D)
    assert isinstance(fold, FoldIn)


def test_a_prior_changes_the_vector(fold: FoldIn) -> None:
    history = rng(12).normal(size=(3, D)).astype(np.float32)
    prior = np.full(D, 5.0, np.float32)
    without, with_prior = fold.fold_in([history, history], ratings=[None, None], priors=[None, prior])
    assert np.linalg.norm(with_prior - prior) < np.linalg.norm(without - prior)


BAD = [
    ("empty history", [np.zeros((0, D), np.float32)], [None], [None], EmptyBatchError, "history 0 is empty"),
    ("fewer ratings", [np.ones((2, D), np.float32)], [], [None], InvalidInputError, "one entry per user"),
    ("fewer priors", [np.ones((2, D), np.float32)], [None], [], InvalidInputError, "one entry per user"),
    (
        "rating count",
        [np.ones((2, D), np.float32)],
        [np.ones(3, np.float32)],
        [None],
        InvalidInputError,
        "2 items but 3 ratings",
    ),
    ("nan vector", [np.full((2, D), np.nan, np.float32)], [None], [None], NonFiniteVectorError, "NaN"),
    (
        "inf rating",
        [np.ones((1, D), np.float32)],
        [np.array([np.inf], np.float32)],
        [None],
        NonFiniteVectorError,
        "ratings 0",
    ),
    (
        "nan prior",
        [np.ones((1, D), np.float32)],
        [None],
        [np.full(D, np.nan, np.float32)],
        NonFiniteVectorError,
        "prior 0",
    ),
    ("width", [np.ones((2, D + 1), np.float32)], [None], [None], DimensionMismatchError, "history 0"),
    (
        "prior width",
        [np.ones((2, D), np.float32)],
        [None],
        [np.ones(D + 2, np.float32)],
        DimensionMismatchError,
        "prior 0",
    ),
    ("one matrix", np.ones((2, D), np.float32), [None, None], [None, None], InvalidInputError, "sequence of per-user"),
]


@pytest.mark.parametrize(("case", "vectors", "ratings", "priors", "error", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_with_a_clear_error(
    fold: FoldIn, case: str, vectors: object, ratings: object, priors: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        fold.fold_in(vectors, ratings=ratings, priors=priors)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: MeanFoldIn(0), "dimension"),
        (lambda: MeanFoldIn(D, scale=-1.0), "scale"),
        (lambda: MeanFoldIn(D, prior_strength=float("nan")), "prior_strength"),
        (lambda: RidgeFoldIn(D, l2=0.0), "l2"),
        (lambda: RidgeFoldIn(D, negative_weight=-1.0), "negative_weight"),
        (lambda: RidgeFoldIn(D, gram=np.eye(D)), "mean_item"),
        (lambda: RidgeFoldIn(D, gram=np.eye(D + 1), mean_item=np.zeros(D)), "gram"),
        (lambda: RidgeFoldIn(D, mean_user=np.zeros(D + 1)), "mean_user"),
        (lambda: LearnedFoldIn(np.zeros((2, D + 1, D)), [1]), "one size per map"),
        (lambda: LearnedFoldIn(np.zeros((2, D + 1, D)), [1, 1]), "increase"),
        (lambda: LearnedFoldIn(np.zeros((1, D, D)), [1]), "shape"),
    ],
)
def test_bad_settings_are_refused(make: Callable[[], object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        make()


# ----------------------------------------------------------------------------- more of the fitting


def test_ridge_with_a_prior_precision_matches_its_closed_form() -> None:
    gen = rng(13)
    spread = gen.normal(size=(D, D))
    precision = spread @ spread.T + np.eye(D)
    mean_user = gen.normal(size=D)
    fold = RidgeFoldIn(D, mean_user=mean_user, positive_target=1.5, l2=0.5, prior_precision=precision)
    history = gen.normal(size=(3, D)).astype(np.float32)
    got = fold.fold_in([history], ratings=[None], priors=[None])[0]
    v = history.astype(np.float64)
    expected = np.linalg.solve(v.T @ v + 0.5 * precision, v.T @ np.full(3, 1.5) + 0.5 * precision @ mean_user)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_learned_with_ratings_fits_on_rating_weighted_means() -> None:
    gen = rng(14)
    n_users = 60
    items = gen.normal(size=(90, D)).astype(np.float32)
    events = gen.permutation(90 * 2)[: n_users * 3] % 90  # three items per user
    owners = np.repeat(np.arange(n_users), 3)
    stars = gen.integers(1, 6, size=events.size).astype(np.float64)
    users = gen.normal(size=(n_users, D)).astype(np.float32)
    fold = LearnedFoldIn.fit(users, items, events, owners, ratings=stars, sizes=(1, 3), l2=1e-9)
    # size 3 takes each user's whole history: its map is the least-squares map from the weighted means
    weights = (stars - np.minimum.reduceat(stars, np.arange(0, events.size, 3))[owners] + 1.0)[:, None]
    means = np.add.reduceat(items[events] * weights, np.arange(0, events.size, 3)) / np.add.reduceat(
        weights, np.arange(0, events.size, 3)
    )
    x = np.hstack([means, np.ones((n_users, 1))])
    expected = np.linalg.lstsq(x, users.astype(np.float64), rcond=None)[0]
    np.testing.assert_allclose(fold.maps[1], expected, rtol=1e-4, atol=1e-4)
    same = np.full(events.size, 4.0)
    np.testing.assert_allclose(
        LearnedFoldIn.fit(users, items, events, owners, ratings=same).maps,
        LearnedFoldIn.fit(users, items, events, owners).maps,
        rtol=1e-9,
        atol=1e-12,
    )


def test_fitting_does_not_depend_on_the_order_of_the_histories() -> None:
    ids, users, histories, items, _ = synthetic_log()
    reordered = {user: list(reversed(sorted(seen))) for user, seen in reversed(histories.items())}
    for method in ("ridge", "learned"):
        one = fit_fold_in(ids, users, histories, items, method=method)
        two = fit_fold_in(ids, users, reordered, items, method=method)
        probe = [np.stack([items["i1"], items["i2"]])]
        np.testing.assert_array_equal(
            one.fold_in(probe, ratings=[None], priors=[None]), two.fold_in(probe, ratings=[None], priors=[None])
        )


def test_ridge_score_statistics_on_a_sample_of_many_events(monkeypatch: pytest.MonkeyPatch) -> None:
    from two_stage_rec.fold_in import fit as fit_module

    ids, users, histories, items, _ = synthetic_log()
    exact = fit_fold_in(ids, users, histories, items, method="ridge")
    monkeypatch.setattr(fit_module, "SCORE_SAMPLE", 2_000)  # of 12,500 events
    sampled = fit_fold_in(ids, users, histories, items, method="ridge")
    assert isinstance(exact, RidgeFoldIn) and isinstance(sampled, RidgeFoldIn)
    assert sampled.positive_target == pytest.approx(exact.positive_target, rel=0.1)


def test_the_isotropic_prior_is_offered_and_unknown_priors_are_refused() -> None:
    ids, users, histories, items, _ = synthetic_log()
    isotropic = fit_fold_in(ids, users, histories, items, method="ridge", prior="isotropic", l2=3.0)
    covariance = fit_fold_in(ids, users, histories, items, method="ridge")
    probe = [np.stack([items["i1"]])]
    one, two = (fold.fold_in(probe, ratings=[None], priors=[None]) for fold in (isotropic, covariance))
    assert not np.allclose(one, two)
    with pytest.raises(InvalidInputError, match="prior must be"):
        fit_fold_in(ids, users, histories, items, prior="flat")  # type: ignore[arg-type]


def test_split_routes_new_users_to_one_fold_in_and_known_users_to_the_other() -> None:
    gen = rng(15)
    new, known = RidgeFoldIn(D, mean_user=gen.normal(size=D)), MeanFoldIn(D, prior_strength=2.0)
    split = SplitFoldIn(new, known, dimension=D)
    histories = [gen.normal(size=(h, D)).astype(np.float32) for h in (2, 3, 1, 4)]
    prior = gen.normal(size=D).astype(np.float32)
    priors: list[F32 | None] = [None, prior, None, prior]
    got = split.fold_in(histories, ratings=[None] * 4, priors=priors)
    np.testing.assert_array_equal(
        got[[0, 2]], new.fold_in([histories[0], histories[2]], ratings=[None] * 2, priors=[None] * 2)
    )
    np.testing.assert_array_equal(
        got[[1, 3]], known.fold_in([histories[1], histories[3]], ratings=[None] * 2, priors=[prior] * 2)
    )
    assert split.new is new and split.known is known and "SplitFoldIn" in repr(split)
    # an error names the user's position in the whole batch
    with pytest.raises(EmptyBatchError, match="history 3 is empty"):
        split.fold_in([*histories[:3], np.zeros((0, D), np.float32)], ratings=[None] * 4, priors=priors)


def test_the_default_is_split_ridge_for_new_users_and_learned_for_known_ones() -> None:
    ids, users, histories, items, _ = synthetic_log()
    fold = fit_fold_in(ids, users, histories, items)
    assert DEFAULT_METHOD == "split" and isinstance(fold, SplitFoldIn)
    assert isinstance(fold.new, RidgeFoldIn) and isinstance(fold.known, LearnedFoldIn)


# ----------------------------------------------------------------------------- on a bundle trained on MovieLens-100K


@pytest.mark.integration
def test_on_a_movielens_bundle_folded_in_users_land_where_trained_users_are(tiny_movielens_models: Path) -> None:
    """A trained user folded in from their own training items, with no prior, gets a vector like their trained one.

    The tiny bundle is a poor model (no test judges its quality), so the bar
    is relative: the folded vector is closer to the user's own trained vector
    than to other users' trained vectors.
    """
    bundle = read_bundle(tiny_movielens_models)
    fold = default_fold_in(bundle)
    assert isinstance(fold, SplitFoldIn)
    users = sorted(bundle.seen_items, key=int)[:200]
    trained = bundle.user_embedder.embed(users)
    histories = [bundle.item_embedder.embed(sorted(bundle.seen_items[user])) for user in users]
    folded = fold.fold_in(histories, ratings=[None] * len(users), priors=[None] * len(users))
    assert folded.shape == trained.shape and folded.dtype == np.float32 and np.isfinite(folded).all()
    similarity = np.median([cosine(f, t) for f, t in zip(folded, trained, strict=True)])
    others = np.roll(trained, 1, axis=0)  # each folded vector against another user's trained one
    baseline = np.median([cosine(f, t) for f, t in zip(folded, others, strict=True)])
    assert similarity > baseline, (similarity, baseline)
    ratio = np.median(np.linalg.norm(folded, axis=1)) / np.median(np.linalg.norm(trained, axis=1))
    assert 0.3 < ratio < 3.0, ratio
    # with their trained vector as the prior and a little recent activity, a known user stays close to it
    recent = [h[:2] for h in histories]
    updated = fold.fold_in(recent, ratings=[None] * len(users), priors=list(trained))
    assert np.median([cosine(u, t) for u, t in zip(updated, trained, strict=True)]) > np.median(
        [
            cosine(f, t)
            for f, t in zip(
                fold.fold_in(recent, ratings=[None] * len(users), priors=[None] * len(users)), trained, strict=True
            )
        ]
    )
