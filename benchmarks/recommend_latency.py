"""Single-user and all-users recommend latency on MovieLens-100K with trained models.

Top 5 of 50 candidates, for users drawn round-robin from all 943, five ways,
timed interleaved in one run (each round runs every case once in a shuffled
order, so machine noise hits them alike):

* ``notebook_loop``: the notebook's method. ``user_model`` once, top 50 from a
  raw FAISS index, then per candidate one ``item_model(np.array([id]))`` call and
  one ``scoring_model(tf.concat([u, m], axis=1))`` call in a Python loop; sort.
  The baseline. (The notebook queried Pinecone; raw FAISS here isolates the loop.)
* ``library_tf``: :class:`~two_stage_rec.Recommender` with the TensorFlow
  adapters (``SavedModelEmbedder`` for users, ``SavedModelReranker``) over a
  flat :class:`~two_stage_rec.stores.faiss.FaissVectorStore` holding every movie
  with its metadata; reranks with the vectors the store returns.
* ``library_numpy``: the same with ``TableEmbedder`` + ``MLPReranker``.
* ``floor_tf`` / ``floor_numpy``: no library. The user vector (one
  ``user_model`` call / a dict lookup into the table), one raw ``faiss`` search,
  one batched scoring call (``scoring_model`` / the same MLP written inline in
  numpy), ``argsort``. What any implementation must at least spend.

Also measured: ``library_numpy_exclude_seen`` (the service's request: the
user's rated movies excluded, so 50 + |seen| are retrieved), and
``recommend_batch`` for all 943 users in one call (numpy and TensorFlow paths,
with and without exclusions).

``served_pipelines`` (when the bundle holds a learned ranking stage): the
served numpy pipelines side by side, each ``assemble(bundle, store="faiss",
reranker=...)`` answering ``recommend(user, k=5)`` with the user's rated
movies excluded: ``retrieval_only`` (``"none"``), ``scoring`` and ``blend``
(when the bundle holds them) and ``ranker`` (the ranking stage: 50 + 50
merged candidates, features, tree ensemble), interleaved in one loop that records wall-clock and
process CPU time per call (CPU time is what a busy machine distorts least),
then ``recommend_batch`` for all 943 users per pipeline (both clocks again),
with the default BLAS/OpenMP thread pools and, when ``threadpoolctl`` is
installed, on one thread as the service computes
(``recommend_batch_all_users_one_thread*``). Its ``agreement``
checks that the served ranker recommends what the stage itself ranks.

Models: ``--models DIR`` (a models directory from ``two-stage-rec train``), else
models trained once with :func:`two_stage_rec.training.train_models` on the
notebook's random 80/20 split and cached in ``$TWO_STAGE_REC_CACHE`` (or the
user cache) under ``benchmark-models-seed<seed>``. Data: ``$TWO_STAGE_REC_DATA``.

Usage::

    .venv/bin/python benchmarks/recommend_latency.py [--rounds 1000] [--models models/] [--quick]

Writes ``benchmarks/results/recommend_latency.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, display_path, machine, measure_interleaved, ratio, summarize, write_results

RESULTS = RESULTS_DIR / "recommend_latency.json"
K, CANDIDATES = 5, 50


# ------------------------------------------------------------------ models


def cached_models_dir(seed: int) -> Path:
    from two_stage_rec.datasets import default_cache_dir

    return default_cache_dir() / f"benchmark-models-seed{seed}"


def ensure_models(models: Path | None, *, seed: int = 42, quick: bool = False) -> Path:
    """A complete models directory: ``models`` as given, else trained once and cached."""
    from two_stage_rec.bundle import is_bundle, read_manifest

    if models is not None:
        return models
    target = cached_models_dir(seed)
    if is_bundle(target) and read_manifest(target).saved_models:
        return target
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from dataclasses import replace

    from two_stage_rec.training import TrainingConfig
    from two_stage_rec.workflow import train_movielens_bundle

    config = TrainingConfig(seed=seed)
    if quick:  # latency does not depend on how well the weights are trained
        config = replace(
            config,
            retrieval=replace(config.retrieval, epochs=1),
            scoring=replace(config.scoring, epochs=1),
        )
    print(f"training models into {target} (once; cached)", file=sys.stderr)
    train_movielens_bundle(target, config=config, saved_models=True, measure=False, progress=False)
    return target


# ------------------------------------------------------------ the five cases


def _raw_mlp(layers: list[tuple[np.ndarray, np.ndarray]], product: bool, d_user: int) -> Callable[..., np.ndarray]:
    """The scoring MLP written inline in numpy, as anyone would without the library."""

    def score(users: np.ndarray, items: np.ndarray) -> np.ndarray:
        x = np.concatenate([users, items, users * items] if product else [users, items], axis=1)
        for w, b in layers[:-1]:
            x = np.maximum(x @ w + b, 0.0)
        w, b = layers[-1]
        return (x @ w + b)[:, 0]

    return score


def build(models_dir: Path) -> dict[str, Any]:
    """Both recommenders, the raw models and the raw FAISS index, over the same catalogue."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import faiss
    import tensorflow as tf

    from two_stage_rec.assembly import assemble

    # The notebook's loop reranks by the scoring model: measure the same second stage.
    started = time.perf_counter()
    numpy_built = assemble(models_dir, store="faiss", backend="numpy", reranker="scoring")
    numpy_build_s = time.perf_counter() - started
    started = time.perf_counter()
    tf_built = assemble(models_dir, store="faiss", backend="tensorflow", reranker="scoring")
    tf_build_s = time.perf_counter() - started

    user_table = numpy_built.bundle.user_embedder
    item_table = numpy_built.bundle.item_embedder
    mlp = numpy_built.bundle.scoring
    item_ids = item_table.keys  # type: ignore[attr-defined]
    item_vectors = np.ascontiguousarray(item_table.vectors)  # type: ignore[attr-defined]
    index = faiss.IndexFlatIP(item_vectors.shape[1])
    index.add(item_vectors)

    loaded = {
        name: tf.saved_model.load(str(models_dir / name)) for name in ("user_model", "item_model", "scoring_model")
    }
    return {
        "tf": tf,
        "numpy_built": numpy_built,
        "tf_built": tf_built,
        "build_s": {"numpy_backend": round(numpy_build_s, 3), "tensorflow_backend": round(tf_build_s, 3)},
        "user_row": {key: row for row, key in enumerate(user_table.keys)},  # type: ignore[attr-defined]
        "user_vectors": np.ascontiguousarray(user_table.vectors),  # type: ignore[attr-defined]
        "item_ids": np.array(item_ids, dtype=object),
        "item_vectors": item_vectors,
        "index": index,
        "raw_mlp": _raw_mlp(mlp.layers(), mlp.features == "concat_product", mlp.user_dimension),  # type: ignore[attr-defined]
        "user_model": loaded["user_model"],
        "item_model": loaded["item_model"],
        "scoring_model": loaded["scoring_model"],
    }


def cases(env: dict[str, Any], users: list[str]) -> dict[str, Callable[[int], object]]:
    import faiss

    tf = env["tf"]
    index = env["index"]
    threads = faiss.omp_get_max_threads()
    item_ids, item_vectors = env["item_ids"], env["item_vectors"]
    user_row, user_vectors, raw_mlp = env["user_row"], env["user_vectors"], env["raw_mlp"]
    user_model, item_model, scoring_model = env["user_model"], env["item_model"], env["scoring_model"]
    numpy_rec = env["numpy_built"].recommender
    tf_rec = env["tf_built"].recommender
    seen = env["numpy_built"].bundle.seen_items
    n = len(users)

    def notebook_loop(r: int) -> list[tuple[str, float]]:
        user = users[r % n]
        u = user_model(np.array([user]))
        labels = search(u.numpy())
        scored = []
        for label in labels[0]:
            movie_id = item_ids[label]
            m = item_model(np.array([movie_id]))
            rating = scoring_model(tf.concat([u, m], axis=1))
            scored.append((movie_id, float(rating[0, 0])))
        return sorted(scored, key=lambda pair: pair[1], reverse=True)[:K]

    def search(u: np.ndarray) -> np.ndarray:
        # One OpenMP thread for one query: FAISS gains nothing from more, and on a
        # busy machine a parallel region waits for descheduled workers.
        faiss.omp_set_num_threads(1)
        try:
            return index.search(u, CANDIDATES)[1]
        finally:
            faiss.omp_set_num_threads(threads)

    def floor_tf(r: int) -> list[str]:
        u = user_model(tf.constant([users[r % n]])).numpy()
        labels = search(u)
        rows = labels[0]
        pairs = np.concatenate([np.repeat(u, rows.size, axis=0), item_vectors[rows]], axis=1)
        scores = scoring_model(tf.constant(pairs)).numpy()[:, 0]
        return item_ids[rows[np.argsort(-scores)[:K]]].tolist()

    def floor_numpy(r: int) -> list[str]:
        u = user_vectors[user_row[users[r % n]]][None, :]
        labels = search(u)
        rows = labels[0]
        scores = raw_mlp(np.repeat(u, rows.size, axis=0), item_vectors[rows])
        return item_ids[rows[np.argsort(-scores)[:K]]].tolist()

    return {
        "notebook_loop": notebook_loop,
        "library_tf": lambda r: tf_rec.recommend(users[r % n], k=K, candidates=CANDIDATES),
        "library_numpy": lambda r: numpy_rec.recommend(users[r % n], k=K, candidates=CANDIDATES),
        "library_numpy_exclude_seen": lambda r: numpy_rec.recommend(
            users[r % n], k=K, candidates=CANDIDATES, exclude=seen.get(users[r % n], ())
        ),
        "floor_tf": floor_tf,
        "floor_numpy": floor_numpy,
    }


SERVED_RERANKER = {"retrieval_only": "none", "scoring": "scoring", "blend": "blend", "ranker": "ranker"}


def build_served(bundle: Any, store: str = "faiss") -> dict[str, Any] | None:
    """The bundle's served numpy pipelines (retrieval only, and each second stage it holds), or None
    when it has no learned ranking stage."""
    from two_stage_rec.assembly import assemble

    if bundle.ranking_stage is None:
        return None
    held = {"retrieval_only": True, "scoring": bundle.scoring is not None, "blend": bundle.blend is not None}
    names = [name for name in SERVED_RERANKER if held.get(name, True)]
    return {name: assemble(bundle, store=store, reranker=SERVED_RERANKER[name]) for name in names}


def interleaved_wall_and_cpu(
    cases: dict[str, Callable[[int], object]], rounds: int, *, warmup: int
) -> dict[str, dict[str, dict[str, float]]]:
    """Like :func:`_common.measure_interleaved`, recording wall-clock and process CPU time of each call."""
    for case in cases.values():
        for i in range(warmup):
            case(i)
    wall: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    rng = np.random.default_rng(0)
    names = list(cases)
    for r in range(rounds):
        rng.shuffle(names)
        for name in names:
            case = cases[name]
            start_cpu, start = time.process_time(), time.perf_counter()
            case(r)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {"wall": {n: summarize(v) for n, v in wall.items()}, "cpu": {n: summarize(v) for n, v in cpu.items()}}


def served_timings(served: dict[str, Any], users: list[str], rounds: int, batch_repeats: int) -> dict[str, Any]:
    """One user (interleaved, wall and CPU) and all users per served pipeline, plus the ranker's agreement."""
    n = len(users)
    single = interleaved_wall_and_cpu(
        {
            name: (lambda r, rec=served[name]: rec.recommend(users[r % n], k=K, candidates=CANDIDATES))
            for name in served
        },
        rounds,
        warmup=min(10, max(1, rounds // 10)),
    )
    out: dict[str, Any] = {"single_user": single["wall"], "single_user_cpu": single["cpu"]}
    for clock, summaries in (("wall", single["wall"]), ("cpu", single["cpu"])):
        p50 = {name: s["p50_ms"] for name, s in summaries.items()}
        out[f"ratios_{clock}"] = {
            f"ranker_over_{name}": ratio(p50["ranker"], p50[name]) for name in served if name != "ranker"
        }
    all_users = sorted(users)
    batch_cases = {
        name: (lambda _, rec=served[name]: rec.recommend_batch(all_users, k=K, candidates=CANDIDATES))
        for name in served
    }
    runs = {"": interleaved_wall_and_cpu(batch_cases, batch_repeats, warmup=1)}
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the serve extra's; without it only the default thread pools are measured
        out["one_thread"] = "threadpoolctl not installed"
    else:
        # As the service computes (serving.batching: compute_threads): BLAS and OpenMP on one thread,
        # which on a busy machine avoids waiting for descheduled helper threads.
        with threadpool_limits(limits=1):
            runs["_one_thread"] = interleaved_wall_and_cpu(batch_cases, batch_repeats, warmup=1)
    for suffix, batch in runs.items():
        for clock_suffix, clock in (("", "wall"), ("_cpu", "cpu")):
            out[f"recommend_batch_all_users{suffix}{clock_suffix}"] = {
                "users": len(all_users),
                **{
                    name: {**summary, "p50_s": round(summary["p50_ms"] / 1e3, 4)}
                    for name, summary in batch[clock].items()
                },
            }
    # The served ranker must recommend what the stage ranks (catalogue items, rated movies excluded).
    ranker = served["ranker"]
    checked = all_users[: min(100, len(all_users))]
    stage_ids = ranker.bundle.ranking_stage.recommend(checked, K, exclude=[ranker.seen(u) for u in checked])
    same = sum(
        [rec.item_id for rec in ranker.recommend(user, k=K)] == [i for i in stage_ids[row].tolist() if i]
        for row, user in enumerate(checked)
    )
    out["agreement"] = {"ranker_same_top5_as_ranking_stage": round(same / len(checked), 3)}
    return out


def check_agreement(
    env: dict[str, Any], calls: dict[str, Callable[[int], object]], users: list[str], rounds: int
) -> dict[str, float]:
    """The cases must recommend the same movies before their speed means anything."""
    rows = min(len(users), 100, rounds)
    same: dict[str, int] = {"library_tf": 0, "library_numpy": 0, "floor_tf": 0, "notebook_loop": 0}
    for r in range(rows):
        reference = calls["floor_numpy"](r)
        for name in same:
            result = calls[name](r)
            if name.startswith("library"):
                got = [rec.item_id for rec in result]  # type: ignore[attr-defined]
            elif name == "notebook_loop":
                got = [movie for movie, _ in result]  # type: ignore[attr-defined]
            else:
                got = result
            same[name] += set(got) == set(reference)  # type: ignore[arg-type]
    return {f"{name}_same_top5_as_floor_numpy": round(count / rows, 3) for name, count in same.items()}


def batch_timings(env: dict[str, Any], users: list[str], repeats: int) -> dict[str, Any]:
    numpy_rec = env["numpy_built"].recommender
    tf_rec = env["tf_built"].recommender
    seen = env["numpy_built"].bundle.seen_items
    exclude = [seen.get(u, frozenset()) for u in users]
    batch_cases: dict[str, Callable[[int], object]] = {
        "numpy": lambda _: numpy_rec.recommend_batch(users, k=K, candidates=CANDIDATES),
        "tensorflow": lambda _: tf_rec.recommend_batch(users, k=K, candidates=CANDIDATES),
        "numpy_exclude_seen": lambda _: numpy_rec.recommend_batch(users, k=K, candidates=CANDIDATES, exclude=exclude),
    }
    timings = measure_interleaved(batch_cases, repeats, warmup=1)
    out: dict[str, Any] = {"users": len(users)}
    for name, summary in timings.items():
        out[name] = {**summary, "p50_s": round(summary["p50_ms"] / 1e3, 4)}
    return out


def run(
    models: Path | None, rounds: int, batch_repeats: int, quick: bool, out: Path | None, quiet: bool = False
) -> dict[str, Any]:
    import tensorflow as tf

    results: dict[str, Any] = {
        "machine": machine(
            tensorflow=tf.__version__, tf_intra_op_threads=str(tf.config.threading.get_intra_op_parallelism_threads())
        ),
    }
    models_dir = ensure_models(models, quick=quick)
    env = build(models_dir)
    users = sorted(env["user_row"], key=int)
    order = [users[i] for i in np.random.default_rng(1).permutation(len(users))]
    calls = cases(env, order)
    results["config"] = {
        "models": display_path(models_dir),
        "training_report": "present" if env["numpy_built"].bundle.report is not None else "absent",
        "users": len(users),
        "items_indexed": env["numpy_built"].indexed,
        "k": K,
        "candidates": CANDIDATES,
        "store": "FaissVectorStore flat (exact), dotproduct, with movie metadata",
        "rounds": rounds,
        "notebook_loop_every": 10,
        "build_recommender_s": env["build_s"],
    }
    results["agreement"] = check_agreement(env, calls, order, rounds)
    warmup = min(10, max(1, rounds // 10))
    single = measure_interleaved(calls, rounds, every={"notebook_loop": 10}, warmup=warmup)
    results["single_user"] = single
    p50 = {name: s["p50_ms"] for name, s in single.items()}
    results["ratios"] = {
        "notebook_loop_over_library_tf": ratio(p50["notebook_loop"], p50["library_tf"], 1),
        "notebook_loop_over_library_numpy": ratio(p50["notebook_loop"], p50["library_numpy"], 1),
        "library_tf_over_floor_tf": ratio(p50["library_tf"], p50["floor_tf"]),
        "library_numpy_over_floor_numpy": ratio(p50["library_numpy"], p50["floor_numpy"]),
        "library_tf_over_notebook_loop": ratio(p50["library_tf"], p50["notebook_loop"], 4),
        "library_numpy_over_notebook_loop": ratio(p50["library_numpy"], p50["notebook_loop"], 4),
        "floor_tf_over_notebook_loop": ratio(p50["floor_tf"], p50["notebook_loop"], 4),
        "floor_numpy_over_notebook_loop": ratio(p50["floor_numpy"], p50["notebook_loop"], 4),
    }
    results["recommend_batch_all_users"] = batch_timings(env, users, batch_repeats)
    batch = results["recommend_batch_all_users"]
    served = build_served(env["numpy_built"].bundle)
    if served is not None:
        results["served_pipelines"] = served_timings(served, order, rounds, batch_repeats)
    results["goals"] = {
        "tf_p50_le_1.5ms": p50["library_tf"] <= 1.5,
        "tf_ge_30x_faster_than_notebook": results["ratios"]["notebook_loop_over_library_tf"] >= 30,
        "numpy_p50_le_0.3ms": p50["library_numpy"] <= 0.3,
        "tf_overhead_over_floor_le_1.2": results["ratios"]["library_tf_over_floor_tf"] <= 1.2,
        "numpy_overhead_over_floor_le_1.2": results["ratios"]["library_numpy_over_floor_numpy"] <= 1.2,
        "batch_all_users_numpy_le_0.3s": batch["numpy"]["p50_s"] <= 0.3,
        "batch_all_users_tf_le_0.3s": batch["tensorflow"]["p50_s"] <= 0.3,
    }
    if served is not None:
        stage = results["served_pipelines"]
        results["goals"].update(
            {
                "ranker_batch_all_users_le_0.5s": stage["recommend_batch_all_users"]["ranker"]["p50_s"] <= 0.5,
                "ranker_batch_all_users_cpu_le_0.5s": stage["recommend_batch_all_users_cpu"]["ranker"]["p50_s"] <= 0.5,
            }
        )
        if "recommend_batch_all_users_one_thread" in stage:
            one_thread = stage["recommend_batch_all_users_one_thread"]["ranker"]["p50_s"]
            results["goals"]["ranker_batch_all_users_one_thread_le_0.5s"] = one_thread <= 0.5
        if "blend" in served:
            results["goals"].update(
                {
                    "ranker_one_user_p50_le_2x_blend": stage["ratios_wall"]["ranker_over_blend"] <= 2.0,
                    "ranker_one_user_cpu_p50_le_2x_blend": stage["ratios_cpu"]["ranker_over_blend"] <= 2.0,
                }
            )
    if out is not None:
        write_results(out, results, quiet=quiet)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=None, help="models directory (default: train once, cached)")
    parser.add_argument("--rounds", type=int, default=1000, help="interleaved rounds (notebook loop every 10th)")
    parser.add_argument("--batch-repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument(
        "--out", type=Path, default=None, help="default: results/recommend_latency.json (--quick: _quick.json)"
    )
    args = parser.parse_args(argv)
    out = args.out or (RESULTS.with_name(RESULTS.stem + "_quick.json") if args.quick else RESULTS)
    rounds = min(args.rounds, 200) if args.quick else args.rounds
    repeats = min(args.batch_repeats, 5) if args.quick else args.batch_repeats
    run(args.models, rounds, repeats, args.quick, out)


if __name__ == "__main__":
    main()
