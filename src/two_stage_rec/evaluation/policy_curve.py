"""What variety costs: relevance against diversity over post-ranking policies, on the same ranked lists.

Each user's ranked candidates are fetched once (:func:`ranked_candidates`);
every policy configuration is then applied to the same lists
(:func:`measure_policies`), so the rows differ only by the policy. Per row:
NDCG@k and Recall@k, intra-list diversity, distinct values of a metadata
field, novelty and catalogue coverage of the top k, and the paired
difference in NDCG@k from the first row (the unshaped ranking) with a
bootstrap interval. :func:`mmr_curve` does all of it for MMR over a range of
trade-offs::

    from two_stage_rec.evaluation.policy_curve import mmr_curve

    curve = mmr_curve(recommender, train, test, trade_offs=(0, 0.3, 0.9), field="genres")
    for row in curve.rows.values():
        print(row.trade_off, row.metrics["ndcg@10"], row.metrics["ild@10"])
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from two_stage_rec.datasets.interactions import Interactions
from two_stage_rec.errors import InvalidInputError
from two_stage_rec.evaluation.bootstrap import PairedComparison, paired_bootstrap
from two_stage_rec.evaluation.diversity import distinct_values, intra_list_diversity, novelty
from two_stage_rec.evaluation.evaluate import _check_log, evaluation_users, item_vectors, users_per_item
from two_stage_rec.evaluation.metrics import catalog_coverage, hit_matrix, ndcg_at_k, recall_at_k
from two_stage_rec.policies.base import Policy, RankedList, apply_policies
from two_stage_rec.policies.diversity import MMR, Relevance
from two_stage_rec.recommender import Recommender

__all__ = ["PolicyCurve", "PolicyRow", "measure_policies", "mmr_curve", "ranked_candidates"]

PerUser = npt.NDArray[np.float64]
DEFAULT_TRADE_OFFS: tuple[float, ...] = (0.0, 0.1, 0.3, 0.5, 0.9)


@dataclass(frozen=True)
class PolicyRow:
    """One policy configuration measured over every user.

    Attributes:
        name: the row's name, e.g. ``"mmr_0.3"``.
        policies: ``repr`` of each policy, in the order applied.
        trade_off: MMR's λ for a row of :func:`mmr_curve`, else None.
        metrics: ``"ndcg@k"``, ``"recall@k"``, ``"ild@k"``, ``"novelty@k"``
            (when popularity was given), ``"distinct_<field>@k"`` (when a field
            was given): means over users; ``"coverage@k"``: share of the
            catalogue in any top k. Higher is better for NDCG and recall, more
            diverse for the others.
        versus_first: paired NDCG@k difference, this row minus the first row
            (None for the first row itself).
        per_user: metric name (``"ndcg"``, ``"ild"``, ...) -> float64 (n_users,).
        policy_seconds: float64 (n_users,), wall time of the policies per user.
    """

    name: str
    policies: tuple[str, ...]
    trade_off: float | None
    metrics: dict[str, float]
    versus_first: PairedComparison | None
    per_user: dict[str, PerUser] = field(repr=False)
    policy_seconds: PerUser = field(repr=False)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict without the per-user arrays."""
        return {
            "name": self.name,
            "policies": list(self.policies),
            "trade_off": self.trade_off,
            "metrics": self.metrics,
            "ndcg_vs_first": None if self.versus_first is None else self.versus_first.to_dict(),
        }


@dataclass(frozen=True)
class PolicyCurve:
    """Every row of a policy comparison on the same ranked lists.

    Attributes:
        k: the cut-off of every metric.
        candidates: ranked candidates per user the policies chose from.
        field: metadata field counted by ``distinct_<field>@k``, or None.
        n_users: users measured.
        catalog_size: the denominator of coverage.
        rows: name -> :class:`PolicyRow`, the first one the baseline of the comparisons.
    """

    k: int
    candidates: int
    field: str | None
    n_users: int
    catalog_size: int
    rows: dict[str, PolicyRow]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict (per-user arrays left out)."""
        return {
            "k": self.k,
            "candidates": self.candidates,
            "field": self.field,
            "n_users": self.n_users,
            "catalog_size": self.catalog_size,
            "baseline": next(iter(self.rows), None),
            "rows": {name: row.to_dict() for name, row in self.rows.items()},
        }


def ranked_candidates(
    recommender: Recommender,
    users: Sequence[str],
    excluded: Sequence[set[str]],
    *,
    candidates: int,
    batch_size: int = 256,
) -> list[RankedList]:
    """Each user's ranked candidates as the recommender serves them, with item vectors and metadata.

    Args:
        recommender: the pipeline (its reranker or candidate ranker ranks).
        users: n user ids.
        excluded: n sets of item ids never to recommend.
        candidates: items ranked per user (the list's length when the store has as many).
        batch_size: users per ``recommend_batch`` call.

    Returns:
        n :class:`RankedList`, best first, ``vectors`` float32 (m, d) from the
        store (or the item embedder when the store returns none).

    Raises:
        InvalidInputError: no item vectors can be had (the store returns none
            and the recommender has no item embedder).
    """
    lists: list[RankedList] = []
    for start in range(0, len(users), batch_size):
        batch = recommender.recommend_batch(
            list(users[start : start + batch_size]),
            k=candidates,
            candidates=candidates,
            exclude=list(excluded[start : start + batch_size]),
        )
        ids = sorted({r.item_id for row in batch for r in row})
        vectors = item_vectors(recommender, ids)
        if vectors is None:
            raise InvalidInputError(
                f"{type(recommender.store).__name__} returns no vectors and the recommender has no item embedder"
            )
        for row in batch:
            row_ids = [r.item_id for r in row]
            lists.append(
                RankedList.of(
                    row_ids,
                    [r.score for r in row],
                    [r.metadata for r in row],
                    vectors=np.stack([vectors[i] for i in row_ids]) if row_ids else np.zeros((0, 1), np.float32),
                )
            )
    return lists


def measure_policies(
    lists: Sequence[RankedList],
    configurations: Mapping[str, Sequence[Policy]],
    relevant: Sequence[set[str]],
    *,
    k: int,
    catalog_size: int,
    field: str | None = None,
    popularity: tuple[Mapping[str, int], int] | None = None,
    trade_offs: Mapping[str, float] | None = None,
    n_resamples: int = 2_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PolicyCurve:
    """Apply each configuration to the same lists and measure its top k.

    Args:
        lists: n users' ranked candidates (vectors set when a policy or the
            diversity metric needs them).
        configurations: row name -> policies applied in order; the first row
            is the baseline of the paired comparisons (usually ``[]``).
        relevant: n sets of relevant item ids (non-empty for a meaningful NDCG).
        k: cut-off.
        catalog_size: items that could be recommended (coverage's denominator).
        field: metadata field whose distinct values are counted, or None.
        popularity: ``(users_per_item, n_training_users)`` for novelty, or None.
        trade_offs: row name -> λ, recorded in the rows (MMR curves).
        n_resamples: bootstrap resamples of the comparisons.
        confidence: interval level.
        seed: bootstrap seed.

    Returns:
        A :class:`PolicyCurve` with one row per configuration, in order.

    Raises:
        InvalidInputError: no configuration, lists and relevant sets of
            different lengths, or k < 1.
    """
    if not configurations:
        raise InvalidInputError("measure_policies needs at least one configuration")
    if len(lists) != len(relevant):
        raise InvalidInputError(f"{len(lists)} ranked lists for {len(relevant)} relevant sets")
    if k < 1:
        raise InvalidInputError(f"k must be positive, got {k}")
    n = len(lists)
    n_relevant = np.array([len(r) for r in relevant], dtype=np.int64)
    rows: dict[str, PolicyRow] = {}
    first: PerUser | None = None
    clock = time.perf_counter
    for name, policies in configurations.items():
        tops: list[RankedList] = []
        seconds = np.empty(n, dtype=np.float64)
        for user, ranked in enumerate(lists):
            started = clock()
            tops.append(apply_policies(ranked, policies, k))
            seconds[user] = clock() - started
        ids = np.full((n, k), "", dtype=object)
        for user, top in enumerate(tops):
            ids[user, : len(top)] = top.ids
        hits = hit_matrix(ids, relevant)
        per_user = {"ndcg": ndcg_at_k(hits, n_relevant, k), "recall": recall_at_k(hits, n_relevant, k)}
        per_user["ild"] = _diversity(tops, k)
        if popularity is not None:
            per_user["novelty"] = novelty(ids, popularity[0], popularity[1])
        if field is not None:
            per_user[f"distinct_{field}"] = distinct_values([top.metadata for top in tops], field)
        metrics = {f"{metric}@{k}": float(values.mean()) for metric, values in per_user.items()}
        metrics[f"coverage@{k}"] = catalog_coverage(ids, catalog_size)
        versus = None
        if first is None:
            first = per_user["ndcg"]
        else:
            versus = paired_bootstrap(
                first, per_user["ndcg"], n_resamples=n_resamples, confidence=confidence, seed=seed
            )
        rows[name] = PolicyRow(
            name=name,
            policies=tuple(repr(p) for p in policies),
            trade_off=None if trade_offs is None else trade_offs.get(name),
            metrics=metrics,
            versus_first=versus,
            per_user=per_user,
            policy_seconds=seconds,
        )
    return PolicyCurve(
        k=k,
        candidates=max((len(ranked) for ranked in lists), default=0),
        field=field,
        n_users=n,
        catalog_size=catalog_size,
        rows=rows,
    )


def _diversity(tops: Sequence[RankedList], k: int) -> PerUser:
    """ILD of each top k from the lists' vectors (zeros when the lists carry none)."""
    vectored = [top for top in tops if top.vectors is not None and len(top)]
    if not vectored:
        return np.zeros(len(tops), dtype=np.float64)
    dimension = vectored[0].vectors.shape[1]  # type: ignore[union-attr]  # filtered above
    stack = np.zeros((len(tops), k, dimension), dtype=np.float64)
    valid = np.zeros((len(tops), k), dtype=bool)
    for user, top in enumerate(tops):
        if top.vectors is not None and len(top):
            stack[user, : len(top)] = top.vectors
            valid[user, : len(top)] = True
    return intra_list_diversity(stack, valid)


def mmr_curve(
    recommender: Recommender,
    train: Interactions,
    test: Interactions,
    *,
    trade_offs: Sequence[float] = DEFAULT_TRADE_OFFS,
    field: str | None = None,
    k: int = 10,
    candidates: int = 50,
    relevance: Relevance = "minmax",
    exclude_seen: bool = True,
    min_rating: float | None = None,
    batch_size: int = 256,
    n_resamples: int = 2_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PolicyCurve:
    """NDCG@k against diversity over MMR's trade-off, for the pipeline as ``recommender`` serves it.

    Users are selected as :func:`~two_stage_rec.evaluation.evaluate` selects
    them (known to the user embedder, with a relevant test item); each
    user's ``candidates`` ranked items are fetched once, then reshaped by
    ``MMR(λ, relevance=relevance)`` for each λ. λ = 0 (the ranking as served)
    is always the first row, ``"mmr_0.0"``, and the baseline of the paired
    NDCG comparisons.

    Args:
        recommender: the pipeline to measure (e.g. the assembled recommended one).
        train: the interactions the models saw (exclusions, novelty's popularity).
        test: held-out interactions.
        trade_offs: λ values in [0, 1].
        field: metadata field whose distinct values are counted (e.g. ``"genres"``).
        k: cut-off.
        candidates: ranked items MMR chooses from (>= k).
        relevance: MMR's relevance normalisation.
        exclude_seen: leave each user's training items out.
        min_rating: relevant test items are those rated at least this.
        batch_size: users per ``recommend_batch`` call.
        n_resamples: bootstrap resamples.
        confidence: interval level.
        seed: bootstrap seed.

    Returns:
        A :class:`PolicyCurve` with rows ``"mmr_<λ>"`` in increasing λ.

    Raises:
        InvalidInputError: a λ outside [0, 1], candidates < k, ``field`` on no
            candidate's metadata, or no user can be evaluated.
    """
    train_log, test_log = _check_log(train, "train"), _check_log(test, "test")
    if candidates < k:
        raise InvalidInputError(f"candidates ({candidates}) must be at least k ({k})")
    lambdas = sorted({0.0, *(float(t) for t in trade_offs)})
    if not all(0.0 <= t <= 1.0 for t in lambdas):
        raise InvalidInputError(f"MMR trade-offs must be in [0, 1], got {list(trade_offs)}")
    policies = {f"mmr_{t}": [MMR(t, relevance=relevance)] if t > 0 else [] for t in lambdas}
    users, relevant, excluded = evaluation_users(recommender, train_log, test_log, min_rating, exclude_seen)
    lists = ranked_candidates(recommender, users, excluded, candidates=candidates, batch_size=batch_size)
    if field is not None and not any(field in md for ranked in lists for md in ranked.metadata):
        raise InvalidInputError(f"no candidate's metadata has the field {field!r}")
    return measure_policies(
        lists,
        policies,
        relevant,
        k=k,
        catalog_size=max(recommender.store.describe().count, 1),
        field=field,
        popularity=(users_per_item(train_log), len(train_log.items_by_user())),
        trade_offs={f"mmr_{t}": t for t in lambdas},
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
    )
