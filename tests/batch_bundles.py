"""A small random bundle for the batch scoring tests: real files, real assembler, scored in milliseconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from two_stage_rec.bundle import write_bundle
from two_stage_rec.datasets.catalogue import Catalogue
from two_stage_rec.datasets.interactions import Interactions
from two_stage_rec.rerankers.blend import BlendReranker, BlendWeights
from two_stage_rec.rerankers.mlp import MLPReranker

DIMENSION = 8
USERS = [f"u-{n:03d}" for n in range(60)]
ITEMS = [f"sku-{n:03d}" for n in range(80)]


def write_small_bundle(path: Path, *, seed: int = 0) -> Path:
    """60 users, 80 items with metadata (genre, year), three training events per user, a blend reranker."""
    rng = np.random.default_rng(seed)
    scoring = MLPReranker(
        [rng.normal(size=(2 * DIMENSION, 8)), rng.normal(size=(8, 1))],
        [rng.normal(size=8), np.array([3.0])],
        user_dimension=DIMENSION,
    )
    blend = BlendReranker(
        BlendWeights(retrieval=1.0, rating=0.2, item=rng.normal(size=DIMENSION).astype(np.float32)),
        rating_model=scoring,
    )
    events = [(user, ITEMS[int(i)]) for user in USERS for i in rng.choice(len(ITEMS), size=3, replace=False)]
    train = Interactions.from_arrays(
        user_ids=[user for user, _ in events],
        item_ids=[item for _, item in events],
        ratings=rng.integers(1, 6, size=len(events)).astype(np.float32),
    )
    catalogue = Catalogue.from_records(
        ITEMS,
        [{"title": f"Item {n}", "genre": "odd" if n % 2 else "even", "year": 1990 + n % 30} for n in range(len(ITEMS))],
    )
    return write_bundle(
        path,
        user_keys=list(USERS),
        user_vectors=rng.normal(size=(len(USERS), DIMENSION)).astype(np.float32),
        item_keys=list(ITEMS),
        item_vectors=rng.normal(size=(len(ITEMS), DIMENSION)).astype(np.float32),
        catalogue=catalogue,
        train=train,
        recommended="blend",
        scoring=scoring,
        blend=blend,
        dataset="synthetic",
    )
