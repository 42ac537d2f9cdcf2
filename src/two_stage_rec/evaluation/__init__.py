"""Measure recommendations: top-k metrics, paired bootstrap comparisons, and :func:`evaluate`.

Numpy only; plotting lives in the CLI (``two-stage-rec evaluate``). ``train``
and ``test`` are :class:`two_stage_rec.datasets.Interactions`, explicit or implicit::

    from two_stage_rec.evaluation import evaluate
    result = evaluate(recommender, train, test, k=10)
    print(result.to_markdown())   # every metric, retrieval only vs reranked vs most popular
    result.comparisons["reranked vs retrieval"]["ndcg"].verdict()   # "better" / "worse" / ...

Beyond accuracy (:mod:`~two_stage_rec.evaluation.diversity`): every ranking
also gets intra-list diversity, novelty and coverage (and distinct values of
a metadata field with ``diversity_field=``); :func:`mmr_curve` measures NDCG
against them over MMR's trade-off (:mod:`~two_stage_rec.evaluation.policy_curve`).
"""

from two_stage_rec.evaluation.bootstrap import PairedComparison, paired_bootstrap
from two_stage_rec.evaluation.diversity import distinct_values, intra_list_diversity, novelty
from two_stage_rec.evaluation.evaluate import evaluate, most_popular_ranking, rating_errors
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
from two_stage_rec.evaluation.policy_curve import PolicyCurve, PolicyRow, measure_policies, mmr_curve
from two_stage_rec.evaluation.result import BEYOND_ACCURACY, METRIC_NAMES, EvaluationResult, RankerResult

__all__ = [
    "BEYOND_ACCURACY",
    "METRIC_NAMES",
    "EvaluationResult",
    "PairedComparison",
    "PolicyCurve",
    "PolicyRow",
    "RankerResult",
    "average_precision_at_k",
    "catalog_coverage",
    "distinct_values",
    "evaluate",
    "hit_matrix",
    "hit_rate_at_k",
    "intra_list_diversity",
    "mae",
    "measure_policies",
    "mmr_curve",
    "most_popular_ranking",
    "ndcg_at_k",
    "novelty",
    "paired_bootstrap",
    "precision_at_k",
    "rating_errors",
    "recall_at_k",
    "rmse",
]
