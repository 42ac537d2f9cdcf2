"""The two-stage recommender: retrieve candidates from a vector store, rerank them."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
from two_stage_rec.explain import CandidateReason, Explanation, nearest_history
from two_stage_rec.filters import compile_filter
from two_stage_rec.policies.base import Policy, RankedList, apply_policies, extra_items, needs_vectors
from two_stage_rec.protocols import (
    CandidateRanker,
    Embedder,
    ExplainsCandidates,
    Fallback,
    FoldIn,
    Reranker,
    VectorStore,
    input_width,
    returns_values,
)
from two_stage_rec.types import Filter, FloatMatrix, FloatVector, Metadata, QueryResult
from two_stage_rec.validation import check_ids, check_metadata

__all__ = ["History", "Recommendation", "Recommender", "Source"]

Source: TypeAlias = Literal["reranked", "retrieval", "fallback", "pinned"]
"""How a recommendation was ranked: by the reranker, by retrieval score alone,
by the cold-start fallback (the user was unknown), or placed by a pinning
policy without being ranked."""

ExcludeArg: TypeAlias = Mapping[str, Collection[str]] | Sequence[Collection[str]] | None

History: TypeAlias = Sequence[str] | Mapping[str, float]
"""A user's interactions given with a request: item ids (oldest first when
known; implicit feedback) or item id -> rating (explicit feedback)."""

HistoryArg: TypeAlias = Mapping[str, History] | Sequence[History | None] | None


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
        source: how it was ranked; see :data:`Source`. A ``"pinned"`` item
            was placed by a policy without being ranked: its ``score`` is NaN.
        folded_in: the user's vector was folded in from the request's
            ``history`` (a new user, or a known one with recent activity)
            rather than the trained one.
        explanation: why the item is there, when asked for with ``explain=True``.
    """

    item_id: str
    score: float
    retrieval_score: float
    metadata: Metadata = field(default_factory=dict)
    source: Source = "retrieval"
    folded_in: bool = False
    explanation: Explanation | None = None


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
        fold_in: turns a request's ``history`` into a user vector (see
            :class:`~two_stage_rec.protocols.FoldIn` and
            :mod:`two_stage_rec.fold_in`). When None, a request with a history
            raises :class:`InvalidInputError`.
        user_items: the items each known user interacted with (e.g. in
            training): the history that ``explain=True`` names the nearest
            items of. Users absent from it have only their request's history.

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
        fold_in: FoldIn | None = None,
        user_items: Mapping[str, Collection[str]] | None = None,
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
        self.fold_in = fold_in
        self.user_items: Mapping[str, Collection[str]] = user_items if user_items is not None else {}

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
        history: History | None = None,
        policies: Sequence[Policy] = (),
        explain: bool = False,
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
            history: the user's interactions, given now (item ids, or item id
                -> rating): the user's vector is then folded in from them
                (``folded_in=True``), so a user the model has never seen is
                personalised. Items the store does not hold are ignored; with
                none left, the user is answered as without a history. The
                history's items are not excluded here (the assembled
                recommender excludes them with the seen items).
            policies: post-ranking policies applied in order to all ranked
                candidates before the first k are kept (see
                :mod:`two_stage_rec.policies`).
            explain: attach an :class:`~two_stage_rec.explain.Explanation` to
                each recommendation.

        Returns:
            At most k recommendations, fewer only when the catalogue (after
            exclusions, filter and policies) holds fewer.

        Raises:
            UnknownUserError: the user is unknown and no fallback is set.
            InvalidInputError: a history is given and no ``fold_in`` is set,
                or the history is malformed.
        """
        return self.recommend_batch(
            [user_id],
            k=k,
            candidates=candidates,
            exclude=[exclude],
            filter=filter,
            rerank=rerank,
            history=None if history is None else [history],
            policies=policies,
            explain=explain,
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
        history: HistoryArg = None,
        policies: Sequence[Policy] = (),
        explain: bool = False,
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
            history: per-user histories given now: a mapping user id ->
                history, or a sequence aligned with ``user_ids`` (None for a
                user without one); as in :meth:`recommend`.
            policies: as in :meth:`recommend`.
            explain: as in :meth:`recommend`.

        Returns:
            n lists, one per user in input order, each best first.
        """
        users = self._check_request(user_ids, k, candidates)
        chosen_policies = _check_policies(policies)
        excluded = self._exclusions(users, exclude)
        histories = self._histories(users, history)
        # Policies choose among all ranked candidates, and explanations rank items among them.
        depth = candidates if chosen_policies or explain else k
        rows, user_vectors, unknown = self._embed_users(users, fallback_for=histories)
        folded: list[int] = []
        if any(h is not None for h in histories):
            rows, user_vectors, unknown, folded = self._fold_in(users, histories, rows, user_vectors, unknown)
        results: list[list[Recommendation]] = [[] for _ in users]
        folded_set = frozenset(folded)
        stage = rerank and self.candidate_ranker is not None
        # The ranking stage knows users by their training history: folded-in vectors go through the index.
        stage_at = [i for i, row in enumerate(rows) if stage and row not in folded_set]
        index_at = [i for i, row in enumerate(rows) if not stage or row in folded_set]
        if stage_at:
            assert self.candidate_ranker is not None
            ranked = self._rank_own_candidates(
                [users[rows[i]] for i in stage_at],
                [excluded[rows[i]] for i in stage_at],
                depth,
                max(candidates, depth),
                filter,
                self.candidate_ranker,
            )
            for i, recommendations in zip(stage_at, ranked, strict=True):
                results[rows[i]] = recommendations
        if index_at:
            at = np.asarray(index_at, dtype=np.int64)
            ranked = self._retrieve_and_rank(
                user_vectors[at], [excluded[rows[i]] for i in index_at], depth, candidates, filter, rerank
            )
            for i, recommendations in zip(index_at, ranked, strict=True):
                results[rows[i]] = recommendations
        for row in unknown:
            assert self.fallback is not None  # _embed_users raised otherwise
            results[row] = [
                Recommendation(item_id, score, float("nan"), metadata, "fallback")
                for item_id, score, metadata in self.fallback.top(depth, exclude=excluded[row], filter=filter)
            ]
        for row in folded:
            results[row] = [replace(rec, folded_in=True) for rec in results[row]]
        ranks = [_retrieval_ranks(row) for row in results] if explain else []
        if chosen_policies:
            results = self._apply_policies(results, chosen_policies, k, excluded, filter)
        elif depth > k:
            results = [row[:k] for row in results]
        if explain:
            results = self._explain(users, histories, results, ranks, excluded, filter)
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

    def _embed_users(
        self, users: list[str], *, fallback_for: Sequence[object | None] = ()
    ) -> tuple[list[int], FloatMatrix, list[int]]:
        """Embed all users in one call; unknown users go to the fallback (or raise).

        Args:
            users: the request's user ids.
            fallback_for: per user, their request history or None: an unknown
                user with a history may still be folded in, so it raises only
                later, when that fails too.

        Returns:
            (rows of the known users in ``users``, their vectors float32 (len(rows), d),
            rows of the unknown users).
        """
        try:
            vectors = self.user_embedder.embed(users)
        except UnknownKeyError as exc:
            if self.fallback is None:
                has_history = {user for user, h in zip(users, fallback_for, strict=False) if h is not None}
                without = [key for key in exc.keys if key not in has_history or self.fold_in is None]
                if without:
                    raise UnknownUserError(without) from exc
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

    def _histories(self, users: list[str], history: HistoryArg) -> list[tuple[list[str], FloatVector | None] | None]:
        """Per user, their request history as (item ids, float32 ratings or None), or None.

        Raises:
            InvalidInputError: malformed histories (not aligned with the users,
                an empty one, bad ids, non-finite ratings), or a history with no
                ``fold_in`` set.
        """
        if history is None:
            return [None] * len(users)
        if isinstance(history, Mapping):
            given: list[History | None] = [history.get(user) for user in users]
        elif isinstance(history, str) or len(history) != len(users):
            raise InvalidInputError("history must be a mapping user -> history or one history (or None) per user")
        else:
            given = list(history)
        if any(h is not None for h in given) and self.fold_in is None:
            raise InvalidInputError("a history was given but this recommender has no fold_in")
        out: list[tuple[list[str], FloatVector | None] | None] = []
        for user, items in zip(users, given, strict=True):
            if items is None:
                out.append(None)
                continue
            if isinstance(items, str):
                raise InvalidInputError(
                    f"the history of user {user!r} must be item ids or item id -> rating, not a str"
                )
            if not items:
                raise InvalidInputError(f"the history of user {user!r} is empty")
            if isinstance(items, Mapping):
                ids = check_ids(list(items))
                ratings = np.asarray([items[i] for i in items], dtype=np.float32)
                if not np.isfinite(ratings).all():
                    raise InvalidInputError(f"the history of user {user!r} holds a non-finite rating")
                out.append((ids, ratings))
            else:
                # A repeated item counts once, at its latest position.
                checked = check_ids(list(items), require_unique=False)
                ids = list(reversed(dict.fromkeys(reversed(checked))))
                out.append((ids, None))
        return out

    def _fold_in(
        self,
        users: list[str],
        histories: list[tuple[list[str], FloatVector | None] | None],
        rows: list[int],
        vectors: FloatMatrix,
        unknown: list[int],
    ) -> tuple[list[int], FloatMatrix, list[int], list[int]]:
        """Replace (known users) or add (unknown users) the vectors of users with a history.

        Returns:
            (rows, their vectors, rows still unknown, rows folded in), rows in ascending order.

        Raises:
            UnknownUserError: an unknown user's history holds no stored item and no fallback is set.
        """
        assert self.fold_in is not None  # _histories checked
        distinct = sorted({item for h in histories if h is not None for item in h[0]})
        stored = self.store.fetch(distinct)
        vector_of = dict(zip(stored.ids, np.asarray(stored.vectors, dtype=np.float32), strict=True))
        trained = {row: vectors[i] for i, row in enumerate(rows)}
        folded: list[int] = []
        item_vectors: list[FloatMatrix] = []
        ratings: list[FloatVector | None] = []
        priors: list[FloatVector | None] = []
        for row, history in enumerate(histories):
            if history is None:
                continue
            ids, given_ratings = history
            kept = [i for i, item in enumerate(ids) if item in vector_of]
            if not kept:
                continue  # nothing to fold in: answered as without a history
            folded.append(row)
            item_vectors.append(np.stack([vector_of[ids[i]] for i in kept]))
            ratings.append(None if given_ratings is None else given_ratings[kept])
            priors.append(trained.get(row))
        if folded:
            new = np.asarray(self.fold_in.fold_in(item_vectors, ratings=ratings, priors=priors), dtype=np.float32)
            if new.shape != (len(folded), self.store.dimension):
                raise InvalidResultError(
                    f"{type(self.fold_in).__name__} returned shape {new.shape} for {len(folded)} histories "
                    f"of dimension {self.store.dimension}"
                )
            if not np.isfinite(new).all():
                raise InvalidResultError(f"{type(self.fold_in).__name__} returned a non-finite user vector")
            trained.update(zip(folded, new, strict=True))
        still_unknown = [row for row in unknown if row not in trained]
        if still_unknown and self.fallback is None:
            raise UnknownUserError([users[row] for row in still_unknown])
        all_rows = sorted(trained)
        dimension = self.store.dimension
        matrix = np.stack([trained[row] for row in all_rows]) if all_rows else np.empty((0, dimension), np.float32)
        return all_rows, matrix.astype(np.float32, copy=False), still_unknown, folded

    def _apply_policies(
        self,
        results: list[list[Recommendation]],
        policies: list[Policy],
        k: int,
        excluded: list[frozenset[str]],
        filter: Filter | None,
    ) -> list[list[Recommendation]]:
        """Each user's ranked candidates through the policies, cut to k."""
        extra = extra_items(policies)
        extra_found: dict[str, Metadata] = {}
        if extra:
            passes = compile_filter(filter)
            fetched = self.store.fetch(sorted(extra))
            extra_found = {i: m for i, m in zip(fetched.ids, fetched.metadata, strict=True) if passes(m)}
        vector_of: dict[str, FloatVector] = {}
        if needs_vectors(policies):
            wanted = sorted({rec.item_id for row in results for rec in row} | set(extra_found))
            fetched = self.store.fetch(wanted)
            vector_of = dict(zip(fetched.ids, np.asarray(fetched.vectors, dtype=np.float32), strict=True))
        out: list[list[Recommendation]] = []
        for row, recommendations in enumerate(results):
            listed = list(recommendations)
            present = {rec.item_id for rec in listed}
            folded = bool(listed) and listed[0].folded_in
            for item, metadata in extra_found.items():
                if item not in present and item not in excluded[row]:
                    listed.append(Recommendation(item, float("nan"), float("nan"), metadata, "pinned", folded))
            vectors = None
            if vector_of:
                # An item deleted from the store since it was ranked has no vector: it cannot be placed.
                listed = [rec for rec in listed if rec.item_id in vector_of]
                dimension = self.store.dimension
                vectors = (
                    np.stack([vector_of[rec.item_id] for rec in listed])
                    if listed
                    else np.empty((0, dimension), np.float32)
                )
            # Items the ranking did not score (pins) enter the policies last, at -inf.
            given = np.asarray([rec.score for rec in listed], dtype=np.float32)
            ranked = RankedList.of(
                [rec.item_id for rec in listed],
                np.where(np.isnan(given), -np.inf, given),
                [rec.metadata for rec in listed],
                vectors=vectors,
            )
            shaped = apply_policies(ranked, policies, k)
            kept: list[Recommendation] = []
            for position, score in zip(shaped.positions.tolist(), shaped.scores.tolist(), strict=True):
                rec = listed[position]
                # A policy that rescored an item changed its score; float32 round trips do not.
                unchanged = score == float(np.float32(rec.score)) or not np.isfinite(score)
                kept.append(rec if unchanged else replace(rec, score=score))
            out.append(kept)
        return out

    def _explain(
        self,
        users: list[str],
        histories: list[tuple[list[str], FloatVector | None] | None],
        results: list[list[Recommendation]],
        ranks: list[dict[str, int]],
        excluded: list[frozenset[str]],
        filter: Filter | None,
    ) -> list[list[Recommendation]]:
        """Attach an explanation to every recommendation (one store fetch, one product per user).

        Items the candidate ranker ranked also get its reasons (sources,
        feature contributions) when it can give them (:class:`ExplainsCandidates`).
        """
        user_history: list[list[str]] = []
        for user, history in zip(users, histories, strict=True):
            items = list(dict.fromkeys([*sorted(self.user_items.get(user, ())), *(history[0] if history else ())]))
            user_history.append(items)
        wanted = sorted({rec.item_id for row in results for rec in row} | {i for h in user_history for i in h})
        fetched = self.store.fetch(wanted) if wanted else None
        vector_of = (
            dict(zip(fetched.ids, np.asarray(fetched.vectors, dtype=np.float32), strict=True)) if fetched else {}
        )
        source_of: dict[Source, str] = {
            "reranked": "ranker" if self.candidate_ranker is not None else "index",
            "retrieval": "index",
            "fallback": "fallback",
            "pinned": "pinned",
        }
        reasons = self._candidate_reasons(users, results, excluded, filter)
        out: list[list[Recommendation]] = []
        for row, recommendations in enumerate(results):
            known = [item for item in user_history[row] if item in vector_of]
            shown = [rec for rec in recommendations if rec.item_id in vector_of]
            because: dict[str, tuple[tuple[str, float], ...]] = {}
            if known and shown:
                nearest = nearest_history(
                    np.stack([vector_of[rec.item_id] for rec in shown]),
                    known,
                    np.stack([vector_of[item] for item in known]),
                )
                because = {rec.item_id: near for rec, near in zip(shown, nearest, strict=True)}
            explained = []
            for rec in recommendations:
                source = source_of[rec.source]
                if rec.source == "reranked" and rec.folded_in:
                    source = "index"  # folded-in users are retrieved from the index, never by the candidate ranker
                reason = reasons.get((row, rec.item_id))
                if reason is not None and reason.sources:
                    source = "+".join(reason.sources)
                explanation = Explanation(
                    because=because.get(rec.item_id, ()),
                    candidate_source=source,
                    retrieval_rank=ranks[row].get(rec.item_id),
                    contributions=reason.contributions if reason is not None else (),
                )
                explained.append(replace(rec, explanation=explanation))
            out.append(explained)
        return out

    def _candidate_reasons(
        self,
        users: list[str],
        results: list[list[Recommendation]],
        excluded: list[frozenset[str]],
        filter: Filter | None,
    ) -> dict[tuple[int, str], CandidateReason]:
        """(row, item id) -> the candidate ranker's reason, for the items it ranked."""
        ranker = self.candidate_ranker
        if not isinstance(ranker, ExplainsCandidates):
            return {}
        rows = [
            row
            for row, recs in enumerate(results)
            if any(rec.source == "reranked" and not rec.folded_in for rec in recs)
        ]
        if not rows:
            return {}
        items = [[rec.item_id for rec in results[row] if rec.source == "reranked"] for row in rows]
        answers = ranker.explain([users[r] for r in rows], items, exclude=[excluded[r] for r in rows], filter=filter)
        return {
            (row, item): reason
            for row, row_items, row_reasons in zip(rows, items, answers, strict=True)
            for item, reason in zip(row_items, row_reasons, strict=True)
        }

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
        id_rows: list[list[str]] = ids.tolist()
        passes = compile_filter(filter)
        stored: dict[str, Metadata] = {}
        looked_up: set[str] = set()

        def look_up(items: set[str]) -> None:
            wanted = sorted(items - looked_up)
            if wanted:
                fetched = self.store.fetch(wanted)
                stored.update((i, m) for i, m in zip(fetched.ids, fetched.metadata, strict=True) if passes(m))
                looked_up.update(wanted)

        # Usually every ranked item is still stored: look up each row's first k, and
        # the rest only for rows that lost some (one fetch per round, not per row).
        look_up({item for row in id_rows for item in row[:k] if item})
        short = [r for r, row in enumerate(id_rows) if sum(1 for item in row[:k] if item in stored) < k]
        if short:
            look_up({item for r in short for item in id_rows[r][k:] if item})
        out: list[list[Recommendation]] = []
        for row, row_ids in enumerate(id_rows):
            kept: list[Recommendation] = []
            for column, item in enumerate(row_ids):
                if item in stored:
                    kept.append(
                        Recommendation(
                            item, float(scores[row, column]), float(retrieval[row, column]), stored[item], "reranked"
                        )
                    )
                    if len(kept) == k:
                        break
            out.append(kept)
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


def _check_policies(policies: Sequence[Policy]) -> list[Policy]:
    if not policies:  # the common case, before the (slow) runtime protocol check
        return []
    if isinstance(policies, Policy):
        return [policies]
    chosen = list(policies)
    for policy in chosen:
        if not isinstance(policy, Policy):
            raise InvalidInputError(f"policies must have an apply(ranked, k) method, got {type(policy).__name__}")
    return chosen


def _retrieval_ranks(recommendations: list[Recommendation]) -> dict[str, int]:
    """Item id -> 1-based rank by retrieval score among the list's items that have one."""
    scored = [(rec.retrieval_score, position, rec.item_id) for position, rec in enumerate(recommendations)]
    scored = [entry for entry in scored if np.isfinite(entry[0])]
    # Ties keep the list's order, as the store's ranking does.
    scored.sort(key=lambda entry: (-entry[0], entry[1]))
    return {item: rank for rank, (_, _, item) in enumerate(scored, start=1)}
