"""``PUT``/``DELETE /admin/items``: live catalogue updates over HTTP, on a real bundle.

Deleted items leave retrieval and the cold-start fallback alike; added and
changed items are embedded by the bundle's item tower, visible to the next
request, and refused by name when the tower does not know them. A load test
drives recommendations (with filters) while items are deleted and changed.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from synthetic_models import write_synthetic_models
from two_stage_rec.assembly import assemble
from two_stage_rec.serving import serve_in_thread
from two_stage_rec.serving.app import create_bundle_app
from two_stage_rec.serving.catalogue import CatalogueFallback
from two_stage_rec.stores.memory import InMemoryVectorStore

pytestmark = pytest.mark.integration

TOKEN = "catalogue-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NEWCOMER = "someone-new"  # unknown to the towers: answered by the popularity fallback


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, movielens_dir: Path) -> Path:
    return write_synthetic_models(
        tmp_path_factory.mktemp("catalogue") / "b", dimension=8, seed=21, data_dir=movielens_dir
    )


@pytest.fixture(params=["memory", "faiss"])
def client(request: pytest.FixtureRequest, bundle: Path) -> TestClient:
    if request.param == "faiss":
        pytest.importorskip("faiss", reason="the faiss extra is not installed")
    served = assemble(bundle, store=request.param)
    return TestClient(create_bundle_app(served, path=bundle, admin_token=TOKEN))


def _ids(response: Any) -> list[str]:  # httpx's or TestClient's (httpx2) response
    assert response.status_code == 200, response.text
    return [item["item_id"] for item in response.json()["items"]]


def test_deleted_items_leave_retrieval_and_the_fallback(client: TestClient) -> None:
    popular = _ids(client.get(f"/recommendations/{NEWCOMER}", params={"k": 5}))
    assert popular[0] == "50"  # Star Wars: the most rated movie
    known = _ids(client.get("/recommendations/42", params={"k": 10}))
    doomed = [popular[0], popular[1], known[0], known[3]]
    response = client.request("DELETE", "/admin/items", json={"ids": [*doomed, "never-stored"]}, headers=AUTH)
    assert response.status_code == 200 and response.json()["count"] == 1682 - 4
    after_popular = _ids(client.get(f"/recommendations/{NEWCOMER}", params={"k": 5}))
    assert after_popular == [*popular[2:], *after_popular[3:]] and not set(doomed) & set(after_popular)
    assert not set(doomed) & set(_ids(client.get("/recommendations/42", params={"k": 10})))
    # Filters and the batch endpoint see the same catalogue.
    batch = client.post(
        "/recommendations",
        json={"user_ids": ["42", NEWCOMER], "k": 20, "filter": {"genres": {"$in": ["Action", "Sci-Fi"]}}},
    )
    returned = {item["item_id"] for result in batch.json()["results"] for item in result["items"]}
    assert returned and not set(doomed) & returned
    assert client.get("/stats").json()["count"] == 1682 - 4


def test_items_come_back_with_new_metadata_at_their_popularity(client: TestClient) -> None:
    client.request("DELETE", "/admin/items", json={"ids": ["50", "100"]}, headers=AUTH)
    response = client.put(
        "/admin/items",
        json={"items": [{"id": "50", "metadata": {"title": "Star Wars (remastered)", "label": "fresh", "year": 1997}}]},
        headers=AUTH,
    )
    assert response.status_code == 200 and response.json() == {"status": "upserted", "ids": ["50"], "count": 1681}
    fallback = client.get(f"/recommendations/{NEWCOMER}", params={"k": 3}).json()["items"]
    assert fallback[0]["item_id"] == "50" and fallback[0]["title"] == "Star Wars (remastered)"
    assert fallback[0]["metadata"] == {"title": "Star Wars (remastered)", "label": "fresh", "year": 1997}
    # The new metadata drives filters, in retrieval and in the fallback.
    only = client.post(
        "/recommendations", json={"user_ids": ["42", NEWCOMER], "k": 5, "filter": {"label": {"$eq": "fresh"}}}
    ).json()["results"]
    assert [[item["item_id"] for item in result["items"]] for result in only] == [["50"], ["50"]]
    assert only[0]["items"][0]["title"] == "Star Wars (remastered)"
    # Changing an item that is stored keeps its vector's source (the tower) and replaces its metadata.
    client.put("/admin/items", json={"items": [{"id": "50", "metadata": {"year": 1977}}]}, headers=AUTH)
    none = client.post("/recommendations", json={"user_ids": [NEWCOMER], "k": 5, "filter": {"label": {"$eq": "fresh"}}})
    assert none.json()["results"][0]["items"] == []


def test_items_the_item_tower_does_not_know_are_refused_by_name(client: TestClient) -> None:
    body = {"items": [{"id": "1"}, {"id": "no-such-movie"}, {"id": "also-unknown"}]}
    response = client.put("/admin/items", json=body, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["error"] == "unknown_items"
    assert response.json()["item_ids"] == ["no-such-movie", "also-unknown"]
    assert client.get("/stats").json()["count"] == 1682  # nothing written
    bad = client.put("/admin/items", json={"items": [{"id": "1", "metadata": {"nested": {"no": 1}}}]}, headers=AUTH)
    assert bad.status_code == 422
    assert client.put("/admin/items", json={"items": []}, headers=AUTH).status_code == 422
    assert client.put("/admin/items", json={"items": [{"id": "1"}]}).status_code == 401


def test_catalogue_fallback_keeps_popularity_order() -> None:
    fallback = CatalogueFallback(["a", "b", "c", "d"], scores=[9.0, 5.0, 5.0, 1.0], metadata={"a": {"g": "x"}})
    fallback.delete(["b", "a"])
    assert [item for item, _, _ in fallback.top(10)] == ["c", "d"]
    fallback.upsert(["new", "b", "a"], [{}, {"g": "y"}, {"g": "x"}])
    assert [(item, score) for item, score, _ in fallback.top(10)] == [
        ("a", 9.0),
        ("c", 5.0),
        ("b", 5.0),
        ("d", 1.0),
        ("new", 0.0),
    ]
    assert [item for item, _, _ in fallback.top(10, filter={"g": "y"}, exclude={"a"})] == ["b"]


def test_requests_during_catalogue_updates_never_see_a_deleted_item(bundle: Path) -> None:
    served = assemble(bundle, store="faiss" if _has_faiss() else "memory")
    app = create_bundle_app(served, path=bundle, admin_token=TOKEN)
    deleted_at: dict[str, float] = {}
    problems: list[str] = []
    stop = threading.Event()
    popular = [item for item, _ in sorted(served.bundle.popularity.items(), key=lambda kv: -kv[1])][:120]

    def reader(offset: int) -> None:
        with httpx.Client(base_url=base_url, timeout=30.0) as http:
            i = offset
            while not stop.is_set():
                i += 1
                started = time.monotonic()
                gone = {item for item, when in deleted_at.copy().items() if when < started}
                if i % 3 == 0:
                    response = http.post(
                        "/recommendations",
                        json={"user_ids": [str(i % 943 + 1), NEWCOMER], "k": 10, "filter": {"year": {"$lt": 1990}}},
                    )
                    results = response.json().get("results", []) if response.status_code == 200 else []
                    items = [item for result in results for item in result["items"]]
                    if any(item["metadata"].get("year", 0) >= 1990 for item in items):
                        problems.append(f"filter violated: {items}")
                else:
                    user = NEWCOMER if i % 2 else str(i % 943 + 1)
                    response = http.get(f"/recommendations/{user}", params={"k": 10})
                    items = response.json().get("items", []) if response.status_code == 200 else []
                if response.status_code != 200:
                    problems.append(f"{response.status_code}: {response.text}")
                if gone & {item["item_id"] for item in items}:
                    problems.append(f"deleted and still recommended: {gone & {item['item_id'] for item in items}}")

    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=30.0) as admin:
        threads = [threading.Thread(target=reader, args=(n * 101,), daemon=True) for n in range(4)]
        for thread in threads:
            thread.start()
        for start in range(0, 80, 4):
            batch = popular[start : start + 4]
            response = admin.request("DELETE", "/admin/items", json={"ids": batch}, headers=AUTH)
            assert response.status_code == 200
            now = time.monotonic()
            deleted_at.update(dict.fromkeys(batch, now))
            # Change other items' metadata meanwhile (a year the filter then excludes).
            changed = popular[100 + start // 4]
            admin.put("/admin/items", json={"items": [{"id": changed, "metadata": {"year": 2001}}]}, headers=AUTH)
            time.sleep(0.02)
        time.sleep(0.2)
        stop.set()
        for thread in threads:
            thread.join(30)
        metrics = admin.get("/metrics").text
    assert problems == []
    assert 'two_stage_rec_catalogue_writes_total{operation="delete"} 20.0' in metrics


def _has_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class SingleThreadedStore(InMemoryVectorStore):
    """A store that does not allow writes during queries."""

    concurrent_writes = False


def test_a_store_that_cannot_be_written_while_serving_is_not_written(bundle: Path) -> None:
    served = assemble(bundle, store=SingleThreadedStore(dimension=8))
    client = TestClient(create_bundle_app(served, path=bundle, admin_token=TOKEN))
    for response in (
        client.put("/admin/items", json={"items": [{"id": "1"}]}, headers=AUTH),
        client.request("DELETE", "/admin/items", json={"ids": ["1"]}, headers=AUTH),
    ):
        assert response.status_code == 501 and "concurrent_writes" in response.json()["detail"]
    assert client.get("/stats").json()["count"] == 1682
