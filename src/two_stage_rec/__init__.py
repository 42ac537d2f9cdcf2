"""two_stage_rec: retrieve candidates from a vector index, then rerank them with a deep model.

The package root holds the contracts, the data types (:class:`Interactions`,
:class:`Catalogue`), result types, errors and the :class:`Recommender`. Backends are imported by their full path::

    from two_stage_rec.stores.memory import InMemoryVectorStore
    from two_stage_rec.stores.faiss import FaissVectorStore        # extra: faiss
    from two_stage_rec.stores.pinecone import PineconeVectorStore  # extra: pinecone
    from two_stage_rec.adapters.tensorflow import SavedModelEmbedder  # extra: tensorflow

Importing this package imports numpy and nothing heavier.
"""

from functools import cache
from typing import TYPE_CHECKING

from two_stage_rec.cold_start import PopularityFallback
from two_stage_rec.datasets.catalogue import Catalogue
from two_stage_rec.datasets.interactions import Interactions
from two_stage_rec.errors import (
    AuthenticationError,
    ChecksumMismatchError,
    DatasetError,
    DimensionMismatchError,
    DuplicateIdError,
    EmptyBatchError,
    IndexConfigurationError,
    InvalidFilterError,
    InvalidIdError,
    InvalidInputError,
    InvalidMetadataError,
    InvalidPolicyError,
    InvalidResultError,
    LimitExceededError,
    MissingDependencyError,
    ModelError,
    NonFiniteVectorError,
    PartialWriteError,
    PersistenceError,
    StoreError,
    StoreUnavailableError,
    TwoStageRecError,
    UnknownKeyError,
    UnknownUserError,
)
from two_stage_rec.explain import Explanation
from two_stage_rec.policies.base import Policy, RankedList
from two_stage_rec.protocols import Embedder, Fallback, FoldIn, Reranker, VectorStore
from two_stage_rec.recommender import History, Recommendation, Recommender, Source
from two_stage_rec.types import FetchResult, Filter, Metadata, Metric, QueryResult, RerankerName, StoreStats

if TYPE_CHECKING:
    __version__: str
    """The installed distribution's version (``two-stage-rec``), from its metadata."""


def __getattr__(name: str) -> str:
    # __version__ is read on first use: importing importlib.metadata costs more than this package's import.
    if name == "__version__":
        return _version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@cache
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("two-stage-rec")
    except PackageNotFoundError:  # a source checkout on sys.path, never installed
        return "0+unknown"

__all__ = [
    "AuthenticationError",
    "Catalogue",
    "ChecksumMismatchError",
    "DatasetError",
    "DimensionMismatchError",
    "DuplicateIdError",
    "Embedder",
    "EmptyBatchError",
    "Explanation",
    "Fallback",
    "FetchResult",
    "Filter",
    "FoldIn",
    "History",
    "IndexConfigurationError",
    "InvalidFilterError",
    "InvalidIdError",
    "InvalidInputError",
    "Interactions",
    "InvalidMetadataError",
    "InvalidPolicyError",
    "InvalidResultError",
    "LimitExceededError",
    "Metadata",
    "Metric",
    "MissingDependencyError",
    "ModelError",
    "NonFiniteVectorError",
    "PartialWriteError",
    "PersistenceError",
    "Policy",
    "PopularityFallback",
    "QueryResult",
    "RankedList",
    "Recommendation",
    "Recommender",
    "Reranker",
    "RerankerName",
    "Source",
    "StoreError",
    "StoreStats",
    "StoreUnavailableError",
    "TwoStageRecError",
    "UnknownKeyError",
    "UnknownUserError",
    "VectorStore",
    "__version__",
]
