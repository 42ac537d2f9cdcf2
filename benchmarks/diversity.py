"""What variety costs: NDCG@10 against intra-list diversity and coverage, over the MMR trade-off and genre caps.

On MovieLens-100K's ``stratified`` protocol (75/25 per user, see
:mod:`two_stage_rec.evaluation.movielens_protocols`), models trained by
:func:`two_stage_rec.training.blend.train_pipeline` with ``PIPELINE_CONFIG``,
exact FAISS retrieval (dot product) of 50 candidates per user with the
user's training items excluded, reranked by the learned blend (the second
stage the pipeline recommends serving), as
``benchmarks/evaluate_quality.py`` does.

Each user's 50 ranked candidates become one
:class:`~two_stage_rec.policies.RankedList` (scores, metadata, item vectors)
-- what ``Recommender.recommend(..., policies=)`` hands the policies -- and
every configuration is applied to the same lists, so the rows differ only
by the policy:

* ``MMR(λ)`` for λ in {0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9}, with each of the
  two relevance normalisations (``rank``, ``minmax``);
* ``MaxPerValue("genres", 2)`` and ``("genres", 3)``;
* ``MMR(0.3)`` (min-max relevance, the default) followed by ``MaxPerValue("genres", 2)``.

Per row, over all test users: NDCG@10 (relevant = every test rating, binary),
intra-list diversity of the top 10 (mean pairwise cosine distance 1 - cos of
the retrieval item vectors), mean distinct genres in the top 10, novelty
(mean -log2 of the share of training users who rated each item), catalogue
coverage (distinct items in any top 10 / catalogue size), the paired
difference in NDCG@10 against no policy (bootstrap, 2,000 resamples) and the
median time of the policy per user. The measuring is the library's
(:func:`two_stage_rec.evaluation.policy_curve.measure_policies`, what
``two-stage-rec evaluate --diversity-curve`` runs). Writes ``benchmarks/results/diversity.json``
and the plot ``docs/assets/diversity.png`` (``plots`` extra).

Reproduce (about 2-3 minutes on 2 cores, most of it training; ``--replot`` only redraws the plot)::

    TWO_STAGE_REC_DATA=path/to/ml-100k .venv/bin/python benchmarks/diversity.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, machine, summarize, write_results

from two_stage_rec import Recommender
from two_stage_rec.datasets import movielens_100k
from two_stage_rec.evaluation.evaluate import evaluation_users, users_per_item
from two_stage_rec.evaluation.movielens_protocols import split_for_protocol
from two_stage_rec.evaluation.policy_curve import PolicyCurve, measure_policies, ranked_candidates
from two_stage_rec.policies import MMR, MaxPerValue, Policy
from two_stage_rec.stores.faiss import FaissVectorStore
from two_stage_rec.training.blend import PIPELINE_CONFIG, train_pipeline

COMMAND = "TWO_STAGE_REC_DATA=path/to/ml-100k .venv/bin/python benchmarks/diversity.py"
PLOT = Path(__file__).resolve().parents[1] / "docs" / "assets" / "diversity.png"
TRADE_OFFS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
K = 10
CANDIDATES = 50


def configurations() -> dict[str, list[Policy]]:
    """Row name -> the policies of that row."""
    rows: dict[str, list[Policy]] = {"none": []}
    for relevance in ("rank", "minmax"):
        for trade_off in TRADE_OFFS[1:]:
            rows[f"mmr_{relevance}_{trade_off}"] = [MMR(trade_off, relevance=relevance)]
    rows["max_per_genre_2"] = [MaxPerValue("genres", 2)]
    rows["max_per_genre_3"] = [MaxPerValue("genres", 3)]
    rows["mmr_minmax_0.3+max_per_genre_2"] = [MMR(0.3), MaxPerValue("genres", 2)]
    return rows


def rows_of(curve: PolicyCurve) -> dict[str, dict[str, Any]]:
    """The library's measurement in this benchmark's result format (keys unchanged since its first run)."""
    rows = {}
    for name, row in curve.rows.items():
        rows[name] = {
            "policies": list(row.policies),
            f"ndcg@{K}": round(row.metrics[f"ndcg@{K}"], 4),
            "intra_list_distance": round(row.metrics[f"ild@{K}"], 4),
            "distinct_genres": round(row.metrics[f"distinct_genres@{K}"], 3),
            "catalog_coverage": round(row.metrics[f"coverage@{K}"], 4),
            "novelty": round(row.metrics[f"novelty@{K}"], 3),
            "policy_time_per_user": summarize(row.policy_seconds.tolist()),
        }
        if row.versus_first is not None:
            rows[name][f"ndcg@{K}_vs_none"] = row.versus_first.to_dict()
    return rows


def plot(rows: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, x_key, label in (
        (axes[0], "intra_list_distance", "intra-list diversity (mean pairwise cosine distance, top 10)"),
        (axes[1], "distinct_genres", "distinct genres in the top 10 (mean)"),
    ):
        for relevance, marker in (("minmax", "o"), ("rank", "s")):
            names = ["none"] + [f"mmr_{relevance}_{t}" for t in TRADE_OFFS[1:]]
            xs = [rows[n][x_key] for n in names]
            ys = [rows[n][f"ndcg@{K}"] for n in names]
            default = " (default)" if relevance == "minmax" else ""
            ax.plot(xs, ys, marker=marker, label=f"MMR, {relevance} relevance{default}")
            if relevance == "minmax":
                for t, x, y in zip(TRADE_OFFS, xs, ys, strict=True):
                    if t in (0.1, 0.2):  # too close to λ = 0 to label legibly
                        continue
                    ax.annotate(f"λ={t}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        caps = (("max_per_genre_2", "^"), ("max_per_genre_3", "v"), ("mmr_minmax_0.3+max_per_genre_2", "D"))
        for name, marker in caps:
            ax.plot(rows[name][x_key], rows[name][f"ndcg@{K}"], marker=marker, linestyle="none", label=name)
        ax.set_xlabel(label)
        ax.set_ylabel(f"NDCG@{K}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("MovieLens-100K (stratified 75/25), blend reranker, 50 candidates: relevance vs variety", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "diversity.json")
    parser.add_argument("--plot", type=Path, default=PLOT)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--replot", action="store_true", help="redraw the plot from the results file, measure nothing")
    args = parser.parse_args()
    if args.replot:
        plot(json.loads(args.out.read_text())["rows"], args.plot)
        return
    import tensorflow as tf

    facts = machine(tensorflow=tf.__version__)
    data = movielens_100k(progress=False)
    items = list(data.catalogue.item_ids)
    train, test = split_for_protocol("stratified", progress=False)
    started = time.perf_counter()
    trained = train_pipeline(train, test=test, items=items, config=PIPELINE_CONFIG, progress=False, ranking_stage=False)
    training_s = time.perf_counter() - started
    models = trained.models
    store = FaissVectorStore(dimension=models.dimension, metric="dotproduct")
    item_embedder = models.item_embedder()
    recommender = Recommender(
        user_embedder=models.user_embedder(), item_embedder=item_embedder, store=store, reranker=trained.blend
    )
    recommender.index_items(items, metadata=[data.catalogue.metadata_of(i) for i in items])

    users, relevant, excluded = evaluation_users(recommender, train, test, None, True)
    started = time.perf_counter()
    lists = ranked_candidates(recommender, users, excluded, candidates=CANDIDATES)
    ranking_s = time.perf_counter() - started
    curve = measure_policies(
        lists,
        configurations(),
        relevant,
        k=K,
        catalog_size=len(items),
        field="genres",
        popularity=(users_per_item(train), len(train.items_by_user())),
        n_resamples=args.resamples,
        seed=0,
    )
    assert all(len(ranked) >= K for ranked in lists), "every user has at least k candidates"
    rows = rows_of(curve)
    for name, row in rows.items():
        print(f"{name}: {row[f'ndcg@{K}']} {row['intra_list_distance']}", file=sys.stderr, flush=True)
    plot(rows, args.plot)
    write_results(
        args.out,
        {
            "benchmark": "diversity",
            "command": COMMAND,
            "machine": facts,
            "settings": {
                "protocol": "stratified",
                "training": "train_pipeline(PIPELINE_CONFIG), reranked by the learned blend",
                "store": "FaissVectorStore flat, dotproduct (exact)",
                "candidates": CANDIDATES,
                "k": K,
                "exclude_seen": True,
                "relevance": "every test rating (binary)",
                "users": len(users),
                "catalog_size": len(items),
                "item_vectors": "the retrieval item embeddings (what MMR and the distance are computed on)",
                "bootstrap_resamples": args.resamples,
                "bootstrap_seed": 0,
            },
            "training_wall_s": round(training_s, 1),
            "ranking_wall_s": round(ranking_s, 2),
            "rows": rows,
            "plot": "docs/assets/diversity.png",
        },
        quiet=True,
    )
    print(f"wrote {args.out} and {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
