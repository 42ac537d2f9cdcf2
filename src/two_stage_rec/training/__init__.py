"""Train the two-tower retrieval model and the scoring MLP (extra: ``tensorflow``).

Training reads one log type, :class:`two_stage_rec.datasets.Interactions`:
explicit feedback (with ratings: the scoring model predicts the rating) or
implicit feedback (``ratings=None``: it predicts relevance, as a logit).
Importing this package is light; TensorFlow is imported when training or
exporting starts::

    from two_stage_rec.training import train_models
    from two_stage_rec.training.blend import train_pipeline

    models = train_models(train, test=test, items=catalogue_ids)
    print(models.report.metrics)

    trained = train_pipeline(train, items=catalogue_ids)   # + a blend, and which second stage to serve
    print(trained.recommended, trained.report["validation_ndcg@10"])
"""

from two_stage_rec.training.config import (
    NEGATIVE_SAMPLINGS,
    NegativeSampling,
    RetrievalConfig,
    ScoringConfig,
    TrainingConfig,
)
from two_stage_rec.training.data import SideFeatures
from two_stage_rec.training.export import export_models
from two_stage_rec.training.metrics import factorized_top_k_accuracy, sampled_auc
from two_stage_rec.training.models import TrainedModels
from two_stage_rec.training.pipeline import train_models
from two_stage_rec.training.report import TrainingReport

__all__ = [
    "NEGATIVE_SAMPLINGS",
    "NegativeSampling",
    "RetrievalConfig",
    "ScoringConfig",
    "SideFeatures",
    "TrainedModels",
    "TrainingConfig",
    "TrainingReport",
    "export_models",
    "factorized_top_k_accuracy",
    "sampled_auc",
    "train_models",
]
