"""Train the two-tower retrieval model and the scoring MLP (extra: ``tensorflow``).

Importing this package is light; TensorFlow is imported when training or
exporting starts::

    from two_stage_rec.training import TrainingConfig, train_models

    models = train_models(train_ratings, test=test_ratings, items=all_movie_ids)
    models.save("models/")          # SavedModels + NPZ tables + training_report.json
    print(models.report.metrics)
"""

from two_stage_rec.training.config import RetrievalConfig, ScoringConfig, TrainingConfig
from two_stage_rec.training.data import Interactions, RatingLog, SideFeatures
from two_stage_rec.training.export import export_models
from two_stage_rec.training.metrics import factorized_top_k_accuracy, rmse
from two_stage_rec.training.models import TrainedModels
from two_stage_rec.training.pipeline import train_models
from two_stage_rec.training.report import TrainingReport

__all__ = [
    "Interactions",
    "RatingLog",
    "RetrievalConfig",
    "ScoringConfig",
    "SideFeatures",
    "TrainedModels",
    "TrainingConfig",
    "TrainingReport",
    "export_models",
    "factorized_top_k_accuracy",
    "rmse",
    "train_models",
]
