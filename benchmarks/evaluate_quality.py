"""Does reranking help? Every metric on every MovieLens-100K protocol, retrieval only vs reranked.

For each protocol (``stratified``, ``random``, ``u1``; see
:mod:`two_stage_rec.evaluation.movielens_protocols`) and each training setup:

* ``default``: :func:`two_stage_rec.training.train_models` with the library's
  default configuration; rankers: retrieval only (``retrieval``), reranked by
  the scoring model's predicted rating (``scoring``, the notebook's
  pipeline), most popular.
* ``pipeline``: :func:`two_stage_rec.training.blend.train_pipeline` with
  ``PIPELINE_CONFIG`` (chosen on a validation split of the training ratings);
  rankers: retrieval only, reranked by the scoring model, reranked by the
  learned blend (``blend``), most popular. The run's ``blend`` entry is
  ``train_pipeline``'s report, which also says which second stage it
  recommends serving.

The ranker names are the reranker names of the library (``"scoring"``,
``"blend"``; retrieval only is ``"none"`` there and ``retrieval`` in
:func:`~two_stage_rec.evaluation.evaluate`'s results). Results written before
the ``Interactions`` refactor called the scoring ranker ``reranked`` (and its
comparison ``reranked vs retrieval``); it is the same measurement.

Every ranking excludes the user's training items; relevance is every test
rating; the vector store is exact FAISS (flat, dot product); 50 candidates per
user; paired comparisons against retrieval only with 10,000 bootstrap
resamples. Writes ``benchmarks/results/evaluation.json``.

Reproduce (about 5-10 minutes on 2 cores)::

    TWO_STAGE_REC_DATA=path/to/ml-100k .venv/bin/python benchmarks/evaluate_quality.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, machine, write_results

from two_stage_rec import Recommender
from two_stage_rec.datasets import movielens_100k
from two_stage_rec.evaluation import evaluate
from two_stage_rec.evaluation.movielens_protocols import MOVIELENS_PROTOCOLS, protocol_spec, split_for_protocol
from two_stage_rec.stores.faiss import FaissVectorStore
from two_stage_rec.training import TrainingConfig, train_models
from two_stage_rec.training.blend import PIPELINE_CONFIG, train_pipeline

COMMAND = "TWO_STAGE_REC_DATA=path/to/ml-100k .venv/bin/python benchmarks/evaluate_quality.py"
REFERENCES = {
    "stratified": {
        "microsoft_recommenders_bpr": {"ndcg@10": 0.442, "recall@10": 0.213},
        "microsoft_recommenders_bivae": {"ndcg@10": 0.475},
        "most_popular_brief": {"ndcg@10": 0.25},
        "tuned_implicit_als_brief": {"ndcg@10": 0.47},
        "rating_predictor_ranking_brief": {"ndcg@10": 0.16},
    },
    "random": {"tfrs_tutorial": {"retrieval_top_100_accuracy": 0.233}},
    "u1": {"gc_mc": {"rmse": 0.910}, "glocal_k": {"rmse": 0.889}, "tfrs_tutorial_mlp": {"rmse": 1.10}},
}


def _short(result: Any) -> dict[str, Any]:
    """The headline numbers of one evaluation, for the summary block."""
    k = result.k
    summary: dict[str, Any] = {
        name: {metric: round(ranker.metrics[f"{metric}@{k}"], 4) for metric in ("ndcg", "recall", "precision", "map")}
        for name, ranker in result.rankers.items()
    }
    for label, per_metric in result.comparisons.items():
        ndcg = per_metric["ndcg"]
        summary[label] = {
            f"delta_ndcg@{k}": round(ndcg.mean_difference, 4),
            "ci95": [round(ndcg.ci_low, 4), round(ndcg.ci_high, 4)],
            "verdict": ndcg.verdict(),
        }
    if result.rating_errors:
        summary["scoring_model_rmse"] = round(result.rating_errors["rmse"], 4)
    return summary


def run_protocol(protocol: str, setup: str, *, resamples: int) -> dict[str, Any]:
    items = list(movielens_100k(progress=False).catalogue.item_ids)
    train, test = split_for_protocol(protocol, progress=False)
    started = time.perf_counter()
    blend_report = None
    if setup == "pipeline":
        trained = train_pipeline(train, test=test, items=items, config=PIPELINE_CONFIG, progress=False)
        models, blend, blend_report, config = trained.models, trained.blend, trained.report, PIPELINE_CONFIG
    else:
        config = TrainingConfig()
        models, blend = train_models(train, test=test, items=items, config=config, progress=False), None
    training_s = time.perf_counter() - started
    store = FaissVectorStore(dimension=models.dimension, metric="dotproduct")
    recommender = Recommender(
        user_embedder=models.user_embedder(),
        item_embedder=models.item_embedder(),
        store=store,
        reranker=models.reranker,
    )
    recommender.index_items(items)
    rerankers: dict[str, Any] = {"scoring": models.reranker}
    if blend is not None:
        rerankers["blend"] = blend
    started = time.perf_counter()
    result = evaluate(
        recommender,
        train,
        test,
        k=10,
        cutoffs=(1, 5, 10, 20),
        candidates=50,
        rerankers=rerankers,
        measure_rating_errors=True,
        n_resamples=resamples,
        seed=0,
    )
    evaluation_s = time.perf_counter() - started
    # The brief's "ranking by a rating predictor" baseline: the scoring model ranks the whole catalogue.
    whole = evaluate(
        recommender,
        train,
        test,
        k=10,
        cutoffs=(1, 5, 10, 20),
        candidates=len(items),
        rerankers={"rating_model_ranks_all_items": models.reranker},
        baselines=False,
        n_resamples=resamples,
        seed=0,
    )
    ranker = whole.rankers["rating_model_ranks_all_items"]
    versus = whole.comparisons["rating_model_ranks_all_items vs retrieval"]["ndcg"]
    rating_only = {
        "description": "every unseen movie ranked by the scoring model's predicted rating (no retrieval stage)",
        "metrics": ranker.metrics,
        "ndcg@10_vs_retrieval": versus.to_dict(),
    }
    return {
        "protocol": protocol,
        "setup": setup,
        "description": protocol_spec(protocol).description,
        "training_config": config.to_dict(),
        "training_report_metrics": models.report.metrics,
        "blend": blend_report,
        "training_wall_s": round(training_s, 1),
        "evaluation_wall_s": round(evaluation_s, 2),
        "headline": {
            **_short(result),
            "rating_model_ranks_all_items": {"ndcg": round(ranker.metrics["ndcg@10"], 4)},
        },
        "evaluation": result.to_dict(),
        "rating_model_ranks_all_items": rating_only,
    }


def git_state() -> dict[str, Any]:
    """The commit the numbers were measured on, and whether the tree had uncommitted changes."""
    import subprocess

    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "uncommitted_changes": git("status", "--porcelain", "src") != ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocols", nargs="+", default=list(MOVIELENS_PROTOCOLS), choices=MOVIELENS_PROTOCOLS)
    parser.add_argument("--setups", nargs="+", default=["default", "pipeline"], choices=["default", "pipeline"])
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "evaluation.json")
    args = parser.parse_args()
    if not os.environ.get("TWO_STAGE_REC_DATA"):
        print("note: TWO_STAGE_REC_DATA is not set; the data is read from the cache or downloaded", file=sys.stderr)
    import tensorflow as tf

    facts = machine(tensorflow=tf.__version__)
    runs = []
    for protocol in args.protocols:
        for setup in args.setups:
            print(f"{protocol} / {setup} ...", file=sys.stderr, flush=True)
            run = run_protocol(protocol, setup, resamples=args.resamples)
            print(f"  {run['headline']}", file=sys.stderr, flush=True)
            runs.append(run)
    facts["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    write_results(
        args.out,
        {
            "benchmark": "evaluate_quality",
            "command": COMMAND,
            "git": git_state(),
            "machine": facts,
            "settings": {
                "k": 10,
                "candidates": 50,
                "exclude_seen": True,
                "relevance": "every test rating",
                "store": "FaissVectorStore flat, dotproduct (exact)",
                "bootstrap_resamples": args.resamples,
                "bootstrap_seed": 0,
            },
            "references": REFERENCES,
            "summary": {f"{run['protocol']}/{run['setup']}": run["headline"] for run in runs},
            "runs": runs,
        },
        quiet=True,
    )
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
