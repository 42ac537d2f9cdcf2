"""Train both models end to end: towers (retrieval), then the scoring MLP on their outputs."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import numpy.typing as npt

from two_stage_rec.datasets.interactions import Interactions
from two_stage_rec.rerankers.mlp import MLPReranker
from two_stage_rec.training._ensemble import concatenate_tables, stack_rerankers
from two_stage_rec.training.config import TrainingConfig
from two_stage_rec.training.data import (
    NegativeSampler,
    SideFeatures,
    check_log,
    feature_matrix,
    hold_out_rows,
    vocabulary,
)
from two_stage_rec.training.metrics import factorized_top_k_accuracy, rmse_or_nan, sampled_auc
from two_stage_rec.training.models import TrainedModels
from two_stage_rec.training.report import TrainingReport
from two_stage_rec.types import FloatMatrix

if TYPE_CHECKING:
    from two_stage_rec.training.retrieval import RetrievalRun
    from two_stage_rec.training.scoring import ScoringRun

__all__ = ["ENSEMBLE_SEED_STEP", "EVALUATION_NEGATIVES", "train_models"]

ENSEMBLE_SEED_STEP = 1000
"""Member m of an ensemble (``TrainingConfig.ensemble``) trains with ``seed + m * ENSEMBLE_SEED_STEP``:
ensembles of neighbouring seeds (42, 43, 44) share no member."""

EVALUATION_NEGATIVES = 10
"""Negatives drawn uniformly from the catalogue per event for the reported
``scoring/<split>/auc`` of implicit feedback. Uniform, whatever the training
sampler, so that runs with different samplers report comparable numbers."""


def train_models(
    train: Interactions,
    *,
    test: Interactions | None = None,
    items: Sequence[str] | None = None,
    user_features: SideFeatures | None = None,
    item_features: SideFeatures | None = None,
    config: TrainingConfig | None = None,
    progress: bool = True,
) -> TrainedModels:
    """Train the two towers and the scoring model, and measure them on ``test``.

    Two stages. Retrieval: the towers learn from every event as a positive
    (user, item) pair with an in-batch softmax (a rating, when present, is not
    used). Scoring: the MLP learns from ``[user_vector, item_vector]`` either
    the rating (explicit feedback, ``train.ratings`` set; mean squared error)
    or relevance (implicit feedback, ``train.ratings is None``; binary
    cross-entropy against sampled negatives, the output being a logit). By
    default the towers are fine-tuned with it, the retrieval loss kept in the
    objective (see :class:`ScoringConfig`). Either way the scoring model's
    output is higher for better items. Event weights, when the log has them,
    weight each event's loss terms.

    With ``config.ensemble`` K > 1, K models are trained (seeds: see
    :data:`ENSEMBLE_SEED_STEP`) and returned as one: the towers' outputs side
    by side (width K * d, so retrieval adds the members' dot products) and one
    MLP averaging the members' scoring MLPs; the report's epochs and history
    of member m >= 2 are under ``<key>_member<m>``, wall times are summed.

    Each stage holds out ``validation_fraction`` of ``train`` to choose its
    epoch; ``test`` is only measured, never trained on, and the metrics are
    those of the final (exported) towers.

    Args:
        train: the training events, explicit or implicit.
        test: events to measure on, or None. Its ratings are used only when
            ``train`` has ratings too.
        items: the whole item catalogue (e.g. all 1,682 movie ids); items
            nobody interacted with in ``train`` still get a row, so the
            catalogue can be indexed and top-k accuracy ranks against all of
            it. Defaults to the items in ``train``.
        user_features: optional side features per user key (used when
            ``config.retrieval.use_side_features``).
        item_features: optional side features per item key (likewise).
        config: models and optimisation; defaults to :class:`TrainingConfig`.
        progress: show a tqdm bar per epoch.

    Returns:
        :class:`TrainedModels`; its report holds the metrics:
        ``retrieval/<split>/top_<k>_accuracy`` for each k (higher is better),
        and ``scoring/<split>/rmse`` (explicit; lower is better) or
        ``scoring/<split>/auc`` (implicit: each event against
        :data:`EVALUATION_NEGATIVES` uniformly drawn items the user has no
        event with; higher is better), for ``<split>`` ``train`` and ``test``.

    Raises:
        InvalidInputError: ``train`` or ``test`` is not an
            :class:`~two_stage_rec.datasets.Interactions`, or the catalogue or
            features are malformed.
        EmptyBatchError: ``train`` or ``test`` holds no events.
        MissingDependencyError: TensorFlow is not installed.
    """
    config = config or TrainingConfig()
    train_log = check_log(train, "train")
    test_log = None if test is None else check_log(test, "test")
    implicit = train_log.ratings is None
    user_keys = vocabulary(train_log.user_ids)
    item_keys = vocabulary(train_log.item_ids, items)

    members = [
        _train_member(
            train_log,
            user_keys,
            item_keys,
            user_features,
            item_features,
            dataclasses.replace(config, seed=config.seed + ENSEMBLE_SEED_STEP * member),
            progress,
        )
        for member in range(config.ensemble)
    ]
    user_table = concatenate_tables([m.user_table for m in members])  # row 0: unknown key
    item_table = concatenate_tables([m.item_table for m in members])
    reranker = stack_rerankers([m.scoring.reranker for m in members])
    user_rows_of, item_rows_of = members[0].user_rows_of, members[0].item_rows_of

    started = time.perf_counter()
    metrics: dict[str, float] = {}
    for split_name, log in (("train", train_log), ("test", test_log)):
        if log is None:
            continue
        item_rows = item_rows_of(log.item_ids) - 1
        known = item_rows >= 0  # an item outside the catalogue can never be retrieved: a miss
        users = user_table[user_rows_of(log.user_ids)]
        accuracy = factorized_top_k_accuracy(users[known], item_table[1:], item_rows[known], config.eval_k)
        for k, value in accuracy.items():
            metrics[f"retrieval/{split_name}/top_{k}_accuracy"] = value * float(known.mean())
        if implicit:
            metrics[f"scoring/{split_name}/auc"] = _relevance_auc(
                reranker, log, train_log, user_table, item_table, user_rows_of, item_rows_of, config.seed
            )
        elif log.ratings is not None:
            pairs: FloatMatrix = np.concatenate(
                [user_table[user_rows_of(log.user_ids)], item_table[item_rows_of(log.item_ids)]], axis=1
            )
            metrics[f"scoring/{split_name}/rmse"] = rmse_or_nan(reranker.forward(pairs), log.ratings)
    data = {
        "train_ratings": len(train_log),
        "users": len(user_keys),
        "items": len(item_keys),
        "retrieval_fit_ratings": 0 if members[0].retrieval is None else members[0].retrieval.fit_ratings,
        "scoring_fit_ratings": members[0].fit_scoring,
    }
    if test_log is not None:
        data["test_ratings"] = len(test_log)
        data["test_unknown_users"] = int((user_rows_of(test_log.user_ids) == 0).sum())
        data["test_unknown_items"] = int((item_rows_of(test_log.item_ids) == 0).sum())
    report = TrainingReport(
        metrics={k: round(v, 6) for k, v in metrics.items()},
        epochs=_per_member(members, lambda m: m.epochs()),
        wall_time_s={
            "retrieval": round(sum(0.0 if m.retrieval is None else m.retrieval.wall_time_s for m in members), 3),
            "scoring": round(sum(m.scoring.wall_time_s for m in members), 3),
            "evaluation": round(time.perf_counter() - started, 3),
        },
        seed=config.seed,
        config=config.to_dict(),
        data=data,
        history=_per_member(members, lambda m: m.history()),
        feedback="implicit" if implicit else "explicit",
    )
    return TrainedModels(
        user_keys=user_keys,
        user_vectors=user_table[1:],
        user_unknown=user_table[0],
        item_keys=item_keys,
        item_vectors=item_table[1:],
        item_unknown=item_table[0],
        reranker=reranker,
        report=report,
    )


@dataclasses.dataclass(frozen=True, eq=False)
class _Member:
    """One trained model: its towers' tables (row 0: unknown key), its runs and its row lookups."""

    user_table: FloatMatrix
    item_table: FloatMatrix
    retrieval: RetrievalRun | None
    scoring: ScoringRun
    fit_scoring: int
    user_rows_of: Callable[[npt.ArrayLike], npt.NDArray[np.int64]]
    item_rows_of: Callable[[npt.ArrayLike], npt.NDArray[np.int64]]

    def epochs(self) -> dict[str, int]:
        return {
            "retrieval": 0 if self.retrieval is None else self.retrieval.epochs_run,
            "retrieval_best": 0 if self.retrieval is None else self.retrieval.best_epoch,
            "scoring": self.scoring.epochs_run,
            "scoring_best": self.scoring.best_epoch,
        }

    def history(self) -> dict[str, list[dict[str, float]]]:
        return {"retrieval": [] if self.retrieval is None else self.retrieval.history, "scoring": self.scoring.history}


_T = TypeVar("_T")


def _per_member(members: list[_Member], part: Callable[[_Member], dict[str, _T]]) -> dict[str, _T]:
    """The first member's entries under their own keys, member m's (m >= 2) as ``<key>_member<m>``."""
    merged = dict(part(members[0]))
    for number, member in enumerate(members[1:], start=2):
        merged.update({f"{key}_member{number}": value for key, value in part(member).items()})
    return merged


def _train_member(
    train_log: Interactions,
    user_keys: list[str],
    item_keys: list[str],
    user_features: SideFeatures | None,
    item_features: SideFeatures | None,
    config: TrainingConfig,
    progress: bool,
) -> _Member:
    """Both stages of one model, seeded by ``config.seed``."""
    from two_stage_rec.training._tf import seed_everything
    from two_stage_rec.training.retrieval import train_retrieval
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
        fit_log, validation_log = hold_out_rows(train_log, config.retrieval.validation_fraction, rng)
        retrieval = train_retrieval(
            fit_log,
            user_tower=user_tower,
            item_tower=item_tower,
            config=config.retrieval,
            rng=rng,
            validation=validation_log,
            progress=progress,
        )
    fit_scoring, validation_scoring = hold_out_rows(train_log, config.scoring.validation_fraction, rng)
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
    return _Member(
        user_table=user_tower.table(),
        item_table=item_tower.table(),
        retrieval=retrieval,
        scoring=scoring,
        fit_scoring=len(fit_scoring),
        user_rows_of=user_tower.rows,
        item_rows_of=item_tower.rows,
    )


def _relevance_auc(
    reranker: MLPReranker,
    log: Interactions,
    train: Interactions,
    user_table: FloatMatrix,
    item_table: FloatMatrix,
    rows_of_users: Callable[[npt.ArrayLike], npt.NDArray[np.int64]],
    rows_of_items: Callable[[npt.ArrayLike], npt.NDArray[np.int64]],
    seed: int,
) -> float:
    """AUC of each event of ``log`` against uniformly drawn items its user has no event with (train or ``log``)."""
    users = rows_of_users(log.user_ids)
    items = rows_of_items(log.item_ids)
    sampler = NegativeSampler(
        item_table.shape[0],
        known_users=np.concatenate([rows_of_users(train.user_ids), users]),
        known_items=np.concatenate([rows_of_items(train.item_ids), items]),
        kind="uniform",
    )
    # Its own generator: the measurement must not depend on how much randomness training drew.
    negatives, valid = sampler.sample(users, EVALUATION_NEGATIVES, np.random.default_rng(seed))
    positive = reranker.score(user_table[users], item_table[items])
    negative = reranker.score(user_table[np.repeat(users, EVALUATION_NEGATIVES)], item_table[negatives])
    return sampled_auc(positive, negative.reshape(-1, EVALUATION_NEGATIVES), valid.reshape(-1, EVALUATION_NEGATIVES))
