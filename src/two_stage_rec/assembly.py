"""The one assembler: a bundle and a vector store in, a ready recommender out.

Every front end — ``serve``, ``recommend``, ``evaluate``, ``demo``, the
examples — builds its recommender here, so they all serve the same
pipeline: the bundle's recommended reranker, seen items excluded, a
popularity fallback for users the towers have never seen, and the
catalogue's metadata in the store for filters::

    from two_stage_rec.assembly import assemble

    with assemble("models/", store="faiss") as served:
        for rec in served.recommend("42", k=5):
            print(served.label(rec.item_id), rec.score, rec.source)

Importing this module imports numpy only; a store's backend is imported
when the store is opened.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from two_stage_rec.bundle import Bundle, ModelBackend, RerankerChoice, read_bundle
from two_stage_rec.cold_start import PopularityFallback
from two_stage_rec.errors import InvalidInputError
from two_stage_rec.policies.base import Policy
from two_stage_rec.protocols import Closeable, EventuallyConsistent, FoldIn, Reranker, VectorStore
from two_stage_rec.recommender import History, Recommendation, Recommender
from two_stage_rec.rerankers.ranking_stage import StageCandidateRanker
from two_stage_rec.stores.registry import open_store
from two_stage_rec.types import Filter, RerankerName

if TYPE_CHECKING:
    from two_stage_rec.evaluation.evaluate import StageRanking

__all__ = ["AssembledRecommender", "assemble"]


@dataclass(eq=False)
class AssembledRecommender:
    """A recommender built from a bundle, with the bundle's data at hand.

    Use it as a context manager (or call :meth:`close`) to release the
    store's connections.

    Attributes:
        recommender: the composed :class:`~two_stage_rec.recommender.Recommender`
            (embedders, store, reranker, fallback).
        bundle: the bundle it was built from (catalogue, seen items, manifest).
        reranker_name: the second stage in use (``"none"``, ``"scoring"``,
            ``"blend"`` or ``"ranker"``). With ``"ranker"`` the recommender's
            ``candidate_ranker`` is the bundle's ranking stage: it answers
            known users from its own merged candidates (the towers' and
            EASE's, ranked by its tree ensemble), restricted to catalogue items
            that pass the filter; ``rerank=False`` and unknown users are
            answered as with ``"none"`` (retrieval order, fallback).
        indexed: items written to the store by :func:`assemble` (0 when it was
            given a store that already held them).
    """

    recommender: Recommender
    bundle: Bundle
    reranker_name: RerankerName
    indexed: int

    def __repr__(self) -> str:
        return f"AssembledRecommender({self.bundle!r}, reranker={self.reranker_name!r}, store={self.store!r})"

    @property
    def store(self) -> VectorStore:
        """The vector store holding the catalogue."""
        return self.recommender.store

    def label(self, item_id: str) -> str:
        """A readable name of an item (its title or name metadata, else the id)."""
        return self.bundle.catalogue.label(item_id)

    def seen(self, user_id: str) -> frozenset[str]:
        """The items a user interacted with in training (empty for unknown users)."""
        return self.bundle.seen_items.get(user_id, frozenset())

    def is_known(self, user_id: str) -> bool:
        """Whether the towers were trained on this user (else the fallback answers)."""
        return user_id in self.bundle.seen_items

    def recommend(
        self,
        user_id: str,
        *,
        k: int = 10,
        candidates: int = 50,
        filter: Filter | None = None,
        include_seen: bool = False,
        exclude: Collection[str] = (),
        rerank: bool = True,
        history: History | None = None,
        policies: Sequence[Policy] = (),
        explain: bool = False,
    ) -> list[Recommendation]:
        """Top-k items for one user, best first (scores: higher is better).

        Args:
            user_id: the user's id; an unknown user gets the popularity
                fallback (``source="fallback"``).
            k: recommendations wanted.
            candidates: items retrieved before reranking (>= k).
            filter: metadata filter (Pinecone filter language).
            include_seen: also recommend items the user interacted with in
                training (left out by default).
            exclude: further item ids to leave out.
            rerank: False ranks by retrieval score only.
            history: interactions given now (item ids, or item id -> rating):
                the user's vector is folded in from them (a new user is
                personalised, ``folded_in=True``); the items are left out of the
                recommendations like the seen ones (unless ``include_seen``).
            policies: post-ranking policies, applied in order (see
                :mod:`two_stage_rec.policies`).
            explain: attach an explanation to each recommendation.
        """
        return self.recommend_batch(
            [user_id],
            k=k,
            candidates=candidates,
            filter=filter,
            include_seen=include_seen,
            exclude=[exclude],
            rerank=rerank,
            history=None if history is None else [history],
            policies=policies,
            explain=explain,
        )[0]

    def recommend_batch(
        self,
        user_ids: Sequence[str],
        *,
        k: int = 10,
        candidates: int = 50,
        filter: Filter | None = None,
        include_seen: bool = False,
        exclude: Sequence[Collection[str]] | None = None,
        rerank: bool = True,
        history: Sequence[History | None] | None = None,
        policies: Sequence[Policy] = (),
        explain: bool = False,
    ) -> list[list[Recommendation]]:
        """Top-k items for many users in one batch; as :meth:`recommend`, ``exclude`` and ``history``
        aligned with ``user_ids``."""
        if exclude is not None and len(exclude) != len(user_ids):
            raise InvalidInputError(f"got {len(exclude)} exclusion sets for {len(user_ids)} users")
        if history is not None and (isinstance(history, str) or len(history) != len(user_ids)):
            raise InvalidInputError(f"history must hold one history (or None) per user, for {len(user_ids)} users")
        excluded: list[Collection[str]] = []
        for row, user_id in enumerate(user_ids):
            extra = frozenset(exclude[row]) if exclude is not None else frozenset()
            base = frozenset() if include_seen else self.seen(user_id)
            given = history[row] if history is not None else None
            if given is not None and not include_seen and not isinstance(given, str):
                extra |= frozenset(str(item) for item in given)
            excluded.append(base | extra if extra else base)
        return self.recommender.recommend_batch(
            list(user_ids),
            k=k,
            candidates=candidates,
            exclude=excluded,
            filter=filter,
            rerank=rerank,
            history=history,
            policies=policies,
            explain=explain,
        )

    def close(self) -> None:
        """Release the store's connections (Pinecone keeps an HTTP pool; local stores hold none)."""
        if isinstance(self.store, Closeable):
            self.store.close()

    def __enter__(self) -> AssembledRecommender:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def popularity_fallback(bundle: Bundle) -> PopularityFallback:
    """The cold-start fallback of a bundle: its catalogue by training events, most first.

    Catalogue items nobody interacted with come last, in catalogue order.
    """
    catalogue = bundle.catalogue
    ranked = [item for item in bundle.popularity if item in catalogue]
    counted = set(ranked)
    scores = [float(bundle.popularity[item]) for item in ranked]
    for item in catalogue.item_ids:
        if item not in counted:
            ranked.append(item)
            scores.append(0.0)
    return PopularityFallback(ranked, scores=scores, metadata=catalogue.metadata_by_id())


def assemble(
    bundle: Bundle | str | os.PathLike[str],
    *,
    store: str | VectorStore = "faiss",
    store_settings: Mapping[str, Any] | None = None,
    backend: ModelBackend = "numpy",
    reranker: RerankerChoice = "recommended",
    fallback: bool = True,
    index: bool = True,
    progress: bool = False,
    fold_in: FoldIn | bool = True,
) -> AssembledRecommender:
    """Build a ready recommender from a bundle and a vector store.

    Args:
        bundle: a :class:`~two_stage_rec.bundle.Bundle` or the path of one.
        store: a store name from
            :func:`~two_stage_rec.stores.registry.store_names` (``"faiss"``,
            the default, an exact flat index; ``"memory"``; ``"pinecone"``; a
            registered third-party store), or a
            :class:`~two_stage_rec.protocols.VectorStore` instance.
        store_settings: the named store's own settings (ignored with an instance).
        backend: ``"numpy"`` (default) or ``"tensorflow"`` (the bundle's
            SavedModels); only used when ``bundle`` is a path.
        reranker: ``"recommended"`` (default: what training measured best on
            held-out data), ``"blend"``, ``"scoring"`` (the notebook's
            rerank by predicted rating), ``"ranker"`` (the learned ranking
            stage, when the bundle holds one) or ``"none"`` (retrieval order).
        fallback: answer unknown users with the most popular items
            (``source="fallback"``) instead of raising
            :class:`~two_stage_rec.errors.UnknownUserError`.
        index: write the catalogue (vectors and metadata) into the store.
            False when the store already holds it (e.g. a populated Pinecone index).
        progress: show a progress bar while indexing.
        fold_in: how a request's ``history`` becomes a user vector: True
            (default) fits :func:`~two_stage_rec.fold_in.default_fold_in` on
            the bundle's trained users (milliseconds on MovieLens-100K), a
            :class:`~two_stage_rec.protocols.FoldIn` is used as given, False
            refuses histories.

    Returns:
        An :class:`AssembledRecommender`.

    Raises:
        ModelError: the bundle is missing, incomplete or malformed.
        InvalidInputError: an unknown store or reranker name.
        DimensionMismatchError: the store's dimension differs from the towers'.
        MissingDependencyError: the store's or backend's extra is not installed.
    """
    loaded = bundle if isinstance(bundle, Bundle) else read_bundle(bundle, backend=backend)
    name, chosen = loaded.resolve_reranker(reranker)
    dimension = loaded.item_embedder.dimension
    if isinstance(store, str):
        vector_store = open_store(store, dimension=dimension, metric=loaded.manifest.metric, settings=store_settings)
    else:
        vector_store = store
    try:
        recommender = Recommender(
            user_embedder=loaded.user_embedder,
            item_embedder=loaded.item_embedder,
            store=vector_store,
            reranker=chosen,
            fallback=popularity_fallback(loaded) if fallback else None,
            candidate_ranker=_candidate_ranker(loaded) if name == "ranker" else None,
            user_items=loaded.seen_items,
            fold_in=_fold_in(loaded, fold_in),
        )
        indexed = 0
        if index:
            catalogue = loaded.catalogue
            indexed = recommender.index_items(list(catalogue.item_ids), metadata=catalogue.metadata, progress=progress)
            # Pinecone applies writes asynchronously: wait until the index serves the whole catalogue.
            if isinstance(vector_store, EventuallyConsistent):
                vector_store.wait_until_count(len(catalogue))
    except BaseException:
        # A store opened here is closed here (Pinecone holds an HTTP pool); a caller's store stays the caller's.
        if isinstance(store, str) and isinstance(vector_store, Closeable):
            vector_store.close()
        raise
    return AssembledRecommender(recommender=recommender, bundle=loaded, reranker_name=name, indexed=indexed)


def _fold_in(bundle: Bundle, choice: FoldIn | bool) -> FoldIn | None:
    if choice is False or (choice is True and not bundle.seen_items):
        return None
    if choice is True:
        from two_stage_rec.fold_in import default_fold_in

        return default_fold_in(bundle)
    return choice


def _candidate_ranker(bundle: Bundle) -> StageCandidateRanker:
    assert bundle.ranking_stage is not None  # resolve_reranker offers "ranker" only then
    return StageCandidateRanker(bundle.ranking_stage, bundle.catalogue.metadata_by_id())


def bundle_stages(bundle: Bundle) -> dict[str, StageRanking]:
    """The bundle's second stages with their own candidates (the ranking stage as ``"ranker"``), for evaluate."""
    stage = bundle.ranking_stage
    if stage is None:
        return {}

    def ranker(users: list[str], exclude: list[set[str]], depth: int) -> npt.NDArray[np.object_]:
        return stage.recommend(users, depth, exclude=exclude)

    return {"ranker": ranker}


def bundle_rerankers(bundle: Bundle) -> dict[str, Reranker]:
    """The bundle's rerankers by name, without ``"none"`` (for :func:`~two_stage_rec.evaluation.evaluate`)."""
    return {name: reranker for name, reranker in bundle.rerankers.items() if reranker is not None}
