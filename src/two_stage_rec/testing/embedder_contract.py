"""The behaviour every :class:`~two_stage_rec.Embedder` must show, as pytest tests.

Subclass :class:`EmbedderContract` in a test module and return the embedder
from :meth:`~EmbedderContract.make_embedder` and keys it knows from
:meth:`~EmbedderContract.known_keys`::

    from two_stage_rec.testing import EmbedderContract

    class TestMyEmbedder(EmbedderContract):
        unknown_keys = ("never-seen",)  # only when unknown keys raise

        def make_embedder(self):
            return MyEmbedder.load("towers/")

        def known_keys(self):
            return ["1", "2", "3", "4"]

The :class:`~two_stage_rec.recommender.Recommender` relies on what is
checked here: row ``i`` belongs to ``keys[i]`` whatever else is in the
batch (it embeds users in one call and candidates in another), float32
(n, dimension) rows, and one :class:`~two_stage_rec.errors.UnknownKeyError`
listing every unknown key (that is how unknown users reach the fallback).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from two_stage_rec.errors import InvalidInputError, MissingDependencyError, UnknownKeyError
from two_stage_rec.protocols import Embedder

try:
    import pytest
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError("pytest", "testing") from exc

__all__ = ["EmbedderContract"]


class EmbedderContract:
    """Subclass (as ``Test...``) and implement :meth:`make_embedder` and :meth:`known_keys`.

    Attributes:
        unknown_keys: keys the embedder must refuse with
            :class:`~two_stage_rec.errors.UnknownKeyError`; leave empty for an
            embedder that embeds every key (e.g. out-of-vocabulary vectors),
            and the unknown-key test is skipped, saying why.
        tolerance: relative and absolute tolerance when the same key is
            embedded in different batches (batched matrix products need
            not agree to the last bit).
    """

    unknown_keys: ClassVar[tuple[str, ...]] = ()
    tolerance: ClassVar[float] = 1e-5

    # ------------------------------------------------------------ hooks

    def make_embedder(self) -> Embedder:
        """Return the embedder under test. Subclasses must implement this."""
        raise NotImplementedError("subclass EmbedderContract and implement make_embedder()")

    def known_keys(self) -> Sequence[str]:
        """At least three distinct keys the embedder embeds. Subclasses must implement this."""
        raise NotImplementedError("subclass EmbedderContract and implement known_keys()")

    # ---------------------------------------------------------- helpers

    def _keys(self) -> list[str]:
        keys = list(self.known_keys())
        assert len(set(keys)) == len(keys) >= 3, "known_keys() must return at least three distinct keys"
        return keys

    def _close(self, got: npt.NDArray[np.float32], want: npt.NDArray[np.float32], message: str) -> None:
        np.testing.assert_allclose(got, want, rtol=self.tolerance, atol=self.tolerance, err_msg=message)

    # ------------------------------------------------------------ tests

    def test_satisfies_the_protocol(self) -> None:
        embedder = self.make_embedder()
        assert isinstance(embedder, Embedder)
        dimension = embedder.dimension
        assert isinstance(dimension, int) and not isinstance(dimension, bool) and dimension >= 1

    def test_a_batch_is_float32_rows_of_the_dimension(self) -> None:
        embedder, keys = self.make_embedder(), self._keys()
        vectors = embedder.embed(keys)
        assert isinstance(vectors, np.ndarray) and vectors.dtype == np.float32
        assert vectors.shape == (len(keys), embedder.dimension)
        assert np.isfinite(vectors).all()

    def test_row_i_belongs_to_key_i_whatever_the_batch(self) -> None:
        embedder, keys = self.make_embedder(), self._keys()
        batch = embedder.embed(keys)
        alone = np.concatenate([embedder.embed([key]) for key in keys])
        self._close(alone, batch, "a key embedded alone differs from the same key in a batch")
        reordered = embedder.embed(keys[::-1])
        self._close(reordered, batch[::-1], "reversing the keys must reverse the rows")
        repeated = embedder.embed([keys[1], keys[0], keys[1]])
        self._close(repeated, batch[[1, 0, 1]], "a repeated key must get the same row each time")

    def test_the_same_keys_give_the_same_vectors(self) -> None:
        embedder, keys = self.make_embedder(), self._keys()
        self._close(embedder.embed(keys), embedder.embed(keys), "embedding is not deterministic")

    def test_any_sequence_of_keys(self) -> None:
        embedder, keys = self.make_embedder(), self._keys()
        self._close(embedder.embed(tuple(keys)), embedder.embed(keys), "a tuple of keys must equal the list")

    def test_an_empty_batch_gives_no_rows(self) -> None:
        embedder = self.make_embedder()
        vectors = embedder.embed([])
        assert vectors.shape == (0, embedder.dimension) and vectors.dtype == np.float32

    def test_a_single_string_is_not_a_batch(self) -> None:
        embedder, keys = self.make_embedder(), self._keys()
        with pytest.raises(InvalidInputError):
            embedder.embed(keys[0])

    def test_unknown_keys_raise_listing_every_one(self) -> None:
        if not self.unknown_keys:
            pytest.skip(f"{type(self).__name__} declares no unknown_keys (the embedder embeds every key)")
        embedder, keys = self.make_embedder(), self._keys()
        unknown = list(self.unknown_keys)
        mixed = [keys[0], *[item for key in unknown for item in (key, keys[1])]]
        with pytest.raises(UnknownKeyError) as caught:
            embedder.embed(mixed)
        assert isinstance(caught.value, KeyError)
        assert caught.value.keys == [key for key in mixed if key in set(unknown)], "every unknown key, in input order"
