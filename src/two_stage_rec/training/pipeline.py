"""Train both models end to end: towers (retrieval), then the scoring MLP on their outputs."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from two_stage_rec.training.config import TrainingConfig
from two_stage_rec.training.data import Interactions, RatingLog, SideFeatures, feature_matrix, vocabulary
from two_stage_rec.training.metrics import factorized_top_k_accuracy, rmse
from two_stage_rec.training.models import TrainedModels
from two_stage_rec.training.report import TrainingReport
from two_stage_rec.types import FloatMatrix

__all__ = ["train_models"]


def train_models(
    train: RatingLog,
    *,
    test: RatingLog | None = None,
    items: Sequence[str] | None = None,
    user_features: SideFeatures | None = None,
    item_features: SideFeatures | None = None,
    config: TrainingConfig | None = None,
    progress: bool = True,
) -> TrainedModels:
    """Train the two towers and the scoring model, and measure them on ``test``.

    Two stages. Retrieval: the towers learn from every rating as a positive
    (user, item) pair with an in-batch softmax. Scoring: the MLP learns the
    rating values from ``[user_vector, item_vector]``; by default the towers
    are fine-tuned with it, the retrieval loss kept in the objective (see
    :class:`ScoringConfig`). Each stage holds out ``validation_fraction`` of
    ``train`` to choose its epoch; ``test`` is only measured, never trained
    on, and the metrics are those of the final (exported) towers.

    Args:
        train: the training ratings (e.g. ``two_stage_rec.datasets.Ratings``).
        test: ratings to measure on, or None.
        items: the whole item catalogue (e.g. all 1,682 movie ids); items
            nobody rated in ``train`` still get a row, so the catalogue can be
            indexed and top-k accuracy ranks against all of it. Defaults to the
            items in ``train``.
        user_features: optional side features per user key (used when
            ``config.retrieval.use_side_features``).
        item_features: optional side features per item key (likewise).
        config: models and optimisation; defaults to :class:`TrainingConfig`.
        progress: show a tqdm bar per epoch.

    Returns:
        :class:`TrainedModels`; its report holds the metrics
        (``retrieval/test/top_{k}_accuracy``, ``scoring/test/rmse``, ...).

    Raises:
        InvalidInputError: the ratings, catalogue or features are malformed.
        MissingDependencyError: TensorFlow is not installed.
    """
    config = config or TrainingConfig()
    train_log = Interactions.from_log(train, name="train")
    test_log = None if test is None else Interactions.from_log(test, name="test")
    user_keys = vocabulary(train_log.users)
    item_keys = vocabulary(train_log.items, items)

    from two_stage_rec.training._tf import seed_everything
    from two_stage_rec.training.retrieval import RetrievalRun, train_retrieval
    from two_stage_rec.training.scoring import train_scoring
    from two_stage_rec.training.towers import Tower

    seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)
    use_features = config.retrieval.use_side_features
    user_tower = Tower(
        user_keys,
        config.retrieval,
        features=feature_matrix(user_keys, user_features, "user") if use_features else None,
        name="user",
    )
    item_tower = Tower(
        item_keys,
        config.retrieval,
        features=feature_matrix(item_keys, item_features, "item") if use_features else None,
        name="item",
    )
    retrieval: RetrievalRun | None = None
    if config.retrieval.epochs > 0:
        fit_log, validation_log = train_log.split(config.retrieval.validation_fraction, rng)
        retrieval = train_retrieval(
            fit_log,
            user_tower=user_tower,
            item_tower=item_tower,
            config=config.retrieval,
            rng=rng,
            validation=validation_log,
            progress=progress,
        )
    fit_scoring, validation_scoring = train_log.split(config.scoring.validation_fraction, rng)
    scoring = train_scoring(
        fit_scoring,
        user_tower=user_tower,
        item_tower=item_tower,
        config=config.scoring,
        retrieval=config.retrieval,
        rng=rng,
        validation=validation_scoring,
        progress=progress,
    )
    user_table = user_tower.table()  # row 0: unknown key
    item_table = item_tower.table()

    def pairs(log: Interactions) -> FloatMatrix:
        return np.concatenate([user_table[user_tower.rows(log.users)], item_table[item_tower.rows(log.items)]], axis=1)

    started = time.perf_counter()
    metrics: dict[str, float] = {}
    for split_name, log in (("train", train_log), ("test", test_log)):
        if log is None:
            continue
        item_rows = item_tower.rows(log.items) - 1
        known = item_rows >= 0  # an item outside the catalogue can never be retrieved: a miss
        users = user_table[user_tower.rows(log.users)]
        accuracy = factorized_top_k_accuracy(users[known], item_table[1:], item_rows[known], config.eval_k)
        for k, value in accuracy.items():
            metrics[f"retrieval/{split_name}/top_{k}_accuracy"] = value * float(known.mean())
        metrics[f"scoring/{split_name}/rmse"] = rmse(scoring.reranker.forward(pairs(log)), log.ratings)
    data = {
        "train_ratings": len(train_log),
        "users": len(user_keys),
        "items": len(item_keys),
        "retrieval_fit_ratings": 0 if retrieval is None else retrieval.fit_ratings,
        "scoring_fit_ratings": len(fit_scoring),
    }
    if test_log is not None:
        data["test_ratings"] = len(test_log)
        data["test_unknown_users"] = int((user_tower.rows(test_log.users) == 0).sum())
        data["test_unknown_items"] = int((item_tower.rows(test_log.items) == 0).sum())
    report = TrainingReport(
        metrics={k: round(v, 6) for k, v in metrics.items()},
        epochs={
            "retrieval": 0 if retrieval is None else retrieval.epochs_run,
            "retrieval_best": 0 if retrieval is None else retrieval.best_epoch,
            "scoring": scoring.epochs_run,
            "scoring_best": scoring.best_epoch,
        },
        wall_time_s={
            "retrieval": 0.0 if retrieval is None else round(retrieval.wall_time_s, 3),
            "scoring": round(scoring.wall_time_s, 3),
            "evaluation": round(time.perf_counter() - started, 3),
        },
        seed=config.seed,
        config=config.to_dict(),
        data=data,
        history={"retrieval": [] if retrieval is None else retrieval.history, "scoring": scoring.history},
    )
    return TrainedModels(
        user_keys=user_keys,
        user_vectors=user_table[1:],
        user_unknown=user_table[0],
        item_keys=item_keys,
        item_vectors=item_table[1:],
        item_unknown=item_table[0],
        reranker=scoring.reranker,
        report=report,
    )
