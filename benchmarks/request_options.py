"""What the request options cost: explanations, fold-in and post-ranking policies, one user at a time.

For each served pipeline (the bundle's ranking stage, the blend) one request
for one known user is timed plain and with each option, interleaved in one
run (``_common.measure_interleaved``), so the ratios are to the plain request
measured under the same load:

* ``explain``: explanations (nearest history items: one store fetch and one
  matrix product; with the ranking stage also its sources and feature
  contributions);
* ``history (known user)``: five recent items folded into the trained vector;
* ``history (new user)``: a user the towers never saw, with five items;
* ``mmr 0.3`` and ``max_per genres=2``: policies over all 50 candidates.

Run: ``python benchmarks/request_options.py`` (``--rounds`` to change the
count; ``--models DIR`` to use a bundle instead of the cached trained one).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import display_path, machine, measure_interleaved, ratio, write_results  # noqa: E402
from recommend_latency import ensure_models  # noqa: E402

from two_stage_rec.assembly import assemble  # noqa: E402
from two_stage_rec.bundle import read_bundle  # noqa: E402
from two_stage_rec.policies import MMR, MaxPerValue  # noqa: E402

OUT = HERE / "results" / "request_options.json"


def cases(served: Any, users: list[str], items: list[str]) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    histories = [list(rng.choice(items, 5, replace=False)) for _ in range(len(users))]

    def user(r: int) -> str:
        return users[r % len(users)]

    return {
        "plain": lambda r: served.recommend(user(r), k=10),
        "explain": lambda r: served.recommend(user(r), k=10, explain=True),
        "history (known user)": lambda r: served.recommend(user(r), k=10, history=histories[r % len(users)]),
        "history (new user)": lambda r: served.recommend(f"new-{r}", k=10, history=histories[r % len(users)]),
        "mmr 0.3": lambda r: served.recommend(user(r), k=10, policies=[MMR(0.3)]),
        "max_per genres=2": lambda r: served.recommend(user(r), k=10, policies=[MaxPerValue("genres", 2)]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, default=None, help="a bundle (default: trained once, cached)")
    parser.add_argument("--rounds", type=int, default=400, help="timed requests per case")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    models = ensure_models(args.models)
    bundle = read_bundle(models)
    users = sorted(bundle.seen_items)
    items = list(bundle.catalogue.item_ids)
    results: dict[str, Any] = {
        "benchmark": "request_options",
        "command": "python benchmarks/request_options.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "models": display_path(models),
        "rounds": args.rounds,
        "pipelines": {},
    }
    pipelines = ["ranker", "blend"] if bundle.ranking_stage is not None else ["blend"]
    for name in pipelines:
        with assemble(bundle, store="faiss", reranker=name) as served:  # type: ignore[arg-type]
            timed = measure_interleaved(cases(served, users, items), args.rounds)
        plain = timed["plain"]["p50_ms"]
        results["pipelines"][name] = {
            case: dict(summary, ratio_to_plain=ratio(summary["p50_ms"], plain)) for case, summary in timed.items()
        }
    write_results(args.out, results)


if __name__ == "__main__":
    main()
