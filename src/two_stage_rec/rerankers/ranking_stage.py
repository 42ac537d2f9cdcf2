"""The learned ranking stage as one step: merged candidates, their features, a fitted ranker.

:class:`RankingStage` bundles what ranking a user needs beyond the towers:
candidate sources over one item list (the towers, an item-to-item model,
popularity: :mod:`two_stage_rec.candidates`), how many candidates each
contributes, the feature builder
(:class:`~two_stage_rec.rerankers.features.CandidateFeatures`) and the ranker
(:class:`~two_stage_rec.rerankers.feature_ranker.FeatureRanker`).

It is fitted the way :func:`~two_stage_rec.training.blend.train_pipeline`
fits the blend, on interactions the models did not see:

1. split the training log per user into A and V; train the models on A;
2. :meth:`RankingStage.for_models` with A's events and models;
   :func:`fit_on_holdout` retrieves each V user's merged candidates (A items
   excluded), labels the V items among them, and fits the ranker; its NDCG@10
   on V is 2-fold cross-fitted over V's users (fit on one half, measured on
   the other), which is the number to compare with the other second stages;
3. for serving or measuring, :meth:`RankingStage.for_models` again with all
   training events and the final models, and :meth:`RankingStage.with_ranker`
   the ranker fitted in 2. Its features are built to survive the change (ranks
   and gaps within the user's candidates, shares rather than counts).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from two_stage_rec.candidates.item_item import ItemItemSource
from two_stage_rec.candidates.pool import MergedCandidates, merge_candidates
from two_stage_rec.candidates.sources import CandidateSource, PopularitySource, TowerSource
from two_stage_rec.datasets.catalogue import Catalogue
from two_stage_rec.datasets.interactions import Interactions
from two_stage_rec.errors import InvalidInputError
from two_stage_rec.explain import CONTRIBUTIONS, CandidateReason
from two_stage_rec.filters import filter_mask
from two_stage_rec.protocols import Embedder, Reranker
from two_stage_rec.rerankers.feature_ranker import FeatureRanker, RankerParams, fit_feature_ranker
from two_stage_rec.rerankers.features import CandidateFeatures, FeatureState
from two_stage_rec.types import Filter, Metadata

__all__ = ["DEFAULT_DEPTH", "RankingStage", "StageCandidateRanker", "fit_on_holdout"]

DEFAULT_DEPTH: dict[str, int] = {"tower": 50, "item_item": 50}
"""Candidates per source: the index's 50 plus EASE's 50 (popularity only scores)."""


@dataclass(frozen=True, eq=False)
class RankingStage:
    """Candidate sources, their depths, the feature builder and (once fitted) the ranker.

    Attributes:
        sources: name -> source, all over ``features.item_ids``; merged in this order.
        depth: name -> candidates per user it contributes.
        features: the feature builder (its history is the models' training events).
        ranker: the fitted ranker, or None before :func:`fit_on_holdout`.
        report: what :func:`fit_on_holdout` measured (empty before).
    """

    sources: Mapping[str, CandidateSource]
    depth: Mapping[str, int]
    features: CandidateFeatures
    ranker: FeatureRanker | None = None
    report: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_models(
        cls,
        history: Interactions,
        *,
        user_embedder: Embedder,
        item_embedder: Embedder,
        items: Sequence[str],
        scoring: Reranker | None = None,
        catalogue: Catalogue | None = None,
        depth: Mapping[str, int] | None = None,
        item_item_l2: float | None = 400.0,
    ) -> RankingStage:
        """The sources ``tower``, ``item_item`` (EASE fitted on ``history``) and ``popularity``.

        Args:
            history: the events the models were trained on.
            user_embedder: the user tower (dot-product retrieval).
            item_embedder: the item tower; must know every item.
            items: the catalogue's item ids.
            scoring: the scoring model (a feature), or None.
            catalogue: item metadata for the genre and year features, or None.
            depth: candidates per source (default :data:`DEFAULT_DEPTH`).
            item_item_l2: EASE's penalty; None leaves the item-to-item source out.
        """
        tower = TowerSource(user_embedder, item_embedder, items)
        sources: dict[str, CandidateSource] = {"tower": tower}
        if item_item_l2 is not None:
            sources["item_item"] = ItemItemSource.fit(history, items, l2=item_item_l2)
        sources["popularity"] = PopularitySource(history, items)
        chosen = dict(DEFAULT_DEPTH if depth is None else depth)
        chosen = {name: d for name, d in chosen.items() if name in sources}
        features = CandidateFeatures(history, tower, scoring=scoring, catalogue=catalogue)
        return cls(sources=sources, depth=chosen, features=features)

    @classmethod
    def restore(
        cls,
        state: FeatureState,
        *,
        user_embedder: Embedder,
        item_embedder: Embedder,
        item_item_weights: npt.ArrayLike | None,
        depth: Mapping[str, int],
        ranker: FeatureRanker,
        scoring: Reranker | None = None,
        catalogue: Catalogue | None = None,
        recent: int = 5,
    ) -> RankingStage:
        """A fitted stage rebuilt from what a bundle stores (no training log, no LightGBM).

        Args:
            state: the features' state of the training events (its item list is the sources').
            user_embedder: the user tower.
            item_embedder: the item tower; must know every item.
            item_item_weights: EASE's float (n_items, n_items) weights, or None (no item-to-item source).
            depth: candidates per source.
            ranker: the fitted ranker.
            scoring: the scoring model, or None.
            catalogue: item metadata, or None.
            recent: as :class:`~two_stage_rec.rerankers.features.CandidateFeatures`.

        Raises:
            InvalidInputError: the parts disagree (weights' shape, the ranker's features).
        """
        items = state.item_ids
        tower = TowerSource(user_embedder, item_embedder, items)
        sources: dict[str, CandidateSource] = {"tower": tower}
        if item_item_weights is not None:
            sources["item_item"] = ItemItemSource(item_item_weights, items, state.history)
        sources["popularity"] = PopularitySource(dict(zip(items, state.counts.tolist(), strict=True)), items)
        features = CandidateFeatures(state, tower, scoring=scoring, catalogue=catalogue, recent=recent)
        stage = cls(sources=sources, depth={name: int(d) for name, d in depth.items()}, features=features)
        return stage.with_ranker(ranker)

    @property
    def item_item_weights(self) -> npt.NDArray[np.float32] | None:
        """EASE's weights when the stage has the item-to-item source, else None."""
        source = self.sources.get("item_item")
        return source.weights if isinstance(source, ItemItemSource) else None

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The feature columns for these sources."""
        return self.features.names(list(self.sources))

    def with_ranker(self, ranker: FeatureRanker) -> RankingStage:
        """This stage with ``ranker`` (fitted on another stage with the same sources).

        Raises:
            InvalidInputError: the ranker was fitted on other features.
        """
        if tuple(ranker.feature_names) != self.feature_names:
            raise InvalidInputError("the ranker was fitted on other features than this stage computes")
        return replace(self, ranker=ranker)

    def candidates(
        self, users: Sequence[str], exclude: Sequence[Collection[str]] | None = None
    ) -> tuple[MergedCandidates, npt.NDArray[np.float32]]:
        """Merged candidates and their features (float32 (n, width, F)) for ``users``."""
        merged = merge_candidates(self.sources, self.depth, users, exclude=exclude)
        return merged, self.features.build(merged)

    def recommend(
        self, users: Sequence[str], k: int, *, exclude: Sequence[Collection[str]] | None = None, batch_size: int = 256
    ) -> npt.NDArray[np.object_]:
        """Top-``k`` item ids per user (object (n, k), ``""`` pads), ranked by the fitted ranker.

        Raises:
            InvalidInputError: no ranker yet.
        """
        if self.ranker is None:
            raise InvalidInputError("this ranking stage has no ranker; fit one with fit_on_holdout")
        out = np.full((len(users), k), "", dtype=object)
        for start in range(0, len(users), batch_size):
            stop = start + batch_size
            merged, features = self.candidates(users[start:stop], None if exclude is None else exclude[start:stop])
            out[start:stop] = self.ranker.rank(merged, features, k)[0]
        return out


class StageCandidateRanker:
    """A fitted :class:`RankingStage` as a :class:`~two_stage_rec.protocols.CandidateRanker`.

    Serves the stage through :class:`~two_stage_rec.recommender.Recommender`
    (``candidate_ranker=``), which is how
    :func:`~two_stage_rec.assembly.assemble` serves ``"ranker"``. Items
    outside ``metadata`` (the catalogue) or failing the request's filter are
    excluded *before* candidates are merged, so the pool is filled with items
    that can be served. Thread safety: ``rank`` only reads the stage.
    """

    def __init__(self, stage: RankingStage, metadata: Mapping[str, Metadata], *, batch_size: int = 256) -> None:
        """Args:
        stage: a stage with a ranker.
        metadata: item id -> metadata of the items that may be served (the catalogue's).
        batch_size: users per batch (bounds the (users, items) score blocks of the sources).

        Raises:
            InvalidInputError: the stage has no ranker.
        """
        if stage.ranker is None:
            raise InvalidInputError("this ranking stage has no ranker; fit one with fit_on_holdout")
        self._stage = stage
        self._ranker = stage.ranker
        self._ranker.trees.prepare()  # the evaluation tables are built now, not by the first request
        self._items = stage.features.item_ids
        self._servable = [item for item in self._items if item in metadata]
        self._metadata = [metadata[item] for item in self._servable]
        self._unservable = frozenset(item for item in self._items if item not in metadata)
        self._batch_size = batch_size

    def __repr__(self) -> str:
        return f"StageCandidateRanker(items={len(self._items)}, depth={dict(self._stage.depth)})"

    def _barred(self, filter: Filter | None) -> frozenset[str]:
        if not filter:
            return self._unservable
        passes = filter_mask(filter, self._metadata)
        return self._unservable | frozenset(
            item for item, ok in zip(self._servable, passes.tolist(), strict=True) if not ok
        )

    def rank(
        self, user_ids: Sequence[str], k: int, *, exclude: Sequence[Collection[str]], filter: Filter | None
    ) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """See :meth:`two_stage_rec.protocols.CandidateRanker.rank`; retrieval scores are the towers'."""
        if k < 1:
            raise InvalidInputError(f"k must be positive, got {k}")
        if len(exclude) != len(user_ids):
            raise InvalidInputError(f"exclude has {len(exclude)} rows for {len(user_ids)} users")
        barred = self._barred(filter)
        if len(user_ids) == 1:
            return self._rank_one(user_ids[0], k, barred.union(exclude[0]) if barred else exclude[0])
        n = len(user_ids)
        ids = np.full((n, k), "", dtype=object)
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        retrieval = np.full((n, k), np.nan, dtype=np.float32)
        for start in range(0, n, self._batch_size):
            stop = min(start + self._batch_size, n)
            merged, features = self._stage.candidates(
                list(user_ids[start:stop]), [barred.union(items) if barred else items for items in exclude[start:stop]]
            )
            ranked = np.where(merged.present, self._ranker.score(features), -np.inf).astype(np.float32)
            order = np.argsort(-ranked, axis=1, kind="stable")[:, :k]
            width = order.shape[1]
            rows = np.arange(stop - start)[:, None]
            top = ranked[rows, order]
            found = np.isfinite(top)
            ids[start:stop, :width] = np.where(found, merged.ids[rows, order], "")
            scores[start:stop, :width] = top
            retrieval[start:stop, :width] = np.where(found, merged.scores["tower"][rows, order], np.nan)
        return ids, scores, retrieval

    def _rank_one(
        self, user: str, k: int, exclude: Collection[str]
    ) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """:meth:`rank` for one user, on 1-D rows: the same candidates, scores and order.

        A one-user request is the latency path; the batch loop's (n, k) blocks
        and row bookkeeping cost a noticeable share of it.
        """
        merged, features = self._stage.candidates([user], [exclude])
        columns = merged.columns[0]
        ranked = np.where(columns >= 0, self._ranker.score(features[0]), -np.inf).astype(np.float32)
        order = np.argsort(-ranked, kind="stable")[:k]
        width = order.size
        top = ranked[order]
        found = np.isfinite(top)
        ids = np.full((1, k), "", dtype=object)
        scores = np.full((1, k), -np.inf, dtype=np.float32)
        retrieval = np.full((1, k), np.nan, dtype=np.float32)
        ids[0, :width] = np.where(found, merged.ids[0, order], "")
        scores[0, :width] = top
        retrieval[0, :width] = np.where(found, merged.scores["tower"][0, order], np.nan)
        return ids, scores, retrieval

    def explain(
        self,
        user_ids: Sequence[str],
        item_ids: Sequence[Sequence[str]],
        *,
        exclude: Sequence[Collection[str]],
        filter: Filter | None,
    ) -> list[list[CandidateReason]]:
        """See :class:`~two_stage_rec.protocols.ExplainsCandidates`.

        The sources are those whose own top items held the candidate. A
        feature's contribution is the item's score minus its score with that
        feature set to the mean over the user's candidates (missing values
        left out): why the ranker put the item above an average candidate of
        the same request. It costs the candidates' features again plus F tree
        evaluations per item (F features), about a millisecond per user.
        """
        if len(exclude) != len(user_ids) or len(item_ids) != len(user_ids):
            raise InvalidInputError("explain needs one item list and one exclusion set per user")
        barred = self._barred(filter)
        merged, features = self._stage.candidates(
            list(user_ids), [barred.union(items) if barred else items for items in exclude]
        )
        names = self._ranker.feature_names
        width = len(names)
        candidate_ids: list[list[str]] = merged.ids.tolist()
        out: list[list[CandidateReason]] = []
        for row, wanted in enumerate(item_ids):
            column_of = {item: column for column, item in enumerate(candidate_ids[row]) if item}
            present = features[row][merged.present[row]]
            finite = np.isfinite(present)
            counts = finite.sum(axis=0)
            reference = np.where(
                counts > 0, np.where(finite, present, 0.0).sum(axis=0) / np.maximum(counts, 1), np.nan
            ).astype(np.float32)
            columns = [column_of.get(item) for item in wanted]
            found = [column for column in columns if column is not None]
            contributions: dict[int, tuple[tuple[str, float], ...]] = {}
            if found:
                x = features[row, found]  # (m, F)
                occluded = np.repeat(x[:, None, :], width, axis=1)  # (m, F, F): row f has feature f replaced
                diagonal = np.arange(width)
                occluded[:, diagonal, diagonal] = reference
                delta = self._ranker.score(x)[:, None] - self._ranker.score(occluded)
                for position, found_column in enumerate(found):
                    order = np.argsort(-np.abs(delta[position]), kind="stable")[:CONTRIBUTIONS]
                    contributions[found_column] = tuple(
                        (names[f], round(float(delta[position, f]), 6))
                        for f in order.tolist()
                        if np.isfinite(delta[position, f]) and delta[position, f] != 0
                    )
            reasons = []
            for maybe in columns:
                if maybe is None:
                    reasons.append(CandidateReason(sources=()))
                    continue
                sources = tuple(name for name, hit in merged.retrieved_by.items() if hit[row, maybe])
                reasons.append(CandidateReason(sources=sources, contributions=contributions[maybe]))
            out.append(reasons)
        return out


def _rows(merged: MergedCandidates, index: npt.NDArray[np.int64]) -> MergedCandidates:
    return MergedCandidates(
        users=tuple(merged.users[i] for i in index),
        item_ids=merged.item_ids,
        columns=merged.columns[index],
        counts=merged.counts[index],
        scores={name: s[index] for name, s in merged.scores.items()},
        retrieved_by={name: r[index] for name, r in merged.retrieved_by.items()},
    )


def fit_on_holdout(
    stage: RankingStage,
    seen: Mapping[str, Collection[str]],
    targets: Mapping[str, Collection[str]],
    *,
    params: RankerParams | None = None,
    k: int = 10,
    seed: int = 7,
) -> RankingStage:
    """Fit the stage's ranker on held-out items, and estimate its NDCG@k there by 2-fold cross-fitting.

    Args:
        stage: a stage built from the models trained *without* ``targets``.
        seen: user -> items excluded from their candidates (the models' training items).
        targets: user -> held-out items (the positives).
        params: the ranker's settings.
        k: cut-off of the reported NDCG.
        seed: seed of the halves.

    Returns:
        The stage with its ranker; ``report`` holds ``"cross_fit_ndcg@k"``
        (mean over users; also ``per_user``), the candidates' recall and the ranker's report.

    Raises:
        InvalidInputError: fewer than two users with targets, or none with a target among their candidates.
    """
    from two_stage_rec.evaluation.metrics import hit_matrix, ndcg_at_k

    known = set(stage.features.item_ids)
    users = sorted(user for user, items in targets.items() if any(i in known for i in items))
    if len(users) < 2:
        raise InvalidInputError("fit_on_holdout needs at least two users with held-out items")
    merged, features = stage.candidates(users, [seen.get(user, ()) for user in users])
    relevant = [set(targets[user]) for user in users]
    labels = merged.labels(relevant)
    names = stage.feature_names
    order = np.random.default_rng(seed).permutation(len(users))
    per_user = np.zeros(len(users))
    for fit_half, measure_half in (
        (order[: len(users) // 2], order[len(users) // 2 :]),
        (order[len(users) // 2 :], order[: len(users) // 2]),
    ):
        ranker = fit_feature_ranker(features[fit_half], labels[fit_half], names, params=params)
        ids = ranker.rank(_rows(merged, measure_half), features[measure_half], k)[0]
        chosen = [relevant[i] for i in measure_half]
        per_user[measure_half] = ndcg_at_k(hit_matrix(ids, chosen), [len(r) for r in chosen], k)
    ranker = fit_feature_ranker(features, labels, names, params=params)
    found = labels.sum(axis=1)
    report = {
        f"cross_fit_ndcg@{k}": float(per_user.mean()),
        "per_user": per_user,
        "users": len(users),
        "candidate_recall": float(np.mean(found / np.array([len(r) for r in relevant]))),
        "depth": dict(stage.depth),
        "ranker": ranker.report,
    }
    return replace(stage, ranker=ranker, report=report)
