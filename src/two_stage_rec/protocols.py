"""The contracts a two-stage recommender is built from.

They are :class:`typing.Protocol`\\ s, so a backend never has to import this
package: any object with these methods fits. Protocols only check names; the
behaviour is checked by the contract test suite in
:mod:`two_stage_rec.testing`.

All three work on batches: arrays of shape (n, d), float32, and every score is
**higher is better**.

What a component *may* also do is declared here too, as small optional
protocols, each with the default that holds when a component does not
declare it. The library reads capabilities only through these (never by
probing for undeclared attributes):

| capability | declared by | when not declared |
|---|---|---|
| ``input_width`` | :class:`DeclaresInputWidth` | unknown: a mismatch shows at the first score |
| ``returns_values`` | :class:`DeclaresValues` | True: ``include_values`` returns vectors |
| ``concurrent_writes`` | :class:`DeclaresConcurrentWrites` | False: writes must not overlap any other call |
| ``close()`` | :class:`Closeable` | nothing to release |
| ``wait_until_count(n)`` | :class:`EventuallyConsistent` | writes are visible at once |
| ``save(path)`` / ``load(path)`` | :class:`Persistent` | the store cannot be saved (``supports_persistence`` False) |

:func:`input_width`, :func:`returns_values` and :func:`concurrent_writes` read the first three with their defaults.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Protocol, Self, runtime_checkable

import numpy as np
import numpy.typing as npt

from two_stage_rec.explain import CandidateReason
from two_stage_rec.types import (
    FetchResult,
    Filter,
    FloatMatrix,
    FloatVector,
    Metadata,
    Metric,
    QueryResult,
    StoreStats,
)

__all__ = [
    "CandidateRanker",
    "Closeable",
    "DeclaresConcurrentWrites",
    "DeclaresInputWidth",
    "DeclaresValues",
    "Embedder",
    "EventuallyConsistent",
    "ExplainsCandidates",
    "Fallback",
    "FoldIn",
    "Persistent",
    "Reranker",
    "VectorStore",
    "concurrent_writes",
    "input_width",
    "returns_values",
]


@runtime_checkable
class Embedder(Protocol):
    """Maps string keys (user ids, item ids or titles) to vectors."""

    @property
    def dimension(self) -> int:
        """Length d of every vector this embedder returns."""
        ...

    def embed(self, keys: Sequence[str]) -> FloatMatrix:
        """Embed a batch of keys.

        Args:
            keys: n string keys.

        Returns:
            float32 array of shape (n, dimension), row i for ``keys[i]``.

        Raises:
            UnknownKeyError: a key has no vector and the embedder has no
                fallback for unknown keys; ``error.keys`` lists them all.
        """
        ...


@runtime_checkable
class Reranker(Protocol):
    """Scores (user, item) pairs; used to reorder retrieved candidates."""

    def score(self, user_vectors: FloatMatrix, item_vectors: FloatMatrix) -> FloatVector:
        """Score row pairs: ``user_vectors[i]`` with ``item_vectors[i]``.

        Args:
            user_vectors: float32 array (n, d_user).
            item_vectors: float32 array (n, d_item).

        Returns:
            float32 array (n,); higher means the item suits the user better.
        """
        ...


@runtime_checkable
class VectorStore(Protocol):
    """A searchable collection of id -> (vector, metadata).

    Capabilities are attributes: ``is_exact`` (query returns the true top-k)
    and ``supports_persistence`` (``save``/``load`` exist).
    """

    @property
    def dimension(self) -> int:
        """Vector dimension d."""
        ...

    @property
    def metric(self) -> Metric:
        """The similarity ranked by (scores are always higher-is-better)."""
        ...

    @property
    def is_exact(self) -> bool:
        """True when ``query`` returns the exact top-k."""
        ...

    @property
    def supports_persistence(self) -> bool:
        """True when the store can be saved to and loaded from a directory."""
        ...

    def upsert(
        self,
        ids: Sequence[str],
        vectors: npt.ArrayLike,
        metadata: Sequence[Metadata] | None = None,
    ) -> int:
        """Insert or overwrite vectors.

        The whole batch is validated before anything is written: wrong
        dimension, NaN/inf, an empty batch, duplicate or invalid ids and
        invalid metadata raise an :class:`InvalidInputError` subclass and
        leave the store unchanged.

        Args:
            ids: n unique, non-empty string ids.
            vectors: array-like (n, dimension), converted to float32.
            metadata: n mappings, or None for no metadata. Overwriting an id
                replaces its metadata too.

        Returns:
            The number of vectors written (n).
        """
        ...

    def query(
        self,
        vectors: npt.ArrayLike,
        top_k: int,
        *,
        filter: Filter | None = None,
        include_values: bool = False,
        include_metadata: bool = False,
    ) -> QueryResult:
        """Find the ``top_k`` best matches for each query vector.

        Args:
            vectors: array-like (n, dimension) of query vectors.
            top_k: matches wanted per query (>= 1). When fewer vectors exist
                (or pass the filter), fewer are returned; see ``QueryResult.counts``.
            filter: a filter in the Pinecone filter language
                (see :mod:`two_stage_rec.filters`), or None.
            include_values: also return the stored vectors.
            include_metadata: also return the stored metadata.

        Returns:
            A :class:`QueryResult`; scores descending, higher is better.
        """
        ...

    def fetch(self, ids: Sequence[str]) -> FetchResult:
        """Return stored vectors and metadata; unknown ids go to ``missing``."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Remove ids; ids that are not stored are ignored."""
        ...

    def describe(self) -> StoreStats:
        """Dimension, metric, count and backend details."""
        ...


@runtime_checkable
class Fallback(Protocol):
    """What to recommend to a user the user embedder does not know (cold start).

    :class:`~two_stage_rec.cold_start.PopularityFallback` is one; the
    :class:`~two_stage_rec.recommender.Recommender` takes any.
    """

    def top(
        self, k: int, *, exclude: Collection[str] = (), filter: Filter | None = None
    ) -> Sequence[tuple[str, float, Metadata]]:
        """Up to k ``(item id, score, metadata)``, best first (higher score is better).

        Args:
            k: items wanted (>= 1).
            exclude: item ids never to return.
            filter: a metadata filter in the Pinecone filter language, or None;
                items that do not pass it are not returned.
        """
        ...


@runtime_checkable
class CandidateRanker(Protocol):
    """A second stage that retrieves and ranks its own candidates, for known users.

    The learned ranking stage
    (:class:`~two_stage_rec.rerankers.ranking_stage.StageCandidateRanker`) is
    one: it merges the towers' candidates with an item-to-item model's and
    ranks them with per-candidate features a (user vector, item vector)
    :class:`Reranker` cannot see. A
    :class:`~two_stage_rec.recommender.Recommender` given one answers reranked
    requests of known users with it instead of the store query and reranker,
    then keeps only items the store still holds whose stored metadata pass the
    filter.
    """

    def rank(
        self, user_ids: Sequence[str], k: int, *, exclude: Sequence[Collection[str]], filter: Filter | None
    ) -> tuple[npt.NDArray[np.object_], FloatMatrix, FloatMatrix]:
        """Each user's best ``k`` items.

        Args:
            user_ids: n users the user embedder knows.
            k: items wanted per user (>= 1).
            exclude: per user, item ids never to return.
            filter: a metadata filter in the Pinecone filter language, or None.

        Returns:
            ``(ids, scores, retrieval_scores)``: object (n, k) item ids
            (``""`` pads when fewer exist), float32 (n, k) scores, best first,
            higher is better (``-inf`` pads), and float32 (n, k) the towers'
            retrieval score of each item.
        """
        ...


@runtime_checkable
class FoldIn(Protocol):
    """Turn a few interactions into a user vector, without retraining (new users, recent activity).

    A :class:`~two_stage_rec.recommender.Recommender` given one answers a
    request that carries a ``history`` with the folded-in vector: an unknown
    user is then personalised instead of getting the fallback, and a known
    user's trained vector is updated with what they did since training.
    :mod:`two_stage_rec.fold_in` holds the implementations.
    """

    def fold_in(
        self,
        item_vectors: Sequence[FloatMatrix],
        *,
        ratings: Sequence[FloatVector | None],
        priors: Sequence[FloatVector | None],
    ) -> FloatMatrix:
        """One user vector per history.

        Args:
            item_vectors: per user, float32 (h_i, d) vectors of the items in
                their history (h_i >= 1), oldest first when the order is known.
            ratings: per user, float32 (h_i,) ratings of those items, or None
                (implicit feedback: each item counts as a positive).
            priors: per user, their trained float32 (d,) vector when the
                user embedder knows them (the history then holds what they
                did since training), or None for a new user.

        Returns:
            float32 (n, d): vectors for the user embedder's space, so that the
            store's similarity to item vectors ranks items (higher is better).
        """
        ...


# ------------------------------------------------------------ optional capabilities


@runtime_checkable
class ExplainsCandidates(Protocol):
    """A :class:`CandidateRanker` that can say where its items came from and what ranked them.

    ``Recommender.recommend(..., explain=True)`` asks it about the items it
    ranked for a request; the learned ranking stage
    (:class:`~two_stage_rec.rerankers.ranking_stage.StageCandidateRanker`) is one.
    """

    def explain(
        self,
        user_ids: Sequence[str],
        item_ids: Sequence[Sequence[str]],
        *,
        exclude: Sequence[Collection[str]],
        filter: Filter | None,
    ) -> list[list[CandidateReason]]:
        """Per user, one :class:`~two_stage_rec.explain.CandidateReason` per item asked about.

        Args:
            user_ids: n users, as given to ``rank``.
            item_ids: per user, items ``rank`` returned for them.
            exclude: per user, the exclusions given to ``rank``.
            filter: the filter given to ``rank``.
        """
        ...


@runtime_checkable
class DeclaresInputWidth(Protocol):
    """A reranker that knows the width of the pairs it scores.

    The :class:`~two_stage_rec.recommender.Recommender` checks it against the
    store when it is built, so a mismatch fails then rather than at the first
    request. Declared by ``MLPReranker``, ``BlendReranker`` (its rating model's)
    and ``SavedModelReranker``.
    """

    @property
    def input_width(self) -> int | None:
        """d_user + d_item, the width of ``concat(user_vector, item_vector)``; None when unknown."""
        ...


@runtime_checkable
class DeclaresValues(Protocol):
    """A store that states whether ``query(include_values=True)`` returns the stored vectors.

    A store that cannot (``returns_values`` False) is still reranked: the
    :class:`~two_stage_rec.recommender.Recommender` then embeds the
    candidates with its item embedder, by the store's item ids.
    """

    @property
    def returns_values(self) -> bool:
        """True when ``query(include_values=True)`` returns the stored vectors."""
        ...


@runtime_checkable
class DeclaresConcurrentWrites(Protocol):
    """A store that states whether writes may overlap queries and other writes.

    With ``concurrent_writes`` True, ``upsert`` and ``delete`` may run while
    other threads query, fetch or write: a query sees the store wholly before
    or wholly after each write (never a padding id, never an item that fails
    the filter, never an id whose delete has returned). The in-memory and
    FAISS stores declare it; a service updates its catalogue live only on such
    a store (or a remote one, which serialises writes itself).
    """

    @property
    def concurrent_writes(self) -> bool:
        """True when writes may overlap any other call."""
        ...


@runtime_checkable
class Closeable(Protocol):
    """Holds connections or threads (e.g. Pinecone's HTTP pool) that ``close()`` releases."""

    def close(self) -> None:
        """Release connections and threads; the object cannot be used afterwards."""
        ...


@runtime_checkable
class EventuallyConsistent(Protocol):
    """A store whose writes become visible to queries later (Pinecone).

    Whoever writes a catalogue and then serves it waits with
    :meth:`wait_until_count`; stores without this protocol serve their writes at once.
    """

    def wait_until_count(self, count: int) -> int:
        """Block until the store holds ``count`` vectors; returns the count reached.

        Raises:
            StoreUnavailableError: the count was not reached in the store's time limit.
        """
        ...


@runtime_checkable
class Persistent(Protocol):
    """A store that saves itself to a directory and loads from one.

    A store declares it with ``supports_persistence = True``; the contract
    suite (:class:`~two_stage_rec.testing.VectorStoreContract`) checks that
    the attribute and these methods agree, and that a save round-trips.
    """

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the store to the directory ``path``, replacing a previous save there; returns the directory.

        Raises:
            PersistenceError: the directory cannot be written; a previous save is left intact.
        """
        ...

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Read a store written by :meth:`save`.

        Raises:
            PersistenceError: ``path`` holds no readable save.
        """
        ...


def input_width(reranker: Reranker) -> int | None:
    """The pair width a reranker declares (:class:`DeclaresInputWidth`), else None."""
    return reranker.input_width if isinstance(reranker, DeclaresInputWidth) else None


def returns_values(store: VectorStore) -> bool:
    """Whether a store returns stored vectors (:class:`DeclaresValues`); True when it does not say."""
    return bool(store.returns_values) if isinstance(store, DeclaresValues) else True


def concurrent_writes(store: VectorStore) -> bool:
    """Whether writes may overlap other calls (:class:`DeclaresConcurrentWrites`); False when the store does not say."""
    return bool(store.concurrent_writes) if isinstance(store, DeclaresConcurrentWrites) else False
