"""Fold-in on MovieLens-100K: how well do users the towers never saw get recommendations from a few interactions?

Protocol (seeded, every number from one run):

1. Users are split once (seed 0): 20% **test users** and 10% **validation
   users** are held out of training entirely; the other 70% are the
   training users. Each training user's latest 20% of events (by timestamp)
   is held out too (their "future", for the known-user measurement).
2. One bundle is trained with :func:`two_stage_rec.workflow.train_bundle`
   (the default pipeline config, explicit feedback) on the training users'
   earlier 80%, and cached under ``<cache>/benchmarks/fold_in/``.
3. Each fold-in is fitted from the bundle as the assembler fits it
   (:func:`two_stage_rec.fold_in.default_fold_in`: the trained users'
   vectors and ``seen_items``, no ratings), and, for the "+ ratings" rows,
   by :func:`~two_stage_rec.fold_in.fit_fold_in` with the training ratings.
4. New users: each test user's first n = 1, 3, 5, 10 events (by timestamp)
   are the history; every other event of theirs is relevant. Items are
   ranked over the whole catalogue (1,682 movies) by the dot product with
   the folded-in vector, history excluded, and NDCG@10 / recall@10 are
   averaged over the users (:mod:`two_stage_rec.evaluation.metrics`).
   Compared with the most popular items (training events), EASE
   item-to-item scores of the history (:class:`ItemItemSource`, l2 400,
   fitted on the training events), and **trained**: towers trained again
   (``train_models``, the same config) on the training events plus each test
   user's first n events, ranking for the test user with their trained
   vector (one extra training per n, cached).
5. The ridge fold-in's α and l2 were chosen on the validation users (grid in
   ``tuning``), never on the test users.
6. Known users: half of the training users (seed 0) give their first n
   future events as history (the trained vector as prior); the rest of
   their future events are relevant, training items and history excluded.
   Compared: the trained vector alone, fold-in without the prior, with it.
   The prior's weight (κ, l2) is chosen on the other half.
7. Cost: :func:`fit_fold_in` on this bundle, and on synthetic 100k users x
   50 events (d = 32), median of 3 runs; fold-in of one user.

Writes ``benchmarks/results/fold_in.json``. Reproduce (the first run also
trains and caches the bundle and the four references, a few minutes on 2
cores; then about a minute of evaluation and two of cost measurement)::

    TWO_STAGE_REC_DATA=path/to/ml-100k .venv/bin/python benchmarks/fold_in.py
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, display_path, machine, write_results

from two_stage_rec.bundle import Bundle, read_bundle
from two_stage_rec.candidates.item_item import ItemItemSource
from two_stage_rec.datasets import Interactions, default_cache_dir
from two_stage_rec.datasets.catalogue import Catalogue
from two_stage_rec.datasets.splits import temporal_split
from two_stage_rec.embedders.table import TableEmbedder
from two_stage_rec.evaluation.bootstrap import paired_bootstrap
from two_stage_rec.evaluation.metrics import hit_matrix, ndcg_at_k, recall_at_k
from two_stage_rec.fold_in import DEFAULT_METHOD, FoldInMethod, fit_fold_in
from two_stage_rec.fold_in.fit import PRIOR_STRENGTH, RIDGE_L2, RIDGE_NEGATIVE_WEIGHT, RIDGE_PRIOR
from two_stage_rec.protocols import FoldIn

COMMAND = "TWO_STAGE_REC_DATA=path/to/ml-100k .venv/bin/python benchmarks/fold_in.py"
SEED = 0
TEST_USERS = 0.2
VALIDATION_USERS = 0.1
HISTORY_SIZES = (1, 3, 5, 10)
CACHE = default_cache_dir() / "benchmarks" / "fold_in"


@dataclass(frozen=True)
class Data:
    log: Interactions
    catalogue: Catalogue
    train: Interactions
    known_future: Interactions
    test_users: list[str]
    validation_users: list[str]


def load() -> Data:
    from two_stage_rec.datasets.movielens import movielens_100k

    data = movielens_100k(progress=False)
    log = data.interactions
    users = np.unique(log.user_ids)
    order = np.random.default_rng(SEED).permutation(users.size)
    n_test = round(TEST_USERS * users.size)
    n_val = round(VALIDATION_USERS * users.size)
    test_users = sorted(users[order[:n_test]].tolist(), key=int)
    validation_users = sorted(users[order[n_test : n_test + n_val]].tolist(), key=int)
    held = np.isin(log.user_ids, test_users + validation_users)
    train, known_future = temporal_split(log.take(~held), 0.2)
    return Data(log, data.catalogue, train, known_future, test_users, validation_users)


def first_events(log: Interactions, users: list[str], n: int) -> Interactions:
    """Each of ``users``' first ``n`` events by timestamp (ties: log order)."""
    assert log.timestamps is not None
    rows = np.flatnonzero(np.isin(log.user_ids, users))
    sub = log.take(rows)
    assert sub.timestamps is not None
    order = np.lexsort((np.arange(len(sub)), sub.timestamps, sub.user_ids))
    sorted_users = sub.user_ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    rank = np.arange(len(sub)) - np.repeat(starts, np.diff(np.r_[starts, len(sub)]))
    return sub.take(np.sort(order[rank < n]))


def prepare(data: Data, *, progress: bool) -> dict[str, Any]:
    """Train (once; cached) the bundle and the "trained" references; returns what was trained now, in seconds."""
    from two_stage_rec.bundle import is_bundle
    from two_stage_rec.training.blend import PIPELINE_CONFIG
    from two_stage_rec.training.pipeline import train_models
    from two_stage_rec.workflow import train_bundle

    trained: dict[str, Any] = {}
    bundle_dir = CACHE / "bundle"
    if not is_bundle(bundle_dir):
        started = time.perf_counter()
        train_bundle(
            data.train,
            data.catalogue,
            bundle_dir,
            split_spec=None,
            measure=False,
            dataset="movielens-100k",
            progress=progress,
        )
        trained["bundle_s"] = round(time.perf_counter() - started, 1)
    for n in HISTORY_SIZES:
        target = CACHE / f"trained_with_first_{n}.npz"
        if target.exists():
            continue
        started = time.perf_counter()
        log = Interactions.concatenate([data.train, first_events(data.log, data.test_users, n)])
        models = train_models(log, items=list(data.catalogue.item_ids), config=PIPELINE_CONFIG, progress=progress)
        np.savez(
            target,
            user_keys=np.array(models.user_keys, dtype=np.str_),
            user_vectors=models.user_vectors,
            item_keys=np.array(models.item_keys, dtype=np.str_),
            item_vectors=models.item_vectors,
        )
        trained[f"trained_with_first_{n}_s"] = round(time.perf_counter() - started, 1)
    return trained


K = 10
EASE_L2 = 400.0
RIDGE_GRID = [
    {"prior": prior, "negative_weight": alpha, "l2": l2}
    for prior, l2s in (("covariance", (0.1, 0.3, 1.0, 3.0, 10.0)), ("isotropic", (1.0, 10.0, 30.0, 100.0, 1000.0)))
    for alpha in (0.0, 0.3, 1.0)
    for l2 in l2s
]
PRIOR_GRID = {"mean": (1.0, 3.0, 10.0, 30.0, 100.0), "learned": (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)}
RIDGE_PRIOR_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
Scores = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Users:
    """A group of users to measure: per user the history (item rows, ratings) and the relevant items."""

    ids: list[str]
    history: list[npt.NDArray[np.int64]]
    ratings: list[npt.NDArray[np.float32]]
    relevant: list[set[str]]
    exclude: list[npt.NDArray[np.int64]]


class Setup:
    """The bundle's item table, popularity and EASE, and the ways to rank for a group of users."""

    def __init__(self, bundle: Bundle, data: Data) -> None:
        items = bundle.item_embedder
        assert isinstance(items, TableEmbedder)
        self.bundle = bundle
        self.item_ids = items.keys
        self.row = {item: r for r, item in enumerate(self.item_ids)}
        self.item_vectors = np.asarray(items.vectors, dtype=np.float32)
        popularity = np.zeros(len(self.item_ids))
        for item, count in bundle.popularity.items():
            popularity[self.row[item]] = count
        self.popularity = popularity
        self.ease = ItemItemSource.fit(data.train, self.item_ids, l2=EASE_L2).weights
        trained = bundle.user_embedder.embed(sorted(bundle.seen_items))
        self.mean_user = trained.astype(np.float64).mean(axis=0)

    def users(self, log: Interactions, ids: Sequence[str], n: int, seen: Mapping[str, frozenset[str]]) -> Users:
        """Each user's first ``n`` events of ``log`` as history, the rest relevant (users with more than n)."""
        assert log.timestamps is not None and log.ratings is not None
        rows = np.flatnonzero(np.isin(log.user_ids, list(ids)))
        order = rows[np.lexsort((rows, log.timestamps[rows], log.user_ids[rows]))]
        by_user: dict[str, list[int]] = {}
        for r in order.tolist():
            by_user.setdefault(str(log.user_ids[r]), []).append(r)
        out = Users([], [], [], [], [])
        for user in ids:
            events = by_user.get(user, [])
            if len(events) <= n:
                continue
            first = events[:n]
            history = np.array([self.row[str(log.item_ids[r])] for r in first], dtype=np.int64)
            out.ids.append(user)
            out.history.append(history)
            out.ratings.append(log.ratings[first].astype(np.float32))
            out.relevant.append({str(log.item_ids[r]) for r in events[n:]})
            before = np.array([self.row[i] for i in seen.get(user, ())], dtype=np.int64)
            out.exclude.append(np.concatenate([history, before]))
        return out

    def measure(self, scores: Scores, users: Users) -> dict[str, npt.NDArray[np.float64]]:
        """NDCG@10 and recall@10 per user of ranking all items by ``scores`` (n_users, n_items), higher first."""
        ranked = scores.copy()
        for row, excluded in enumerate(users.exclude):
            ranked[row, excluded] = -np.inf
        top = np.argsort(-ranked, axis=1, kind="stable")[:, :K]
        ids = np.asarray(self.item_ids, dtype=object)[top]
        hits = hit_matrix(ids, users.relevant)
        counts = np.array([len(r) for r in users.relevant])
        return {"ndcg": ndcg_at_k(hits, counts, K), "recall": recall_at_k(hits, counts, K)}

    def fold_scores(self, fold: FoldIn, users: Users, *, ratings: bool, priors: Sequence[Any] | None = None) -> Scores:
        vectors = fold.fold_in(
            [self.item_vectors[h] for h in users.history],
            ratings=list(users.ratings) if ratings else [None] * len(users.ids),
            priors=list(priors) if priors is not None else [None] * len(users.ids),
        )
        return vectors.astype(np.float64) @ self.item_vectors.T.astype(np.float64)

    def popularity_scores(self, users: Users) -> Scores:
        return np.tile(self.popularity, (len(users.ids), 1))

    def ease_scores(self, users: Users) -> Scores:
        return np.stack([self.ease[h].sum(axis=0) for h in users.history]).astype(np.float64)


def summary(per_user: Mapping[str, npt.NDArray[np.float64]]) -> dict[str, float]:
    ndcg, recall = per_user["ndcg"], per_user["recall"]
    half = 1.96 * float(ndcg.std(ddof=1)) / np.sqrt(ndcg.size) if ndcg.size > 1 else float("nan")
    return {
        f"ndcg@{K}": round(float(ndcg.mean()), 4),
        f"ndcg@{K}_ci95_half": round(half, 4),
        f"recall@{K}": round(float(recall.mean()), 4),
        "users": int(ndcg.size),
    }


def compare(baseline: npt.NDArray[np.float64], candidate: npt.NDArray[np.float64]) -> dict[str, Any]:
    result = paired_bootstrap(baseline, candidate, n_resamples=2_000, seed=0)
    return {
        "mean_difference": round(result.mean_difference, 4),
        "ci95": [round(result.ci_low, 4), round(result.ci_high, 4)],
        "verdict": result.verdict(),
    }


def timed(function: Callable[[], object], repeats: int = 3) -> tuple[float, object]:
    times, value = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - started)
    return round(float(np.median(times)), 4), value


def fitters(setup: Setup, data: Data) -> dict[str, Callable[..., FoldIn]]:
    """Name -> fit(**settings): the assembler's fit (no ratings) and the fit with training ratings."""
    bundle = setup.bundle
    users = sorted(bundle.seen_items)
    vectors = bundle.user_embedder.embed(users)
    assert data.train.ratings is not None
    ratings: dict[str, dict[str, float]] = {}
    for user, item, rating in zip(
        data.train.user_ids.tolist(), data.train.item_ids.tolist(), data.train.ratings.tolist(), strict=True
    ):
        ratings.setdefault(user, {})[item] = rating

    def fit(method: str, with_ratings: bool) -> Callable[..., FoldIn]:
        def run(**settings: Any) -> FoldIn:
            return fit_fold_in(
                users,
                vectors,
                bundle.seen_items,
                bundle.item_embedder.embed,
                ratings=ratings if with_ratings else None,
                method=method,  # type: ignore[arg-type]
                **settings,
            )

        return run

    return {
        "mean": fit("mean", False),
        "ridge": fit("ridge", False),
        "learned": fit("learned", False),
        "split": fit("split", False),
        "ridge_fitted_with_ratings": fit("ridge", True),
        "learned_fitted_with_ratings": fit("learned", True),
    }


def tune_ridge(setup: Setup, data: Data, fit: Callable[..., FoldIn]) -> dict[str, Any]:
    """The ridge grid on the validation users: mean NDCG@10 over the history sizes."""
    groups = [setup.users(data.log, data.validation_users, n, {}) for n in HISTORY_SIZES]
    grid: list[dict[str, Any]] = []
    for settings in RIDGE_GRID:
        fold = fit(**settings)
        ndcg = [float(setup.measure(setup.fold_scores(fold, g, ratings=False), g)["ndcg"].mean()) for g in groups]
        grid.append({**settings, f"validation_ndcg@{K}": round(float(np.mean(ndcg)), 4)})
    key = f"validation_ndcg@{K}"
    best = max(grid, key=lambda row: row[key])
    isotropic = max((row for row in grid if row["prior"] == "isotropic"), key=lambda row: row[key])
    return {"grid": grid, "best": best, "best_isotropic": isotropic, "validation_users": len(data.validation_users)}


def settings_of(row: Mapping[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in ("prior", "negative_weight", "l2")}


def new_users(setup: Setup, data: Data, folds: Mapping[str, FoldIn]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for n in HISTORY_SIZES:
        group = setup.users(data.log, data.test_users, n, {})
        reference = np.load(CACHE / f"trained_with_first_{n}.npz")
        user_row = {str(u): r for r, u in enumerate(reference["user_keys"].tolist())}
        item_row = [int(np.flatnonzero(reference["item_keys"] == item)[0]) for item in setup.item_ids]
        trained_users = reference["user_vectors"][[user_row[u] for u in group.ids]].astype(np.float64)
        trained_items = reference["item_vectors"][item_row].astype(np.float64)
        mean_user = setup.mean_user @ setup.item_vectors.T.astype(np.float64)
        per_user = {
            "popularity": setup.measure(setup.popularity_scores(group), group),
            "mean_user": setup.measure(np.tile(mean_user, (len(group.ids), 1)), group),
            "ease_item_to_item": setup.measure(setup.ease_scores(group), group),
            "mean": setup.measure(setup.fold_scores(folds["mean"], group, ratings=False), group),
            "mean_rating_weighted": setup.measure(setup.fold_scores(folds["mean"], group, ratings=True), group),
            "ridge": setup.measure(setup.fold_scores(folds["ridge"], group, ratings=False), group),
            "ridge_isotropic": setup.measure(setup.fold_scores(folds["ridge_isotropic"], group, ratings=False), group),
            "ridge_with_ratings": setup.measure(
                setup.fold_scores(folds["ridge_fitted_with_ratings"], group, ratings=True), group
            ),
            "learned": setup.measure(setup.fold_scores(folds["learned"], group, ratings=False), group),
            "learned_with_ratings": setup.measure(
                setup.fold_scores(folds["learned_fitted_with_ratings"], group, ratings=True), group
            ),
            "trained": setup.measure(trained_users @ trained_items.T, group),
            f"default ({DEFAULT_METHOD})": setup.measure(
                setup.fold_scores(folds["default"], group, ratings=False), group
            ),
        }
        table[str(n)] = {
            "methods": {name: summary(values) for name, values in per_user.items()},
            "ridge_vs_popularity_ndcg": compare(per_user["popularity"]["ndcg"], per_user["ridge"]["ndcg"]),
            "ridge_vs_trained_ndcg": compare(per_user["trained"]["ndcg"], per_user["ridge"]["ndcg"]),
            "ridge_vs_mean_ndcg": compare(per_user["mean"]["ndcg"], per_user["ridge"]["ndcg"]),
            "ridge_vs_learned_ndcg": compare(per_user["learned"]["ndcg"], per_user["ridge"]["ndcg"]),
        }
    return table


def known_users(
    setup: Setup, data: Data, fits: Mapping[str, Callable[..., FoldIn]], ridge: Mapping[str, Any], default: FoldIn
) -> dict[str, Any]:
    """Training users folding in what they did after training, with their trained vector as prior."""
    bundle = setup.bundle
    users = sorted(bundle.seen_items, key=int)
    order = np.random.default_rng(SEED).permutation(len(users))
    tune_half = sorted((users[i] for i in order[: len(users) // 2]), key=int)
    report_half = sorted((users[i] for i in order[len(users) // 2 :]), key=int)

    def groups(ids: list[str]) -> list[Users]:
        return [setup.users(data.known_future, ids, n, bundle.seen_items) for n in HISTORY_SIZES]

    def priors(group: Users) -> npt.NDArray[np.float32]:
        return bundle.user_embedder.embed(group.ids)

    def ndcg_with(fold: FoldIn, group: Users) -> npt.NDArray[np.float64]:
        return setup.measure(setup.fold_scores(fold, group, ratings=False, priors=list(priors(group))), group)["ndcg"]

    tuning: dict[str, dict[str, float]] = {}
    chosen: dict[str, FoldIn] = {}
    tune_groups = groups(tune_half)
    for method in ("mean", "ridge", "learned"):
        tuning[method] = {}
        best, best_fold = -1.0, None
        for strength in RIDGE_PRIOR_GRID if method == "ridge" else PRIOR_GRID[method]:
            settings = {**ridge, "l2": strength} if method == "ridge" else {"prior_strength": strength}
            fold = fits[method](**settings)
            value = float(np.mean([ndcg_with(fold, g).mean() for g in tune_groups]))
            tuning[method][str(strength)] = round(value, 4)
            if value > best:
                best, best_fold = value, fold
        assert best_fold is not None
        chosen[method] = best_fold
    table: dict[str, Any] = {}
    for n, group in zip(HISTORY_SIZES, groups(report_half), strict=True):
        trained = setup.measure(priors(group).astype(np.float64) @ setup.item_vectors.T.astype(np.float64), group)
        rows = {"trained_vector_only": trained}
        for method in ("mean", "ridge", "learned"):
            unchanged = fits[method](**(ridge if method == "ridge" else {}))
            rows[f"{method}_without_prior"] = setup.measure(setup.fold_scores(unchanged, group, ratings=False), group)
            rows[f"{method}_with_prior"] = setup.measure(
                setup.fold_scores(chosen[method], group, ratings=False, priors=list(priors(group))), group
            )
        rows[f"default ({DEFAULT_METHOD})"] = setup.measure(
            setup.fold_scores(default, group, ratings=False, priors=list(priors(group))), group
        )
        table[str(n)] = {
            "methods": {name: summary(values) for name, values in rows.items()},
            "learned_with_prior_vs_trained_vector_ndcg": compare(trained["ndcg"], rows["learned_with_prior"]["ndcg"]),
            "learned_with_prior_vs_ridge_with_prior_ndcg": compare(
                rows["ridge_with_prior"]["ndcg"], rows["learned_with_prior"]["ndcg"]
            ),
            "ridge_with_prior_vs_trained_vector_ndcg": compare(trained["ndcg"], rows["ridge_with_prior"]["ndcg"]),
        }
    return {
        "prior_grid_on_tuning_half": tuning,
        "chosen_on_tuning_half": {method: repr(fold) for method, fold in chosen.items()},
        "note": "the prior's weight: l2 for ridge, prior_strength (kappa, in history items) for mean and learned",
        "users_per_half": [len(tune_half), len(report_half)],
        "by_history_size": table,
    }


def cost(setup: Setup, fits: Mapping[str, Callable[..., FoldIn]], folds: Mapping[str, FoldIn]) -> dict[str, Any]:
    """Fit time on this bundle and on 100k synthetic users; fold-in time of one user."""
    out: dict[str, Any] = {"movielens_fit_s": {}, "synthetic_fit_s": {}, "fold_in_one_user_ms": {}}
    for method in ("mean", "ridge", "learned", "split"):
        out["movielens_fit_s"][method] = timed(fits[method])[0]
    gen = np.random.default_rng(SEED)
    n_users, per_user, n_items, d = 100_000, 50, 20_000, 32
    item_ids = [f"i{j}" for j in range(n_items)]
    table = dict(zip(item_ids, gen.normal(size=(n_items, d)).astype(np.float32), strict=True))
    picked = gen.integers(0, n_items, size=(n_users, per_user))
    histories = {f"u{u}": {item_ids[j] for j in row} for u, row in enumerate(picked.tolist())}
    user_ids = list(histories)
    user_vectors = gen.normal(size=(n_users, d)).astype(np.float32)
    events = sum(len(h) for h in histories.values())
    methods: tuple[FoldInMethod, ...] = ("mean", "ridge", "learned", "split")
    for method in methods:
        out["synthetic_fit_s"][method] = timed(
            partial(fit_fold_in, user_ids, user_vectors, histories, table, method=method), repeats=3
        )[0]
    out["synthetic"] = {"users": n_users, "events": events, "items": n_items, "dimension": d}
    history = [setup.item_vectors[:10]]
    for name in ("mean", "ridge", "learned", "default"):
        fold = folds[name]
        samples = []
        for _ in range(200):
            started = time.perf_counter()
            fold.fold_in(history, ratings=[None], priors=[None])
            samples.append(time.perf_counter() - started)
        out["fold_in_one_user_ms"][name] = round(float(np.median(samples)) * 1e3, 4)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--progress", action="store_true", help="training progress bars")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "fold_in.json")
    args = parser.parse_args(argv)
    facts = machine()
    data = load()
    trained_now = prepare(data, progress=args.progress)
    bundle = read_bundle(CACHE / "bundle")
    started = time.perf_counter()
    setup = Setup(bundle, data)
    fits = fitters(setup, data)
    tuning = tune_ridge(setup, data, fits["ridge"])
    ridge = settings_of(tuning["best"])
    folds = {
        "mean": fits["mean"](),
        "ridge": fits["ridge"](**ridge),
        "ridge_isotropic": fits["ridge"](**settings_of(tuning["best_isotropic"])),
        "learned": fits["learned"](),
        "ridge_fitted_with_ratings": fits["ridge_fitted_with_ratings"](**ridge),
        "learned_fitted_with_ratings": fits["learned_fitted_with_ratings"](),
        "default": fits["split"]() if DEFAULT_METHOD == "split" else fits[DEFAULT_METHOD](),
    }
    results: dict[str, Any] = {
        "benchmark": "fold_in",
        "command": COMMAND,
        "machine": facts,
        "config": {
            "dataset": "movielens-100k",
            "seed": SEED,
            "test_users": len(data.test_users),
            "validation_users": len(data.validation_users),
            "training_users": int(np.unique(data.train.user_ids).size),
            "training_events": len(data.train),
            "history_sizes": list(HISTORY_SIZES),
            "k": K,
            "catalogue": len(setup.item_ids),
            "default_method": DEFAULT_METHOD,
            "ease_l2": EASE_L2,
            "cache": display_path(CACHE),
            "bundle_manifest_created": bundle.manifest.created,
            "trained_now_s": trained_now,
            "trained_reference": (
                "train_models on the training events plus each test user's first n events (one training per n)"
            ),
        },
        "tuning_ridge_on_validation_users": tuning,
        "ridge_settings": ridge,
        "library_defaults": {
            "method": DEFAULT_METHOD,
            "ridge": {"prior": RIDGE_PRIOR, "negative_weight": RIDGE_NEGATIVE_WEIGHT, "l2": RIDGE_L2},
            "prior_strength": PRIOR_STRENGTH,
        },
        "fitted": {name: repr(fold) for name, fold in folds.items()},
        "new_users": new_users(setup, data, folds),
        "known_users": known_users(setup, data, fits, ridge, folds["default"]),
    }
    results["cost"] = cost(setup, fits, folds)
    results["evaluation_wall_s"] = round(time.perf_counter() - started, 1)
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
