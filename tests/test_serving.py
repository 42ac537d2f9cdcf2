"""The HTTP service on small synthetic data: endpoints, error mapping, OpenAPI, a real uvicorn."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from two_stage_rec import (
    AuthenticationError,
    MissingDependencyError,
    PopularityFallback,
    Recommender,
    StoreUnavailableError,
)
from two_stage_rec.embedders.table import TableEmbedder
from two_stage_rec.serving import create_app, serve_in_thread
from two_stage_rec.serving.schemas import MAX_K
from two_stage_rec.stores.memory import InMemoryVectorStore
from two_stage_rec.types import Filter, FloatMatrix, FloatVector, Metadata, QueryResult, StoreStats

DIMENSION = 8
N_ITEMS = 120
N_USERS = 12
GENRES = ("comedy", "drama", "horror")


class NegatedDotReranker:
    """Scores a pair by minus the dot product, so reranking visibly reverses retrieval order."""

    def score(self, user_vectors: FloatMatrix, item_vectors: FloatMatrix) -> FloatVector:
        scores: FloatVector = -np.einsum("nd,nd->n", user_vectors, item_vectors).astype(np.float32)
        return scores


def _item_metadata(i: int) -> Metadata:
    return {"title": f"Item {i}", "genres": [GENRES[i % 3]], "year": 1980 + i % 20}


@pytest.fixture(scope="module")
def catalogue() -> tuple[list[str], FloatMatrix, list[str], FloatMatrix]:
    rng = np.random.default_rng(7)
    item_ids = [str(i) for i in range(N_ITEMS)]
    user_ids = [f"u{i}" for i in range(N_USERS)]
    items = rng.normal(size=(N_ITEMS, DIMENSION)).astype(np.float32)
    users = rng.normal(size=(N_USERS, DIMENSION)).astype(np.float32)
    return item_ids, items, user_ids, users


def _recommender(
    catalogue: tuple[list[str], FloatMatrix, list[str], FloatMatrix],
    *,
    fallback: PopularityFallback | None = None,
) -> Recommender:
    item_ids, items, user_ids, users = catalogue
    recommender = Recommender(
        user_embedder=TableEmbedder(user_ids, users),
        item_embedder=TableEmbedder(item_ids, items),
        store=InMemoryVectorStore(dimension=DIMENSION),
        reranker=NegatedDotReranker(),
        fallback=fallback,
    )
    recommender.index_items(item_ids, metadata=[_item_metadata(i) for i in range(N_ITEMS)])
    return recommender


@pytest.fixture(scope="module")
def recommender(catalogue: tuple[list[str], FloatMatrix, list[str], FloatMatrix]) -> Recommender:
    return _recommender(catalogue)


@pytest.fixture(scope="module")
def seen(recommender: Recommender) -> dict[str, list[str]]:
    """User u0 has "seen" its three best reranked items, so exclude_seen must drop them."""
    best = [r.item_id for r in recommender.recommend("u0", k=3)]
    return {"u0": best}


@pytest.fixture(scope="module")
def client(recommender: Recommender, seen: dict[str, list[str]]) -> TestClient:
    return TestClient(create_app(recommender, seen_items=seen, item_titles={"1": "The First Film"}))


def _ids(items: Sequence[dict[str, object]]) -> list[str]:
    return [str(item["item_id"]) for item in items]


# ------------------------------------------------------------------ one user


def test_get_returns_the_recommenders_answer(client: TestClient, recommender: Recommender) -> None:
    response = client.get("/recommendations/u3", params={"k": 7})
    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == "u3"
    expected = recommender.recommend("u3", k=7)
    assert _ids(body["items"]) == [r.item_id for r in expected]
    assert [item["score"] for item in body["items"]] == pytest.approx([r.score for r in expected])
    assert [item["retrieval_score"] for item in body["items"]] == pytest.approx([r.retrieval_score for r in expected])
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)  # higher is better, best first
    assert {item["source"] for item in body["items"]} == {"reranked"}
    for item in body["items"]:
        assert item["metadata"]["title"] == f"Item {item['item_id']}"
        assert item["title"] == item["metadata"]["title"] or item["item_id"] == "1"


def test_rerank_false_ranks_by_retrieval_score(client: TestClient) -> None:
    reranked = client.get("/recommendations/u3", params={"k": 5}).json()["items"]
    retrieved = client.get("/recommendations/u3", params={"k": 5, "rerank": "false"}).json()["items"]
    assert {item["source"] for item in retrieved} == {"retrieval"}
    assert [item["score"] for item in retrieved] == [item["retrieval_score"] for item in retrieved]
    # The negated reranker reverses retrieval order, so the two top-5s differ.
    assert _ids(retrieved) != _ids(reranked)


def test_candidates_bounds_what_reranking_sees(client: TestClient) -> None:
    """With candidates == k the reranker only reorders the retrieval top-k."""
    retrieved = client.get("/recommendations/u1", params={"k": 4, "rerank": "false"}).json()["items"]
    reranked = client.get("/recommendations/u1", params={"k": 4, "candidates": 4}).json()["items"]
    assert sorted(_ids(reranked)) == sorted(_ids(retrieved))
    assert _ids(reranked) == list(reversed(_ids(retrieved)))


def test_title_table_overrides_metadata_title(client: TestClient) -> None:
    items = client.get("/recommendations/u2", params={"k": N_ITEMS, "candidates": N_ITEMS}).json()["items"]
    titles = {item["item_id"]: item["title"] for item in items}
    assert titles["1"] == "The First Film"
    assert titles["2"] == "Item 2"


def test_exclude_seen_drops_rated_items(client: TestClient, seen: dict[str, list[str]]) -> None:
    with_seen = _ids(client.get("/recommendations/u0", params={"k": 5, "exclude_seen": "false"}).json()["items"])
    without_seen = _ids(client.get("/recommendations/u0", params={"k": 5}).json()["items"])
    assert with_seen[:3] == seen["u0"]
    assert not set(without_seen) & set(seen["u0"])
    assert len(without_seen) == 5  # over-fetched, so exclusions do not shorten the list


# --------------------------------------------------------------------- batch


def test_batch_matches_single_requests_in_order(client: TestClient) -> None:
    users = ["u5", "u0", "u9"]
    response = client.post("/recommendations", json={"user_ids": users, "k": 4})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["user_id"] for r in results] == users
    for result in results:
        single = client.get(f"/recommendations/{result['user_id']}", params={"k": 4}).json()["items"]
        assert _ids(result["items"]) == _ids(single)
        # A batched matrix product may round the last bit differently from a single-row one.
        assert [i["score"] for i in result["items"]] == pytest.approx([i["score"] for i in single], rel=1e-5)


def test_batch_filter_applies_to_every_user(client: TestClient) -> None:
    request = {"user_ids": ["u1", "u2"], "k": 6, "filter": {"genres": "drama", "year": {"$gte": 1990}}}
    results = client.post("/recommendations", json=request).json()["results"]
    for result in results:
        assert len(result["items"]) == 6
        for item in result["items"]:
            assert item["metadata"]["genres"] == ["drama"]
            assert item["metadata"]["year"] >= 1990


def test_batch_exclude_is_per_user(client: TestClient) -> None:
    before = client.post("/recommendations", json={"user_ids": ["u4", "u6"], "k": 3}).json()["results"]
    banned = _ids(before[0]["items"])
    after = client.post("/recommendations", json={"user_ids": ["u4", "u6"], "k": 3, "exclude": {"u4": banned}}).json()[
        "results"
    ]
    assert not set(_ids(after[0]["items"])) & set(banned)
    assert _ids(after[1]["items"]) == _ids(before[1]["items"])


# -------------------------------------------------------------------- errors


def test_unknown_user_is_404_with_clear_body(client: TestClient) -> None:
    response = client.get("/recommendations/nobody")
    assert response.status_code == 404
    assert response.json() == {
        "error": "unknown_user",
        "detail": "unknown user(s): 'nobody'",
        "user_ids": ["nobody"],
    }


def test_batch_with_unknown_users_names_them_all(client: TestClient) -> None:
    response = client.post("/recommendations", json={"user_ids": ["u1", "ghost", "u2", "phantom"]})
    assert response.status_code == 404
    assert response.json()["user_ids"] == ["ghost", "phantom"]


def test_unknown_user_gets_fallback_when_configured(
    catalogue: tuple[list[str], FloatMatrix, list[str], FloatMatrix],
) -> None:
    popular = ["7", "3", "11", "50", "2"]
    fallback = PopularityFallback(popular, metadata={i: _item_metadata(int(i)) for i in popular})
    client = TestClient(create_app(_recommender(catalogue, fallback=fallback), seen_items={"newcomer": ["3"]}))
    response = client.get("/recommendations/newcomer", params={"k": 3})
    assert response.status_code == 200
    items = response.json()["items"]
    assert _ids(items) == ["7", "11", "50"]  # "3" was seen
    assert {item["source"] for item in items} == {"fallback"}
    assert all(item["retrieval_score"] is None for item in items)  # JSON has no NaN
    assert items[0]["title"] == "Item 7"
    batch = client.post("/recommendations", json={"user_ids": ["u1", "newcomer"], "k": 2}).json()["results"]
    assert {item["source"] for item in batch[0]["items"]} == {"reranked"}
    assert {item["source"] for item in batch[1]["items"]} == {"fallback"}
    assert client.get("/stats").json()["fallback"] is True


@pytest.mark.parametrize(
    "params",
    [{"k": 0}, {"k": MAX_K + 1}, {"k": "five"}, {"candidates": 0}, {"rerank": "maybe"}],
)
def test_bad_query_parameters_are_422(client: TestClient, params: dict[str, int | str]) -> None:
    response = client.get("/recommendations/u1", params=params)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_request"
    assert next(iter(params)) in body["detail"]
    assert body["errors"]


def test_candidates_below_k_is_422_from_the_library(client: TestClient) -> None:
    response = client.get("/recommendations/u1", params={"k": 10, "candidates": 5})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_input"
    assert "candidates" in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"user_ids": []},
        {"user_ids": [""]},
        {"user_ids": "u1"},
        {"user_ids": ["u1"], "k": 0},
        {"user_ids": ["u1"], "unexpected": 1},
    ],
)
def test_bad_batch_bodies_are_422(client: TestClient, body: dict[str, object]) -> None:
    response = client.post("/recommendations", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("bad_filter", [{"year": {"$between": [1, 2]}}, {"$or": []}, {"genres": {"$in": "comedy"}}])
def test_invalid_filter_is_400(client: TestClient, bad_filter: dict[str, object]) -> None:
    response = client.post("/recommendations", json={"user_ids": ["u1"], "filter": bad_filter})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_filter"


class _FailingStore(InMemoryVectorStore):
    """An in-memory store whose backend 'goes away', with a secret in its error text."""

    def query(
        self,
        vectors: npt.ArrayLike,
        top_k: int,
        *,
        filter: Filter | None = None,
        include_values: bool = False,
        include_metadata: bool = False,
    ) -> QueryResult:
        raise StoreUnavailableError("gave up after 5 retries talking to https://idx.example (key=sk-SECRET)")

    def describe(self) -> StoreStats:
        raise StoreUnavailableError("stats timed out (key=sk-SECRET)")


def test_store_outage_is_503_without_leaking_details(
    catalogue: tuple[list[str], FloatMatrix, list[str], FloatMatrix],
) -> None:
    _, _, user_ids, users = catalogue
    store = _FailingStore(dimension=DIMENSION)
    client = TestClient(create_app(Recommender(user_embedder=TableEmbedder(user_ids, users), store=store)))
    for response in (
        client.get("/recommendations/u1"),
        client.post("/recommendations", json={"user_ids": ["u1"]}),
        client.get("/stats"),
    ):
        assert response.status_code == 503
        assert response.json()["error"] == "store_unavailable"
        assert response.headers["retry-after"] == "1"
        assert "SECRET" not in response.text and "idx.example" not in response.text
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["ready"] is False
    assert "SECRET" not in ready.text


class _RejectedStore(_FailingStore):
    def query(
        self,
        vectors: npt.ArrayLike,
        top_k: int,
        *,
        filter: Filter | None = None,
        include_values: bool = False,
        include_metadata: bool = False,
    ) -> QueryResult:
        raise AuthenticationError("the backend refused key sk-SECRET")


def test_other_store_failures_are_503_without_details(
    catalogue: tuple[list[str], FloatMatrix, list[str], FloatMatrix],
) -> None:
    _, _, user_ids, users = catalogue
    store = _RejectedStore(dimension=DIMENSION)
    client = TestClient(create_app(Recommender(user_embedder=TableEmbedder(user_ids, users), store=store)))
    response = client.get("/recommendations/u1")
    assert response.status_code == 503
    assert response.json() == {"error": "store_error", "detail": "the vector store failed to answer"}


class _BrokenReranker:
    def score(self, user_vectors: FloatMatrix, item_vectors: FloatMatrix) -> FloatVector:
        raise RuntimeError("model file /secret/path/weights.npz is corrupt")


def test_unexpected_error_is_generic_500(catalogue: tuple[list[str], FloatMatrix, list[str], FloatMatrix]) -> None:
    item_ids, items, user_ids, users = catalogue
    recommender = Recommender(
        user_embedder=TableEmbedder(user_ids, users),
        store=InMemoryVectorStore(dimension=DIMENSION),
        reranker=_BrokenReranker(),
    )
    recommender.store.upsert(item_ids, items)
    client = TestClient(create_app(recommender), raise_server_exceptions=False)
    response = client.get("/recommendations/u1")
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "detail": "internal server error"}
    assert client.get("/recommendations/u1", params={"rerank": "false"}).status_code == 200


# ---------------------------------------------------------------- operations


def test_health_readiness_and_stats(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True and ready.json()["count"] == N_ITEMS
    assert client.get("/stats").json() == {
        "backend": "memory",
        "dimension": DIMENSION,
        "metric": "dotproduct",
        "count": N_ITEMS,
        "details": {},
        "reranker": True,
        "fallback": False,
    }


def test_empty_store_is_live_but_not_ready(catalogue: tuple[list[str], FloatMatrix, list[str], FloatMatrix]) -> None:
    _, _, user_ids, users = catalogue
    empty = Recommender(user_embedder=TableEmbedder(user_ids, users), store=InMemoryVectorStore(dimension=DIMENSION))
    client = TestClient(create_app(empty))
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {"ready": False, "count": 0, "detail": "the vector store holds no items"}


def test_openapi_schema_documents_every_endpoint(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) == {
        "/recommendations/{user_id}",
        "/recommendations",
        "/healthz",
        "/readyz",
        "/stats",
        "/metrics",
    }  # no admin endpoints without an admin token
    one = schema["paths"]["/recommendations/{user_id}"]["get"]
    assert {p["name"] for p in one["parameters"]} == {
        "user_id",
        "k",
        "candidates",
        "rerank",
        "exclude_seen",
        "filter",
        "explain",
        "diversity",
        "max_per",
        "history",
    }
    assert all(p.get("description") for p in one["parameters"])
    assert set(one["responses"]) >= {"200", "400", "404", "422", "503"}
    assert one["responses"]["404"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    components = schema["components"]["schemas"]
    assert {"RecommendedItem", "BatchRecommendationRequest", "ErrorResponse", "StatsResponse"} <= set(components)
    assert "higher is better" in components["RecommendedItem"]["properties"]["score"]["description"]
    assert "HTTPValidationError" not in components  # every 422 uses ErrorResponse
    assert client.get("/docs").status_code == 200


# -------------------------------------------------------------- real server


def test_real_uvicorn_server_answers_over_loopback(recommender: Recommender) -> None:
    app: FastAPI = create_app(recommender)
    threads_before = {t.ident for t in threading.enumerate()}
    with serve_in_thread(app) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=base_url, timeout=5.0) as http:
            response = http.get("/recommendations/u2", params={"k": 3})
            assert http.get("/healthz").json() == {"status": "ok"}
    assert response.status_code == 200
    assert _ids(response.json()["items"]) == [r.item_id for r in recommender.recommend("u2", k=3)]
    leftover = [t for t in threading.enumerate() if t.ident not in threads_before and t.name == "uvicorn"]
    assert leftover == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/healthz", timeout=1.0)


def test_concurrent_requests_get_the_same_answers_as_sequential_ones(recommender: Recommender) -> None:
    """Endpoints run in a thread pool: concurrent requests must not mix up their results."""
    expected = {u: [r.item_id for r in recommender.recommend(u, k=4)] for u in (f"u{i}" for i in range(N_USERS))}
    with serve_in_thread(create_app(recommender)) as base_url, httpx.Client(base_url=base_url, timeout=10.0) as http:

        def fetch(user: str) -> tuple[str, list[str]]:
            return user, _ids(http.get(f"/recommendations/{user}", params={"k": 4}).raise_for_status().json()["items"])

        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(fetch, [f"u{i % N_USERS}" for i in range(60)]))
    assert all(ids == expected[user] for user, ids in answers)


# ------------------------------------------------------------- dependencies


def test_missing_fastapi_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m.startswith("two_stage_rec.serving")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "fastapi", None)  # makes `import fastapi` raise ImportError
    with pytest.raises(MissingDependencyError, match=re.escape('pip install "two-stage-rec[serve]"')):
        importlib.import_module("two_stage_rec.serving")


def test_the_cli_does_not_import_fastapi_until_serve_runs() -> None:
    code = "import sys, two_stage_rec.cli; print(sorted({'fastapi', 'uvicorn'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
