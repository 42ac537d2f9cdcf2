"""Latency and throughput of the HTTP service, measured over real loopback HTTP.

The server runs in its own process (this script re-launched with ``--serve``),
so the load generator and the server do not share a GIL. It serves either
synthetic models of MovieLens-100K's size (943 users, 1,682 items, 32-d, a
64-64-1 numpy MLP reranker, ~106 seen items per user) or, with ``--models``,
a trained bundle through ``two_stage_rec.assembly.assemble`` (its recommended reranker).

Measured in one run:

1. ``sequential`` (interleaved): one keep-alive client per server, N rounds; each
   round times, in a freshly shuffled order, one call of every case, so machine
   noise spreads evenly over them and their ratios mean something:

   * ``in_process``: ``Recommender.recommend`` called directly, no HTTP (the floor);
   * ``healthz``: ``GET /healthz``, the HTTP + client floor;
   * ``recommendations``: ``GET /recommendations/{id}``, the service as shipped;
   * ``sync_def`` / ``async_def``: the same handler body as a ``def`` endpoint
     (run in FastAPI's thread pool, as the service does) and as an ``async def``
     one (run on the event loop);
   * ``recommendations_h11``: the service on uvicorn's pure-Python HTTP parser
     (h11) instead of httptools, which the ``serve`` extra installs.

2. ``concurrent``: C concurrent keep-alive clients (asyncio + httpx.AsyncClient)
   on the service, then on the ``def`` and ``async def`` variants with a
   ``/healthz`` prober alongside (does a busy server still answer liveness?).
   These run one after the other, so compare them with care.
3. ``batch_all_users``: one ``POST /recommendations`` for every user.
4. ``liveness_during_batches``: ``/healthz`` probed every 5 ms while
   whole-catalogue batches run back to back, with the batch handler as ``def``
   and as ``async def``: an ``async def`` handler holds the event loop for the
   whole batch.

Usage::

    .venv/bin/python benchmarks/serve_latency.py                  # synthetic models
    .venv/bin/python benchmarks/serve_latency.py --models models/ --store faiss [--backend tensorflow]

Writes ``benchmarks/results/serve_latency.json`` (with ``--models``:
``serve_latency_trained_<backend>.json``). Client and server compete for the
same cores (and so does any other process: the load average is recorded):
quote medians and ratios from one run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from two_stage_rec import Recommender
from two_stage_rec.embedders.table import TableEmbedder
from two_stage_rec.stores.memory import InMemoryVectorStore
from two_stage_rec.types import FloatMatrix, FloatVector

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import display_path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
N_USERS, N_ITEMS, DIMENSION, SEEN_PER_USER = 943, 1682, 32, 106


# ----------------------------------------------------------------- the models


class _NumpyMLP:
    """A 64-64-1 ReLU MLP on concat(user, item): the shape and cost of the notebook's scoring model."""

    def __init__(self, rng: np.random.Generator, dimension: int) -> None:
        self.w1 = rng.normal(scale=0.2, size=(2 * dimension, 64)).astype(np.float32)
        self.b1 = np.zeros(64, np.float32)
        self.w2 = rng.normal(scale=0.2, size=(64, 1)).astype(np.float32)

    def score(self, user_vectors: FloatMatrix, item_vectors: FloatMatrix) -> FloatVector:
        hidden = np.maximum(np.concatenate([user_vectors, item_vectors], axis=1) @ self.w1 + self.b1, 0.0)
        scores: FloatVector = (hidden @ self.w2).reshape(-1).astype(np.float32)
        return scores


def synthetic(seed: int = 0) -> tuple[Recommender, dict[str, list[str]], dict[str, str]]:
    """ML-100K-sized synthetic recommender, seen items and titles (deterministic in ``seed``)."""
    rng = np.random.default_rng(seed)
    user_ids = [str(u) for u in range(1, N_USERS + 1)]
    item_ids = [str(i) for i in range(1, N_ITEMS + 1)]
    recommender = Recommender(
        user_embedder=TableEmbedder(user_ids, rng.normal(size=(N_USERS, DIMENSION))),
        item_embedder=TableEmbedder(item_ids, rng.normal(size=(N_ITEMS, DIMENSION))),
        store=InMemoryVectorStore(dimension=DIMENSION),
        reranker=_NumpyMLP(rng, DIMENSION),
    )
    recommender.index_items(item_ids, metadata=[{"title": f"Movie {i}"} for i in item_ids])
    seen = {u: [str(i) for i in rng.choice(N_ITEMS, SEEN_PER_USER, replace=False) + 1] for u in user_ids}
    return recommender, seen, {}


def trained(models: Path, store: str, backend: str) -> tuple[Recommender, dict[str, list[str]], dict[str, str]]:
    """The recommender ``two-stage-rec serve --models`` would serve."""
    from two_stage_rec.assembly import assemble

    served = assemble(
        models,
        store="faiss" if store == "faiss" else "memory",
        backend="tensorflow" if backend == "tensorflow" else "numpy",
    )
    titles = {item: served.label(item) for item in served.bundle.catalogue.item_ids}
    return served.recommender, {u: list(s) for u, s in served.bundle.seen_items.items()}, titles


def build(args: argparse.Namespace) -> tuple[Recommender, dict[str, list[str]], dict[str, str]]:
    return trained(Path(args.models), args.store, args.backend) if args.models else synthetic()


# ------------------------------------------------------------------ the server


def serve(args: argparse.Namespace) -> None:
    """Child process: the real service plus two benchmark-only variants of its handler."""
    from fastapi import Response

    from two_stage_rec.serving import create_app, run
    from two_stage_rec.serving.schemas import RecommendedItem, UserRecommendations

    recommender, seen, titles = build(args)
    app = create_app(recommender, item_titles=titles, seen_items=seen)
    frozen_seen = {u: frozenset(s) for u, s in seen.items()}

    def handle(user_id: str, k: int) -> Response:
        recommendations = recommender.recommend(user_id, k=k, candidates=50, exclude=frozen_seen.get(user_id, ()))
        body = UserRecommendations(
            user_id=user_id, items=[RecommendedItem.from_recommendation(r, None) for r in recommendations]
        )
        return Response(body.model_dump_json(), media_type="application/json")

    # The same body as the service's endpoint, once as `def` and once as `async def`.
    @app.get("/bench/sync/{user_id}", response_model=UserRecommendations)
    def sync_variant(user_id: str, k: int = 5) -> Response:
        return handle(user_id, k)

    @app.get("/bench/async/{user_id}", response_model=UserRecommendations)
    async def async_variant(user_id: str, k: int = 5) -> Response:
        return handle(user_id, k)

    # A whole-catalogue batch, as `def` and as `async def`: how long does it hold up /healthz?
    def handle_batch(user_ids: list[str]) -> Response:
        exclude = [frozen_seen.get(u, frozenset()) for u in user_ids]
        batches = recommender.recommend_batch(user_ids, k=5, candidates=50, exclude=exclude)
        return Response(json.dumps({"users": len(batches)}), media_type="application/json")

    @app.post("/bench/sync-batch")
    def sync_batch(user_ids: list[str]) -> Response:
        return handle_batch(user_ids)

    @app.post("/bench/async-batch")
    async def async_batch(user_ids: list[str]) -> Response:
        return handle_batch(user_ids)

    if args.http == "auto":  # what `two-stage-rec serve` runs
        run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    else:  # the A/B against uvicorn's pure-Python parser
        import uvicorn

        config = uvicorn.Config(
            app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, ws="none", http=args.http
        )
        uvicorn.Server(config).run()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(argv: Sequence[str]) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    child = subprocess.Popen([sys.executable, __file__, *argv, "--serve", "--port", str(port)])
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"server exited with code {child.returncode}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1.0).status_code == 200:
                return child, base_url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    child.terminate()
    raise RuntimeError("server did not become ready within 120 s")


# ------------------------------------------------------------------ measuring


def summary(latencies_s: Sequence[float], wall_s: float | None = None) -> dict[str, float]:
    ms = np.asarray(latencies_s) * 1e3
    result = {
        "n": int(ms.size),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p90_ms": round(float(np.percentile(ms, 90)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
    }
    if wall_s is not None:
        result["requests_per_s"] = round(ms.size / wall_s, 1)
    return result


def time_calls(call: Callable[[], object], n: int) -> dict[str, float]:
    latencies = []
    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t0)
    return summary(latencies, time.perf_counter() - start)


def interleaved(
    cases: dict[str, Callable[[str], object]], users: Sequence[str], rounds: int, seed: int = 2
) -> dict[str, dict[str, float]]:
    """Time one call of every case per round, in a fresh shuffled order each round."""
    for case in cases.values():  # warm up: connections, thread pool, caches
        for user in users[:50]:
            case(user)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    rng = np.random.default_rng(seed)
    for r in range(rounds):
        user = users[r % len(users)]
        rng.shuffle(names)
        for name in names:
            t0 = time.perf_counter()
            cases[name](user)
            samples[name].append(time.perf_counter() - t0)
    return {name: summary(times) for name, times in samples.items()}


def getter(client: httpx.Client, path: str) -> Callable[[str], object]:
    def get(user: str) -> object:
        return client.get(path.format(user=user)).raise_for_status()

    return get


async def _concurrent(
    base_url: str, path: str, users: Sequence[str], n: int, concurrency: int, probe: bool
) -> dict[str, Any]:
    latencies: list[float] = []
    probe_latencies: list[float] = []
    remaining = iter(range(n))
    done = asyncio.Event()
    limits = httpx.Limits(max_connections=concurrency + 1, max_keepalive_connections=concurrency + 1)
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0, limits=limits) as client:

        async def worker() -> None:
            for i in remaining:
                t0 = time.perf_counter()
                response = await client.get(f"{path}/{users[i % len(users)]}")
                latencies.append(time.perf_counter() - t0)
                response.raise_for_status()

        async def prober() -> None:
            while not done.is_set():
                t0 = time.perf_counter()
                (await client.get("/healthz")).raise_for_status()
                probe_latencies.append(time.perf_counter() - t0)
                await asyncio.sleep(0.01)

        await asyncio.gather(*(client.get(f"{path}/{u}") for u in users[:concurrency]))  # warm up
        probe_task = asyncio.create_task(prober()) if probe else None
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
        done.set()
        if probe_task is not None:
            await probe_task
    result: dict[str, Any] = {"concurrency": concurrency, **summary(latencies, wall)}
    if probe:
        result["healthz_under_load"] = summary(probe_latencies)
    return result


def concurrent(
    base_url: str, path: str, users: Sequence[str], n: int, concurrency: int, *, probe: bool = False
) -> dict[str, Any]:
    return asyncio.run(_concurrent(base_url, path, users, n, concurrency, probe))


async def _liveness_during_batches(base_url: str, path: str, users: Sequence[str], repeats: int) -> dict[str, Any]:
    batch_latencies: list[float] = []
    probe_latencies: list[float] = []
    done = asyncio.Event()
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as client:

        async def batches() -> None:
            for _ in range(repeats):
                t0 = time.perf_counter()
                (await client.post(path, json=list(users))).raise_for_status()
                batch_latencies.append(time.perf_counter() - t0)
            done.set()

        async def prober() -> None:
            while not done.is_set():
                t0 = time.perf_counter()
                (await client.get("/healthz")).raise_for_status()
                probe_latencies.append(time.perf_counter() - t0)
                await asyncio.sleep(0.005)

        (await client.post(path, json=list(users[:10]))).raise_for_status()  # warm up
        await asyncio.gather(batches(), prober())
    return {"batch": summary(batch_latencies), "healthz_during_batches": summary(probe_latencies)}


def liveness_during_batches(base_url: str, path: str, users: Sequence[str], repeats: int) -> dict[str, Any]:
    """Probe /healthz every 5 ms while whole-catalogue batches run back to back."""
    return asyncio.run(_liveness_during_batches(base_url, path, users, repeats))


def batch(base_url: str, users: Sequence[str], repeats: int) -> dict[str, float]:
    with httpx.Client(base_url=base_url, timeout=60.0) as client:
        client.post("/recommendations", json={"user_ids": list(users[:10])}).raise_for_status()

        def one() -> None:
            client.post("/recommendations", json={"user_ids": list(users), "k": 5}).raise_for_status()

        result = time_calls(one, repeats)
    result["users_per_request"] = len(users)
    result["users_per_s"] = round(len(users) * 1e3 / result["p50_ms"], 1)
    return result


def machine() -> dict[str, Any]:
    import fastapi
    import uvicorn

    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "fastapi": fastapi.__version__,
        "uvicorn": uvicorn.__version__,
        "httpx": httpx.__version__,
        "uvicorn_http_parser": "httptools" if importlib.util.find_spec("httptools") else "h11",
        "loadavg_1m_at_start": round(load[0], 2),
        "note": "client and server run on the same machine and share its cores",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help="trained models directory (default: synthetic ML-100K-sized models)")
    parser.add_argument("--store", default="memory", choices=["memory", "faiss"])
    parser.add_argument("--backend", default="numpy", choices=["numpy", "tensorflow"], help="with --models")
    parser.add_argument(
        "--requests", type=int, default=1000, help="rounds of the sequential cases; requests per concurrent case"
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--out",
        type=Path,
        help="results file (default: results/serve_latency.json; serve_latency_trained_<backend>.json with --models)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--http", default="auto", choices=["auto", "h11"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return

    server_argv = ["--store", args.store, "--backend", args.backend] + (
        ["--models", args.models] if args.models else []
    )
    recommender, seen, _ = build(args)
    frozen_seen = {u: frozenset(s) for u, s in seen.items()}
    users = sorted(seen) or [str(u) for u in range(1, N_USERS + 1)]
    rng = np.random.default_rng(1)
    order = [users[i] for i in rng.permutation(len(users))]
    n = args.requests
    results: dict[str, Any] = {
        "machine": machine(),
        "config": {
            "models": display_path(args.models) if args.models else "synthetic",
            "store": args.store,
            "backend": args.backend if args.models else "numpy (synthetic tables + 64-64-1 MLP)",
            "users": len(users),
            "items": recommender.store.describe().count,
            "k": 5,
            "candidates": 50,
            "exclude_seen": True,
            "rounds_sequential": n,
            "requests_concurrent": n,
            "concurrency": args.concurrency,
        },
    }
    shipped, shipped_url = start_server(server_argv)
    h11, h11_url = start_server([*server_argv, "--http", "h11"])
    try:
        with (
            httpx.Client(base_url=shipped_url, timeout=30.0) as client,
            httpx.Client(base_url=h11_url, timeout=30.0) as h11_client,
        ):
            cases: dict[str, Callable[[str], object]] = {
                "in_process": lambda u: recommender.recommend(u, k=5, candidates=50, exclude=frozen_seen.get(u, ())),
                "healthz": getter(client, "/healthz"),
                "recommendations": getter(client, "/recommendations/{user}"),
                "sync_def": getter(client, "/bench/sync/{user}"),
                "async_def": getter(client, "/bench/async/{user}"),
                "recommendations_h11": getter(h11_client, "/recommendations/{user}"),
            }
            results["sequential"] = interleaved(cases, order, n)
        h11.terminate()
        h11.wait(timeout=30)
        c = args.concurrency
        results["concurrent"] = {
            "recommendations": concurrent(shipped_url, "/recommendations", order, n, c),
            "sync_def": concurrent(shipped_url, "/bench/sync", order, n, c, probe=True),
            "async_def": concurrent(shipped_url, "/bench/async", order, n, c, probe=True),
        }
        results["batch_all_users"] = batch(shipped_url, order, repeats=10)
        results["liveness_during_batches"] = {
            "sync_def": liveness_during_batches(shipped_url, "/bench/sync-batch", order, repeats=5),
            "async_def": liveness_during_batches(shipped_url, "/bench/async-batch", order, repeats=5),
        }
    finally:
        for child in (shipped, h11):
            child.terminate()  # uvicorn shuts down gracefully on SIGTERM
            child.wait(timeout=30)
    p50 = {name: summary_["p50_ms"] for name, summary_ in results["sequential"].items()}
    results["ratios_of_sequential_p50"] = {
        "recommendations_over_in_process": round(p50["recommendations"] / p50["in_process"], 2),
        "recommendations_minus_healthz_ms": round(p50["recommendations"] - p50["healthz"], 3),
        "h11_over_httptools": round(p50["recommendations_h11"] / p50["recommendations"], 2),
        "async_def_over_sync_def": round(p50["async_def"] / p50["sync_def"], 2),
    }
    results["machine"]["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    default_name = f"serve_latency_trained_{args.backend}.json" if args.models else "serve_latency.json"
    out: Path = args.out or RESULTS_DIR / default_name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
