"""TableEmbedder: lookups, unknown-key policies, NPZ round trip."""

from __future__ import annotations

import numpy as np
import pytest

from two_stage_rec import DimensionMismatchError, InvalidInputError, ModelError, UnknownKeyError
from two_stage_rec.embedders import TableEmbedder

KEYS = ["a", "b", "c"]
VECTORS = np.arange(12, dtype=np.float32).reshape(3, 4)


def test_embed_returns_rows_in_key_order():
    embedder = TableEmbedder(KEYS, VECTORS)
    got = embedder.embed(["c", "a", "c"])
    assert got.dtype == np.float32 and got.shape == (3, 4)
    np.testing.assert_array_equal(got, VECTORS[[2, 0, 2]])
    assert embedder.dimension == 4 and len(embedder) == 3 and "b" in embedder


def test_unknown_keys_raise_listing_all_of_them():
    embedder = TableEmbedder(KEYS, VECTORS)
    with pytest.raises(UnknownKeyError) as caught:
        embedder.embed(["a", "x", "y"])
    assert caught.value.keys == ["x", "y"]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("zeros", np.zeros(4)), ("mean", VECTORS.mean(axis=0)), (np.full(4, 7.0), np.full(4, 7.0))],
)
def test_unknown_key_fallbacks(policy, expected):
    embedder = TableEmbedder(KEYS, VECTORS, unknown=policy)
    got = embedder.embed(["x", "b"])
    np.testing.assert_allclose(got[0], expected)
    np.testing.assert_array_equal(got[1], VECTORS[1])


def test_bad_tables_are_rejected():
    with pytest.raises(InvalidInputError):
        TableEmbedder(["a", "a"], np.ones((2, 2)))
    with pytest.raises(InvalidInputError):
        TableEmbedder(["a"], np.ones((2, 2)))
    with pytest.raises(InvalidInputError):
        TableEmbedder(["a"], np.array([[np.nan, 1.0]]))
    with pytest.raises(DimensionMismatchError):
        TableEmbedder(KEYS, VECTORS, unknown=np.ones(3))
    with pytest.raises(InvalidInputError):
        TableEmbedder(KEYS, VECTORS).embed("a")


def test_npz_round_trip_without_pickle(tmp_path):
    path = TableEmbedder(KEYS, VECTORS).save(tmp_path / "table.npz")
    loaded = TableEmbedder.load(path, unknown="zeros")
    assert loaded.keys == KEYS
    np.testing.assert_array_equal(loaded.vectors, VECTORS)
    assert not loaded.vectors.flags.writeable
    with pytest.raises(ModelError):
        TableEmbedder.load(tmp_path / "missing.npz")
