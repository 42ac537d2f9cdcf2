"""Operations against real uvicorn servers: structured access logs, graceful shutdown."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest

from two_stage_rec import InvalidInputError, Recommender
from two_stage_rec.embedders.table import TableEmbedder
from two_stage_rec.serving import BatchingSettings, create_app, serve_in_thread
from two_stage_rec.serving.middleware import ACCESS_LOGGER, DEFAULT_MAX_BODY_BYTES
from two_stage_rec.serving.service import ENV_PREFIX, ServiceSettings, enable_access_log
from two_stage_rec.stores.memory import InMemoryVectorStore
from two_stage_rec.types import Filter, QueryResult

pytestmark = pytest.mark.integration

DIMENSION = 8
N_ITEMS = 60
N_USERS = 10
TOKEN = "s3cret-admin-token-0123456789"


class SlowStore(InMemoryVectorStore):
    """An in-memory store whose queries take ``delay_s`` and say when one has started."""

    def __init__(self, dimension: int, delay_s: float) -> None:
        super().__init__(dimension=dimension)
        self.delay_s = delay_s
        self.querying = threading.Event()

    def query(
        self,
        vectors: npt.ArrayLike,
        top_k: int,
        *,
        filter: Filter | None = None,
        include_values: bool = False,
        include_metadata: bool = False,
    ) -> QueryResult:
        self.querying.set()
        time.sleep(self.delay_s)
        return super().query(
            vectors, top_k, filter=filter, include_values=include_values, include_metadata=include_metadata
        )


def _recommender(store: InMemoryVectorStore | None = None) -> Recommender:
    rng = np.random.default_rng(5)
    item_ids = [str(i) for i in range(N_ITEMS)]
    recommender = Recommender(
        user_embedder=TableEmbedder(
            [f"u{i}" for i in range(N_USERS)], rng.normal(size=(N_USERS, DIMENSION)).astype(np.float32)
        ),
        item_embedder=TableEmbedder(item_ids, rng.normal(size=(N_ITEMS, DIMENSION)).astype(np.float32)),
        store=store if store is not None else InMemoryVectorStore(dimension=DIMENSION),
    )
    recommender.index_items(item_ids, metadata=[{"title": f"Item {i}"} for i in range(N_ITEMS)])
    return recommender


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def access_lines() -> Any:
    logger = logging.getLogger(ACCESS_LOGGER)
    handler = Lines()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# ------------------------------------------------------------------ access logs


def test_each_request_writes_one_json_line_without_headers_or_token(access_lines: list[str]) -> None:
    app = create_app(_recommender(), admin_token=TOKEN, access_log=True, batching=BatchingSettings(max_wait_ms=2))
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=10.0) as http:
        assert http.get("/recommendations/u1", params={"k": 3}).status_code == 200
        assert http.get("/healthz").status_code == 200
        assert http.get("/no/such/path").status_code == 404
        assert (
            http.post("/recommendations", content=b"{", headers={"content-type": "application/json"}).status_code == 422
        )
        # An admin call with the right token and one with a wrong token: neither token may be logged.
        good = http.request("DELETE", "/admin/items", json={"ids": ["3"]}, headers={"Authorization": f"Bearer {TOKEN}"})
        bad = http.request(
            "DELETE", "/admin/items", json={"ids": ["4"]}, headers={"Authorization": "Bearer wrong-token-abcdefgh"}
        )
    assert good.status_code == 200, good.text
    assert bad.status_code == 403
    assert len(access_lines) == 6
    records = [json.loads(line) for line in access_lines]  # each line is one JSON object
    one = records[0]
    assert one["method"] == "GET"
    assert one["route"] == "/recommendations/{user_id}"
    assert one["path"] == "/recommendations/u1"
    assert one["status"] == 200
    assert isinstance(one["duration_ms"], float) and one["duration_ms"] > 0
    assert one["batch_size"] == 1
    assert one["response_bytes"] > 0
    assert one["client"] == "127.0.0.1"
    assert [(r["method"], r["route"], r["status"]) for r in records[1:]] == [
        ("GET", "/healthz", 200),
        ("GET", "unmatched", 404),
        ("POST", "/recommendations", 422),
        ("DELETE", "/admin/items", 200),
        ("DELETE", "/admin/items", 403),
    ]
    assert all("batch_size" not in r for r in records[1:])
    everything = "\n".join(access_lines)
    assert TOKEN not in everything
    assert "wrong-token" not in everything
    assert "Bearer" not in everything
    assert "authorization" not in everything.lower()


def test_batched_requests_log_their_batch_size(access_lines: list[str]) -> None:
    store = SlowStore(DIMENSION, delay_s=0.0)
    app = create_app(_recommender(store), access_log=True, batching=BatchingSettings(max_wait_ms=20))
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=10.0) as http:
        store.delay_s = 0.2  # the first request holds the worker while the others queue into one batch
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda user: http.get(f"/recommendations/u{user}"), range(8)))
    assert all(answer.status_code == 200 for answer in answers)
    sizes = sorted(json.loads(line)["batch_size"] for line in access_lines)
    assert len(sizes) == 8
    assert max(sizes) > 1


def test_no_access_log_unless_asked(access_lines: list[str]) -> None:
    with serve_in_thread(create_app(_recommender())) as base_url:
        assert httpx.get(f"{base_url}/healthz", timeout=5.0).status_code == 200
    assert access_lines == []


# ------------------------------------------------------------- graceful shutdown


@pytest.mark.parametrize("batching", [BatchingSettings(max_wait_ms=2), None], ids=["batched", "unbatched"])
def test_requests_in_flight_when_the_server_stops_are_answered(batching: BatchingSettings | None) -> None:
    store = SlowStore(DIMENSION, delay_s=0.0)
    recommender = _recommender(store)
    expected = {f"u{i}": [r.item_id for r in recommender.recommend(f"u{i}", k=3)] for i in range(N_USERS)}
    store.delay_s = 0.5
    store.querying.clear()
    app = create_app(recommender, batching=batching, metrics=False)
    results: dict[str, Any] = {}

    def ask(user: str) -> None:
        try:
            with httpx.Client(timeout=15.0) as http:
                results[user] = http.get(f"{base_url}/recommendations/{user}", params={"k": 3})
        except httpx.HTTPError as exc:
            results[user] = exc

    with serve_in_thread(app) as base_url:
        clients = [threading.Thread(target=ask, args=(f"u{i}",)) for i in range(6)]
        for client in clients:
            client.start()
        assert store.querying.wait(10.0)  # the store is answering the first request
        time.sleep(0.2)  # the others have connected and are being computed (unbatched) or queued (batched)
        # Leaving the block asks the server to stop now, with the requests still being computed.
    stopped = time.monotonic()
    for client in clients:
        client.join(timeout=15.0)
    assert time.monotonic() - stopped < 15.0
    assert len(results) == 6
    for user, outcome in results.items():
        assert isinstance(outcome, httpx.Response), f"{user}: {outcome!r}"
        assert outcome.status_code == 200
        assert [item["item_id"] for item in outcome.json()["items"]] == expected[user]
    with pytest.raises(httpx.ConnectError):  # and it is stopped
        httpx.get(f"{base_url}/healthz", timeout=1.0)


# --------------------------------------------------------------------- settings


def test_service_settings_carry_the_access_log_and_body_limit_to_workers() -> None:
    settings = ServiceSettings(models=Path("bundle"), access_log=True, max_body_bytes=4096)
    assert ServiceSettings.from_environment(settings.to_environment()) == settings
    defaults = ServiceSettings.from_environment({f"{ENV_PREFIX}MODELS": "m"})
    assert (defaults.access_log, defaults.max_body_bytes) == (False, DEFAULT_MAX_BODY_BYTES)
    with pytest.raises(InvalidInputError, match="MAX_BODY_BYTES"):
        ServiceSettings.from_environment({f"{ENV_PREFIX}MODELS": "m", f"{ENV_PREFIX}MAX_BODY_BYTES": "0"})


def test_enable_access_log_writes_bare_json_lines_once(monkeypatch: pytest.MonkeyPatch) -> None:
    logger = logging.getLogger(ACCESS_LOGGER)
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "propagate", True)
    monkeypatch.setattr(logger, "level", logging.NOTSET)
    enable_access_log()
    enable_access_log()
    assert len(logger.handlers) == 1
    assert not logger.propagate
    stream = io.StringIO()
    handler = logger.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    monkeypatch.setattr(handler, "stream", stream)
    logger.info('{"status":200}')
    assert stream.getvalue() == '{"status":200}\n'


# ------------------------------------------------------------ garbage collection


def test_a_serving_process_freezes_what_it_loaded_out_of_full_collections() -> None:
    import gc

    from two_stage_rec.serving.server import freeze_loaded_objects

    loaded = [{"item": str(i)} for i in range(1000)]  # what a bundle leaves on the heap
    try:
        freeze_loaded_objects()
        assert gc.get_freeze_count() >= len(loaded)
        assert not any(obj is loaded[0] for obj in gc.get_objects())  # the collector no longer walks it
    finally:
        gc.unfreeze()  # give the test process its collector back
