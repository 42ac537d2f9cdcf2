"""The plain ``GET /recommendations/{user_id}`` (no query string) skips FastAPI's routing:
it must answer exactly what the routed endpoint answers, errors included, and every
middleware (the service's and a user's) must still see it."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from two_stage_rec import PopularityFallback, Recommender, StoreUnavailableError
from two_stage_rec.embedders.table import TableEmbedder
from two_stage_rec.policies import Policy
from two_stage_rec.recommender import HistoryArg, Recommendation
from two_stage_rec.serving import BatchingSettings, create_app
from two_stage_rec.serving.schemas import MAX_ID_LENGTH
from two_stage_rec.stores.memory import InMemoryVectorStore
from two_stage_rec.types import Filter

DIMENSION = 8
N_ITEMS = 120
N_USERS = 12

BATCHING = [BatchingSettings(max_wait_ms=2), None]
BATCHING_IDS = ["batched", "unbatched"]


class _FailingRecommender(Recommender):
    """Fails on demand: the store 'goes away', or any other error for a chosen user."""

    store_down = False
    poison: frozenset[str] = frozenset()

    def recommend_batch(
        self,
        user_ids: Sequence[str],
        *,
        k: int = 5,
        candidates: int = 50,
        exclude: Mapping[str, Collection[str]] | Sequence[Collection[str]] | None = None,
        filter: Filter | None = None,
        rerank: bool = True,
        history: HistoryArg = None,
        policies: Sequence[Policy] = (),
        explain: bool = False,
    ) -> list[list[Recommendation]]:
        if self.store_down:
            raise StoreUnavailableError("the store went away")
        if self.poison & set(user_ids):
            raise RuntimeError("this user breaks the reranker")
        return super().recommend_batch(
            user_ids,
            k=k,
            candidates=candidates,
            exclude=exclude,
            filter=filter,
            rerank=rerank,
            history=history,
            policies=policies,
            explain=explain,
        )


def _recommender(*, fallback: bool) -> _FailingRecommender:
    rng = np.random.default_rng(3)
    item_ids = [str(i) for i in range(N_ITEMS)]
    user_ids = [f"u{i}" for i in range(N_USERS)]
    recommender = _FailingRecommender(
        user_embedder=TableEmbedder(user_ids, rng.normal(size=(N_USERS, DIMENSION)).astype(np.float32)),
        item_embedder=TableEmbedder(item_ids, rng.normal(size=(N_ITEMS, DIMENSION)).astype(np.float32)),
        store=InMemoryVectorStore(dimension=DIMENSION),
        fallback=PopularityFallback(item_ids[:30]) if fallback else None,
    )
    recommender.index_items(
        item_ids, metadata=[{"title": f"Item {i}", "year": 1950 + i % 50, "genres": ["Drama"]} for i in range(N_ITEMS)]
    )
    return recommender


def _seen() -> dict[str, list[str]]:
    return {f"u{i}": [str(j) for j in range(i, N_ITEMS, 7)] for i in range(N_USERS)}


def _record_endpoints(app: FastAPI) -> list[object]:
    """Add a user middleware (outermost, as a user's would be) recording the endpoint FastAPI routed
    each request to: None when the plain path answered it."""
    seen: list[object] = []

    class Recorder:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            async def tagged(message: Any) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message["headers"], (b"x-user-middleware", b"yes")]
                await send(message)

            await self.inner(scope, receive, tagged)
            if scope["type"] == "http":
                seen.append(scope.get("endpoint"))

    app.add_middleware(Recorder)
    return seen


@pytest.fixture
def client_for() -> Iterator[Any]:
    clients: list[TestClient] = []

    def make(app: FastAPI) -> TestClient:
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.mark.parametrize("batching", BATCHING, ids=BATCHING_IDS)
@pytest.mark.parametrize("fallback", [True, False], ids=["fallback", "no-fallback"])
def test_the_plain_get_answers_what_the_routed_endpoint_answers(
    client_for: Any, batching: BatchingSettings | None, fallback: bool
) -> None:
    app = create_app(_recommender(fallback=fallback), seen_items=_seen(), batching=batching)
    endpoints = _record_endpoints(app)
    client = client_for(app)
    for user in [*(f"u{i}" for i in range(N_USERS)), "somebody-new"]:
        plain = client.get(f"/recommendations/{user}")
        routed = client.get(f"/recommendations/{user}", params={"k": 5})  # the defaults, spelt out
        assert plain.status_code == routed.status_code == (200 if fallback or user != "somebody-new" else 404)
        assert plain.content == routed.content
        for header in ("content-type", "content-length", "x-user-middleware"):
            assert plain.headers[header] == routed.headers[header]
    # Each plain request skipped the router (no endpoint), each routed one did not.
    assert endpoints[0::2] == [None] * (N_USERS + 1)
    assert all(endpoint is not None for endpoint in endpoints[1::2])


@pytest.mark.parametrize("batching", BATCHING, ids=BATCHING_IDS)
def test_plain_get_errors_have_the_service_status_and_body(client_for: Any, batching: BatchingSettings | None) -> None:
    recommender = _recommender(fallback=False)
    client = client_for(create_app(recommender, batching=batching))

    unknown = client.get("/recommendations/nobody")
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "unknown_user"
    assert unknown.json()["user_ids"] == ["nobody"]

    recommender.poison = frozenset({"u2"})
    broken = client.get("/recommendations/u2")
    assert broken.status_code == 500
    assert broken.json() == {"error": "internal_error", "detail": "internal server error"}
    assert client.get("/recommendations/u3").status_code == 200  # the service is still up

    recommender.store_down = True
    down = client.get("/recommendations/u3")
    routed = client.get("/recommendations/u3", params={"k": 5})
    assert down.status_code == routed.status_code == 503
    assert down.json() == routed.json()
    assert down.json()["error"] == "store_unavailable"
    assert down.headers["retry-after"] == routed.headers["retry-after"] == "1"


def test_requests_that_are_not_plain_go_to_the_router(client_for: Any) -> None:
    app = create_app(_recommender(fallback=True), max_body_bytes=64)
    endpoints = _record_endpoints(app)
    client = client_for(app)
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", "/recommendations/u1", {"params": {"k": 2}}, 200),
        ("GET", "/recommendations/u1", {"params": {"kk": 2}}, 422),  # unknown parameter
        ("GET", "/recommendations/" + "x" * (MAX_ID_LENGTH + 1), {}, 422),  # id over the route's bound
        ("POST", "/recommendations/u1", {}, 405),
        ("GET", "/recommendations/", {}, 405),  # no id: the router finds only POST /recommendations
        ("GET", "/recommendations/u1/more", {}, 404),
    ]
    for method, path, options, status in cases:
        response = client.request(method, path, **options)
        assert response.status_code == status, (method, path, response.text)
        assert response.headers["x-user-middleware"] == "yes"
    assert len(client.get("/recommendations/u1", params={"k": 2}).json()["items"]) == 2
    assert None not in endpoints[:2]  # routed: FastAPI named the endpoint
    # A plain GET with a body over the limit is refused before anything answers it.
    too_big = client.request("GET", "/recommendations/u1", content=b"x" * 65)
    assert too_big.status_code == 413
    assert too_big.json()["error"] == "payload_too_large"
