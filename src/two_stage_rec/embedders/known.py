"""An embedder that refuses keys it was not trained on, instead of embedding them as out-of-vocabulary."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from two_stage_rec.errors import InvalidInputError, UnknownKeyError
from two_stage_rec.protocols import Embedder
from two_stage_rec.types import FloatMatrix

__all__ = ["KnownKeysEmbedder"]


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
        """Embed with the inner embedder; raise listing every key not in ``known`` first.

        Raises:
            InvalidInputError: ``keys`` is a single string (it would be read as its characters).
            UnknownKeyError: keys not in ``known``, all of them, in input order.
        """
        if isinstance(keys, str):
            raise InvalidInputError("keys must be a sequence of strings, not a single string")
        missing = [key for key in keys if key not in self._known]
        if missing:
            raise UnknownKeyError(missing)
        return self._inner.embed(keys)
