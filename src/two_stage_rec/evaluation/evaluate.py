"""Measure a two-stage recommender on held-out interactions: does reranking help?

:func:`evaluate` asks the recommender for every test user's top items twice
— ranked by retrieval score only, and retrieved then reranked — plus the
most-popular baseline, scores each ranking with every metric of
:mod:`two_stage_rec.evaluation.metrics` and the beyond-accuracy ones of
:mod:`two_stage_rec.evaluation.diversity`, and compares each reranked ranking
with retrieval only, user by user, with a bootstrap confidence interval.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from two_stage_rec.datasets.interactions import Interactions
from two_stage_rec.errors import InvalidInputError, UnknownKeyError
from two_stage_rec.evaluation.bootstrap import PairedComparison, paired_bootstrap
from two_stage_rec.evaluation.diversity import distinct_values, intra_list_diversity, novelty
from two_stage_rec.evaluation.metrics import (
    average_precision_at_k,
    catalog_coverage,
    hit_matrix,
    hit_rate_at_k,
    mae,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    rmse,
)
from two_stage_rec.evaluation.result import METRIC_NAMES, EvaluationResult, RankerResult
from two_stage_rec.protocols import Reranker, returns_values
from two_stage_rec.recommender import Recommender
from two_stage_rec.scoring import top_k_rows
from two_stage_rec.types import FloatMatrix, FloatVector, Metadata

__all__ = ["evaluate", "most_popular_ranking", "rating_errors"]

IdMatrix = npt.NDArray[np.object_]

StageRanking = Callable[[list[str], list[set[str]], int], IdMatrix]
"""A second stage with its own candidates: (users, per-user exclusions, depth) -> object (n, depth) ids."""
_DEFAULT_CUTOFFS = (1, 5, 10, 20)


def _check_log(log: object, name: str) -> Interactions:
    if not isinstance(log, Interactions):
        raise InvalidInputError(
            f"{name} must be two_stage_rec.datasets.Interactions, got {type(log).__name__}; build one with "
            "Interactions.from_arrays(user_ids=..., item_ids=...)"
        )
    return log


def evaluate(
    recommender: Recommender,
    train: Interactions,
    test: Interactions,
    *,
    k: int = 10,
    cutoffs: Sequence[int] = _DEFAULT_CUTOFFS,
    candidates: int = 50,
    exclude_seen: bool = True,
    min_rating: float | None = None,
    rerankers: Mapping[str, Reranker] | None = None,
    stages: Mapping[str, StageRanking] | None = None,
    baselines: bool = True,
    measure_rating_errors: bool = False,
    diversity_field: str | None = None,
    batch_size: int = 256,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> EvaluationResult:
    """Evaluate retrieval only, retrieve-then-rerank and the most-popular baseline.

    A test user is evaluated when the user embedder knows them and they have
    at least one relevant test item; relevant items are the user's test items
    (rated at least ``min_rating`` when given). Every ranking is a top-N list
    with N = max(k, cutoffs); metrics at smaller cut-offs use its prefix.

    Args:
        recommender: the pipeline; its store must hold the catalogue.
        train: interactions the models were trained on; used to exclude
            seen items and to rank the popularity baseline.
        test: held-out interactions, explicit (ratings) or implicit.
        k: the main cut-off: the one compared between rankers.
        cutoffs: further cut-offs reported (curves run from 1 to the largest).
        candidates: items retrieved per user before reranking (>= N).
        exclude_seen: never recommend a user's training items (the usual
            protocol; without it, retrieval spends slots on known items).
        min_rating: count a test item as relevant only when rated at least
            this (needs test ratings); None counts every test interaction.
        rerankers: name -> reranker to evaluate on the same candidates; None
            evaluates ``recommender.reranker`` as ``"reranked"`` (if set).
        stages: name -> a second stage that retrieves its own candidates
            (e.g. the learned ranking stage's ``RankingStage.recommend``),
            called as ``stage(users, exclusions, depth)`` and returning
            object (n_users, depth) item ids, ``""`` padded.
        baselines: also evaluate ``"most_popular"`` (training counts, seen
            items excluded the same way).
        measure_rating_errors: also compute RMSE/MAE of ``recommender.reranker``
            against the test ratings (needs test ratings; only meaningful
            for a rating model, not for the relevance logit a model trained
            on implicit feedback outputs).
        diversity_field: also report ``"distinct_<field>@k"``, the distinct
            values of this metadata field (e.g. ``"genres"``) in each top k.
            Intra-list diversity (``"ild@k"``, from the store's item vectors)
            and novelty (``"novelty@k"``, from the training popularity) are
            always reported.
        batch_size: users per ``recommend_batch`` call (bounds memory).
        n_resamples: bootstrap resamples of the paired comparisons.
        confidence: level of the comparisons' confidence intervals.
        seed: seed of the bootstrap resampling.

    Returns:
        An :class:`EvaluationResult`.

    Raises:
        InvalidInputError: ``train`` or ``test`` is not an Interactions,
            settings out of range, ``min_rating`` or ``measure_rating_errors``
            on a test log without ratings, ``diversity_field`` on no
            recommended item, or no test user can be evaluated.
    """
    train_log, test_log = _check_log(train, "train"), _check_log(test, "test")
    cutoff_list = sorted({int(c) for c in (*cutoffs, k)})
    if k < 1 or cutoff_list[0] < 1:
        raise InvalidInputError(f"k and cut-offs must be positive, got k={k}, cutoffs={tuple(cutoffs)}")
    depth = cutoff_list[-1]
    if candidates < depth:
        raise InvalidInputError(f"candidates ({candidates}) must be at least the largest cut-off ({depth})")
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be positive, got {batch_size}")

    users, relevant, excluded = evaluation_users(recommender, train_log, test_log, min_rating, exclude_seen)
    skipped = len(test_log.items_by_user(min_rating=min_rating)) - len(users)
    n_relevant = np.array([len(items) for items in relevant], dtype=np.int64)
    catalog_size = recommender.store.describe().count

    chosen = _rerankers(recommender, rerankers)
    own = dict(stages or {})
    clash = sorted(set(own) & {*chosen, "retrieval", "most_popular"})
    if clash:
        raise InvalidInputError(f"stage names {clash} are taken by rerankers or reserved rankings")
    rankings: dict[str, tuple[str, IdMatrix]] = {
        "retrieval": (
            f"top {depth} of the vector store's {candidates} nearest items, by retrieval score",
            _recommend(recommender, users, excluded, depth, candidates, None, batch_size),
        )
    }
    for name, reranker in chosen.items():
        rankings[name] = (
            f"the same {candidates} candidates reordered by {type(reranker).__name__}",
            _recommend(recommender, users, excluded, depth, candidates, reranker, batch_size),
        )
    for name, ranking in own.items():
        ids = np.full((len(users), depth), "", dtype=object)
        for start in range(0, len(users), batch_size):
            stop = start + batch_size
            got = np.asarray(ranking(users[start:stop], excluded[start:stop], depth), dtype=object)
            ids[start:stop, : got.shape[1]] = got[:, :depth]
        rankings[name] = (f"{name}: its own candidates and ranking", ids)
    if baselines:
        rankings["most_popular"] = (
            "the items with the most training interactions (no personalisation)",
            most_popular_ranking(train_log, users, excluded, depth),
        )

    beyond = _BeyondAccuracy.of(
        recommender, [ids for _, ids in rankings.values()], users_per_item(train_log), train_log, diversity_field
    )
    results = {
        name: _score_ranking(name, description, ids, relevant, n_relevant, k, cutoff_list, catalog_size, beyond)
        for name, (description, ids) in rankings.items()
    }
    comparisons: dict[str, dict[str, PairedComparison]] = {}
    for name in results:
        if name == "retrieval":
            continue
        comparisons[f"{name} vs retrieval"] = {
            metric: paired_bootstrap(
                results["retrieval"].per_user[metric],
                results[name].per_user[metric],
                n_resamples=n_resamples,
                confidence=confidence,
                seed=seed,
            )
            for metric in METRIC_NAMES
        }

    errors = None
    if measure_rating_errors:
        if recommender.reranker is None:
            raise InvalidInputError("measure_rating_errors needs recommender.reranker")
        if test_log.ratings is None:
            raise InvalidInputError("measure_rating_errors needs test ratings; this test log is implicit")
        errors = rating_errors(recommender, test_log)
    return EvaluationResult(
        k=k,
        cutoffs=tuple(cutoff_list),
        candidates=candidates,
        exclude_seen=exclude_seen,
        n_users=len(users),
        skipped_users=skipped,
        catalog_size=catalog_size,
        rankers=results,
        comparisons=comparisons,
        rating_errors=errors,
        settings={
            "min_rating": min_rating,
            "n_resamples": n_resamples,
            "confidence": confidence,
            "seed": seed,
            "train_interactions": len(train_log),
            "test_interactions": len(test_log),
            "test_has_ratings": test_log.ratings is not None,
            "store": type(recommender.store).__name__,
            "store_is_exact": bool(recommender.store.is_exact),
            "diversity_field": diversity_field,
        },
        users=users,
    )


def evaluation_users(
    recommender: Recommender,
    train: Interactions,
    test: Interactions,
    min_rating: float | None,
    exclude_seen: bool,
) -> tuple[list[str], list[set[str]], list[set[str]]]:
    """The users an evaluation measures, their relevant items and their exclusions.

    A user is measured when the user embedder knows them and they have at
    least one relevant test item; users are in natural order ("2" before "10").

    Returns:
        ``(users, relevant, excluded)``: n user ids, n sets of relevant test
        items, n sets of items never to recommend (training items, or empty).

    Raises:
        InvalidInputError: no user can be measured.
    """
    relevant_by_user = test.items_by_user(min_rating=min_rating)
    seen_by_user = train.items_by_user()
    users, _ = _known_users(recommender, sorted(relevant_by_user, key=_natural_key))
    if not users:
        raise InvalidInputError("no test user is both known to the user embedder and has a relevant item")
    relevant = [relevant_by_user[user] for user in users]
    excluded = [seen_by_user.get(user, set()) if exclude_seen else set() for user in users]
    return users, relevant, excluded


def users_per_item(train: Interactions) -> dict[str, int]:
    """Item id -> number of distinct training users who interacted with it (novelty's popularity)."""
    counts: dict[str, int] = {}
    for items in train.items_by_user().values():
        for item in items:
            counts[item] = counts.get(item, 0) + 1
    return counts


def item_vectors(recommender: Recommender, ids: Sequence[str]) -> dict[str, FloatVector] | None:
    """Item id -> vector for the ids the store holds: the store's vectors, or the item embedder's.

    None when neither can give vectors (the store returns none and the
    recommender has no item embedder).
    """
    if not ids:
        return {}
    if returns_values(recommender.store):
        return recommender.store.fetch(list(ids)).as_dict()
    if recommender.item_embedder is None:
        return None
    held = recommender.store.fetch(list(ids)).ids
    vectors = np.asarray(recommender.item_embedder.embed(held), dtype=np.float32)
    return {item: vectors[row] for row, item in enumerate(held)}


def _natural_key(user: str) -> tuple[int, str]:
    """Sort "2" before "10" (MovieLens ids are integers written as strings)."""
    return (int(user), user) if user.isdigit() else (1 << 62, user)


def _known_users(recommender: Recommender, users: list[str]) -> tuple[list[str], int]:
    """Users the embedder can embed; the others are counted as skipped."""
    try:
        recommender.user_embedder.embed(users)
    except UnknownKeyError as exc:
        unknown = set(exc.keys)
        known = [user for user in users if user not in unknown]
        return known, len(users) - len(known)
    return users, 0


def _rerankers(recommender: Recommender, rerankers: Mapping[str, Reranker] | None) -> dict[str, Reranker]:
    if rerankers is None:
        return {} if recommender.reranker is None else {"reranked": recommender.reranker}
    chosen = dict(rerankers)
    for reserved in ("retrieval", "most_popular"):
        if reserved in chosen:
            raise InvalidInputError(f"{reserved!r} is reserved; give the reranker another name")
    return chosen


def _recommend(
    recommender: Recommender,
    users: list[str],
    excluded: list[set[str]],
    depth: int,
    candidates: int,
    reranker: Reranker | None,
    batch_size: int,
) -> IdMatrix:
    """Top-``depth`` item ids per user as an object array (n_users, depth), ``""`` padded."""
    pipeline = Recommender(
        user_embedder=recommender.user_embedder,
        store=recommender.store,
        reranker=reranker,
    )
    ids = np.full((len(users), depth), "", dtype=object)
    for start in range(0, len(users), batch_size):
        stop = start + batch_size
        batch = pipeline.recommend_batch(
            users[start:stop],
            k=depth,
            candidates=candidates,
            exclude=excluded[start:stop],
            rerank=reranker is not None,
        )
        for offset, recommendations in enumerate(batch):
            ids[start + offset, : len(recommendations)] = [r.item_id for r in recommendations]
    return ids


def most_popular_ranking(
    train: Interactions, users: Sequence[str], excluded: Sequence[set[str]], depth: int
) -> IdMatrix:
    """The ``depth`` items with the most training events, minus each user's exclusions.

    Args:
        train: training interactions (popularity = number of events per item).
        users: n user ids.
        excluded: n sets of item ids never to recommend (e.g. the user's training items).
        depth: items per user.

    Returns:
        object array (n, depth) of item ids, most popular first; ties broken
        by item id; ``""`` pads when fewer items remain.
    """
    counts = _check_log(train, "train").item_counts()
    items = sorted(counts, key=lambda item: (-counts[item], item))
    column_of = {item: column for column, item in enumerate(items)}
    scores: FloatMatrix = np.broadcast_to(-np.arange(len(items), dtype=np.float32), (len(users), len(items))).astype(
        np.float32
    )
    allowed = np.ones((len(users), len(items)), dtype=bool)
    for row, skip in enumerate(excluded):
        columns = [column_of[item] for item in skip if item in column_of]
        allowed[row, columns] = False
    columns_top, _, counts_top = top_k_rows(scores, depth, allowed)
    table = np.array([*items, ""], dtype=object)
    ids = np.full((len(users), depth), "", dtype=object)
    ids[:, : columns_top.shape[1]] = table[columns_top]  # -1 picks the trailing "" pad
    del counts_top
    return ids


@dataclass(frozen=True)
class _BeyondAccuracy:
    """What the diversity metrics read about the recommended items: vectors, metadata, popularity."""

    vectors: dict[str, FloatVector] | None
    metadata: dict[str, Metadata]
    field: str | None
    users_per_item: dict[str, int]
    n_train_users: int

    @classmethod
    def of(
        cls,
        recommender: Recommender,
        rankings: Sequence[IdMatrix],
        users_per_item: dict[str, int],
        train: Interactions,
        field: str | None,
    ) -> _BeyondAccuracy:
        ids = sorted(set().union(*(set(ranking.ravel().tolist()) for ranking in rankings)) - {""})
        metadata: dict[str, Metadata] = {}
        if field is not None:
            fetched = recommender.store.fetch(ids) if ids else None
            if fetched is not None:
                metadata = dict(zip(fetched.ids, fetched.metadata, strict=True))
            if not any(field in md for md in metadata.values()):
                raise InvalidInputError(f"no recommended item's metadata has the field {field!r}")
        return cls(item_vectors(recommender, ids), metadata, field, users_per_item, len(train.items_by_user()))

    def per_user(self, ids: IdMatrix, cutoff: int) -> dict[str, npt.NDArray[np.float64]]:
        """``"ild"``, ``"novelty"`` and ``"distinct_<field>"`` of each top ``cutoff``, float64 (n_users,) each."""
        top = ids[:, :cutoff]
        found: dict[str, npt.NDArray[np.float64]] = {}
        if self.vectors is not None and self.vectors:
            unique, inverse = np.unique(top.astype(str), return_inverse=True)
            known = np.array([item in self.vectors for item in unique.tolist()], dtype=bool)
            dimension = next(iter(self.vectors.values())).shape[0]
            table = np.zeros((len(unique), dimension), dtype=np.float32)
            for row, item in enumerate(unique.tolist()):
                if known[row]:
                    table[row] = self.vectors[item]
            index = inverse.reshape(top.shape)
            found["ild"] = intra_list_diversity(table[index], known[index])
        if self.n_train_users > 0:
            found["novelty"] = novelty(top, self.users_per_item, self.n_train_users)
        if self.field is not None:
            rows = [[self.metadata.get(item, {}) for item in row if item != ""] for row in top.tolist()]
            found[f"distinct_{self.field}"] = distinct_values(rows, self.field)
        return found


def _score_ranking(
    name: str,
    description: str,
    ids: IdMatrix,
    relevant: list[set[str]],
    n_relevant: npt.NDArray[np.int64],
    k: int,
    cutoffs: list[int],
    catalog_size: int,
    beyond: _BeyondAccuracy,
) -> RankerResult:
    hits = hit_matrix(ids, relevant)
    depth = cutoffs[-1]

    def per_user(metric: str, cutoff: int) -> npt.NDArray[np.float64]:
        if metric == "precision":
            return precision_at_k(hits, cutoff)
        if metric == "recall":
            return recall_at_k(hits, n_relevant, cutoff)
        if metric == "ndcg":
            return ndcg_at_k(hits, n_relevant, cutoff)
        if metric == "map":
            return average_precision_at_k(hits, n_relevant, cutoff)
        return hit_rate_at_k(hits, cutoff)

    curves = {metric: [float(per_user(metric, c).mean()) for c in range(1, depth + 1)] for metric in METRIC_NAMES}
    metrics: dict[str, float] = {}
    for cutoff in cutoffs:
        for metric in METRIC_NAMES:
            metrics[f"{metric}@{cutoff}"] = curves[metric][cutoff - 1]
        metrics[f"coverage@{cutoff}"] = catalog_coverage(ids, max(catalog_size, 1), cutoff)
        for metric, values in beyond.per_user(ids, cutoff).items():
            metrics[f"{metric}@{cutoff}"] = float(values.mean())
    return RankerResult(
        name=name,
        description=description,
        metrics=metrics,
        curves=curves,
        per_user={**{metric: per_user(metric, k) for metric in METRIC_NAMES}, **beyond.per_user(ids, k)},
    )


def rating_errors(recommender: Recommender, test: Interactions) -> dict[str, float]:
    """RMSE and MAE of ``recommender.reranker``'s scores against the test ratings.

    User vectors come from the user embedder, item vectors from the store
    (the same vectors reranking sees). Pairs whose user or item is unknown
    are left out and counted.

    Returns:
        ``{"rmse": ..., "mae": ..., "n": pairs scored, "skipped": pairs left out}``.

    Raises:
        InvalidInputError: no reranker, no ratings, or no pair could be scored.
    """
    reranker = recommender.reranker
    log = _check_log(test, "test")
    if reranker is None:
        raise InvalidInputError("rating errors need a reranker")
    if log.ratings is None:
        raise InvalidInputError("rating errors need test ratings")
    unique_users = sorted(set(log.user_ids.tolist()))
    known_users, _ = _known_users(recommender, unique_users)
    user_rows = {user: row for row, user in enumerate(known_users)}
    fetched = recommender.store.fetch(sorted(set(log.item_ids.tolist())))
    item_rows = {item: row for row, item in enumerate(fetched.ids)}
    keep = np.array(
        [u in user_rows and i in item_rows for u, i in zip(log.user_ids.tolist(), log.item_ids.tolist(), strict=True)],
        dtype=bool,
    )
    if not keep.any():
        raise InvalidInputError("no test pair has both a known user and an indexed item")
    user_vectors = recommender.user_embedder.embed(known_users) if known_users else None
    assert user_vectors is not None
    u_index = np.array([user_rows[u] for u in log.user_ids[keep].tolist()], dtype=np.int64)
    i_index = np.array([item_rows[i] for i in log.item_ids[keep].tolist()], dtype=np.int64)
    predicted = np.asarray(reranker.score(user_vectors[u_index], fetched.vectors[i_index]), dtype=np.float64)
    actual = log.ratings[keep]
    return {
        "rmse": rmse(predicted, actual),
        "mae": mae(predicted, actual),
        "n": int(keep.sum()),
        "skipped": int((~keep).sum()),
    }
