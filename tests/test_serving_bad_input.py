"""Many concurrent clients mixing good and bad requests against real uvicorn servers.

Every answer must carry the right status and the service's error shape, no
answer may be a 5xx, and the servers must still answer afterwards. Also the
request body size limit on its own (413 ``payload_too_large``).
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from two_stage_rec import PopularityFallback, Recommender
from two_stage_rec.embedders.table import TableEmbedder
from two_stage_rec.serving import BatchingSettings, create_app, serve_in_thread
from two_stage_rec.serving.middleware import DEFAULT_MAX_BODY_BYTES
from two_stage_rec.stores.memory import InMemoryVectorStore
from two_stage_rec.types import Metadata

pytestmark = pytest.mark.integration

DIMENSION = 8
N_ITEMS = 200
N_USERS = 40
GENRES = ("comedy", "drama", "horror")
CLIENTS = 16
REQUESTS_PER_CLIENT = 60


def _metadata(i: int) -> Metadata:
    return {"title": f"Item {i}", "genres": [GENRES[i % 3]], "year": 1980 + i % 20}


def _recommender(*, fallback: bool) -> Recommender:
    rng = np.random.default_rng(11)
    item_ids = [str(i) for i in range(N_ITEMS)]
    recommender = Recommender(
        user_embedder=TableEmbedder(
            [f"u{i}" for i in range(N_USERS)], rng.normal(size=(N_USERS, DIMENSION)).astype(np.float32)
        ),
        item_embedder=TableEmbedder(item_ids, rng.normal(size=(N_ITEMS, DIMENSION)).astype(np.float32)),
        store=InMemoryVectorStore(dimension=DIMENSION),
        fallback=PopularityFallback(item_ids, metadata={i: _metadata(int(i)) for i in item_ids}) if fallback else None,
    )
    recommender.index_items(item_ids, metadata=[_metadata(i) for i in range(N_ITEMS)])
    return recommender


@dataclass(frozen=True)
class Case:
    """One kind of request and the answer it must get."""

    name: str
    method: str
    path: str
    status: int
    error: str | None = None  # the ErrorResponse code, for an error
    params: dict[str, Any] = field(default_factory=dict)
    body: bytes | None = None
    json_body: Any = None
    chunked: bool = False
    fallback_server: bool | None = None  # None: either server


def _chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


OVERSIZED = json.dumps({"user_ids": ["u1"] * (DEFAULT_MAX_BODY_BYTES // 4), "k": 3}).encode()
assert len(OVERSIZED) > DEFAULT_MAX_BODY_BYTES

CASES = [
    Case("valid get", "GET", "/recommendations/u{user}", 200, params={"k": 3}),
    Case(
        "valid get, filtered",
        "GET",
        "/recommendations/u{user}",
        200,
        params={"k": 4, "filter": json.dumps({"genres": {"$in": ["drama"]}})},
    ),
    Case("valid post", "POST", "/recommendations", 200, json_body={"user_ids": ["u1", "u2", "u{user}"], "k": 2}),
    Case("unknown user, fallback", "GET", "/recommendations/stranger-{user}", 200, fallback_server=True),
    Case(
        "unknown user, no fallback",
        "GET",
        "/recommendations/stranger-{user}",
        404,
        "unknown_user",
        fallback_server=False,
    ),
    Case(
        "unknown user in a batch, no fallback",
        "POST",
        "/recommendations",
        404,
        "unknown_user",
        json_body={"user_ids": ["u1", "nobody"]},
        fallback_server=False,
    ),
    Case("malformed json", "POST", "/recommendations", 422, "invalid_request", body=b'{"user_ids": ["u1", '),
    Case("json not an object", "POST", "/recommendations", 422, "invalid_request", body=b"[1, 2, 3]"),
    Case("not json at all", "POST", "/recommendations", 422, "invalid_request", body=b"\xff\xfe garbage"),
    Case("empty body", "POST", "/recommendations", 422, "invalid_request", body=b""),
    Case("oversized body", "POST", "/recommendations", 413, "payload_too_large", body=OVERSIZED),
    Case("oversized chunked body", "POST", "/recommendations", 413, "payload_too_large", body=OVERSIZED, chunked=True),
    Case(
        "bad filter on post",
        "POST",
        "/recommendations",
        400,
        "invalid_filter",
        json_body={"user_ids": ["u1"], "filter": {"year": {"$near": 3}}},
    ),
    Case("bad filter on get", "GET", "/recommendations/u1", 400, "invalid_filter", params={"filter": "{oops"}),
    Case("filter not an object", "GET", "/recommendations/u1", 400, "invalid_filter", params={"filter": "[1]"}),
    Case("k zero", "GET", "/recommendations/u1", 422, "invalid_request", params={"k": 0}),
    Case("k huge", "GET", "/recommendations/u1", 422, "invalid_request", params={"k": 10**9}),
    Case("k not a number", "GET", "/recommendations/u1", 422, "invalid_request", params={"k": "ten"}),
    Case("k below candidates", "GET", "/recommendations/u1", 422, None, params={"k": 20, "candidates": 5}),
    Case("k zero on post", "POST", "/recommendations", 422, "invalid_request", json_body={"user_ids": ["u1"], "k": 0}),
    Case("unknown parameter", "GET", "/recommendations/u1", 422, "invalid_request", params={"genre": "drama"}),
    Case("unknown path", "GET", "/no/such/thing", 404, "not_found"),
    Case("wrong method", "DELETE", "/recommendations/u1", 405, "method_not_allowed"),
    Case("healthz", "GET", "/healthz", 200),
]


def _send(http: httpx.Client, case: Case, user: int) -> httpx.Response:
    path = case.path.format(user=user)
    if case.json_body is not None:
        return http.request(
            case.method,
            path,
            params=case.params,
            json=json.loads(json.dumps(case.json_body).replace("{user}", str(user))),
        )
    if case.body is not None:
        content: bytes | Iterator[bytes] = _chunks(case.body) if case.chunked else case.body
        return http.request(
            case.method, path, params=case.params, content=content, headers={"content-type": "application/json"}
        )
    return http.request(case.method, path, params=case.params)


def _check(case: Case, response: httpx.Response) -> str | None:
    """What is wrong with the answer, or None."""
    if response.status_code != case.status:
        return f"{case.name}: {response.status_code} != {case.status}: {response.text[:200]}"
    body = response.json()
    if case.status >= 400:
        if case.error is not None and body.get("error") != case.error:
            return f"{case.name}: error {body.get('error')!r} != {case.error!r}"
        if not isinstance(body.get("detail"), str):
            return f"{case.name}: no detail in {body}"
    elif case.path.startswith("/recommendations/"):
        if case.params.get("filter") and not all("drama" in item["metadata"]["genres"] for item in body["items"]):
            return f"{case.name}: filter violated"
        if not body["items"]:
            return f"{case.name}: no items"
    return None


def test_many_clients_mixing_good_and_bad_requests_get_the_right_answers() -> None:
    apps = {
        True: create_app(_recommender(fallback=True), batching=BatchingSettings(max_wait_ms=2)),
        False: create_app(_recommender(fallback=False), batching=BatchingSettings(max_wait_ms=2)),
    }
    problems: list[str] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    with serve_in_thread(apps[True]) as with_fallback, serve_in_thread(apps[False]) as without_fallback:
        urls = {True: with_fallback, False: without_fallback}

        def client(seed: int) -> None:
            rng = random.Random(seed)
            clients = {key: httpx.Client(base_url=url, timeout=30.0) for key, url in urls.items()}
            try:
                for _ in range(REQUESTS_PER_CLIENT):
                    case = rng.choice(CASES)
                    server = case.fallback_server if case.fallback_server is not None else rng.random() < 0.5
                    try:
                        response = _send(clients[server], case, rng.randrange(N_USERS))
                        problem = _check(case, response)
                        status = response.status_code
                    except httpx.HTTPError as exc:
                        problem, status = f"{case.name}: {type(exc).__name__}: {exc}", -1
                    with lock:
                        statuses[status] += 1
                        if problem is not None:
                            problems.append(problem)
            finally:
                for http in clients.values():
                    http.close()

        threads = [threading.Thread(target=client, args=(seed,)) for seed in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads)

        # Still up, and still right, after the storm.
        for url in urls.values():
            with httpx.Client(base_url=url, timeout=5.0) as http:
                assert http.get("/healthz").json() == {"status": "ok"}
                assert http.get("/recommendations/u3", params={"k": 2}).status_code == 200
    assert problems == []
    assert sum(statuses.values()) == CLIENTS * REQUESTS_PER_CLIENT
    assert not any(status >= 500 for status in statuses)
    assert {200, 400, 404, 405, 413, 422} <= set(statuses)


@pytest.fixture(scope="module")
def small_limit() -> TestClient:
    return TestClient(create_app(_recommender(fallback=False), max_body_bytes=1000))


def test_a_body_at_the_limit_is_read_and_one_byte_more_is_refused(small_limit: TestClient) -> None:
    base = json.dumps({"user_ids": ["u1"], "k": 2})
    at_limit = base[:-1] + " " * (1000 - len(base)) + "}"
    assert len(at_limit.encode()) == 1000
    answered = small_limit.post("/recommendations", content=at_limit, headers={"content-type": "application/json"})
    assert answered.status_code == 200
    refused = small_limit.post("/recommendations", content=at_limit + " ", headers={"content-type": "application/json"})
    assert refused.status_code == 413
    assert refused.json() == {"error": "payload_too_large", "detail": "the request body is larger than 1000 bytes"}
    assert refused.headers["connection"] == "close"


def test_a_chunked_body_over_the_limit_is_refused_and_one_within_it_answered(small_limit: TestClient) -> None:
    small = json.dumps({"user_ids": ["u1"], "k": 2}).encode()
    headers = {"content-type": "application/json"}
    answered = small_limit.post("/recommendations", content=_chunks(small, 5), headers=headers)
    assert answered.status_code == 200
    refused = small_limit.post("/recommendations", content=_chunks(b" " * 1001 + small, 100), headers=headers)
    assert refused.status_code == 413
    assert refused.json()["error"] == "payload_too_large"


def test_the_limit_is_a_setting_and_documented(small_limit: TestClient) -> None:
    unlimited = TestClient(create_app(_recommender(fallback=False), max_body_bytes=None))
    big = json.dumps({"user_ids": ["u1"], "k": 1}) + " " * DEFAULT_MAX_BODY_BYTES
    # Read whole and answered: no limit.
    assert (
        unlimited.post("/recommendations", content=big, headers={"content-type": "application/json"}).status_code == 200
    )
    post = small_limit.get("/openapi.json").json()["paths"]["/recommendations"]["post"]
    assert "413" in post["responses"]
    with pytest.raises(ValueError, match="positive"):
        create_app(_recommender(fallback=False), max_body_bytes=0)
