"""Indexing and query throughput of PineconeVectorStore through the real ``pinecone`` client.

The Pinecone cloud cannot be reached here, so the client talks over loopback to
:class:`~two_stage_rec.testing.pinecone_server.PineconeTestServer`, started in a
separate process (so that it does not share the client's GIL). The numbers
therefore measure this library plus the client (validation, float32-exact
encoding, batching by 1,000 vectors / 2 MB, HTTP) and a local server's JSON
parsing, not Pinecone's network latency or indexing speed. With the cloud's
tens of milliseconds per request, concurrency (``upsert_workers``,
``query_workers``) matters far more than it does here.

Cases, interleaved round by round so that machine noise hits all of them alike:

* ``upsert_d32``: the notebook's catalogue, 1,682 items x 32-d, with metadata;
* ``upsert_d1536``: 5,000 vectors x 1,536-d with metadata (the batching test's load);
  each with ``upsert_workers`` 1, 2 and 4;
* ``query_d32``: 200 user vectors, top_k 50 with values and metadata (what the
  Recommender asks for), with ``query_workers`` 1 and 4.

Usage::

    .venv/bin/python benchmarks/pinecone_throughput.py [--rounds 3]

Writes ``benchmarks/results/pinecone_throughput.json``: per case the median
seconds and vectors (or queries) per second, the request count, and ratios of
medians. Absolute numbers depend on the load (recorded with the machine):
quote medians and ratios from one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from two_stage_rec.stores.pinecone import PineconeVectorStore

API_KEY = "benchmark-key"
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """Facts that explain the numbers: CPU, cores, load, versions."""
    import pinecone

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "pinecone": pinecone.__version__,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "note": "absolute times depend on the load recorded here: quote medians and ratios from one run",
    }


def start_server() -> tuple[subprocess.Popen[str], str]:
    """Run the test server in its own process; returns (process, control-plane URL)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "two_stage_rec.testing.pinecone_server", "--port", "0", "--api-key", API_KEY],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        process.kill()
        raise RuntimeError(f"the server did not start: {url!r}")
    return process, url


def catalogue(n: int, d: int, seed: int) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    ids = [f"item-{i}" for i in range(n)]
    vectors = rng.normal(size=(n, d)).astype(np.float32)
    metadata = [{"title": f"Movie number {i}", "genres": ["Drama", "Comedy"][: 1 + i % 2], "year": 1900 + i % 120}
                for i in range(n)]  # fmt: skip
    return ids, vectors, metadata


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    facts = machine()
    process, url = start_server()
    stores: list[PineconeVectorStore] = []
    try:

        def store(name: str, d: int, **options: Any) -> PineconeVectorStore:
            created = PineconeVectorStore(
                index_name=name, dimension=d, api_key=API_KEY, controller_host=url, create_if_missing=True, **options
            )
            stores.append(created)
            return created

        small = catalogue(1_682, 32, seed=1)
        large = catalogue(5_000, 1_536, seed=2)
        cases: dict[str, tuple[Callable[[], object], int]] = {}
        for workers in (1, 2, 4):
            s32 = store(f"d32-w{workers}", 32, upsert_workers=workers)
            s1536 = store(f"d1536-w{workers}", 1_536, upsert_workers=workers)
            cases[f"upsert_d32_workers{workers}"] = (lambda s=s32: s.upsert(*small), len(small[0]))
            cases[f"upsert_d1536_workers{workers}"] = (lambda s=s1536: s.upsert(*large), len(large[0]))
        queries = np.random.default_rng(3).normal(size=(200, 32)).astype(np.float32)
        for workers in (1, 4):
            reader = store("d32-w1", 32, query_workers=workers)  # same index, filled by the upsert cases
            cases[f"query_d32_top50_workers{workers}"] = (
                lambda r=reader: r.query(queries, 50, include_values=True, include_metadata=True),
                len(queries),
            )

        timings: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, (run, _count) in cases.items():
                start = time.perf_counter()
                run()
                timings[name].append(time.perf_counter() - start)

        results: dict[str, dict[str, float]] = {}
        for name, samples in timings.items():
            median = statistics.median(samples)
            count = cases[name][1]
            results[name] = {
                "items": count,
                "median_s": round(median, 4),
                "min_s": round(min(samples), 4),
                "max_s": round(max(samples), 4),
                "per_second_median": round(count / median, 1),
            }
        ratios = {
            "upsert_d1536_workers2_vs_1": round(
                results["upsert_d1536_workers1"]["median_s"] / results["upsert_d1536_workers2"]["median_s"], 3
            ),
            "upsert_d1536_workers4_vs_1": round(
                results["upsert_d1536_workers1"]["median_s"] / results["upsert_d1536_workers4"]["median_s"], 3
            ),
            "upsert_d32_workers2_vs_1": round(
                results["upsert_d32_workers1"]["median_s"] / results["upsert_d32_workers2"]["median_s"], 3
            ),
            "query_workers4_vs_1": round(
                results["query_d32_top50_workers1"]["median_s"] / results["query_d32_top50_workers4"]["median_s"], 3
            ),
        }
        facts["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        output = {
            "benchmark": "pinecone_throughput",
            "machine": facts,
            "config": {
                "rounds": args.rounds,
                "server": "two_stage_rec.testing.pinecone_server in a separate process, loopback HTTP/1.1",
                "limits": "1,000 vectors and 2,000,000 bytes per upsert request",
            },
            "results": results,
            "ratios_of_medians": ratios,
        }
        RESULTS_DIR.mkdir(exist_ok=True)
        path = RESULTS_DIR / "pinecone_throughput.json"
        path.write_text(json.dumps(output, indent=2) + "\n")
        print(json.dumps({"results": results, "ratios_of_medians": ratios}, indent=2))
        print(f"wrote {path}")
    finally:
        for opened in stores:
            opened.close()
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
