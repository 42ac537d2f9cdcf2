"""Small random bundles for every MovieLens-100K user and movie: exercise the CLI and service without training."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from two_stage_rec.bundle import write_bundle
from two_stage_rec.datasets import movielens_100k
from two_stage_rec.rerankers.blend import BlendReranker, BlendWeights
from two_stage_rec.rerankers.mlp import MLPReranker
from two_stage_rec.types import RerankerName
from two_stage_rec.workflow import movielens_split


def write_synthetic_models(
    directory: Path,
    *,
    dimension: int = 8,
    seed: int = 0,
    protocol: str = "random",
    data_dir: str | os.PathLike[str] | None = None,
    recommended: RerankerName = "blend",
    drop_items: tuple[str, ...] = (),
) -> Path:
    """A bundle of random towers, a random scoring MLP and blend, trained (so it says) on ``protocol``'s split.

    Needs MovieLens-100K (``data_dir`` or ``$TWO_STAGE_REC_DATA``) for the catalogue and the split.
    ``drop_items`` leaves items out of the catalogue (and the towers).
    """
    rng = np.random.default_rng(seed)
    data = movielens_100k(data_dir, progress=False)
    train, _, record = movielens_split(protocol, data.path, progress=False)  # type: ignore[arg-type]
    users = [str(u) for u in range(1, 944)]
    items = [item for item in data.catalogue.item_ids if item not in set(drop_items)]
    catalogue = data.catalogue.subset(items)
    train = train.restrict_items(items, unknown="drop")[0]
    mlp = MLPReranker(
        [rng.normal(size=(2 * dimension, 4)), rng.normal(size=(4, 1))],
        [np.zeros(4), np.array([3.0])],
        user_dimension=dimension,
    )
    prior = rng.normal(size=dimension).astype(np.float32)
    blend = BlendReranker(BlendWeights(retrieval=1.0, rating=0.1, item=prior), rating_model=mlp)
    return write_bundle(
        directory,
        user_keys=users,
        user_vectors=rng.normal(size=(len(users), dimension)).astype(np.float32),
        item_keys=items,
        item_vectors=rng.normal(size=(len(items), dimension)).astype(np.float32),
        catalogue=catalogue,
        train=train,
        recommended=recommended,
        scoring=mlp,
        blend=blend,
        dataset="movielens-100k",
        split=record,
    )
