"""The two-stage recommender: retrieve candidates from a vector store, rerank them."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Literal, TypeAlias, cast

import numpy as np
import numpy.typing as npt

from two_stage_rec.errors import (
    DimensionMismatchError,
    InvalidIdError,
    InvalidInputError,
    InvalidResultError,
    PartialWriteError,
    TwoStageRecError,
    UnknownKeyError,
    UnknownUserError,
)
from two_stage_rec.filters import compile_filter
from two_stage_rec.protocols import (
    CandidateRanker,
    Embedder,
    Fallback,
    Reranker,
    VectorStore,
    input_width,
    returns_values,
)
from two_stage_rec.types import Filter, FloatMatrix, Metadata, QueryResult
from two_stage_rec.validation import check_ids, check_metadata

__all__ = ["Recommendation", "Recommender", "Source"]

Source: TypeAlias = Literal["reranked", "retrieval", "fallback"]
"""How a recommendation was ranked: by the reranker, by retrieval score alone,
or by the cold-start fallback (the user was unknown)."""

ExcludeArg: TypeAlias = Mapping[str, Collection[str]] | Sequence[Collection[str]] | None


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One recommended item.

    Attributes:
        item_id: the store's id of the item.
        score: the score it was ranked by, higher is better: the reranker's
            score when ``source == "reranked"``, the retrieval score when
            ``"retrieval"``, the popularity score when ``"fallback"``.
        retrieval_score: the vector store's similarity for the item (NaN for
            fallback recommendations, which were not retrieved).
        metadata: the item's stored metadata (``{}`` when none).
        source: how it was ranked; see :data:`Source`.
    """

    item_id: str
    score: float
    retrieval_score: float
    metadata: Metadata = field(default_factory=dict)
    source: Source = "retrieval"


class Recommender:
    """Compose an embedder, a vector store and an optional reranker.

    Args:
        user_embedder: maps user ids to vectors of the store's dimension.
        store: holds one vector per item (see :meth:`index_items`).
        item_embedder: maps item keys to vectors; needed by
            :meth:`index_items`, and for reranking when the store does not
            return stored vectors (``returns_values`` False, see
            :class:`~two_stage_rec.protocols.DeclaresValues`): the candidates
            are then embedded by their store ids.
        reranker: scores (user vector, item vector) pairs; when None, results
            are ranked by retrieval score.
        fallback: cold-start policy for unknown users (any
            :class:`~two_stage_rec.protocols.Fallback`). When None (default),
            an unknown user raises :class:`UnknownUserError`.
        candidate_ranker: a second stage with its own candidates (the learned
            ranking stage). When set, reranked requests of known users are
            answered by it instead of the store query and ``reranker``; the
            items it ranks are then looked up in the store, and those no longer
            stored, or whose stored metadata fail the filter, are dropped.
            ``rerank=False`` and unknown users are answered as without it.

    Raises:
        DimensionMismatchError: an embedder's dimension differs from the
            store's, or the reranker's declared ``input_width`` is not twice it.
        InvalidInputError: the store returns no vectors, a reranker is set
            and there is no item embedder.

    Thread safety: ``recommend`` and ``recommend_batch`` are safe to call
    concurrently when the store's ``query`` is.
    """

    def __init__(
        self,
        *,
        user_embedder: Embedder,
        store: VectorStore,
        item_embedder: Embedder | None = None,
        reranker: Reranker | None = None,
        fallback: Fallback | None = None,
        candidate_ranker: CandidateRanker | None = None,
    ) -> None:
        if user_embedder.dimension != store.dimension:
            raise DimensionMismatchError(store.dimension, user_embedder.dimension, "user embeddings")
        if item_embedder is not None and item_embedder.dimension != store.dimension:
            raise DimensionMismatchError(store.dimension, item_embedder.dimension, "item embeddings")
        # Rerankers that declare their input width are checked now rather than at the first recommend().
        width = input_width(reranker) if reranker is not None else None
        if width is not None and width != 2 * store.dimension:
            raise DimensionMismatchError(width, 2 * store.dimension, "concatenated user and item vectors")
        self._store_returns_values = returns_values(store)
        if reranker is not None and not self._store_returns_values and item_embedder is None:
            raise InvalidInputError(
                f"{type(store).__name__} does not return stored vectors (returns_values=False): "
                "reranking needs an item_embedder to embed the candidates"
            )
        self.user_embedder = user_embedder
        self.item_embedder = item_embedder
        self.store = store
        self.reranker = reranker
        self.fallback = fallback
        self.candidate_ranker = candidate_ranker

    def __repr__(self) -> str:
        return (
            f"Recommender(user_embedder={self.user_embedder!r}, store={self.store!r}, "
            f"reranker={self.reranker!r}, fallback={self.fallback!r}"
            + (f", candidate_ranker={self.candidate_ranker!r})" if self.candidate_ranker is not None else ")")
        )

    # ------------------------------------------------------------------ indexing

    def index_items(
        self,
        item_ids: Sequence[str],
        *,
        keys: Sequence[str] | None = None,
        metadata: Sequence[Metadata] | None = None,
        batch_size: int = 1000,
        progress: bool = False,
    ) -> int:
        """Embed items in batches and upsert them into the store.

        Args:
            item_ids: n unique ids the store keys items by (e.g. movie ids).
            keys: n keys the item embedder knows them by (e.g. titles);
                defaults to ``item_ids``.
            metadata: n metadata mappings (e.g. ``{"title": ..., "genres": [...]}``).
            batch_size: items embedded and upserted per call.
            progress: show a tqdm progress bar.

        Returns:
            The number of items written (n).

        Raises:
            InvalidInputError: ids, keys or metadata are invalid; nothing is written.
            PartialWriteError: a later batch failed after earlier ones were
                written; ``written_ids`` and ``failed_ids`` say which landed.
        """
        if self.item_embedder is None:
            raise InvalidInputError("index_items needs an item_embedder")
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be positive, got {batch_size}")
        ids = check_ids(item_ids)
        key_list = ids if keys is None else [str(k) for k in keys]
        if len(key_list) != len(ids):
            raise InvalidInputError(f"got {len(key_list)} keys for {len(ids)} item ids")
        metadata_list = check_metadata(ids, metadata)

        from tqdm.auto import tqdm

        written: list[str] = []
        with tqdm(total=len(ids), unit="item", desc="indexing", disable=not progress) as bar:
            for start in range(0, len(ids), batch_size):
                stop = start + batch_size
                batch_ids = ids[start:stop]
                try:
                    vectors = self.item_embedder.embed(key_list[start:stop])
                    self.store.upsert(
                        batch_ids, vectors, metadata_list[start:stop] if metadata_list is not None else None
                    )
                except TwoStageRecError as exc:
                    if not written:
                        raise
                    raise PartialWriteError(
                        f"indexing stopped at item {start}: {exc}", written_ids=written, failed_ids=ids[start:]
                    ) from exc
                written.extend(batch_ids)
                bar.update(len(batch_ids))
        return len(written)

    # ------------------------------------------------------------ recommending

    def recommend(
        self,
        user_id: str,
        *,
        k: int = 5,
        candidates: int = 50,
        exclude: Collection[str] = (),
        filter: Filter | None = None,
        rerank: bool = True,
    ) -> list[Recommendation]:
        """Top-k items for one user, best first.

        Retrieves ``candidates`` items from the store (over-fetching so that
        excluded items do not reduce the count), reranks them with the
        reranker using the vectors the store returned (the item embedder's
        when the store returns none), and keeps the best k.

        Args:
            user_id: the user's id as the user embedder knows it (a string).
            k: recommendations wanted.
            candidates: items retrieved before reranking (>= k).
            exclude: item ids never to recommend (e.g. already rated).
            filter: metadata filter in the Pinecone filter language.
            rerank: rerank with the reranker (when one is set); False ranks by
                retrieval score only.

        Returns:
            At most k recommendations, fewer only when the catalogue (after
            exclusions and filter) holds fewer.

        Raises:
            UnknownUserError: the user is unknown and no fallback is set.
        """
        return self.recommend_batch(
            [user_id], k=k, candidates=candidates, exclude=[exclude], filter=filter, rerank=rerank
        )[0]

    def recommend_batch(
        self,
        user_ids: Sequence[str],
        *,
        k: int = 5,
        candidates: int = 50,
        exclude: ExcludeArg = None,
        filter: Filter | None = None,
        rerank: bool = True,
    ) -> list[list[Recommendation]]:
        """Top-k items for many users with one embedder call, one reranker call
        for all candidates of all users, and one store query (one per group of
        users whose exclusion counts differ by more than a factor of two, so
        that each group over-fetches only by its own largest exclusion).

        Args:
            user_ids: n user ids.
            exclude: per-user item ids to leave out: a mapping user id -> ids,
                or a sequence aligned with ``user_ids``; None excludes nothing.
            k: items per user; as in :meth:`recommend`.
            candidates: items retrieved per user before exclusions and
                reranking; as in :meth:`recommend`.
            filter: metadata filter; as in :meth:`recommend`.
            rerank: whether to rerank; as in :meth:`recommend`.

        Returns:
            n lists, one per user in input order, each best first.
        """
        users = self._check_request(user_ids, k, candidates)
        excluded = self._exclusions(users, exclude)
        rows, user_vectors, unknown = self._embed_users(users)
        results: list[list[Recommendation]] = [[] for _ in users]
        if rows and rerank and self.candidate_ranker is not None:
            ranked = self._rank_own_candidates(
                [users[r] for r in rows], [excluded[r] for r in rows], k, candidates, filter, self.candidate_ranker
            )
            for row, recommendations in zip(rows, ranked, strict=True):
                results[row] = recommendations
        elif rows:
            ranked = self._retrieve_and_rank(user_vectors, [excluded[r] for r in rows], k, candidates, filter, rerank)
            for row, recommendations in zip(rows, ranked, strict=True):
                results[row] = recommendations
        for row in unknown:
            assert self.fallback is not None  # _embed_users raised otherwise
            results[row] = [
                Recommendation(item_id, score, float("nan"), metadata, "fallback")
                for item_id, score, metadata in self.fallback.top(k, exclude=excluded[row], filter=filter)
            ]
        return results

    def _query(self, vectors: FloatMatrix, top_k: int, filter: Filter | None, include_values: bool) -> QueryResult:
        """``store.query`` with metadata (and values when reranking), checked by :meth:`_checked`."""
        result = self.store.query(vectors, top_k, filter=filter, include_values=include_values, include_metadata=True)
        return self._checked(result, len(vectors), include_values)

    def _checked(self, result: object, queries: int, include_values: bool) -> QueryResult:
        """The store's answer, checked cheaply (types and shapes) so a broken store fails here, by name."""
        store = type(self.store).__name__
        if not isinstance(result, QueryResult):
            raise InvalidResultError(f"{store} returned a {type(result).__name__} from query(), not a QueryResult")
        return result.validate(
            store, queries=queries, dimension=self.store.dimension, values=include_values, metadata=True
        )

    def _query_groups(
        self,
        user_vectors: FloatMatrix,
        excluded: list[frozenset[str]],
        groups: list[npt.NDArray[np.int64]],
        candidates: int,
        filter: Filter | None,
        include_values: bool,
    ) -> QueryResult:
        """One store query per group of users with similar exclusion counts, merged.

        One query for all users must over-fetch ``candidates + the largest
        exclusion`` for every user: on MovieLens-100K with rated movies excluded
        that is 787 candidates (with vectors and metadata) per user where most
        need ~100-200. Each group over-fetches by its own largest exclusion
        instead. The merged result holds, per user, the first ``candidates``
        non-excluded matches in rank order, so ranking it is what ranking the
        single over-fetched query gave.
        """
        n = len(excluded)
        parts: list[tuple[npt.NDArray[np.int64], QueryResult, npt.NDArray[np.int64]]] = []
        for rows in groups:
            group_excluded = [excluded[r] for r in rows.tolist()]
            top_k = candidates + max(len(e) for e in group_excluded)
            part = self._query(user_vectors[rows], top_k, filter, include_values)
            parts.append((rows, part, _candidate_columns(part, group_excluded, candidates)))
        width = max(columns.shape[1] for _, _, columns in parts)
        ids = np.full((n, width), "", dtype=object)
        scores = np.full((n, width), -np.inf, dtype=np.float32)
        counts = np.zeros(n, dtype=np.int64)
        values = np.full((n, width, self.store.dimension), np.nan, dtype=np.float32) if include_values else None
        metadata: list[tuple[Metadata, ...]] = [()] * n
        for rows, part, columns in parts:
            valid = columns >= 0
            safe = np.where(valid, columns, 0)
            w = columns.shape[1]
            ids[rows, :w] = np.where(valid, np.take_along_axis(part.ids, safe, axis=1), "")
            scores[rows, :w] = np.where(valid, np.take_along_axis(part.scores, safe, axis=1), -np.inf)
            counts[rows] = valid.sum(axis=1)
            if values is not None and part.values is not None:
                values[rows, :w] = np.where(
                    valid[:, :, None], np.take_along_axis(part.values, safe[:, :, None], 1), np.nan
                )
            assert part.metadata is not None
            for row, row_columns, row_metadata in zip(rows.tolist(), columns.tolist(), part.metadata, strict=True):
                metadata[row] = tuple(row_metadata[c] for c in row_columns if c >= 0)
        return QueryResult(ids=ids, scores=scores, counts=counts, values=values, metadata=tuple(metadata))

    def _embed_candidates(self, item_ids: npt.NDArray[np.object_]) -> FloatMatrix:
        """Item vectors for candidate ids from the item embedder (for stores without values).

        Each distinct id is embedded once, by its store id.

        Raises:
            UnknownKeyError: the item embedder does not know an id (it must
                know items by the ids the store holds).
        """
        assert self.item_embedder is not None  # checked in __init__ when the store has no values
        ids: list[str] = [str(i) for i in item_ids.tolist()]
        distinct = list(dict.fromkeys(ids))
        try:
            vectors = np.asarray(self.item_embedder.embed(distinct), dtype=np.float32)
        except UnknownKeyError as exc:
            raise UnknownKeyError(exc.keys, what="item id") from exc
        if vectors.shape != (len(distinct), self.store.dimension):
            raise DimensionMismatchError(self.store.dimension, vectors.shape[-1], "item embeddings")
        row_of = {item_id: row for row, item_id in enumerate(distinct)}
        return vectors[np.fromiter((row_of[i] for i in ids), dtype=np.int64, count=len(ids))]

    @staticmethod
    def _check_request(user_ids: Sequence[str], k: int, candidates: int) -> list[str]:
        if isinstance(user_ids, str):
            raise InvalidInputError("user_ids must be a sequence of strings; use recommend() for one user")
        users = list(user_ids)
        for user in users:
            if not isinstance(user, str) or not user:
                raise InvalidIdError(f"user ids must be non-empty strings, got {user!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}")
        if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < k:
            raise InvalidInputError(f"candidates must be an integer >= k ({k}), got {candidates!r}")
        return users

    @staticmethod
    def _exclusions(users: list[str], exclude: ExcludeArg) -> list[frozenset[str]]:
        if exclude is None:
            return [frozenset()] * len(users)
        if isinstance(exclude, Mapping):
            return [frozenset(exclude.get(user, ())) for user in users]
        if isinstance(exclude, str) or len(exclude) != len(users):
            raise InvalidInputError("exclude must be a mapping user -> ids or one collection per user")
        return [frozenset(items) for items in exclude]

    def _embed_users(self, users: list[str]) -> tuple[list[int], FloatMatrix, list[int]]:
        """Embed all users in one call; unknown users go to the fallback (or raise).

        Returns:
            (rows of the known users in ``users``, their vectors float32 (len(rows), d),
            rows of the unknown users).
        """
        try:
            vectors = self.user_embedder.embed(users)
        except UnknownKeyError as exc:
            if self.fallback is None:
                raise UnknownUserError(exc.keys) from exc
            missing = set(exc.keys)
            unknown = [row for row, user in enumerate(users) if user in missing]
            known_rows = [row for row, user in enumerate(users) if user not in missing]
            if not known_rows:
                return [], np.empty((0, self.store.dimension), dtype=np.float32), unknown
            vectors = self.user_embedder.embed([users[row] for row in known_rows])
            return known_rows, np.asarray(vectors, dtype=np.float32), unknown
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(users), self.store.dimension):
            raise DimensionMismatchError(self.store.dimension, vectors.shape[-1], "user embeddings")
        return list(range(len(users))), vectors, []

    def _rank_own_candidates(
        self,
        users: list[str],
        excluded: list[frozenset[str]],
        k: int,
        candidates: int,
        filter: Filter | None,
        ranker: CandidateRanker,
    ) -> list[list[Recommendation]]:
        # ``candidates`` ranked items per user, so that k survive items deleted from the store since.
        ids, scores, retrieval = ranker.rank(users, candidates, exclude=excluded, filter=filter)
        distinct = sorted({str(item) for item in ids.ravel().tolist() if item})
        stored: dict[str, Metadata] = {}
        if distinct:
            fetched = self.store.fetch(distinct)
            passes = compile_filter(filter)
            stored = {
                item: metadata for item, metadata in zip(fetched.ids, fetched.metadata, strict=True) if passes(metadata)
            }
        out: list[list[Recommendation]] = []
        for row in range(len(users)):
            kept = [
                Recommendation(item, float(scores[row, c]), float(retrieval[row, c]), stored[item], "reranked")
                for c, item in enumerate(ids[row].tolist())
                if item in stored
            ]
            out.append(kept[:k])
        return out

    def _retrieve_and_rank(
        self,
        user_vectors: FloatMatrix,
        excluded: list[frozenset[str]],
        k: int,
        candidates: int,
        filter: Filter | None,
        rerank: bool,
    ) -> list[list[Recommendation]]:
        use_reranker = rerank and self.reranker is not None
        # Item vectors for the reranker come with the candidates, or from the item embedder
        # when the store cannot return them (returns_values=False).
        with_values = use_reranker and self._store_returns_values
        groups = _groups_by_exclusion_size(excluded)
        if len(groups) == 1:
            # Over-fetch by the largest exclusion so that k survive when they exist.
            top_k = candidates + max((len(e) for e in excluded), default=0)
            result = self._query(user_vectors, top_k, filter, with_values)
        else:
            result = self._query_groups(user_vectors, excluded, groups, candidates, filter, with_values)
            excluded = [frozenset()] * len(excluded)  # already left out of the merged result
        n = len(excluded)
        width = min(int(result.counts.max(initial=0)), candidates)
        if not any(excluded) and int(result.counts.min(initial=width)) >= width:
            # The common case (nothing excluded, every row holds `width` matches): each
            # row keeps its first `width` columns, so slices replace the gathers below.
            columns = np.repeat(np.arange(width, dtype=np.int64)[None, :], n, axis=0)
            retrieval = result.scores[:, :width]
            pair_index = None
        else:
            columns = _candidate_columns(result, excluded, candidates)  # (n, C), -1 pads
            valid = columns >= 0
            safe = np.where(valid, columns, 0)
            retrieval = np.where(valid, np.take_along_axis(result.scores, safe, axis=1), -np.inf)
            pair_index = np.nonzero(valid)
        if use_reranker:
            assert self.reranker is not None
            if pair_index is None:
                pair_users = np.repeat(user_vectors, width, axis=0)
                if result.values is not None:
                    item_vectors = result.values[:, :width].reshape(n * width, result.values.shape[2])
                else:
                    item_vectors = self._embed_candidates(result.ids[:, :width].reshape(-1))
            else:
                pair_rows, pair_cols = pair_index
                pair_users = user_vectors[pair_rows]
                pair_columns = columns[pair_rows, pair_cols]
                if result.values is not None:
                    item_vectors = result.values[pair_rows, pair_columns]
                else:
                    item_vectors = self._embed_candidates(result.ids[pair_rows, pair_columns])
            pair_scores = np.asarray(self.reranker.score(pair_users, item_vectors), dtype=np.float32).reshape(-1)
            if pair_scores.shape[0] != pair_users.shape[0]:
                raise InvalidInputError(
                    f"reranker returned {pair_scores.shape[0]} scores for {pair_users.shape[0]} pairs"
                )
            if pair_index is None:
                final = pair_scores.reshape(n, width)
            else:
                final = np.full(columns.shape, -np.inf, dtype=np.float32)
                final[pair_index] = pair_scores
            # Stable sort keeps retrieval order among equal rerank scores.
            order = np.argsort(-final, axis=1, kind="stable")[:, :k]
        else:
            final = retrieval
            order = np.repeat(np.arange(min(k, columns.shape[1]))[None, :], columns.shape[0], axis=0)
        source: Source = "reranked" if use_reranker else "retrieval"
        assert result.metadata is not None
        ranked: list[list[Recommendation]] = []
        # Python lists, converted once: indexing numpy arrays element by element
        # (numpy scalars, then float()/str()) cost more than the rest of this method.
        final_rows: list[list[float]] = final.tolist()
        retrieval_rows = cast(list[list[float]], retrieval.tolist())
        per_row = zip(
            order.tolist(),
            columns.tolist(),
            final_rows,
            retrieval_rows,
            result.ids.tolist(),
            result.metadata,
            strict=True,
        )
        for row_order, row_columns, row_final, row_retrieval, row_ids, row_metadata in per_row:
            row_recommendations = []
            for position in row_order:
                column = row_columns[position]
                if column < 0:
                    break
                row_recommendations.append(
                    Recommendation(
                        item_id=str(row_ids[column]),
                        score=row_final[position],
                        retrieval_score=row_retrieval[position],
                        metadata=row_metadata[column],
                        source=source,
                    )
                )
            ranked.append(row_recommendations)
        return ranked


def _groups_by_exclusion_size(excluded: list[frozenset[str]]) -> list[npt.NDArray[np.int64]]:
    """Rows grouped by the power of two their exclusion count falls in (0, 1, 2-3, 4-7, ...)."""
    buckets: dict[int, list[int]] = {}
    for row, skip in enumerate(excluded):
        buckets.setdefault(len(skip).bit_length(), []).append(row)
    return [np.array(rows, dtype=np.int64) for _, rows in sorted(buckets.items())]


def _candidate_columns(result: QueryResult, excluded: list[frozenset[str]], candidates: int) -> npt.NDArray[np.int64]:
    """Per query row, the result columns of the first ``candidates`` non-excluded matches.

    Returns:
        int64 (n, C) with C = the largest number kept; -1 pads short rows.
    """
    if not any(excluded):
        # Nothing excluded: row i keeps its first min(count_i, candidates) columns.
        kept_counts = np.minimum(result.counts, candidates)
        width = int(kept_counts.max(initial=0))
        positions = np.arange(width, dtype=np.int64)
        return np.where(positions[None, :] < kept_counts[:, None], positions[None, :], -1)
    counts: list[int] = result.counts.tolist()
    kept_per_row: list[list[int]] = []
    for row, skip in enumerate(excluded):
        count = counts[row]
        if not skip:
            kept_per_row.append(list(range(min(count, candidates))))
            continue
        # Stop at the candidates-th kept column instead of testing every over-fetched one.
        ids = result.ids[row, :count].tolist()
        kept_per_row.append(list(islice((column for column, item in enumerate(ids) if item not in skip), candidates)))
    width = max((len(kept) for kept in kept_per_row), default=0)
    columns = np.full((len(kept_per_row), width), -1, dtype=np.int64)
    for row, kept in enumerate(kept_per_row):
        columns[row, : len(kept)] = kept
    return columns
