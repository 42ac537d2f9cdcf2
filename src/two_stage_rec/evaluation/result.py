"""What :func:`two_stage_rec.evaluation.evaluate` returns, and how it is rendered."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from two_stage_rec.evaluation.bootstrap import PairedComparison

if TYPE_CHECKING:
    from two_stage_rec.evaluation.policy_curve import PolicyCurve

__all__ = ["BEYOND_ACCURACY", "METRIC_NAMES", "EvaluationResult", "RankerResult"]

METRIC_NAMES: tuple[str, ...] = ("precision", "recall", "ndcg", "map", "hit_rate")
"""Per-user ranking metrics, each reported at every cut-off as ``"<name>@<k>"``."""

BEYOND_ACCURACY: tuple[str, ...] = ("coverage", "ild", "novelty")
"""Metrics of variety reported beside the ranking ones (with ``"distinct_<field>"``
when a field is given): higher is more diverse, not necessarily better."""


@dataclass(frozen=True)
class RankerResult:
    """Quality of one way of ranking (retrieval only, reranked, a baseline).

    Attributes:
        name: e.g. ``"retrieval"``, ``"reranked"``, ``"most_popular"``.
        description: one line a newcomer understands.
        metrics: ``"ndcg@10"`` -> mean over users, for every metric and
            cut-off (higher is better), plus the beyond-accuracy ones (higher
            is more diverse): ``"coverage@k"`` (share of the catalogue
            recommended to at least one user), ``"ild@k"`` (intra-list
            diversity, mean pairwise cosine distance of the item vectors),
            ``"novelty@k"`` (mean -log2 of the items' training popularity) and
            ``"distinct_<field>@k"`` (distinct values of a metadata field) when
            a field was given; see :mod:`two_stage_rec.evaluation.diversity`.
        curves: metric name -> list of means at k = 1, 2, ..., max cut-off.
        per_user: metric name (ranking ones, ``"ild"``, ``"novelty"``,
            ``"distinct_<field>"``) -> float64 (n_users,) at the main k (users in
            :attr:`EvaluationResult.users` order); not written to JSON.
    """

    name: str
    description: str
    metrics: dict[str, float]
    curves: dict[str, list[float]]
    per_user: dict[str, npt.NDArray[np.float64]] = field(repr=False)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict without the per-user arrays."""
        return {
            "name": self.name,
            "description": self.description,
            "metrics": self.metrics,
            "curves": self.curves,
        }


@dataclass(frozen=True)
class EvaluationResult:
    """Every metric for every ranker, and paired comparisons against retrieval only.

    Attributes:
        k: the main cut-off (the one compared and shown first).
        cutoffs: every cut-off in :attr:`RankerResult.metrics`.
        candidates: items retrieved per user before reranking.
        exclude_seen: whether training items were removed from recommendations.
        n_users: users evaluated (known to the model, with >= 1 relevant test item).
        skipped_users: test users left out because the user embedder does not know them.
        catalog_size: items in the store (the denominator of coverage).
        rankers: name -> :class:`RankerResult`, in the order evaluated.
        comparisons: ``"<ranker> vs retrieval"`` -> metric name -> paired
            comparison at k (mean per-user difference, ranker minus retrieval).
        rating_errors: ``{"rmse", "mae", "n"}`` of the reranker's scores against
            the test ratings when measured (only meaningful for a rating model).
        settings: everything else needed to reproduce the run (seed, threshold, ...).
        users: user ids evaluated, in the order of the per-user arrays.
        diversity_curve: NDCG against diversity over MMR's trade-off for the
            recommended pipeline, when measured
            (:func:`~two_stage_rec.evaluation.policy_curve.mmr_curve`).
    """

    k: int
    cutoffs: tuple[int, ...]
    candidates: int
    exclude_seen: bool
    n_users: int
    skipped_users: int
    catalog_size: int
    rankers: dict[str, RankerResult]
    comparisons: dict[str, dict[str, PairedComparison]]
    rating_errors: dict[str, float] | None = None
    settings: dict[str, object] = field(default_factory=dict)
    users: list[str] = field(default_factory=list, repr=False)
    diversity_curve: PolicyCurve | None = None

    def metric(self, ranker: str, name: str, k: int | None = None) -> float:
        """Mean of ``name`` (e.g. ``"ndcg"``) at ``k`` (default: the main k) for ``ranker``."""
        return self.rankers[ranker].metrics[f"{name}@{self.k if k is None else k}"]

    def summary(self) -> list[str]:
        """Plain-English sentences stating, with the interval, whether each reranker helps."""
        lines = []
        for label, per_metric in self.comparisons.items():
            ndcg = per_metric.get("ndcg")
            if ndcg is None:
                continue
            ranker = label.split(" vs ")[0]
            lines.append(
                f"{ranker}: NDCG@{self.k} {self.metric(ranker, 'ndcg'):.4f} vs retrieval only "
                f"{self.metric('retrieval', 'ndcg'):.4f}; per-user difference {ndcg.mean_difference:+.4f} "
                f"({ndcg.confidence:.0%} CI [{ndcg.ci_low:+.4f}, {ndcg.ci_high:+.4f}], "
                f"{ndcg.wins} users better, {ndcg.losses} worse): {ndcg.verdict()}."
            )
        return lines

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict (per-user arrays and user ids left out)."""
        return {
            "k": self.k,
            "cutoffs": list(self.cutoffs),
            "candidates": self.candidates,
            "exclude_seen": self.exclude_seen,
            "n_users": self.n_users,
            "skipped_users": self.skipped_users,
            "catalog_size": self.catalog_size,
            "rankers": {name: ranker.to_dict() for name, ranker in self.rankers.items()},
            "comparisons": {
                label: {metric: comparison.to_dict() for metric, comparison in per_metric.items()}
                for label, per_metric in self.comparisons.items()
            },
            "rating_errors": self.rating_errors,
            "settings": self.settings,
            "summary": self.summary(),
            "diversity_curve": None if self.diversity_curve is None else self.diversity_curve.to_dict(),
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """The :meth:`to_dict` view as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    def table_rows(self, k: int | None = None) -> tuple[list[str], list[list[str]]]:
        """Header and rows (ranker x metric at k, 4 decimals) for any table renderer."""
        cutoff = self.k if k is None else k
        columns = [*METRIC_NAMES, *self.beyond_accuracy(cutoff)]
        header = ["ranker", *(f"{name}@{cutoff}" for name in columns)]
        rows = [
            [name, *(f"{ranker.metrics[f'{metric}@{cutoff}']:.4f}" for metric in columns)]
            for name, ranker in self.rankers.items()
        ]
        return header, rows

    def beyond_accuracy(self, k: int | None = None) -> list[str]:
        """Names of the beyond-accuracy metrics every ranker has at k (coverage first)."""
        cutoff = self.k if k is None else k
        names = [*BEYOND_ACCURACY, *sorted({m.split("@")[0] for r in self.rankers.values() for m in r.metrics})]
        present = [
            name
            for name in names
            if name not in METRIC_NAMES
            and all(f"{name}@{cutoff}" in ranker.metrics for ranker in self.rankers.values())
        ]
        return list(dict.fromkeys(present))

    def to_markdown(self, k: int | None = None) -> str:
        """A Markdown table of every ranker at k, then the summary sentences."""
        header, rows = self.table_rows(k)
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join([*lines, "", *self.summary()])
