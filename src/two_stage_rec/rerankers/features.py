"""Per-candidate features for a learned ranker: what a (user vector, item vector) pair cannot say.

The :class:`~two_stage_rec.protocols.Reranker` contract scores a pair of
vectors, which keeps rerankers framework-free and batch-first but hides the
user's history, the item's popularity and metadata. A ranker that should beat
retrieval needs those, so :class:`CandidateFeatures` computes them from the
training events and the catalogue, for the merged candidates of
:func:`~two_stage_rec.candidates.merge_candidates`. One row per (user,
candidate); NaN marks a value that does not exist (a padded candidate, an item
without a year, implicit feedback's missing rating), which tree ensembles
route like any other value.

Features (:attr:`CandidateFeatures.names`), per source ``s`` merged:

* ``s:score`` — the source's score; ``s:gap`` — the score minus the user's
  best candidate score from that source (robust to a retrained model's scale);
  ``s:rank`` — its rank among the user's candidates by that score (0 = best);
  ``s:retrieved`` — 1 when the source put it among its own top items.

then, whatever the sources:

* ``scoring:score`` / ``scoring:rank`` — the scoring model (predicted rating
  or relevance logit) and the candidate's rank by it;
* ``item:log_share`` — log of the item's share of training events;
  ``item:mean_rating`` — its mean training rating (NaN for implicit feedback);
  ``item:year`` — the catalogue's ``year``;
* ``user:log_activity`` — log(1 + the user's training events);
* ``affinity:genre`` — cosine between the item's ``genres`` and the share of
  each genre in the user's history; ``affinity:year_gap`` — item year minus
  the mean year of the user's history;
* ``similarity:recent_max`` / ``similarity:recent_mean`` — cosine between the
  candidate's tower vector and those of the user's ``recent`` latest items
  (by timestamp; log order without timestamps); ``similarity:history`` —
  cosine with the mean direction of all the user's items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from two_stage_rec.candidates.pool import MergedCandidates
from two_stage_rec.candidates.sources import TowerSource, check_items
from two_stage_rec.datasets.catalogue import Catalogue
from two_stage_rec.datasets.interactions import Interactions
from two_stage_rec.errors import InvalidInputError
from two_stage_rec.protocols import Reranker
from two_stage_rec.scoring import normalize_rows

__all__ = ["CONTEXT_FEATURES", "CandidateFeatures", "FeatureState", "source_feature_names"]

CONTEXT_FEATURES: tuple[str, ...] = (
    "scoring:score",
    "scoring:rank",
    "item:log_share",
    "item:mean_rating",
    "item:year",
    "user:log_activity",
    "affinity:genre",
    "affinity:year_gap",
    "similarity:recent_max",
    "similarity:recent_mean",
    "similarity:history",
)
"""The features that do not depend on which sources are merged, in column order."""

_SOURCE_SUFFIXES = ("score", "gap", "rank", "retrieved")


def source_feature_names(sources: Sequence[str]) -> tuple[str, ...]:
    """The per-source feature names, in column order, for sources merged in this order."""
    return tuple(f"{source}:{suffix}" for source in sources for suffix in _SOURCE_SUFFIXES)


def _rank_within_rows(scores: npt.NDArray[np.float64], present: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """Rank (0 = highest) of each present entry within its row; NaN for padding."""
    filled = np.where(present, scores, -np.inf)
    order = np.argsort(-filled, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(scores.shape[1])[None, :].repeat(scores.shape[0], 0), axis=1)
    return np.where(present, ranks.astype(np.float64), np.nan)


@dataclass(frozen=True, eq=False)
class FeatureState:
    """What the features need of the training events, without the events.

    Attributes:
        item_ids: the item list, in column order.
        counts: float64 (n_items,) training events per item.
        mean_rating: float64 (n_items,) mean training rating per item (NaN: none, or implicit feedback).
        history: user -> the user's items in the list, in time order (latest last; repeats kept).
    """

    item_ids: tuple[str, ...]
    counts: npt.NDArray[np.float64]
    mean_rating: npt.NDArray[np.float64]
    history: Mapping[str, tuple[str, ...]]

    @classmethod
    def of(cls, log: Interactions, items: Sequence[str]) -> FeatureState:
        """The state of a training log over ``items`` (events of other items are ignored)."""
        ids = check_items(items)
        column = {item: c for c, item in enumerate(ids)}
        m = len(ids)
        item_index = np.array([column.get(i, -1) for i in log.item_ids.tolist()], dtype=np.int64)
        known = item_index >= 0
        counts = np.bincount(item_index[known], minlength=m).astype(np.float64)
        if log.ratings is not None:
            sums = np.bincount(item_index[known], weights=log.ratings[known].astype(np.float64), minlength=m)
            mean_rating = np.where(counts > 0, sums / np.maximum(counts, 1.0), np.nan)
        else:
            mean_rating = np.full(m, np.nan)
        order = np.arange(len(log))
        if log.timestamps is not None:
            order = np.lexsort((order, log.timestamps))
        by_user: dict[str, list[str]] = {}
        for user, c in zip(log.user_ids[order].tolist(), item_index[order].tolist(), strict=True):
            if c >= 0:
                by_user.setdefault(user, []).append(ids[c])
        return cls(ids, counts, mean_rating, {user: tuple(seen) for user, seen in by_user.items()})


class CandidateFeatures:
    """Computes the ranker's features for merged candidates, from one training log.

    Build it from the events the models were trained on: for fitting the
    ranker, the models trained on part A and A's events; for serving or
    measuring, the final models and all training events. Features use nothing
    else, so a ranker fitted with one builder applies to the other.
    """

    def __init__(
        self,
        history: Interactions | FeatureState,
        tower: TowerSource,
        *,
        scoring: Reranker | None = None,
        catalogue: Catalogue | None = None,
        recent: int = 5,
    ) -> None:
        """Args:
        history: the training events (seen items, activity, recency, popularity),
            or their :class:`FeatureState` (what a bundle stores).
        tower: the towers' source: user and item vectors (and the item list
            every candidate source shares).
        scoring: the scoring model, or None (its features are then NaN).
        catalogue: item metadata (``genres``: list of str, ``year``: int), or None.
        recent: how many of the user's latest items ``similarity:recent_*`` compares with.
        """
        if recent < 1:
            raise InvalidInputError(f"recent must be at least 1, got {recent}")
        self._tower = tower
        self._scoring = scoring
        items = check_items(tower.item_ids)
        column = {item: c for c, item in enumerate(items)}
        m = len(items)
        state = history if isinstance(history, FeatureState) else FeatureState.of(history, items)
        if tuple(state.item_ids) != items:
            raise InvalidInputError("the feature state describes another item list than the towers'")
        counts = np.asarray(state.counts, dtype=np.float64)
        self._state = state
        self._log_share = np.log((counts + 1.0) / (counts.sum() + m))
        self._mean_rating = np.asarray(state.mean_rating, dtype=np.float64)
        genres: list[str] = []
        years = np.full(m, np.nan)
        item_genres: list[list[str]] = [[] for _ in range(m)]
        if catalogue is not None:
            metadata = catalogue.metadata_by_id()
            for item, c in column.items():
                meta = metadata.get(item, {})
                year = meta.get("year")
                if isinstance(year, int | float) and not isinstance(year, bool):
                    years[c] = float(year)
                tags = meta.get("genres")
                if isinstance(tags, list):
                    item_genres[c] = [str(t) for t in tags]
            genres = sorted({g for tags in item_genres for g in tags})
        genre_column = {g: j for j, g in enumerate(genres)}
        self._genres = np.zeros((m, len(genres)), dtype=np.float64)
        for c, tags in enumerate(item_genres):
            self._genres[c, [genre_column[g] for g in tags]] = 1.0
        self._years = years
        self._unit_vectors = normalize_rows(tower.item_vectors).astype(np.float64)

        self._history = {
            user: np.array([column[i] for i in seen], dtype=np.int64) for user, seen in state.history.items()
        }
        self._recent = recent

    @property
    def state(self) -> FeatureState:
        """What the features keep of the training events (saved in a bundle)."""
        return self._state

    @property
    def recent(self) -> int:
        """How many of the user's latest items ``similarity:recent_*`` compares with."""
        return self._recent

    @property
    def item_ids(self) -> tuple[str, ...]:
        """The item list shared with the candidate sources."""
        return self._tower.item_ids

    def names(self, sources: Sequence[str]) -> tuple[str, ...]:
        """Feature names in column order for candidates merged from ``sources`` (in that order)."""
        return (*source_feature_names(sources), *CONTEXT_FEATURES)

    def build(self, candidates: MergedCandidates) -> npt.NDArray[np.float32]:
        """Features of every candidate.

        Args:
            candidates: merged candidates over this builder's item list.

        Returns:
            float32 (n_users, width, F) with F = ``len(self.names(list(candidates.scores)))``;
            padded candidates are all-NaN rows.

        Raises:
            InvalidInputError: the candidates index another item list.
        """
        if tuple(candidates.item_ids) != tuple(self.item_ids):
            raise InvalidInputError("the candidates were merged over another item list than the towers'")
        present = candidates.present
        n, width = present.shape
        safe = np.where(present, candidates.columns, 0)
        blocks: list[npt.NDArray[np.float64]] = []
        for name, raw in candidates.scores.items():
            score = raw.astype(np.float64)
            best = np.nanmax(np.where(present, score, np.nan), axis=1, initial=-np.inf, where=present)
            blocks += [
                score,
                np.where(present, score - best[:, None], np.nan),
                _rank_within_rows(score, present),
                np.where(present, candidates.retrieved_by[name].astype(np.float64), np.nan),
            ]

        users = list(candidates.users)
        user_vectors = self._tower.user_vectors(users)
        if self._scoring is not None and present.any():
            rows, cols = np.nonzero(present)
            pair_users = user_vectors[rows]
            pair_items = self._tower.item_vectors[candidates.columns[rows, cols]]
            scoring = np.full((n, width), np.nan)
            scoring[rows, cols] = np.asarray(self._scoring.score(pair_users, pair_items), dtype=np.float64).reshape(-1)
            scoring_rank = _rank_within_rows(scoring, present)
        else:
            scoring = np.full((n, width), np.nan)
            scoring_rank = np.full((n, width), np.nan)

        def per_item(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            return np.where(present, values[safe], np.nan)

        activity = np.zeros(n)
        genre_profile = np.zeros((n, self._genres.shape[1]))
        mean_year = np.full(n, np.nan)
        recent_max = np.full((n, width), np.nan)
        recent_mean = np.full((n, width), np.nan)
        history_sim = np.full((n, width), np.nan)
        for row, user in enumerate(users):
            seen = self._history.get(user)
            if seen is None or not seen.size:
                continue
            activity[row] = np.log1p(seen.size)
            genre_profile[row] = self._genres[seen].sum(axis=0)
            years = self._years[seen]
            if np.isfinite(years).any():
                mean_year[row] = np.nanmean(years)
            candidate_vectors = self._unit_vectors[safe[row]]
            similarity = candidate_vectors @ self._unit_vectors[seen[-self._recent :]].T  # (width, recent)
            recent_max[row] = similarity.max(axis=1)
            recent_mean[row] = similarity.mean(axis=1)
            direction = self._unit_vectors[seen].sum(axis=0)
            norm = np.linalg.norm(direction)
            if norm > 0:
                history_sim[row] = candidate_vectors @ (direction / norm)
        item_genres = self._genres[safe]  # (n, width, G)
        profile_norm = np.linalg.norm(genre_profile, axis=1)
        item_norm = np.linalg.norm(item_genres, axis=2)
        dot = np.einsum("nwg,ng->nw", item_genres, genre_profile)
        denominator = item_norm * profile_norm[:, None]
        genre_affinity = np.divide(dot, denominator, out=np.zeros_like(dot), where=denominator > 0)
        blocks += [
            scoring,
            scoring_rank,
            per_item(self._log_share),
            per_item(self._mean_rating),
            per_item(self._years),
            np.where(present, activity[:, None], np.nan),
            np.where(present, genre_affinity, np.nan),
            per_item(self._years) - mean_year[:, None],
            np.where(present, recent_max, np.nan),
            np.where(present, recent_mean, np.nan),
            np.where(present, history_sim, np.nan),
        ]
        return np.stack(blocks, axis=2).astype(np.float32)
