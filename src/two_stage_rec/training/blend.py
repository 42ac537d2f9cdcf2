"""The recommended training recipe: models, a blend reranker, and the second stage to serve.

Why: reranking by the scoring model alone can lower top-k relevance (a rating
model predicts how much a user would like an item, not which items they will
pick; see :mod:`two_stage_rec.rerankers.blend`). The blend fixes that, but
its weights must be learned from interactions the towers have not seen,
otherwise the retrieval score looks better than it is. And which second stage
is best depends on the data, so it is measured rather than assumed. The
recipe of :func:`train_pipeline`:

1. split the training log per user into A (90%) and V (10%);
2. train towers and scoring model on A (the *first* models);
3. on V, with each user's A items excluded and their V items relevant,
   measure NDCG@10 of the three second stages
   (:data:`~two_stage_rec.types.RerankerName`): ``"none"`` (retrieval
   order), ``"scoring"`` (the candidates reordered by the scoring model) and
   ``"blend"``. The blend is fitted on V itself, so its NDCG is estimated by
   2-fold cross-fitting over V's users (fit on one half, measure on the
   other, and the other way round); the blend kept is then fitted on all of V;
4. train towers and scoring model again on all of the training log (so
   serving loses no data), and move the blend to them
   (:meth:`~two_stage_rec.rerankers.blend.BlendReranker.moved_to`).

The learned ranking stage (``"ranker"``,
:mod:`two_stage_rec.rerankers.ranking_stage`; needs LightGBM, the ``ranking``
extra) joins step 3 when installed: built for the first models and A's events,
its ranker is fitted on V (:func:`~two_stage_rec.rerankers.ranking_stage.fit_on_holdout`),
its V estimate is 2-fold cross-fitted like the blend's, and after step 4 it is
rebuilt for the final models and all training events with the ranker fitted on V
(:meth:`~two_stage_rec.rerankers.ranking_stage.RankingStage.with_ranker`).

``recommended`` is the second stage with the best NDCG@10 on V (ties prefer
``"none"``, then ``"blend"``, then ``"scoring"``, then ``"ranker"``: the simpler stage wins). The
test set is never touched. Training takes about twice as long as
:func:`~two_stage_rec.training.train_models`.

Explicit and implicit feedback both work: for implicit feedback the scoring
model outputs a relevance logit, which the blend uses in place of a rating.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from two_stage_rec._optional import require
from two_stage_rec.datasets.catalogue import Catalogue
from two_stage_rec.datasets.interactions import Interactions
from two_stage_rec.datasets.splits import per_user_split
from two_stage_rec.errors import InvalidInputError, MissingDependencyError
from two_stage_rec.protocols import Embedder, Reranker, VectorStore
from two_stage_rec.rerankers.blend import BlendReranker, BlendWeights, fit_blend
from two_stage_rec.rerankers.ranking_stage import RankingStage, fit_on_holdout
from two_stage_rec.training.config import RetrievalConfig, ScoringConfig, TrainingConfig
from two_stage_rec.training.data import check_log
from two_stage_rec.training.models import TrainedModels
from two_stage_rec.training.pipeline import train_models
from two_stage_rec.types import RERANKER_NAMES, RerankerName

__all__ = ["NDCG_CUTOFF", "PIPELINE_CONFIG", "PipelineTraining", "choose_second_stage", "train_pipeline"]

PIPELINE_CONFIG = TrainingConfig(
    retrieval=RetrievalConfig(temperature=1.0, epochs=8, validation_fraction=0.0),
    # Pinned, not inherited: the setting was chosen with tower_l2=0.05, and the
    # later default of 0.5 (tuned for top-100 accuracy without pre-training)
    # collapses these pre-trained towers: stratified retrieval NDCG@10 fell
    # from 0.46 to 0.25 when it was inherited. Dropout 0 and 6 epochs likewise:
    # the later defaults (0.2, 8; chosen for u1 RMSE) measured lower validation
    # NDCG@10 here (explicit: retrieval only 0.1585 against 0.1622, blend 0.1650
    # against 0.1661; implicit: blend 0.1630 against 0.1667; one seed;
    # benchmarks/results/train_quality_topk_check.json).
    scoring=ScoringConfig(tower_l2=0.05, dropout=0.0, epochs=6),
)
"""Settings of :func:`train_pipeline` (explicit and implicit feedback): 8 epochs
of retrieval-only training with a soft softmax (temperature 1.0), then the
default joint fine-tuning with the scoring model.

Chosen on a validation split carved from the stratified protocol's *training*
ratings (per user 90/10, seed 7; the test set untouched), by retrieval NDCG@10
on that split: this setting 0.1622 (scoring RMSE 0.915); the library default
(no pre-training, temperature 0.1) 0.1388 (RMSE 0.915); joint only at
temperature 0.5 / 1.0 / 2.0: 0.1382 / 0.1177 / 0.1114; pre-training without
joint fine-tuning: 0.1496 (RMSE 0.981). Top-k relevance prefers a softer
softmax than the default, which is tuned for top-100 accuracy.

Implicit feedback (the same ratings without their values) needs no other
setting. Four scoring-stage variants were tried, on the validation split V
that :func:`train_pipeline` carves from the stratified protocol's implicit
training split (per user 90/10, seed 7; the test set untouched), by NDCG@10 on
V of none / scoring / blend: popularity-sampled negatives, 4 per event:
0.1607 / 0.1110 / 0.1635; uniform, 4 per event (this setting): 0.1626 /
0.1494 / 0.1667; uniform, 8 per event: 0.1622 / 0.1612 / 0.1645; uniform, 4
per event, learning rate 0.002: 0.1628 / 0.1588 / 0.1654. The blend's
differences are within noise; uniform sampling, the simplest, became the
default (``benchmarks/implicit_quality.py --tune`` re-runs them)."""


NDCG_CUTOFF = 10
"""k of the NDCG@k that chooses the recommended second stage."""

# Ties go to the simpler stage: retrieval alone, then the blend (which keeps the retrieval score).
_PREFERENCE: tuple[RerankerName, ...] = ("none", "blend", "scoring", "ranker")
_OPTIONAL: frozenset[RerankerName] = frozenset({"ranker"})
"""Second stages training may leave out (the ranking stage needs LightGBM)."""


@dataclass(frozen=True, eq=False)
class PipelineTraining:
    """Models trained on all training events, a blend fitted for them, and the second stage to serve.

    Attributes:
        models: towers and scoring model trained on all of ``train``.
        blend: the blend, moved to ``models``' towers (uses ``models.reranker``).
        ranking_stage: the learned ranking stage for ``models`` (``"ranker"``),
            or None when it was not trained.
        recommended: the second stage that ranked V best (see the module docstring).
        report: how it was decided: ``"validation_ndcg@10"`` (NDCG@10 on V per
            second stage, higher is better; the blend's cross-fitted),
            ``"recommended"``, the blend's weights and hold-out sizes, the share
            of the item prior the final towers reproduce, the feedback kind,
            the config's name and the wall time.
    """

    models: TrainedModels
    blend: BlendReranker
    recommended: RerankerName
    report: dict[str, Any] = field(default_factory=dict)
    ranking_stage: RankingStage | None = None

    def reranker(self, name: RerankerName | None = None) -> Reranker | None:
        """The reranker of a second stage (default: the recommended one).

        None for ``"none"`` and for ``"ranker"`` (not a pair reranker: see :attr:`ranking_stage`).

        Raises:
            InvalidInputError: ``name`` is not one of :data:`~two_stage_rec.types.RERANKER_NAMES`.
        """
        chosen = self.recommended if name is None else name
        if chosen not in RERANKER_NAMES:
            raise InvalidInputError(f"second stage must be one of {', '.join(RERANKER_NAMES)}, got {chosen!r}")
        if chosen == "scoring":
            return self.models.reranker
        return self.blend if chosen == "blend" else None


def choose_second_stage(ndcg: Mapping[RerankerName, float]) -> RerankerName:
    """The second stage with the highest NDCG; ties go to ``"none"``, then ``"blend"``, ``"scoring"``, ``"ranker"``.

    Args:
        ndcg: NDCG (higher is better) of each of :data:`~two_stage_rec.types.RERANKER_NAMES`;
            ``"ranker"`` may be absent (not trained), and is then never chosen.

    Raises:
        InvalidInputError: a second stage other than ``"ranker"`` has no NDCG.
    """
    missing = [name for name in RERANKER_NAMES if name not in ndcg and name not in _OPTIONAL]
    if missing:
        raise InvalidInputError(f"no NDCG for {', '.join(missing)}")
    offered = [name for name in _PREFERENCE if name in ndcg]
    return max(offered, key=lambda name: ndcg[name])  # max keeps the first of equal values


def train_pipeline(
    train: Interactions,
    *,
    test: Interactions | None = None,
    items: Sequence[str] | None = None,
    config: TrainingConfig | None = None,
    holdout_fraction: float = 0.1,
    candidates: int = 50,
    seed: int = 7,
    progress: bool = True,
    catalogue: Catalogue | None = None,
    ranking_stage: bool | None = None,
) -> PipelineTraining:
    """Train models on ``train``, a blend reranker for them, and choose the second stage to serve.

    See the module docstring for the recipe.

    Args:
        train: training events, explicit (ratings) or implicit (``ratings is None``).
        test: measured by :func:`train_models` only (never used for fitting or choosing).
        items: the whole catalogue (e.g. all movie ids as strings); defaults
            to the items in ``train``.
        config: passed to :func:`train_models` for both trainings; None uses
            :data:`PIPELINE_CONFIG`, measured best for explicit and implicit
            feedback alike.
        holdout_fraction: share of each user's training events in V.
        candidates: candidates per user when fitting and measuring (match serving's).
        seed: seed of the per-user hold-out split and of the cross-fitting halves.
        progress: progress bars.
        catalogue: item metadata (genres, year) for the ranking stage's features, or None.
        ranking_stage: also train the learned ranking stage (``"ranker"``).
            None (default): when LightGBM is installed, else skipped with a note
            in the report (``"ranking_stage"``); True: required (raises
            without LightGBM); False: skipped.

    Returns:
        A :class:`PipelineTraining`.

    Raises:
        InvalidInputError: ``train`` is not an Interactions, ``candidates`` is
            below 10, or no user's held-out item is among their candidates
            (nothing to fit the blend on).
        EmptyBatchError: ``train`` holds no events.
        MissingDependencyError: ``ranking_stage=True`` without LightGBM (the ``ranking`` extra).
    """
    started = time.perf_counter()
    with_stage, stage_note = _ranking_stage_wanted(ranking_stage)
    log = check_log(train, "train")
    if candidates < NDCG_CUTOFF:
        raise InvalidInputError(f"candidates must be at least {NDCG_CUTOFF}, got {candidates}")
    chosen_config = PIPELINE_CONFIG if config is None else config
    from two_stage_rec.stores.memory import InMemoryVectorStore

    fit_part, holdout = per_user_split(log, holdout_fraction, seed=seed)
    first = train_models(fit_part, items=items, config=chosen_config, progress=progress)
    store = InMemoryVectorStore(dimension=first.dimension)
    store.upsert(first.item_keys, first.item_vectors)
    user_embedder = first.user_embedder()
    known_users = set(first.user_keys)
    seen = fit_part.items_by_user()
    targets = {user: items_ for user, items_ in holdout.items_by_user().items() if user in known_users}
    users = sorted(targets)
    if not users:
        raise InvalidInputError("the hold-out split is empty: every user needs at least two events")

    def ndcg(reranker: Reranker | None, among: Sequence[str]) -> npt.NDArray[np.float64]:
        return _ndcg_per_user(user_embedder, store, among, seen, targets, reranker, candidates)

    # 2-fold cross-fitting: each half's blend NDCG comes from a blend fitted on the other half.
    order = np.random.default_rng(seed).permutation(len(users))
    halves = [sorted(users[i] for i in order[: len(users) // 2]), sorted(users[i] for i in order[len(users) // 2 :])]
    blend_ndcg: dict[str, float] = {}
    fold_weights = []
    for fit_half, measure_half in ((halves[0], halves[1]), (halves[1], halves[0])):
        if not measure_half:
            continue
        fold = _fit_or_retrieval(user_embedder, store, seen, {u: targets[u] for u in fit_half}, first, candidates)
        fold_weights.append({"retrieval": fold.weights.retrieval, "rating": fold.weights.rating})
        blend_ndcg.update(zip(measure_half, ndcg(fold, measure_half).tolist(), strict=True))
    # Rounded before choosing, so the report shows exactly what decided (and near-ties go to the simpler stage).
    validation_ndcg: dict[RerankerName, float] = {
        "none": round(float(ndcg(None, users).mean()), 6),
        "scoring": round(float(ndcg(first.reranker, users).mean()), 6),
        "blend": round(float(np.mean([blend_ndcg[user] for user in users])), 6),
    }
    fitted_stage: RankingStage | None = None
    if with_stage:
        try:
            fitted_stage = fit_on_holdout(
                RankingStage.for_models(
                    fit_part,
                    user_embedder=user_embedder,
                    item_embedder=first.item_embedder(),
                    items=first.item_keys,
                    scoring=first.reranker,
                    catalogue=catalogue,
                ),
                seen,
                targets,
                k=NDCG_CUTOFF,
                seed=seed,
            )
        except InvalidInputError as exc:  # too few held-out users or positives to fit a ranker on
            stage_note = {"trained": False, "reason": f"skipped: {exc}"}
    if fitted_stage is not None:
        # fit_on_holdout measures only users with a held-out item in the item list; the others
        # score 0 under every stage, so the mean over all V users is comparable with the rest.
        measured = fitted_stage.report["per_user"]
        validation_ndcg["ranker"] = round(float(np.sum(measured)) / len(users), 6)
    recommended = choose_second_stage(validation_ndcg)

    fitted = fit_blend(
        user_embedder=user_embedder,
        store=store,
        seen=seen,
        targets=targets,
        rating_model=first.reranker,
        candidates=candidates,
    )
    final = train_models(log, test=test, items=items, config=chosen_config, progress=progress)
    known_before = set(first.item_keys)
    shared = [key for key in final.item_keys if key in known_before]
    blend, r2 = fitted.moved_to(
        first.item_embedder().embed(shared), final.item_embedder().embed(shared), rating_model=final.reranker
    )
    final_stage: RankingStage | None = None
    if fitted_stage is not None:
        assert fitted_stage.ranker is not None  # fit_on_holdout fitted it
        final_stage = RankingStage.for_models(
            log,
            user_embedder=final.user_embedder(),
            item_embedder=final.item_embedder(),
            items=final.item_keys,
            scoring=final.reranker,
            catalogue=catalogue,
        ).with_ranker(fitted_stage.ranker)
        stage_note = {
            "trained": True,
            "candidate_recall": fitted_stage.report["candidate_recall"],
            "depth": fitted_stage.report["depth"],
            "users": fitted_stage.report["users"],
        }
    report: dict[str, Any] = {
        "feedback": "implicit" if log.ratings is None else "explicit",
        "config": "PIPELINE_CONFIG" if config is None else "custom",
        f"validation_ndcg@{NDCG_CUTOFF}": validation_ndcg,
        "recommended": recommended,
        "validation_users": len(users),
        "blend_cross_fit_weights": fold_weights,
        "holdout_fraction": holdout_fraction,
        "holdout_ratings": len(holdout),
        "fit_ratings": len(fit_part),
        "candidates": candidates,
        "seed": seed,
        "fitted_weights": {"retrieval": fitted.weights.retrieval, "rating": fitted.weights.rating},
        "item_prior_r2_after_move": r2,
        "ranking_stage": stage_note,
        "wall_time_s": time.perf_counter() - started,
    }
    return PipelineTraining(
        models=final, blend=blend, recommended=recommended, report=report, ranking_stage=final_stage
    )


def _ranking_stage_wanted(requested: bool | None) -> tuple[bool, dict[str, Any]]:
    """Whether to train the ranking stage, and the report's note when not."""
    if requested is False:
        return False, {"trained": False, "reason": "not requested (ranking_stage=False)"}
    if requested is True:
        require("lightgbm", extra="ranking")
        return True, {"trained": True}
    try:
        require("lightgbm", extra="ranking")
    except MissingDependencyError as exc:
        return False, {"trained": False, "reason": f"skipped: {exc}"}
    return True, {"trained": True}


def _fit_or_retrieval(
    user_embedder: Embedder,
    store: VectorStore,
    seen: Mapping[str, Collection[str]],
    targets: Mapping[str, Collection[str]],
    first: TrainedModels,
    candidates: int,
) -> BlendReranker:
    """The blend fitted on ``targets``; retrieval order when no target is among any candidates.

    A half of a small hold-out can hold no retrievable target: the honest
    estimate of a blend that cannot learn is the retrieval order it starts from.
    """
    try:
        return fit_blend(
            user_embedder=user_embedder,
            store=store,
            seen=seen,
            targets=targets,
            rating_model=first.reranker,
            candidates=candidates,
        )
    except InvalidInputError:
        return BlendReranker(BlendWeights(retrieval=1.0, rating=0.0, item=None), metric=store.metric)


def _ndcg_per_user(
    user_embedder: Embedder,
    store: VectorStore,
    users: Sequence[str],
    seen: Mapping[str, Collection[str]],
    targets: Mapping[str, Collection[str]],
    reranker: Reranker | None,
    candidates: int,
) -> npt.NDArray[np.float64]:
    """NDCG@10 per user (float64 (len(users),)) of what a recommender would serve, seen items excluded."""
    from two_stage_rec.evaluation.metrics import hit_matrix, ndcg_at_k
    from two_stage_rec.recommender import Recommender

    recommender = Recommender(user_embedder=user_embedder, store=store, reranker=reranker)
    served = recommender.recommend_batch(
        list(users),
        k=NDCG_CUTOFF,
        candidates=candidates,
        exclude=[set(seen.get(user, ())) for user in users],
        rerank=reranker is not None,
    )
    ids = np.full((len(users), NDCG_CUTOFF), "", dtype=object)
    for row, recommendations in enumerate(served):
        ids[row, : len(recommendations)] = [r.item_id for r in recommendations]
    relevant = [set(targets[user]) for user in users]
    hits = hit_matrix(ids, relevant)
    return ndcg_at_k(hits, [len(r) for r in relevant], NDCG_CUTOFF)
