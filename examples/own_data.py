"""Your own data, end to end: a shop's event log and product table in, recommendations out.

1. Write a small synthetic shop to a temporary folder: ``products.csv`` (one row
   per product, with metadata) and ``events.csv`` (customer, product, time,
   weight: 1 for a view, 5 for a purchase). Ids are strings such as "c-1f9a"
   and "sku-88".
2. Read both with the readers (the ``data`` extra: pandas, pyarrow).
3. Train and write a bundle with ``train_bundle``: it holds out each customer's
   latest 20% of events (the log has timestamps), trains the towers, the
   relevance model (implicit feedback: there are no ratings) and the blend,
   picks the reranker that measured best, and measures on the held-out part.
   A deliberately small configuration keeps this well under a minute.
4. Assemble a recommender from the bundle on the exact in-memory store and
   recommend for two customers and for one the models have never seen (who
   gets the most popular products, marked "fallback").

Run: python examples/own_data.py
(needs the tensorflow and data extras: pip install "two-stage-rec[tensorflow,data]")
"""

from __future__ import annotations

import csv
import datetime as dt
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from two_stage_rec.assembly import assemble
from two_stage_rec.datasets import ColumnMapping, read_catalogue, read_interactions
from two_stage_rec.training import RetrievalConfig, ScoringConfig, TrainingConfig
from two_stage_rec.workflow import train_bundle

CATEGORIES = ["tea", "coffee", "cocoa", "spices"]


def write_shop(folder: Path, *, customers: int = 200, products: int = 160, seed: int = 0) -> tuple[Path, Path]:
    """A shop where each customer buys mostly from one category: (products.csv, events.csv)."""
    rng = np.random.default_rng(seed)
    skus = [f"sku-{number}" for number in rng.choice(np.arange(10, 1000), size=products, replace=False)]
    category = {sku: CATEGORIES[row % len(CATEGORIES)] for row, sku in enumerate(skus)}
    products_csv = folder / "products.csv"
    with open(products_csv, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["product_id", "name", "category", "price", "tags"])
        for row, sku in enumerate(skus):
            tags = "organic|gift" if row % 3 == 0 else "organic" if row % 3 == 1 else ""
            writer.writerow([sku, f"{category[sku].title()} no. {row}", category[sku], f"{4.5 + row % 7:.2f}", tags])

    start = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    events_csv = folder / "events.csv"
    with open(events_csv, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer", "sku", "time", "weight"])
        for number in range(customers):
            customer = f"c-{rng.integers(16**4):04x}{number}"
            favourite = CATEGORIES[number % len(CATEGORIES)]
            own = [sku for sku in skus if category[sku] == favourite]
            for day in range(int(rng.integers(12, 25))):
                sku = own[int(rng.integers(len(own)))] if rng.random() < 0.85 else skus[int(rng.integers(products))]
                when = start + dt.timedelta(days=day, hours=int(rng.integers(24)))
                weight = 5 if rng.random() < 0.2 else 1  # a purchase counts five times a view
                writer.writerow([customer, sku, when.isoformat().replace("+00:00", "Z"), weight])
    return products_csv, events_csv


with tempfile.TemporaryDirectory() as tmp:
    folder = Path(tmp)
    products_csv, events_csv = write_shop(folder)

    # 2. Read: every column of products.csv but the id becomes metadata; "tags" holds "|"-separated lists.
    catalogue = read_catalogue(products_csv, item_id_column="product_id", list_columns=["tags"])
    log = read_interactions(
        events_csv,
        # No rating column: implicit feedback. Times are ISO 8601 text; weights are positive numbers.
        columns=ColumnMapping(user="customer", item="sku", timestamp="time", weight="weight"),
        catalogue=catalogue,  # an event naming a product not in products.csv is refused
    )
    print(f"read {catalogue!r}")
    print(f"read {log!r}")

    # 3. Train and write the bundle. A tiny configuration: small towers, a few epochs, no early stopping.
    tiny = TrainingConfig(
        retrieval=RetrievalConfig(embedding_dim=16, output_dim=16, epochs=8, batch_size=128, validation_fraction=0.0),
        scoring=ScoringConfig(hidden_layers=(16,), epochs=4, batch_size=128, validation_fraction=0.0),
        eval_k=(10,),
    )
    trained = train_bundle(log, catalogue, folder / "models", config=tiny, dataset="events.csv", progress=False)
    manifest = trained.manifest
    print(f"held out: {manifest.split}; {len(trained.train):,} events trained on, {len(trained.test or ()):,} held out")
    print(f"bundle: {manifest.feedback} feedback, recommended reranker {manifest.recommended!r}")
    if trained.held_out is not None:
        for name, ranker in trained.held_out.rankers.items():
            print(f"  held-out NDCG@10 of {name}: {ranker.metrics['ndcg@10']:.4f}")

    # 4. Serve it: the bundle's recommended reranker, seen products left out, a fallback for strangers.
    customers = list(dict.fromkeys(log.user_ids.tolist()))
    with assemble(folder / "models", store="memory") as served:
        for customer in [*customers[:2], "c-new-visitor"]:
            history = log.for_user(customer).item_ids.tolist()
            categories = Counter(catalogue.metadata_of(item)["category"] for item in history)
            mostly = f"mostly {categories.most_common(1)[0][0]}" if categories else "never seen"
            print(f"{customer} ({len(history)} events, {mostly}):")
            for rec in served.recommend(customer, k=3):
                print(f"  {rec.item_id:<8} {served.label(rec.item_id):<16} {rec.score:8.3f}  {rec.source}")
