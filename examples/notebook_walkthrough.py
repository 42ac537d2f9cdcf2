"""The original notebook, step by step, with the public API of two_stage_rec.

1. Load MovieLens-100K (100,000 ratings, 943 users, 1,682 movies) and split it 80/20.
2. Train a two-tower model (user id -> 32 floats, movie id -> 32 floats; the dot
   product says how likely the user watches the movie) and a scoring model
   (concat(user vector, movie vector) -> predicted rating) -- or load them.
3. Put every movie's vector in a FAISS index (dot product, like the notebook's Pinecone index).
4. For a user: embed them, fetch the 50 nearest movies (stage 1, retrieval),
   then reorder those 50 by predicted rating (stage 2, reranking).
5. Show the top 5 with and without reranking, beside the movies the user rated.
6. Measure, over every user, whether reranking helps (the notebook judged from one user).

Run (TWO_STAGE_REC_DATA=/path/to/ml-100k, or the data is downloaded once):

    python examples/notebook_walkthrough.py                  # trains into models/walkthrough (about 20 s)
    python examples/notebook_walkthrough.py --models models/ # uses models trained earlier
    python examples/notebook_walkthrough.py --epochs 1       # a quick, rough run
"""

from __future__ import annotations

import argparse
from pathlib import Path

from two_stage_rec import Recommender, Reranker
from two_stage_rec.artifacts import load_models, missing_artifacts
from two_stage_rec.datasets import MovieLens100K, Ratings, movielens_100k, random_split, seen_items_by_user
from two_stage_rec.evaluation import evaluate
from two_stage_rec.rerankers.blend import BLEND_FILE, BlendReranker
from two_stage_rec.stores.faiss import FaissVectorStore


def train_or_load(models_dir: Path, epochs: int | None, data: MovieLens100K, train: Ratings, test: Ratings) -> None:
    """Train the notebook's three models on the 80% training split, unless models_dir has them."""
    if models_dir.is_dir() and not missing_artifacts(models_dir):
        print(f"Using the models in {models_dir}/")
        return
    from two_stage_rec.training import RetrievalConfig, ScoringConfig, TrainingConfig, train_models

    config = TrainingConfig()
    if epochs is not None:  # a quick run: fixed epochs, no early-stopping hold-out
        config = TrainingConfig(
            retrieval=RetrievalConfig(epochs=epochs, validation_fraction=0.0),
            scoring=ScoringConfig(epochs=epochs, validation_fraction=0.0),
        )
    print(f"Training the two towers and the scoring model into {models_dir}/ ...")
    models = train_models(train, test=test, items=data.movies.ids_str(), config=config)
    models.save(models_dir, saved_models=False)  # the numpy tables are all this script needs
    print({name: round(value, 4) for name, value in models.report.metrics.items() if "/test/" in name})


parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--models", type=Path, default=Path("models/walkthrough"), help="models directory")
parser.add_argument("--epochs", type=int, default=None, help="train for exactly this many epochs (quick runs)")
parser.add_argument("--users", nargs="+", default=["42", "55"], help="users to show")
args = parser.parse_args()

# 1. Data: ratings, the movie catalogue (keyed by id: titles are not unique), an 80/20 split.
data = movielens_100k()
train, test = random_split(data.ratings, 0.2, seed=42)
print(f"{len(data.ratings):,} ratings -> {len(train):,} to train on, {len(test):,} held out")

# 2. Models: user tower, movie tower, scoring model.
train_or_load(args.models, args.epochs, data, train, test)
models = load_models(args.models)  # numpy backend: embedding tables + MLP, no TensorFlow needed

# 3. The vector index: every movie's vector, with its title and genres as metadata.
store = FaissVectorStore(dimension=models.item_embedder.dimension, metric="dotproduct")
recommender = Recommender(
    user_embedder=models.user_embedder,
    item_embedder=models.item_embedder,
    store=store,
    reranker=models.reranker,
)
movies = list(data.movies)
recommender.index_items([m.id_str for m in movies], metadata=[m.metadata() for m in movies])
print(f"indexed {store.describe().count} movies in {store!r}")

# 4-5. For each user: their ratings, then the top 5 without and with reranking.
seen = seen_items_by_user(data.ratings)  # everything they rated: never recommend it again
for user in args.users:
    rated = data.ratings.for_user(user)
    best = sorted(zip(rated.ratings.tolist(), rated.item_ids.tolist(), strict=True), reverse=True)[:5]
    print(f"\nUser {user} rated {len(rated)} movies; their favourites:")
    for rating, movie_id in best:
        print(f"  {rating:.0f}★  {data.movies[movie_id].title}")
    retrieval = recommender.recommend(user, k=5, candidates=50, exclude=seen[user], rerank=False)
    reranked = recommender.recommend(user, k=5, candidates=50, exclude=seen[user], rerank=True)
    print(f"  {'without reranking (similarity)':<48} with reranking (predicted rating)")
    for a, b in zip(retrieval, reranked, strict=True):
        print(f"  {a.metadata['title']!s:<40} {a.score:6.2f}  {b.metadata['title']!s:<40} {b.score:4.2f}")

# 6. Does reranking help? Measure it over all users on the held-out 20%.
#    Models made by `two-stage-rec demo` also hold a blend reranker (retrieval score + predicted
#    rating + item prior, fitted on held-out training ratings); it is measured too when present.
rerankers: dict[str, Reranker] = {"reranked": models.reranker}
if (args.models / BLEND_FILE).is_file():
    rerankers["blend"] = BlendReranker.load(args.models / BLEND_FILE, rating_model=models.reranker)
result = evaluate(recommender, train, test, k=10, candidates=50, rerankers=rerankers, n_resamples=2000)
print()
print(result.to_markdown())
