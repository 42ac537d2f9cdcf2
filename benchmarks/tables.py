"""Print the markdown tables of ``docs/benchmarks.md`` from ``benchmarks/results/*.json``.

Usage::

    .venv/bin/python benchmarks/tables.py > tables.md   # then paste into docs/benchmarks.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def machine_line(results: dict[str, Any]) -> str:
    m = results["machine"]
    start, end = m.get("loadavg_at_start", ["?"]), m.get("loadavg_at_end", ["?"])
    return (
        f"_{m.get('cpu')}, {m.get('cpu_count')} cores, Python {m.get('python')}, numpy {m.get('numpy')}, "
        f"faiss {m.get('faiss')}; 1-minute load average {start[0]} at start, {end[0]} at end._"
    )


def recommend_latency(r: dict[str, Any]) -> str:
    single, ratios = r["single_user"], r["ratios"]
    base = single["notebook_loop"]["p50_ms"]
    floors = {"library_tf": "floor_tf", "library_numpy": "floor_numpy", "library_numpy_exclude_seen": "floor_numpy"}
    labels = {
        "notebook_loop": "notebook loop (2 TF calls per candidate)",
        "library_tf": "Recommender, TensorFlow adapters",
        "library_numpy": "Recommender, numpy (TableEmbedder + MLPReranker)",
        "library_numpy_exclude_seen": "Recommender, numpy, rated movies excluded",
        "floor_tf": "floor: user_model + raw FAISS + 1 scoring_model call",
        "floor_numpy": "floor: table lookup + raw FAISS + inline numpy MLP",
    }
    lines = [
        machine_line(r),
        "",
        "| method | p50 ms | p99 ms | notebook p50 / this p50 | this p50 / its floor p50 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, label in labels.items():
        s = single[name]
        floor = floors.get(name)
        over_floor = f"{s['p50_ms'] / single[floor]['p50_ms']:.2f}" if floor else ""
        lines.append(f"| {label} | {s['p50_ms']:.3f} | {s['p99_ms']:.2f} | {base / s['p50_ms']:.1f}x | {over_floor} |")
    batch = r["recommend_batch_all_users"]
    lines += [
        "",
        f"`recommend_batch` for all {batch['users']} users (median of {batch['numpy']['n']}):",
        "",
        "| path | p50 s |",
        "|---|---:|",
        f"| numpy | {batch['numpy']['p50_s']:.3f} |",
        f"| TensorFlow | {batch['tensorflow']['p50_s']:.3f} |",
        f"| numpy, rated movies excluded | {batch['numpy_exclude_seen']['p50_s']:.3f} |",
        "",
        "Goals: " + ", ".join(f"`{k}` {'met' if v else '**not met**'}" for k, v in r["goals"].items()),
        "",
        f"Ratios from the JSON: {json.dumps(ratios)}",
    ]
    return "\n".join(lines)


def scale(r: dict[str, Any]) -> str:
    lines = [
        machine_line(r),
        "",
        "| items | d | index | build s | memory MiB (store / FAISS) | p50 ms | p99 ms | raw FAISS p50 ms "
        "| batch ms/query | recall@50 |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in r["rows"]:
        raw = "" if row["raw_faiss_p50_ms"] is None else f"{row['raw_faiss_p50_ms']:.3f}"
        lines.append(
            f"| {row['items']:,} | {row['dimension']} | {row['index']} | {row['build_s']:.1f} "
            f"| {row['rss_delta_mib']:.0f} / {row['faiss_index_mib']:.0f} | {row['query_p50_ms']:.3f} "
            f"| {row['query_p99_ms']:.2f} | {raw} | {row['batch_ms_per_query']:.3f} | {row['recall_at_50']:.3f} |"
        )
    lines += ["", "| items | filter | p50 ms |", "|---:|---|---:|"]
    for f in r.get("filters", []):
        for name in ("none", "genre_eq", "year_gte_and_genre_in"):
            lines.append(f"| {f['items']:,} | {name} | {f[name]['p50_ms']:.1f} |")
    return "\n".join(lines)


def index_throughput(r: dict[str, Any]) -> str:
    lines = [machine_line(r), "", "| case | items | median s | vectors/s |", "|---|---:|---:|---:|"]
    for name, case in r["cases"].items():
        lines.append(f"| {name} | {case['items']:,} | {case['median_s']:.4f} | {case['vectors_per_s']:,.0f} |")
    return "\n".join(lines)


def main() -> None:
    for name, render in (
        ("recommend_latency", recommend_latency),
        ("scale", scale),
        ("index_throughput", index_throughput),
    ):
        results = load(name)
        if results is None:
            print(f"<!-- no results/{name}.json -->")
            continue
        print(f"<!-- {name} -->\n{render(results)}\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
