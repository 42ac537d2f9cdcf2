"""``GET /metrics``: what the Prometheus scrape reports after real traffic over a real server."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from synthetic_models import write_synthetic_models
from two_stage_rec.assembly import assemble
from two_stage_rec.serving import serve_in_thread
from two_stage_rec.serving.app import create_app, create_bundle_app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, movielens_dir: Path) -> Path:
    return write_synthetic_models(
        tmp_path_factory.mktemp("metrics") / "b", dimension=8, seed=31, data_dir=movielens_dir
    )


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scrape: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_what_the_service_did(bundle: Path) -> None:
    app = create_bundle_app(assemble(bundle, store="memory"), path=bundle)
    known = [str(u) for u in range(1, 201)]
    with serve_in_thread(app) as base_url:

        def client(users: list[str]) -> None:
            with httpx.Client(base_url=base_url, timeout=30.0) as http:
                for user in users:
                    assert http.get(f"/recommendations/{user}", params={"k": 5}).status_code == 200

        threads = [threading.Thread(target=client, args=(known[n::8],)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        with httpx.Client(base_url=base_url, timeout=30.0) as http:
            for n in range(3):
                assert http.get(f"/recommendations/newcomer-{n}").status_code == 200  # fallback
            assert http.get("/recommendations/1", params={"k": 0}).status_code == 422
            assert http.post("/recommendations", json={"user_ids": ["1", "newcomer"], "k": 3}).status_code == 200
            assert http.get("/no/such/path").status_code == 404
            scrape_response = http.get("/metrics")
    assert scrape_response.status_code == 200
    assert scrape_response.headers["content-type"].startswith("text/plain")
    scrape = samples(scrape_response.text)
    one = "/recommendations/{user_id}"
    assert value(scrape, "two_stage_rec_http_requests_total", endpoint=one, method="GET", status="200") == 203
    assert value(scrape, "two_stage_rec_http_requests_total", endpoint=one, method="GET", status="422") == 1
    assert (
        value(scrape, "two_stage_rec_http_requests_total", endpoint="/recommendations", method="POST", status="200")
        == 1
    )
    assert value(scrape, "two_stage_rec_http_requests_total", endpoint="unmatched", method="GET", status="404") == 1
    # Path templates, never raw user ids: the label set stays bounded.
    assert not any("newcomer" in str(labels) for _, labels in scrape)
    latency = value(
        scrape, "two_stage_rec_http_request_duration_seconds_count", endpoint=one, method="GET", status="200"
    )
    assert latency == 203
    assert (
        value(
            scrape,
            "two_stage_rec_http_request_duration_seconds_bucket",
            endpoint=one,
            method="GET",
            status="200",
            le="+Inf",
        )
        == 203
    )
    # 203 batched GETs (the 422 never reached the batcher), in at most 203 batches, some of them shared.
    assert value(scrape, "two_stage_rec_batch_size_sum") == 203
    batches = value(scrape, "two_stage_rec_batch_size_count")
    assert 1 <= batches <= 203 and value(scrape, "two_stage_rec_batch_duration_seconds_count") == batches
    # One store query and one reranker call per batch of known users (plus the POST's).
    assert value(scrape, "two_stage_rec_store_query_seconds_count") >= 1
    assert value(scrape, "two_stage_rec_reranker_seconds_count") >= 1
    assert value(scrape, "two_stage_rec_store_query_seconds_sum") > 0
    assert value(scrape, "two_stage_rec_fallback_recommendations_total") == 4  # 3 GETs + 1 in the POST


def test_metrics_can_be_turned_off_and_apps_do_not_share_them(bundle: Path) -> None:
    served = assemble(bundle, store="memory")
    assert TestClient(create_app(served.recommender, metrics=False)).get("/metrics").status_code == 404
    first, second = TestClient(create_app(served.recommender)), TestClient(create_app(served.recommender))
    assert first.get("/recommendations/1").status_code == 200
    count = samples(second.get("/metrics").text)
    assert (
        value(
            count,
            "two_stage_rec_http_requests_total",
            endpoint="/recommendations/{user_id}",
            method="GET",
            status="200",
        )
        == 0
    )
