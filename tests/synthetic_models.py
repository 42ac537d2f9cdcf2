"""Small random models for every MovieLens-100K user and movie: exercise the CLI without training."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from two_stage_rec.cli.evaluate import write_protocol_marker
from two_stage_rec.embedders.table import TableEmbedder
from two_stage_rec.rerankers.blend import BLEND_FILE, BlendReranker, BlendWeights
from two_stage_rec.rerankers.mlp import MLPReranker


def write_synthetic_models(directory: Path, *, dimension: int = 8, seed: int = 0) -> Path:
    """Random towers for every MovieLens user and movie, a random scoring MLP and blend, marked "random"."""
    rng = np.random.default_rng(seed)
    TableEmbedder([str(u) for u in range(1, 944)], rng.normal(size=(943, dimension))).save(
        directory / "user_embeddings.npz"
    )
    TableEmbedder([str(i) for i in range(1, 1683)], rng.normal(size=(1682, dimension))).save(
        directory / "item_embeddings.npz"
    )
    mlp = MLPReranker(
        [rng.normal(size=(2 * dimension, 4)), rng.normal(size=(4, 1))],
        [np.zeros(4), np.array([3.0])],
        user_dimension=dimension,
    )
    mlp.save(directory / "scoring_mlp.npz")
    prior = rng.normal(size=dimension).astype(np.float32)
    BlendReranker(BlendWeights(retrieval=1.0, rating=0.1, item=prior), rating_model=mlp).save(directory / BLEND_FILE)
    write_protocol_marker(directory, "random", 80_000)
    return directory
