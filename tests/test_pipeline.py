"""Unit tests of two_stage_rec.pipeline that need no data (the rest is in test_serve_cli.py)."""

from __future__ import annotations

import numpy as np
import pytest

from two_stage_rec import InvalidInputError, PopularityFallback, Recommender, UnknownKeyError
from two_stage_rec.embedders.table import TableEmbedder
from two_stage_rec.pipeline import KnownKeysEmbedder, make_store
from two_stage_rec.stores.memory import InMemoryVectorStore


def test_known_keys_embedder_raises_for_unknown_keys_and_delegates_the_rest() -> None:
    # "zeros" stands in for a SavedModel's silent out-of-vocabulary vector.
    inner = TableEmbedder(["a", "b"], np.eye(2), unknown="zeros")
    wrapped = KnownKeysEmbedder(inner, {"a", "b"})
    assert wrapped.dimension == 2
    np.testing.assert_array_equal(wrapped.embed(["b", "a"]), inner.embed(["b", "a"]))
    with pytest.raises(UnknownKeyError) as caught:
        wrapped.embed(["a", "x", "y"])
    assert caught.value.keys == ["x", "y"]


def test_unknown_users_reach_the_fallback_through_the_wrapper() -> None:
    store = InMemoryVectorStore(dimension=2)
    store.upsert(["i1", "i2"], np.eye(2))
    recommender = Recommender(
        user_embedder=KnownKeysEmbedder(TableEmbedder(["a"], [[1.0, 0.0]], unknown="zeros"), {"a"}),
        store=store,
        fallback=PopularityFallback(["i2", "i1"]),
    )
    assert [r.source for r in recommender.recommend("a", k=1)] == ["retrieval"]
    assert [(r.item_id, r.source) for r in recommender.recommend("new", k=1)] == [("i2", "fallback")]


def test_make_store() -> None:
    assert make_store("memory", dimension=4).describe().backend == "memory"
    with pytest.raises(InvalidInputError, match="store must be one of"):
        make_store("pinecone", dimension=4)  # type: ignore[arg-type]
