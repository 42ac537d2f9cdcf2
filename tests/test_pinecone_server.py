"""The Pinecone-compatible test server on its own: limits, key check, keep-alive, clean stop.
(The client-level behaviour is tested through PineconeVectorStore elsewhere.)"""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from two_stage_rec.testing.pinecone_server import PineconeTestServer, ServerLimits

KEY = "server-test-key"


@pytest.fixture
def running() -> Any:
    with (
        PineconeTestServer(api_key=KEY, limits=ServerLimits(max_upsert_bytes=50_000)) as server,
        httpx.Client(base_url=server.url, headers={"Api-Key": KEY}) as client,
    ):
        created = client.post(
            "/indexes",
            json={
                "name": "idx",
                "schema": {"fields": {"_values": {"type": "dense_vector", "dimension": 2, "metric": "cosine"}}},
                "deployment": {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"},
            },
        )
        assert created.status_code == 201
        model = created.json()
        assert model["host"] == f"{server.url}/data/idx" and model["status"]["ready"] is True
        yield server, client


def _upsert(client: httpx.Client, vectors: list[dict[str, Any]]) -> httpx.Response:
    return client.post("/data/idx/vectors/upsert", json={"vectors": vectors})


def test_enforces_the_documented_limits(running: Any) -> None:
    server, client = running
    assert _upsert(client, [{"id": str(i), "values": [1.0, 0.0]} for i in range(1_001)]).status_code == 400
    big = [{"id": str(i), "values": [1.0, 0.0], "metadata": {"pad": "x" * 1_000}} for i in range(60)]
    too_large = _upsert(client, big)
    assert too_large.status_code == 413 and too_large.json()["error"]["code"] == "REQUEST_TOO_LARGE"
    assert _upsert(client, [{"id": "x" * 513, "values": [1.0, 0.0]}]).status_code == 400
    assert _upsert(client, [{"id": "a", "values": [1.0, 0.0], "metadata": {"m": "x" * 41_000}}]).status_code == 400
    assert _upsert(client, [{"id": "a", "values": [1.0, 0.0, 3.0]}]).status_code == 400
    assert _upsert(client, [{"id": "a", "values": [1.0, None]}]).status_code == 400
    ok = _upsert(client, [{"id": "a", "values": [1.0, 0.0], "metadata": {"n": 1, "gone": None}}])
    assert ok.json() == {"upsertedCount": 1}
    assert server.stored("idx") == {"a": ([1.0, 0.0], {"n": 1.0})}  # numbers as doubles, nulls stripped

    def query(top_k: int, **flags: bool) -> int:
        body = {"topK": top_k, "vector": [1.0, 0.0], **{f"include{k.title()}": v for k, v in flags.items()}}
        return client.post("/data/idx/query", json=body).status_code

    assert (query(10_000), query(10_001)) == (200, 400)
    assert (query(1_000, metadata=True), query(1_001, metadata=True), query(1_001, values=True)) == (200, 400, 400)
    ids = "&".join(f"ids={i}" for i in range(1_001))
    assert client.get(f"/data/idx/vectors/fetch?{ids}").status_code == 400


def test_checks_the_api_key(running: Any) -> None:
    server, _ = running
    with httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.get("/indexes").status_code == 401
        assert anonymous.get("/indexes", headers={"Api-Key": "wrong"}).json()["error"]["code"] == "UNAUTHENTICATED"


def test_euclidean_scores_are_squared_distances_like_pinecone(running: Any) -> None:
    _, client = running
    client.post(
        "/indexes",
        json={
            "name": "e",
            "schema": {"fields": {"_values": {"type": "dense_vector", "dimension": 2, "metric": "euclidean"}}},
        },
    )
    client.post(
        "/data/e/vectors/upsert",
        json={"vectors": [{"id": "far", "values": [3.0, 4.0]}, {"id": "near", "values": [1.0, 0.0]}]},
    )
    matches = client.post("/data/e/query", json={"topK": 2, "vector": [0.0, 0.0]}).json()["matches"]
    assert [(m["id"], m["score"]) for m in matches] == [("near", 1.0), ("far", 25.0)]  # ascending distance


def test_keep_alive_no_delay_and_a_clean_stop() -> None:
    server = PineconeTestServer(api_key=KEY).start()
    port = server.port
    with httpx.Client(base_url=server.url, headers={"Api-Key": KEY}) as client:
        for _ in range(5):
            assert client.get("/indexes").status_code == 200
        httpd = server._httpd
        assert httpd is not None
        connections = list(httpd._connections)
        assert len(connections) == 1  # HTTP/1.1 keep-alive: one connection for five requests
        assert connections[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        thread = server._thread
        server.stop()  # with the client's connection still open
    assert thread is not None and not thread.is_alive()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
