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
    """Rank (0 = highest) of each present entry within its row (the last axis); NaN for padding.

    Args:
        scores: float64 (..., n, width), e.g. several sources' scores stacked.
        present: bool (n, width).
    """
    filled = np.where(present, scores, -np.inf)
    order = np.argsort(-filled, axis=-1, kind="stable")
    ranks = np.argsort(order, axis=-1, kind="stable")  # the inverse permutation: each entry's place
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


@dataclass(frozen=True, eq=False)
class _UserSummaries:
    """What one-user features need of the known users' histories, computed once for all of them.

    Row ``row[user]`` of each array is that user's (users without history have no row).

    Attributes:
        row: user -> row.
        activity: float64 (U,) log(1 + the user's events).
        profile: float64 (U, G) genre counts of the history; ``profile_norm`` (U,) their Euclidean norms.
        mean_year: float64 (U,) mean year of the history's items with a year (NaN: none).
        latest: int64 (U, recent) item columns of the latest items in time order, padded with the first item.
        taken: int64 (U,) how many of ``latest`` are real (the rest pad).
        direction: float64 (U, d) unit mean direction of the history; ``has_direction`` (U,) False when it is zero.
    """

    row: dict[str, int]
    activity: npt.NDArray[np.float64]
    profile: npt.NDArray[np.float64]
    profile_norm: npt.NDArray[np.float64]
    mean_year: npt.NDArray[np.float64]
    latest: npt.NDArray[np.int64]
    taken: npt.NDArray[np.int64]
    direction: npt.NDArray[np.float64]
    has_direction: npt.NDArray[np.bool_]


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
        # The per-item features as one (3, m) table: one gather per request instead of three.
        self._item_table = np.stack([self._log_share, self._mean_rating, years])
        self._genre_norm_squared = self._genres.sum(axis=1)  # flags are 0/1
        self._unit_vectors = normalize_rows(tower.item_vectors).astype(np.float64)

        self._history = {
            user: np.array([column[i] for i in seen], dtype=np.int64) for user, seen in state.history.items()
        }
        self._recent = recent
        # The histories' summaries, computed once here rather than per one-user request.
        self._summaries = self._summarize()

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
        if candidates.item_ids is not self.item_ids and tuple(candidates.item_ids) != tuple(self.item_ids):
            raise InvalidInputError("the candidates were merged over another item list than the towers'")
        if candidates.columns.shape[0] == 1 and candidates.counts[0] == candidates.columns.shape[1]:
            return self._build_one(candidates)
        present = candidates.present
        n, width = present.shape
        sources = list(candidates.scores)
        safe = np.where(present, candidates.columns, 0)
        ranked: list[npt.NDArray[np.floating]] = [candidates.scores[name] for name in sources]
        scoring = np.full((n, width), np.nan)
        if self._scoring is not None and present.any():
            rows, cols = np.nonzero(present)
            pair_users = self._tower.user_vectors(list(candidates.users))[rows]
            pair_items = self._tower.item_vectors[candidates.columns[rows, cols]]
            scoring[rows, cols] = np.asarray(self._scoring.score(pair_users, pair_items), dtype=np.float64).reshape(-1)
            ranked.append(scoring)
        # One stack and one sort for every source's ranks (and the scoring model's).
        stacked = np.stack(ranked).astype(np.float64) if ranked else np.zeros((0, n, width))
        ranks = _rank_within_rows(stacked, present)
        score = stacked[: len(sources)]
        gap = score - np.fmax.reduce(np.where(present, score, -np.inf), axis=2, initial=-np.inf)[:, :, None]
        blocks: list[npt.NDArray[np.floating] | npt.NDArray[np.bool_]] = []
        for s, name in enumerate(sources):
            blocks += [score[s], gap[s], ranks[s], candidates.retrieved_by[name]]
        blocks += [scoring, ranks[-1] if len(ranked) > len(sources) else scoring]  # NaN without a scoring model

        activity = np.zeros(n)
        genre_profile = np.zeros((n, self._genres.shape[1]))
        mean_year = np.full(n, np.nan)
        recent_max = np.full((n, width), np.nan)
        recent_mean = np.full((n, width), np.nan)
        history_sim = np.full((n, width), np.nan)
        histories = [self._history.get(user) for user in candidates.users]
        lengths = np.array([0 if seen is None else seen.size for seen in histories], dtype=np.int64)
        users = np.flatnonzero(lengths)
        if users.size:
            # Every user's history at once: their items concatenated, summed per user with reduceat
            # in item order, as a per-user sum over the first axis adds them (year sums are exact
            # for whole years; fractional ones could differ from a pairwise sum in the last bit).
            counts = lengths[users]
            ends = np.cumsum(counts)
            starts = ends - counts
            flat = np.concatenate([histories[row] for row in users.tolist()])
            activity[users] = np.log1p(counts)
            genre_profile[users] = np.add.reduceat(self._genres[flat], starts, axis=0)
            years = self._years[flat]
            unknown = np.isnan(years)
            known = counts - np.add.reduceat(unknown.astype(np.int64), starts)
            year_sums = np.add.reduceat(np.where(unknown, 0.0, years), starts)
            mean_year[users] = np.where(known > 0, year_sums / np.maximum(known, 1), np.nan)
            seen_vectors = self._unit_vectors[flat]  # (sum of counts, d)
            candidate_vectors = self._unit_vectors[safe[users]]  # (users, width, d)
            # Each user's latest ``recent`` items in time order, padded after them (so that the
            # sums below add the same numbers in the same order as over the unpadded rows).
            taken = np.minimum(counts, self._recent)
            slot = np.arange(self._recent)
            valid = slot[None, :] < taken[:, None]
            latest = np.where(valid, (ends - taken)[:, None] + slot[None, :], starts[:, None])
            similarity = np.matmul(candidate_vectors, seen_vectors[latest].transpose(0, 2, 1))  # (users, width, r)
            recent_max[users] = np.where(valid[:, None, :], similarity, -np.inf).max(axis=2)
            recent_mean[users] = np.where(valid[:, None, :], similarity, 0.0).sum(axis=2) / taken[:, None]
            direction = np.add.reduceat(seen_vectors, starts, axis=0)  # (users, d)
            for row, user_direction, vectors in zip(users.tolist(), direction, candidate_vectors, strict=True):
                norm = np.sqrt(user_direction.dot(user_direction))  # np.linalg.norm's formula for a vector
                if norm > 0:
                    history_sim[row] = vectors @ (user_direction / norm)
        item_genres = self._genres[safe]  # (n, width, G)
        # Genre flags and counts are small integers: these sums are exact in any order.
        profile_norm = np.sqrt((genre_profile * genre_profile).sum(axis=1))
        item_norm = np.sqrt(self._genre_norm_squared[safe])
        dot = np.matmul(item_genres, genre_profile[:, :, None])[..., 0]
        denominator = item_norm * profile_norm[:, None]
        genre_affinity = np.divide(dot, denominator, out=np.zeros_like(dot), where=denominator > 0)
        item_years = self._years[safe]
        blocks += [
            self._log_share[safe],
            self._mean_rating[safe],
            item_years,
            np.broadcast_to(activity[:, None], (n, width)),
            genre_affinity,
            item_years - mean_year[:, None],
            recent_max,
            recent_mean,
            history_sim,
        ]
        # One stack casts every block to float32 (each value rounded once); padding is set to NaN after.
        out: npt.NDArray[np.float32] = np.stack(blocks, axis=2, dtype=np.float32)
        out[~present] = np.nan
        return out

    def _build_one(self, candidates: MergedCandidates) -> npt.NDArray[np.float32]:
        """:meth:`build` for one user without padding: the same operations on 1-D rows.

        The batch path's per-user bookkeeping (segments, masks, padded blocks)
        costs more than the features of one user's hundred candidates. Each
        value is computed by the same formula, in the same order of additions,
        as the batch path computes it, so both give the same float32 features.
        """
        columns = candidates.columns[0]
        width = columns.size
        sources = list(candidates.scores)
        s = len(sources)
        # Rows of a (F, width) float64 block, each value rounded to float32 once at the end.
        block = np.empty((4 * s + len(CONTEXT_FEATURES), width))
        scored = np.empty((s + 1, width))  # the sources' scores, then the scoring model's
        for i, name in enumerate(sources):
            scored[i] = candidates.scores[name][0]
        with_scoring = self._scoring is not None and width > 0
        if with_scoring:
            assert self._scoring is not None
            user = self._tower.user_vectors(list(candidates.users))
            pairs = self._scoring.score(np.repeat(user, width, axis=0), self._tower.item_vectors[columns])
            scored[s] = np.asarray(pairs, dtype=np.float64).reshape(-1)
        else:
            scored[s] = np.nan
        ranks = np.argsort(np.argsort(-scored, axis=1, kind="stable"), axis=1, kind="stable")
        best = np.fmax.reduce(scored[:s], axis=1, initial=-np.inf, keepdims=True)
        block[0 : 4 * s : 4] = scored[:s]
        block[1 : 4 * s : 4] = scored[:s] - best
        block[2 : 4 * s : 4] = ranks[:s]
        for i, name in enumerate(sources):
            block[4 * i + 3] = candidates.retrieved_by[name][0]
        c = 4 * s
        block[c] = scored[s]
        block[c + 1] = ranks[s] if with_scoring else np.nan
        block[c + 2 : c + 5] = self._item_table[:, columns]  # log share, mean rating, year
        item_years = block[c + 4]
        summaries = self._summaries
        row = summaries.row.get(candidates.users[0])
        if row is None:
            block[c + 5] = 0.0  # activity
            block[c + 6] = 0.0  # genre affinity with an empty profile
            block[c + 7 :] = np.nan
        else:
            block[c + 5] = summaries.activity[row]
            dot = self._genres[columns] @ summaries.profile[row]
            denominator = np.sqrt(self._genre_norm_squared[columns]) * summaries.profile_norm[row]
            block[c + 6] = np.divide(dot, denominator, out=np.zeros_like(dot), where=denominator > 0)
            block[c + 7] = item_years - summaries.mean_year[row]
            candidate_vectors = self._unit_vectors[columns]
            similarity = candidate_vectors @ self._unit_vectors[summaries.latest[row]].T  # (width, recent)
            taken = int(summaries.taken[row])
            if taken < self._recent:
                slot = np.arange(self._recent)
                block[c + 8] = np.where(slot < taken, similarity, -np.inf).max(axis=1)
                block[c + 9] = np.where(slot < taken, similarity, 0.0).sum(axis=1) / taken
            else:
                block[c + 8] = similarity.max(axis=1)
                block[c + 9] = similarity.sum(axis=1) / taken
            block[c + 10] = candidate_vectors @ summaries.direction[row] if summaries.has_direction[row] else np.nan
        out: npt.NDArray[np.float32] = np.ascontiguousarray(block.T, dtype=np.float32)[None]
        return out

    def _summarize(self) -> _UserSummaries:
        """Every known user's history summary, by the batch path's formulas and order of additions.

        :meth:`build` sums each user's items with ``reduceat`` over the histories
        concatenated, as here, so the one-user features read from these rows
        equal the batch path's bit for bit.
        """
        users = [user for user, seen in self._history.items() if seen.size]
        counts = np.array([self._history[user].size for user in users], dtype=np.int64)
        d, genres = self._unit_vectors.shape[1], self._genres.shape[1]
        if not users:
            return _UserSummaries(
                {}, np.zeros(0), np.zeros((0, genres)), np.zeros(0), np.zeros(0),
                np.zeros((0, self._recent), dtype=np.int64), counts, np.zeros((0, d)), np.zeros(0, dtype=bool),
            )  # fmt: skip
        ends = np.cumsum(counts)
        starts = ends - counts
        flat = np.concatenate([self._history[user] for user in users])
        profile = np.add.reduceat(self._genres[flat], starts, axis=0)  # small integers: exact in any order
        years = self._years[flat]
        unknown = np.isnan(years)
        known = counts - np.add.reduceat(unknown.astype(np.int64), starts)
        year_sums = np.add.reduceat(np.where(unknown, 0.0, years), starts)
        taken = np.minimum(counts, self._recent)
        slot = np.arange(self._recent)
        valid = slot[None, :] < taken[:, None]
        latest = flat[np.where(valid, (ends - taken)[:, None] + slot[None, :], starts[:, None])]
        direction = np.add.reduceat(self._unit_vectors[flat], starts, axis=0)  # (users, d)
        has_direction = np.zeros(len(users), dtype=bool)
        for row, user_direction in enumerate(direction):
            norm = np.sqrt(user_direction.dot(user_direction))  # np.linalg.norm's formula for a vector
            if norm > 0:
                direction[row] = user_direction / norm
                has_direction[row] = True
        return _UserSummaries(
            row={user: row for row, user in enumerate(users)},
            activity=np.log1p(counts),
            profile=profile,
            profile_norm=np.sqrt((profile * profile).sum(axis=1)),
            mean_year=np.where(known > 0, year_sums / np.maximum(known, 1), np.nan),
            latest=latest,
            taken=taken,
            direction=direction,
            has_direction=has_direction,
        )
