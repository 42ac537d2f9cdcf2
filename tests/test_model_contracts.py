"""The Embedder and Reranker contract suites, run against the numpy embedders and rerankers.

The TensorFlow adapters run the same suites in tests/test_tensorflow_adapters.py.
"""

from __future__ import annotations

import numpy as np

from two_stage_rec.embedders import KnownKeysEmbedder, TableEmbedder
from two_stage_rec.protocols import Embedder, Reranker
from two_stage_rec.rerankers.blend import BlendReranker, BlendWeights
from two_stage_rec.rerankers.mlp import MLPReranker
from two_stage_rec.testing import EmbedderContract, RerankerContract

D = 8
KEYS = [f"key-{n}" for n in range(20)]


def _table(**options: object) -> TableEmbedder:
    vectors = np.random.default_rng(3).normal(size=(len(KEYS), D))
    return TableEmbedder(KEYS, vectors, **options)  # type: ignore[arg-type]


def _mlp(features: str = "concat", seed: int = 5) -> MLPReranker:
    rng = np.random.default_rng(seed)
    first = 3 * D if features == "concat_product" else 2 * D
    weights = [rng.normal(size=(first, 16)), rng.normal(size=(16, 4)), rng.normal(size=(4, 1))]
    biases = [rng.normal(size=16), rng.normal(size=4), rng.normal(size=1)]
    return MLPReranker(weights, biases, user_dimension=D, features=features)  # type: ignore[arg-type]


# ----------------------------------------------------------------- embedders


class TestTableEmbedder(EmbedderContract):
    unknown_keys = ("never-seen", "")

    def make_embedder(self) -> Embedder:
        return _table()

    def known_keys(self) -> list[str]:
        return KEYS[:6]


class TestTableEmbedderWithMeanForUnknownKeys(EmbedderContract):
    """Embeds every key, so the unknown-key test is skipped with its reason."""

    def make_embedder(self) -> Embedder:
        return _table(unknown="mean")

    def known_keys(self) -> list[str]:
        return [*KEYS[:4], "never-seen"]


class TestKnownKeysEmbedder(EmbedderContract):
    """Refuses keys the inner (zeros-for-unknown) table would embed."""

    unknown_keys = ("key-19", "never-seen")

    def make_embedder(self) -> Embedder:
        return KnownKeysEmbedder(_table(unknown="zeros"), known=KEYS[:10])

    def known_keys(self) -> list[str]:
        return KEYS[:10]


# ----------------------------------------------------------------- rerankers


class TestMLPReranker(RerankerContract):
    user_dimension = D
    item_dimension = D

    def make_reranker(self) -> Reranker:
        return _mlp()


class TestMLPRerankerWithProductFeatures(RerankerContract):
    user_dimension = D
    item_dimension = D

    def make_reranker(self) -> Reranker:
        return _mlp("concat_product", seed=6)


class TestBlendReranker(RerankerContract):
    user_dimension = D
    item_dimension = D

    def make_reranker(self) -> Reranker:
        item_prior = np.random.default_rng(7).normal(size=D).astype(np.float32)
        weights = BlendWeights(retrieval=0.7, rating=0.3, item=item_prior, bias=0.1)
        return BlendReranker(weights, rating_model=_mlp(), metric="cosine")


class TestBlendRerankerWithoutRatingModel(RerankerContract):
    """Declares no input_width (any d works), so that test is skipped with its reason."""

    user_dimension = D
    item_dimension = D

    def make_reranker(self) -> Reranker:
        return BlendReranker(BlendWeights(retrieval=1.0, rating=0.0, item=None), metric="euclidean")
