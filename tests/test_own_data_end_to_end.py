"""A user's own files, end to end through the command line: train -> bundle -> recommend -> evaluate -> serve.

A synthetic shop: customers ("c-1f9a") buy products ("sku-88") mostly from
their own segment, so even a few epochs learn something; string ids that
are not numbers, a product table with metadata, CSV (implicit feedback) and
Parquet (explicit ratings).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from two_stage_rec.bundle import read_bundle
from two_stage_rec.cli import app

pd = pytest.importorskip("pandas", reason="reading your own files needs the 'data' extra (pandas, pyarrow)")
pytest.importorskip("tensorflow", reason="training needs the 'tensorflow' extra")

runner = CliRunner()
N_USERS, N_ITEMS, SEGMENTS = 120, 60, 4


def shop(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events, products): each customer buys mostly from one segment of the catalogue."""
    rng = np.random.default_rng(seed)
    customers = [f"c-{rng.integers(16**4):04x}{i}" for i in range(N_USERS)]
    products = [f"sku-{i:02d}" for i in range(N_ITEMS)]
    rows = []
    for user_index, customer in enumerate(customers):
        segment = user_index % SEGMENTS
        own = [i for i in range(N_ITEMS) if i % SEGMENTS == segment]
        for event in range(20):
            item = rng.choice(own) if rng.random() < 0.85 else rng.integers(N_ITEMS)
            rating = 5.0 if item % SEGMENTS == segment else 2.0
            rows.append((customer, products[item], 1_700_000_000 + 3600 * event + user_index, rating))
    events = pd.DataFrame(rows, columns=["customer", "sku", "time", "stars"])
    items = pd.DataFrame(
        {
            "product_id": products,
            "name": [f"Product {i}" for i in range(N_ITEMS)],
            "segment": [f"seg-{i % SEGMENTS}" for i in range(N_ITEMS)],
            "price": [round(5.0 + i * 0.5, 2) for i in range(N_ITEMS)],
            "tags": ["new|sale" if i % 2 else "classic" for i in range(N_ITEMS)],
        }
    )
    return events, items


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("shop")
    events, items = shop()
    events.to_csv(root / "events.csv", index=False)
    items.to_csv(root / "products.csv", index=False)
    events.to_parquet(root / "events.parquet", index=False)
    items.to_parquet(root / "products.parquet", index=False)
    customers = list(dict.fromkeys(events["customer"]))
    (root / "users.txt").write_text("\n".join([*customers[:30], "c-never-seen"]) + "\n", encoding="utf-8")
    return {
        "events_csv": root / "events.csv",
        "products_csv": root / "products.csv",
        "events_parquet": root / "events.parquet",
        "products_parquet": root / "products.parquet",
        "users": root / "users.txt",
        "root": root,
    }


COLUMNS = ["--user-column", "customer", "--item-column", "sku", "--item-id-column", "product_id"]


@pytest.fixture(scope="module")
def implicit_bundle(files: dict[str, Path]) -> Path:
    out = files["root"] / "implicit-models"
    result = runner.invoke(
        app,
        [
            "train",
            "--interactions",
            str(files["events_csv"]),
            "--items",
            str(files["products_csv"]),
            *COLUMNS,
            "--timestamp-column",
            "time",
            "--list-column",
            "tags",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "recommended reranker" in result.output and "Held-out top-10 metrics" in result.output
    return out


def test_train_writes_a_complete_implicit_bundle_with_a_temporal_hold_out(implicit_bundle: Path) -> None:
    bundle = read_bundle(implicit_bundle)
    manifest = bundle.manifest
    assert manifest.feedback == "implicit" and manifest.dataset == "events.csv"
    assert manifest.split == {"kind": "temporal", "test_fraction": 0.2, "seed": 42}
    assert manifest.recommended in ("none", "scoring", "blend", "ranker")
    assert manifest.items == N_ITEMS and manifest.users == N_USERS
    assert bundle.catalogue.metadata_of("sku-03") == {
        "name": "Product 3",
        "segment": "seg-3",
        "price": 6.5,
        "tags": ["new", "sale"],
    }
    held_out = manifest.training["held_out"]
    # The segments are easy: the model must beat recommending the most popular products.
    assert held_out["retrieval"]["ndcg@10"] > held_out["most_popular"]["ndcg@10"]


def test_recommend_one_user_prints_items_with_metadata(implicit_bundle: Path, files: dict[str, Path]) -> None:
    user = files["users"].read_text(encoding="utf-8").split()[0]
    result = runner.invoke(app, ["recommend", "--models", str(implicit_bundle), "--user", user, "--k", "5"])
    assert result.exit_code == 0, result.output
    assert "Product" in result.output and "segment" in result.output and "sku-" in result.output


def test_recommend_a_users_file_writes_json_lines(implicit_bundle: Path, files: dict[str, Path]) -> None:
    output = files["root"] / "recs.jsonl"
    result = runner.invoke(
        app,
        [
            "recommend",
            "--models",
            str(implicit_bundle),
            "--users-file",
            str(files["users"]),
            "--k",
            "10",
            "--output",
            str(output),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 31
    bundle = read_bundle(implicit_bundle)
    for line in lines[:30]:
        assert line["source"] == "model" and len(line["items"]) == 10
        ids = [item["item_id"] for item in line["items"]]
        assert not set(ids) & bundle.seen_items[line["user_id"]]  # seen items are left out by default
        scores = [item["score"] for item in line["items"]]
        assert scores == sorted(scores, reverse=True)
    assert lines[30]["user_id"] == "c-never-seen" and lines[30]["source"] == "fallback"
    assert [item["item_id"] for item in lines[30]["items"]] == list(bundle.popularity)[:10]

    kept = files["root"] / "recs-with-seen.jsonl"
    result = runner.invoke(
        app,
        [
            *("recommend", "--models", str(implicit_bundle), "--users-file", str(files["users"]), "--k", "10"),
            *("--output", str(kept), "--include-seen", "--no-progress"),
        ],
    )
    assert result.exit_code == 0, result.output
    first = json.loads(kept.read_text(encoding="utf-8").splitlines()[0])
    assert set(item["item_id"] for item in first["items"]) & bundle.seen_items[first["user_id"]]


def test_evaluate_recreates_the_split_and_refuses_other_data(implicit_bundle: Path, files: dict[str, Path]) -> None:
    out = files["root"] / "reports"
    base = ["evaluate", "--models", str(implicit_bundle), "--items", str(files["products_csv"]), *COLUMNS]
    result = runner.invoke(
        app,
        [
            *base,
            *("--interactions", str(files["events_csv"]), "--timestamp-column", "time", "--list-column", "tags"),
            *("--out", str(out), "--resamples", "200", "--store", "memory", "--no-html"),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "evaluation-implicit-models.json").read_text(encoding="utf-8"))
    manifest = read_bundle(implicit_bundle).manifest
    assert report["rankers"]["retrieval"]["metrics"]["ndcg@10"] == pytest.approx(
        manifest.training["held_out"]["retrieval"]["ndcg@10"], abs=1e-9
    )
    # Without timestamps the recorded temporal split cannot be recreated: refused, not silently different.
    result = runner.invoke(app, [*base, "--interactions", str(files["events_csv"]), "--out", str(out)])
    assert result.exit_code == 1 and "error:" in result.output


def test_explicit_parquet_bundle_serves_over_http(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    out = files["root"] / "explicit-models"
    result = runner.invoke(
        app,
        [
            "train",
            "--interactions",
            str(files["events_parquet"]),
            "--items",
            str(files["products_parquet"]),
            *COLUMNS,
            "--rating-column",
            "stars",
            "--timestamp-column",
            "time",
            "--split",
            "stratified",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert read_bundle(out).manifest.feedback == "explicit"
    served: dict[str, object] = {}
    monkeypatch.setattr("two_stage_rec.serving.run", lambda app, **options: served.update(app=app, **options))
    result = runner.invoke(app, ["serve", "--models", str(out), "--store", "memory"])
    assert result.exit_code == 0, result.output
    fastapi_app = served["app"]
    assert isinstance(fastapi_app, FastAPI)
    client = TestClient(fastapi_app)
    user = files["users"].read_text(encoding="utf-8").split()[0]
    body = client.get(f"/recommendations/{user}", params={"k": 5}).json()
    assert len(body["items"]) == 5 and all(item["item_id"].startswith("sku-") for item in body["items"])
    assert client.get("/recommendations/c-never-seen", params={"k": 3}).json()["items"][0]["source"] == "fallback"


def test_bad_input_names_the_file_column_and_row(files: dict[str, Path]) -> None:
    broken = files["root"] / "broken.csv"
    events, _ = shop()
    events.loc[7, "customer"] = ""
    events.to_csv(broken, index=False)
    result = runner.invoke(
        app,
        [
            *("train", "--interactions", str(broken), "--items", str(files["products_csv"]), *COLUMNS),
            *("--out", str(files["root"] / "never")),
        ],
    )
    assert result.exit_code == 1
    assert "broken.csv" in result.output and "customer" in result.output and "line 9" in result.output
    assert not (files["root"] / "never").exists()  # nothing written
