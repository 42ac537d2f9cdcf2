"""The README's Python example: a two-stage recommender on random vectors, in ten lines.

Run: python examples/quickstart.py   (needs the faiss extra: pip install "two-stage-rec[faiss]")
"""

import numpy as np

from two_stage_rec import Recommender
from two_stage_rec.embedders import TableEmbedder
from two_stage_rec.stores.faiss import FaissVectorStore

rng = np.random.default_rng(0)
items = TableEmbedder([f"movie-{i}" for i in range(1000)], rng.normal(size=(1000, 32)))
users = TableEmbedder(["42", "55"], rng.normal(size=(2, 32)))
recommender = Recommender(user_embedder=users, item_embedder=items, store=FaissVectorStore(dimension=32))
recommender.index_items(items.keys, metadata=[{"year": 1990 + i % 10} for i in range(1000)])
for rec in recommender.recommend("42", k=5, exclude={"movie-7"}, filter={"year": {"$gte": 1995}}):
    print(rec.item_id, rec.score, rec.metadata)
