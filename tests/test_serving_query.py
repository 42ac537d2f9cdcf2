"""``GET /recommendations/{user_id}``'s query string: a JSON ``filter`` is applied, unknown parameters are 422."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from synthetic_models import write_synthetic_models
from two_stage_rec.assembly import AssembledRecommender, assemble
from two_stage_rec.serving import BatchingSettings, serve_in_thread
from two_stage_rec.serving.app import create_bundle_app
from two_stage_rec.serving.schemas import DEFAULT_CANDIDATES

pytestmark = pytest.mark.integration

OLD = {"year": {"$lt": 1980}}
COMEDY = {"genres": {"$in": ["Comedy"]}}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, movielens_dir: Path) -> Path:
    return write_synthetic_models(tmp_path_factory.mktemp("query") / "b", dimension=8, seed=41, data_dir=movielens_dir)


@pytest.fixture(scope="module")
def served(bundle: Path) -> AssembledRecommender:
    return assemble(bundle, store="memory")


def expected(served: AssembledRecommender, user: str, spec: dict[str, object] | None, k: int = 5) -> list[str]:
    recs = served.recommend(user, k=k, candidates=max(k, DEFAULT_CANDIDATES), filter=spec)
    return [r.item_id for r in recs]


@pytest.mark.parametrize("batching", [BatchingSettings(max_wait_ms=2), None], ids=["batched", "unbatched"])
def test_a_json_filter_on_get_is_applied(
    bundle: Path, served: AssembledRecommender, batching: BatchingSettings | None
) -> None:
    client = TestClient(create_bundle_app(assemble(bundle, store="memory"), path=bundle, batching=batching))
    response = client.get("/recommendations/42", params={"k": 5, "filter": json.dumps(OLD)})
    assert response.status_code == 200
    items = response.json()["items"]
    assert [item["item_id"] for item in items] == expected(served, "42", OLD)
    assert all(item["metadata"]["year"] < 1980 for item in items)
    unfiltered = client.get("/recommendations/42", params={"k": 5}).json()["items"]
    assert [item["item_id"] for item in unfiltered] == expected(served, "42", None)
    assert [item["item_id"] for item in unfiltered] != [item["item_id"] for item in items]
    # The same filter in POST gives the same answer.
    posted = client.post("/recommendations", json={"user_ids": ["42"], "k": 5, "filter": OLD}).json()
    assert [item["item_id"] for item in posted["results"][0]["items"]] == [item["item_id"] for item in items]
    # A fallback user is filtered too.
    newcomer = client.get("/recommendations/newcomer", params={"filter": json.dumps(COMEDY)}).json()["items"]
    assert newcomer and all("Comedy" in item["metadata"]["genres"] for item in newcomer)


@pytest.mark.parametrize(
    ("params", "status", "error"),
    [
        ({"filtr": json.dumps(OLD)}, 422, "invalid_request"),
        ({"k": 3, "genre": "Comedy", "page": "2"}, 422, "invalid_request"),
        ({"filter": "{not json"}, 400, "invalid_filter"),
        ({"filter": "[1, 2]"}, 400, "invalid_filter"),
        ({"filter": json.dumps({"year": {"$near": 3}})}, 400, "invalid_filter"),
        ({"filter": "x" * 5000}, 422, "invalid_request"),
    ],
)
def test_unknown_parameters_and_bad_filters_are_refused(
    bundle: Path, params: dict[str, object], status: int, error: str
) -> None:
    client = TestClient(create_bundle_app(assemble(bundle, store="memory"), path=bundle))
    response = client.get("/recommendations/42", params=params)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    if "filtr" in params:
        assert body["errors"][0]["loc"] == ["query", "filtr"] and "filtr" in body["detail"]
    if "page" in params:
        assert [entry["loc"][1] for entry in body["errors"]] == ["genre", "page"]


def test_concurrent_gets_with_different_filters_each_get_their_own(bundle: Path, served: AssembledRecommender) -> None:
    app = create_bundle_app(assemble(bundle, store="memory"), path=bundle, batching=BatchingSettings(max_wait_ms=5))
    filters: list[dict[str, object] | None] = [None, OLD, COMEDY, {"year": {"$gte": 1995}}]
    users = [str(u) for u in range(1, 121)]
    problems: list[str] = []
    with serve_in_thread(app) as base_url:

        def client(offset: int) -> None:
            with httpx.Client(base_url=base_url, timeout=30.0) as http:
                for n, user in enumerate(users[offset::6]):
                    spec = filters[(n + offset) % len(filters)]
                    params = {"k": 5} | ({"filter": json.dumps(spec)} if spec is not None else {})
                    response = http.get(f"/recommendations/{user}", params=params)
                    got = [item["item_id"] for item in response.json()["items"]]
                    if got != expected(served, user, spec):
                        problems.append(f"user {user} filter {spec}: {got}")

        threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert problems == []
