"""The three contracts a two-stage recommender is built from.

They are :class:`typing.Protocol`\\ s, so a backend never has to import this
package: any object with these methods fits. Protocols only check names; the
behaviour is checked by the contract test suite in
:mod:`two_stage_rec.testing`.

All three work on batches: arrays of shape (n, d), float32, and every score is
**higher is better**.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy.typing as npt

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

__all__ = ["Embedder", "Reranker", "VectorStore"]


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
