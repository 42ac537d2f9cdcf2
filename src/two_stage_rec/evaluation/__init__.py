"""Measure recommendations: top-k metrics, paired bootstrap comparisons, and :func:`evaluate`.

Numpy only; plotting lives in the CLI (``two-stage-rec evaluate``). ``train``
and ``test`` are :class:`two_stage_rec.datasets.Interactions`, explicit or implicit::

    from two_stage_rec.evaluation import evaluate
    result = evaluate(recommender, train, test, k=10)
    print(result.to_markdown())   # every metric, retrieval only vs reranked vs most popular
    result.comparisons["reranked vs retrieval"]["ndcg"].verdict()   # "better" / "worse" / ...
"""

from two_stage_rec.evaluation.bootstrap import PairedComparison, paired_bootstrap
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
from two_stage_rec.evaluation.result import METRIC_NAMES, EvaluationResult, RankerResult

__all__ = [
    "METRIC_NAMES",
    "EvaluationResult",
    "PairedComparison",
    "RankerResult",
    "average_precision_at_k",
    "catalog_coverage",
    "evaluate",
    "hit_matrix",
    "hit_rate_at_k",
    "mae",
    "most_popular_ranking",
    "ndcg_at_k",
    "paired_bootstrap",
    "precision_at_k",
    "rating_errors",
    "recall_at_k",
    "rmse",
]
