"""The one exception tree of two_stage_rec.

Every error the library raises on purpose derives from
:class:`TwoStageRecError`, and each leaf also derives from the built-in it
refines, so callers may catch either ``except TwoStageRecError`` or the
familiar ``except ValueError`` / ``except KeyError``::

    TwoStageRecError
    ├── MissingDependencyError (ImportError)     an optional extra is not installed
    ├── InvalidInputError (ValueError)           rejected before anything is written
    │   ├── DimensionMismatchError
    │   ├── NonFiniteVectorError
    │   ├── EmptyBatchError
    │   ├── DuplicateIdError
    │   ├── InvalidIdError
    │   ├── InvalidMetadataError
    │   ├── InvalidFilterError
    │   ├── InvalidPolicyError                   a post-ranking policy's settings
    │   └── LimitExceededError                   a backend's documented limit
    ├── UnknownKeyError (KeyError)               an embedder has no vector for a key
    │   └── UnknownUserError                     ... and the key was a user id
    ├── StoreError (RuntimeError)                a vector store failed
    │   ├── IndexConfigurationError (ValueError) existing index disagrees with the store
    │   ├── PartialWriteError                    a batch landed only in part
    │   ├── StoreUnavailableError                retries exhausted, timeouts
    │   ├── AuthenticationError                  the backend refused the credentials
    │   ├── PersistenceError (OSError)           save / load failed
    │   └── InvalidResultError (TypeError)       a store's QueryResult breaks the contract
    ├── DatasetError (RuntimeError)              a data set could not be loaded
    │   └── ChecksumMismatchError (ValueError)   a file is corrupt or partial
    └── ModelError (ValueError)                  a model file has the wrong format or shape

Backend errors (faiss, pinecone, tensorflow) are translated at the backend
boundary with ``raise Mapped(...) from exc``, so the original stays chained.
No error text ever contains an API key.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "AuthenticationError",
    "ChecksumMismatchError",
    "DatasetError",
    "DimensionMismatchError",
    "DuplicateIdError",
    "EmptyBatchError",
    "IndexConfigurationError",
    "InvalidFilterError",
    "InvalidIdError",
    "InvalidInputError",
    "InvalidMetadataError",
    "InvalidPolicyError",
    "InvalidResultError",
    "LimitExceededError",
    "MissingDependencyError",
    "ModelError",
    "NonFiniteVectorError",
    "PartialWriteError",
    "PersistenceError",
    "StoreError",
    "StoreUnavailableError",
    "TwoStageRecError",
    "UnknownKeyError",
    "UnknownUserError",
]

_MAX_IDS_IN_MESSAGE = 10


def _preview(ids: Iterable[str]) -> str:
    """Render at most a few ids so that a message stays readable."""
    listed = list(ids)
    shown = ", ".join(repr(i) for i in listed[:_MAX_IDS_IN_MESSAGE])
    more = len(listed) - _MAX_IDS_IN_MESSAGE
    return f"{shown} (and {more} more)" if more > 0 else shown


class TwoStageRecError(Exception):
    """Root of every error two_stage_rec raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt by calling the class with its arguments; an error whose constructor
        # takes others overrides this. Explicit, because reducers that pickling
        # helpers install (tblib's, under Dask) cannot rebuild the errors that mix
        # in OSError (PersistenceError) without calling the class.
        return (type(self), self.args, self.__dict__ or None)


class MissingDependencyError(TwoStageRecError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(f'{package!r} is not installed. Install it with: pip install "two-stage-rec[{extra}]"')

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (Dask workers, the service's workers): rebuild from the arguments.
        return (type(self), (self.package, self.extra))


class InvalidInputError(TwoStageRecError, ValueError):
    """Input was rejected before anything was written."""


class DimensionMismatchError(InvalidInputError):
    """Vectors do not have the dimension the store, embedder or model expects."""

    def __init__(self, expected: int, got: int, what: str = "vectors") -> None:
        self.expected = expected
        self.got = got
        self.what = what
        super().__init__(f"{what} have dimension {got}, expected {expected}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.expected, self.got, self.what))


class NonFiniteVectorError(InvalidInputError):
    """A vector holds NaN or infinity."""


class EmptyBatchError(InvalidInputError):
    """A batch operation received no items."""


class DuplicateIdError(InvalidInputError):
    """The same id appears twice in one batch."""

    def __init__(self, duplicates: Sequence[str]) -> None:
        self.duplicates = list(duplicates)
        super().__init__(f"duplicate ids in one batch: {_preview(self.duplicates)}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.duplicates,))


class InvalidIdError(InvalidInputError):
    """An id is empty, not a string, or too long for the backend."""


class InvalidMetadataError(InvalidInputError):
    """Metadata has a type, null, or size the store cannot hold."""


class InvalidFilterError(InvalidInputError):
    """A metadata filter is not valid in the Pinecone filter language."""


class InvalidPolicyError(InvalidInputError):
    """A post-ranking policy's settings are invalid (raised when it is built or parsed)."""


class LimitExceededError(InvalidInputError):
    """A request exceeds a documented backend limit (e.g. Pinecone's top_k)."""


class UnknownKeyError(TwoStageRecError, KeyError):
    """An embedder has no vector for one or more keys.

    Attributes:
        keys: the keys that were not found, in input order.
    """

    def __init__(self, keys: Sequence[str], what: str = "key") -> None:
        self.keys = list(keys)
        self.what = what
        self.message = f"unknown {what}(s): {_preview(self.keys)}"
        super().__init__(self.message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.keys, self.what))

    def __str__(self) -> str:
        # KeyError's own __str__ would wrap the message in quotes.
        return self.message


class UnknownUserError(UnknownKeyError):
    """A user id is unknown to the user embedder and no cold-start fallback is set."""

    def __init__(self, keys: Sequence[str]) -> None:
        super().__init__(keys, what="user")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.keys,))


class StoreError(TwoStageRecError, RuntimeError):
    """A vector store operation failed."""


class IndexConfigurationError(StoreError, ValueError):
    """An existing index's dimension or metric disagrees with the store's."""


class PartialWriteError(StoreError):
    """A batch write landed only in part.

    Attributes:
        written_ids: ids confirmed written.
        failed_ids: ids that were not written (or whose write is unconfirmed).
    """

    def __init__(self, message: str, *, written_ids: Sequence[str], failed_ids: Sequence[str]) -> None:
        self.written_ids = list(written_ids)
        self.failed_ids = list(failed_ids)
        self.reason = message
        super().__init__(
            f"{message}: {len(self.written_ids)} ids written, "
            f"{len(self.failed_ids)} not written: {_preview(self.failed_ids)}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        rebuild = functools.partial(type(self), written_ids=self.written_ids, failed_ids=self.failed_ids)
        return (rebuild, (self.reason,))


class StoreUnavailableError(StoreError):
    """The backend could not be reached within the retry budget."""


class AuthenticationError(StoreError):
    """The backend refused the credentials (the key itself is never shown)."""


class PersistenceError(StoreError, OSError):
    """Saving or loading a store failed; a previous saved copy is left intact."""


class InvalidResultError(StoreError, TypeError):
    """A store returned a result of the wrong type, shape or dtype (a bug in the store).

    Raised by :meth:`~two_stage_rec.types.QueryResult.validate`, which the
    :class:`~two_stage_rec.recommender.Recommender` runs on every answer, so a
    broken third-party store fails with its name in the message rather than
    deep inside the ranking code.
    """


class DatasetError(TwoStageRecError, RuntimeError):
    """A data set could not be found, downloaded or parsed."""


class ChecksumMismatchError(DatasetError, ValueError):
    """A downloaded or local file does not match its published checksum."""


class ModelError(TwoStageRecError, ValueError):
    """A model file is missing, not a SavedModel, or has the wrong input/output shape."""
