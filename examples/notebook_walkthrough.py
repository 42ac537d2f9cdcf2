"""The original notebook, step by step, with the public API of two_stage_rec.

1. Load MovieLens-100K (100,000 ratings, 943 users, 1,682 movies) and split it 80/20.
2. Train a two-tower model (user id -> 32 floats, movie id -> 32 floats; the dot
   product says how likely the user watches the movie), a scoring model
   (user vector, movie vector -> predicted rating) and a blend of the two,
   written as one models bundle -- or use a bundle trained earlier.
3. Put every movie's vector in a FAISS index (dot product, like the notebook's Pinecone index).
4. For a user: embed them, fetch the 50 nearest movies (stage 1, retrieval),
   then reorder those 50 (stage 2, reranking): by predicted rating, as the
   notebook did, and by the reranker the bundle recommends.
5. Show the top 5 of each beside the movies the user rated.
6. Measure, over every user, whether reranking helps (the notebook judged from one user).

Run (TWO_STAGE_REC_DATA=/path/to/ml-100k, or the data is downloaded once):

    python examples/notebook_walkthrough.py                  # trains into models/walkthrough (a minute or two)
    python examples/notebook_walkthrough.py --models models/ # uses a bundle trained on the random split
    python examples/notebook_walkthrough.py --epochs 1       # a quick, rough run
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from two_stage_rec.assembly import assemble
from two_stage_rec.bundle import is_bundle, read_bundle
from two_stage_rec.datasets import movielens_100k, random_split
from two_stage_rec.workflow import evaluate_bundle, train_movielens_bundle


def train_unless_present(models_dir: Path, epochs: int | None) -> None:
    """Train the recommended pipeline on the random 80% training split, unless models_dir holds a bundle."""
    if is_bundle(models_dir):
        print(f"Using the models in {models_dir}/")
        return
    from two_stage_rec.training.blend import PIPELINE_CONFIG

    config = None  # the measured-best settings
    if epochs is not None:  # a quick run: fixed epochs, no early-stopping hold-out
        config = dataclasses.replace(
            PIPELINE_CONFIG,
            retrieval=dataclasses.replace(PIPELINE_CONFIG.retrieval, epochs=epochs, validation_fraction=0.0),
            scoring=dataclasses.replace(PIPELINE_CONFIG.scoring, epochs=epochs, validation_fraction=0.0),
        )
    print(f"Training the two towers, the scoring model and the blend into {models_dir}/ ...")
    train_movielens_bundle(models_dir, protocol="random", config=config, measure=False)
    report = read_bundle(models_dir).report
    if report is not None:
        print({name: round(value, 4) for name, value in report.metrics.items() if "/test/" in name})


parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--models", type=Path, default=Path("models/walkthrough"), help="models bundle directory")
parser.add_argument("--epochs", type=int, default=None, help="train for exactly this many epochs (quick runs)")
parser.add_argument("--users", nargs="+", default=["42", "55"], help="users to show")
args = parser.parse_args()

# 1. Data: ratings (ids are strings: "42"), the movie catalogue (keyed by id: titles are not unique), 80/20.
data = movielens_100k()
train, test = random_split(data.interactions, 0.2, seed=42)  # what train_movielens_bundle(protocol="random") uses
print(f"{len(data.interactions):,} ratings -> {len(train):,} to train on, {len(test):,} held out")

# 2. Models: user tower, movie tower, scoring model, blend -- one bundle.
train_unless_present(args.models, args.epochs)
bundle = read_bundle(args.models)  # numpy backend: embedding tables + MLP, no TensorFlow needed
print(f"{bundle!r}: training measured {bundle.manifest.recommended!r} best on held-out training ratings")

# 3-5. The vector index holds every movie's vector with its title, genres and year as metadata.
with assemble(bundle, store="faiss", reranker="scoring") as notebook:
    print(f"indexed {notebook.indexed} movies in {notebook.store!r}")
    # The same store, already indexed, behind the bundle's recommended second stage.
    recommended = assemble(bundle, store=notebook.store, index=False)
    for user in args.users:
        rated = data.interactions.for_user(user)
        assert rated.ratings is not None
        best = sorted(zip(rated.ratings.tolist(), rated.item_ids.tolist(), strict=True), reverse=True)[:5]
        print(f"\nUser {user} rated {len(rated)} movies; their favourites:")
        for rating, movie_id in best:
            print(f"  {rating:.0f}★  {notebook.label(movie_id)}")
        # Movies the user rated in training are left out of every list (include_seen=True keeps them).
        columns = {
            "retrieval only": notebook.recommend(user, k=5, rerank=False),
            "by predicted rating": notebook.recommend(user, k=5),
            f"recommended ({recommended.reranker_name})": recommended.recommend(user, k=5),
        }
        print("  " + "".join(f"{name:<39}" for name in columns).rstrip())
        for row in zip(*columns.values(), strict=True):
            print("  " + "".join(f"{notebook.label(rec.item_id)[:30]:<30} {rec.score:6.2f}  " for rec in row).rstrip())

# 6. Does reranking help? Measured over all users on the held-out 20%: the split is recreated from
#    what the bundle recorded, and refused if the bundle was trained on other data.
result = evaluate_bundle(args.models, n_resamples=2000)
print()
print(result.to_markdown())
