"""From a models directory and MovieLens-100K to a ready :class:`Recommender`.

One function, :func:`build_recommender`, does what every front end needs
before it can answer "recommend for user 42": load the models, create a
vector store, index every movie with its metadata, and gather what the
service shows and excludes (titles, each user's rated movies) plus a
popularity fallback for user ids the model has never seen::

    from two_stage_rec.pipeline import build_recommender

    built = build_recommender("models/", store="faiss")
    built.recommender.recommend("42", k=5, exclude=built.seen_items["42"])

Importing this module imports numpy only; FAISS and TensorFlow are imported
when a ``store="faiss"`` or ``backend="tensorflow"`` build asks for them.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from two_stage_rec.artifacts import LoadedModels, ModelBackend, load_models
from two_stage_rec.cold_start import PopularityFallback
from two_stage_rec.datasets import MovieLens100K, item_popularity, movielens_100k, seen_items_by_user
from two_stage_rec.embedders.table import TableEmbedder
from two_stage_rec.errors import InvalidInputError, ModelError, UnknownKeyError
from two_stage_rec.protocols import Embedder, VectorStore
from two_stage_rec.recommender import Recommender
from two_stage_rec.types import FloatMatrix, Metric

__all__ = ["STORE_KINDS", "BuiltRecommender", "KnownKeysEmbedder", "StoreKind", "build_recommender", "make_store"]

StoreKind: TypeAlias = Literal["faiss", "memory"]
"""Local vector stores a models directory can be served from: ``"faiss"`` (exact
flat index) or ``"memory"`` (the numpy reference store, no extra needed)."""

STORE_KINDS: tuple[StoreKind, ...] = ("faiss", "memory")


@dataclass(frozen=True, slots=True, eq=False)
class BuiltRecommender:
    """What :func:`build_recommender` returns.

    Attributes:
        recommender: items indexed, reranker set, and (unless disabled) a
            popularity fallback for unknown user ids.
        item_titles: movie id -> title (titles repeat across ids; ids do not).
        seen_items: user id -> the movie ids the user rated in the data set,
            to exclude from their recommendations.
        models: the loaded models (embedders, reranker, training report).
        data: the MovieLens-100K data the catalogue and history came from.
        indexed: number of movies written to the store.
    """

    recommender: Recommender
    item_titles: dict[str, str]
    seen_items: dict[str, frozenset[str]]
    models: LoadedModels
    data: MovieLens100K
    indexed: int


class KnownKeysEmbedder:
    """Wrap an embedder so that keys outside ``known`` raise :class:`UnknownKeyError`.

    A SavedModel tower built on ``StringLookup`` embeds every unknown user id as
    its out-of-vocabulary vector, silently. Wrapped, an unknown user reaches the
    cold-start fallback (marked ``source="fallback"``) or a clear error, exactly
    as with the numpy backend's embedding tables.

    Args:
        inner: the embedder to delegate to.
        known: the keys it was trained on.
    """

    def __init__(self, inner: Embedder, known: Collection[str]) -> None:
        self._inner = inner
        self._known = frozenset(known)

    def __repr__(self) -> str:
        return f"KnownKeysEmbedder({self._inner!r}, known={len(self._known)})"

    @property
    def dimension(self) -> int:
        """The inner embedder's dimension."""
        return self._inner.dimension

    def embed(self, keys: Sequence[str]) -> FloatMatrix:
        """Embed with the inner embedder; raise listing every key not in ``known`` first."""
        missing = [key for key in keys if key not in self._known]
        if missing:
            raise UnknownKeyError(missing)
        return self._inner.embed(keys)


def make_store(kind: StoreKind, *, dimension: int, metric: Metric = "dotproduct") -> VectorStore:
    """An empty local store of ``kind``; ``"faiss"`` needs the ``faiss`` extra.

    The metric defaults to ``"dotproduct"``: the two towers are trained so that the
    dot product of user and item vectors predicts interest.
    """
    if kind == "memory":
        from two_stage_rec.stores.memory import InMemoryVectorStore

        return InMemoryVectorStore(dimension=dimension, metric=metric)
    if kind == "faiss":
        from two_stage_rec.stores.faiss import FaissVectorStore

        return FaissVectorStore(dimension=dimension, metric=metric)
    raise InvalidInputError(f"store must be one of {STORE_KINDS}, got {kind!r}")


def build_recommender(
    models_dir: str | os.PathLike[str],
    *,
    store: StoreKind = "faiss",
    backend: ModelBackend = "numpy",
    data: MovieLens100K | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    fallback: bool = True,
    progress: bool = False,
) -> BuiltRecommender:
    """Load models, index the MovieLens catalogue and assemble a recommender.

    Args:
        models_dir: a models directory (see :mod:`two_stage_rec.artifacts`).
        store: where item vectors live: ``"faiss"`` (default) or ``"memory"``.
        backend: ``"numpy"`` (embedding tables + numpy MLP, no TensorFlow) or
            ``"tensorflow"`` (the SavedModels).
        data: MovieLens-100K already loaded; else it is loaded with
            :func:`~two_stage_rec.datasets.movielens_100k` from ``data_dir``
            (or ``$TWO_STAGE_REC_DATA``, the cache, a verified download).
        fallback: give unknown user ids the most-rated movies
            (``source="fallback"``) instead of raising
            :class:`~two_stage_rec.errors.UnknownUserError`. With either backend a
            user id is unknown when the model was not trained on it (for
            SavedModels: not in the tower's vocabulary, else not in the ratings),
            rather than silently embedded as the out-of-vocabulary vector.
        progress: show a progress bar while indexing.

    Returns:
        A :class:`BuiltRecommender`.

    Raises:
        ModelError: the models directory is incomplete or malformed, or the item
            model knows none of the catalogue's movie ids.
        DatasetError: the data could not be found, downloaded or verified.
        MissingDependencyError: ``store="faiss"`` or ``backend="tensorflow"``
            without its extra.
    """
    if store not in STORE_KINDS:
        raise InvalidInputError(f"store must be one of {STORE_KINDS}, got {store!r}")
    models = load_models(models_dir, backend=backend)
    dataset = data if data is not None else movielens_100k(data_dir, progress=progress)
    movies = dataset.movies
    catalogue = movies.ids_str()
    metadata = movies.metadata()
    # An embedding table only knows the movies it was trained on; a SavedModel maps
    # unknown ids to its out-of-vocabulary row, so every movie can be indexed.
    if isinstance(models.item_embedder, TableEmbedder):
        known = [row for row, item_id in enumerate(catalogue) if item_id in models.item_embedder]
        catalogue = [catalogue[row] for row in known]
        metadata = [metadata[row] for row in known]
    if not catalogue:
        raise ModelError(f"the item model in {models_dir} knows none of the {len(movies)} MovieLens movie ids")

    ratings = dataset.ratings
    seen_items = {user: frozenset(items) for user, items in seen_items_by_user(ratings).items()}
    user_embedder = models.user_embedder
    if backend == "tensorflow":
        from two_stage_rec.adapters.tensorflow import SavedModelEmbedder

        vocabulary = user_embedder.vocabulary if isinstance(user_embedder, SavedModelEmbedder) else None
        user_embedder = KnownKeysEmbedder(user_embedder, vocabulary if vocabulary is not None else seen_items)
    popularity = item_popularity(ratings)  # most rated first
    cold_start = (
        PopularityFallback(list(popularity), scores=list(popularity.values()), metadata=movies.metadata_by_id())
        if fallback
        else None
    )
    recommender = Recommender(
        user_embedder=user_embedder,
        item_embedder=models.item_embedder,
        store=make_store(store, dimension=models.item_embedder.dimension),
        reranker=models.reranker,
        fallback=cold_start,
    )
    indexed = recommender.index_items(catalogue, metadata=metadata, progress=progress)
    return BuiltRecommender(
        recommender=recommender,
        item_titles={movie.id_str: movie.title for movie in movies},
        seen_items=seen_items,
        models=models,
        data=dataset,
        indexed=indexed,
    )
