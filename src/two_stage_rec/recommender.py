"""The two-stage recommender: retrieve candidates from a vector store, rerank them."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Literal, TypeAlias, cast

import numpy as np
import numpy.typing as npt

from two_stage_rec.cold_start import PopularityFallback
from two_stage_rec.errors import (
    DimensionMismatchError,
    InvalidIdError,
    InvalidInputError,
    PartialWriteError,
    TwoStageRecError,
    UnknownKeyError,
    UnknownUserError,
)
from two_stage_rec.protocols import Embedder, Reranker, VectorStore
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
        item_embedder: maps item keys to vectors; needed only by
            :meth:`index_items`.
        reranker: scores (user vector, item vector) pairs; when None, results
            are ranked by retrieval score.
        fallback: cold-start policy for unknown users. When None (default),
            an unknown user raises :class:`UnknownUserError`.

    Raises:
        DimensionMismatchError: an embedder's dimension differs from the store's.

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
        fallback: PopularityFallback | None = None,
    ) -> None:
        if user_embedder.dimension != store.dimension:
            raise DimensionMismatchError(store.dimension, user_embedder.dimension, "user embeddings")
        if item_embedder is not None and item_embedder.dimension != store.dimension:
            raise DimensionMismatchError(store.dimension, item_embedder.dimension, "item embeddings")
        # Rerankers that know their input width (SavedModelReranker, MLPReranker)
        # are checked now rather than at the first recommend().
        input_width = getattr(reranker, "input_width", None)
        if isinstance(input_width, int) and input_width != 2 * store.dimension:
            raise DimensionMismatchError(input_width, 2 * store.dimension, "concatenated user and item vectors")
        self.user_embedder = user_embedder
        self.item_embedder = item_embedder
        self.store = store
        self.reranker = reranker
        self.fallback = fallback

    def __repr__(self) -> str:
        return (
            f"Recommender(user_embedder={self.user_embedder!r}, store={self.store!r}, "
            f"reranker={self.reranker!r}, fallback={self.fallback!r})"
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
        reranker using the vectors the store returned, and keeps the best k.

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
        if rows:
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
        """``store.query`` with metadata (and values when reranking), within the store's payload limit.

        A store may cap ``top_k`` when values or metadata are returned
        (``max_top_k_with_payload``: Pinecone allows 1,000 with payload, 10,000
        without). An over-fetch for a long exclusion list can pass that cap, so
        it asks for ranks only and fetches the payload of the returned ids.
        """
        limit = getattr(self.store, "max_top_k_with_payload", None)
        if not isinstance(limit, int) or top_k <= limit:
            return self.store.query(vectors, top_k, filter=filter, include_values=include_values, include_metadata=True)
        ranks = self.store.query(vectors, top_k, filter=filter)
        real = ranks.ids[np.arange(ranks.ids.shape[1])[None, :] < ranks.counts[:, None]]
        fetched = self.store.fetch(list(dict.fromkeys(real.tolist())))
        row_of = {item_id: row for row, item_id in enumerate(fetched.ids)}
        # An id deleted between the query and the fetch keeps NaN values and empty metadata.
        rows = np.array([[row_of.get(i, -1) for i in id_row] for id_row in ranks.ids.tolist()], dtype=np.int64)
        values = None
        if include_values:
            table = np.concatenate([fetched.vectors, np.full((1, self.store.dimension), np.nan, np.float32)])
            values = table[rows]
        empty: Metadata = {}
        metadata = tuple(
            tuple(fetched.metadata[r] if r >= 0 else empty for r in row[:count])
            for row, count in zip(rows.tolist(), ranks.counts.tolist(), strict=True)
        )
        return QueryResult(ids=ranks.ids, scores=ranks.scores, counts=ranks.counts, values=values, metadata=metadata)

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
        groups = _groups_by_exclusion_size(excluded)
        if len(groups) == 1:
            # Over-fetch by the largest exclusion so that k survive when they exist.
            top_k = candidates + max((len(e) for e in excluded), default=0)
            result = self._query(user_vectors, top_k, filter, use_reranker)
        else:
            result = self._query_groups(user_vectors, excluded, groups, candidates, filter, use_reranker)
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
            assert self.reranker is not None and result.values is not None
            if pair_index is None:
                pair_users = np.repeat(user_vectors, width, axis=0)
                item_vectors = result.values[:, :width].reshape(n * width, result.values.shape[2])
            else:
                pair_rows, pair_cols = pair_index
                pair_users = user_vectors[pair_rows]
                item_vectors = result.values[pair_rows, columns[pair_rows, pair_cols]]
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
