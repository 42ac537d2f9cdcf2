"""``POST /admin/reload``: a live model swap under real HTTP load, between two real bundles.

Two synthetic bundles over MovieLens-100K (different seeds, so their answers
differ) are served by a real uvicorn server; client threads keep asking while
the service swaps one for the other. Expected answers come from
:func:`~two_stage_rec.assembly.assemble` directly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy.typing as npt
import pytest

from synthetic_models import write_synthetic_models
from two_stage_rec import StoreError
from two_stage_rec.assembly import AssembledRecommender, assemble
from two_stage_rec.serving import serve_in_thread
from two_stage_rec.serving.admin import AdminToken
from two_stage_rec.serving.app import create_app, create_bundle_app
from two_stage_rec.serving.schemas import DEFAULT_CANDIDATES
from two_stage_rec.serving.service import ServiceSettings, build_service
from two_stage_rec.stores.memory import InMemoryVectorStore
from two_stage_rec.types import Filter, QueryResult

pytestmark = pytest.mark.integration

TOKEN = "s3cret-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
USERS = [str(u) for u in range(1, 944, 7)]  # 135 users
K = 5
DIMENSION = 8


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, movielens_dir: Path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("reload")
    first = write_synthetic_models(root / "a", dimension=DIMENSION, seed=11, data_dir=movielens_dir)
    second = write_synthetic_models(root / "b", dimension=DIMENSION, seed=12, data_dir=movielens_dir)
    return first, second


Answer = tuple[tuple[str, ...], tuple[float, ...]]


def expected_answers(path: Path) -> dict[str, Answer]:
    """What the service must answer for each user, computed by the assembler itself."""
    with assemble(path, store="memory") as served:
        batches = served.recommend_batch(USERS, k=K, candidates=max(K, DEFAULT_CANDIDATES))
    return {
        user: (tuple(r.item_id for r in recs), tuple(r.score for r in recs))
        for user, recs in zip(USERS, batches, strict=True)
    }


@pytest.fixture(scope="module")
def answers(bundles: tuple[Path, Path]) -> tuple[dict[str, Answer], dict[str, Answer]]:
    old, new = expected_answers(bundles[0]), expected_answers(bundles[1])
    assert all(old[user][0] != new[user][0] for user in USERS)  # the bundles are told apart by every answer
    return old, new


class ClosingStore(InMemoryVectorStore):
    """A memory store that refuses queries once closed, so a store closed under a running batch shows."""

    def __init__(self, *, dimension: int) -> None:
        super().__init__(dimension=dimension)
        self.closed = threading.Event()

    def close(self) -> None:
        self.closed.set()

    def query(
        self,
        vectors: npt.ArrayLike,
        top_k: int,
        *,
        filter: Filter | None = None,
        include_values: bool = False,
        include_metadata: bool = False,
    ) -> QueryResult:
        if self.closed.is_set():
            raise StoreError("queried after close()")
        return super().query(
            vectors, top_k, filter=filter, include_values=include_values, include_metadata=include_metadata
        )


@dataclass
class Observed:
    started: float
    ended: float
    user: str
    status: int
    answer: Answer | None


def which(answer: Answer | None, user: str, old: dict[str, Answer], new: dict[str, Answer]) -> str:
    """'old' or 'new' when the answer is exactly that bundle's (ids, scores to float32 precision), else 'neither'."""
    if answer is None:
        return "neither"
    for name, table in (("old", old), ("new", new)):
        ids, scores = table[user]
        if answer[0] == ids and answer[1] == pytest.approx(scores, rel=1e-5, abs=1e-6):
            return name
    return "neither"


def drive(base_url: str, stop: threading.Event, offset: int, log: list[Observed]) -> None:
    """One client: sequential GETs over the users until told to stop."""
    with httpx.Client(base_url=base_url, timeout=30.0) as http:
        i = offset
        while not stop.is_set():
            user = USERS[i % len(USERS)]
            i += 1
            started = time.monotonic()
            response = http.get(f"/recommendations/{user}", params={"k": K})
            ended = time.monotonic()
            answer = None
            if response.status_code == 200:
                items = response.json()["items"]
                answer = (tuple(item["item_id"] for item in items), tuple(item["score"] for item in items))
            log.append(Observed(started, ended, user, response.status_code, answer))


@contextmanager
def load_during(base_url: str, clients: int = 4) -> Iterator[list[list[Observed]]]:
    """Client threads driving requests for as long as the block runs (and a little after)."""
    stop = threading.Event()
    logs: list[list[Observed]] = [[] for _ in range(clients)]
    threads = [
        threading.Thread(target=drive, args=(base_url, stop, 37 * n, logs[n]), daemon=True) for n in range(clients)
    ]
    for thread in threads:
        thread.start()
    try:
        yield logs
        time.sleep(0.3)  # keep the load on after the block: answers after the swap
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)


def test_a_swap_under_load_drops_nothing_and_never_mixes_bundles(
    bundles: tuple[Path, Path], answers: tuple[dict[str, Answer], dict[str, Answer]]
) -> None:
    old_answers, new_answers = answers
    stores: list[ClosingStore] = []

    def load(path: Path) -> AssembledRecommender:
        store = ClosingStore(dimension=DIMENSION)
        stores.append(store)
        return assemble(path, store=store)

    app = create_bundle_app(load(bundles[0]), path=bundles[0], loader=load, admin_token=TOKEN)
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=60.0) as admin:
        readiness: list[int] = []
        with load_during(base_url) as logs:
            time.sleep(0.4)
            asked = time.monotonic()
            poll = threading.Thread(target=lambda: readiness.extend(_poll_readyz(base_url, 1.0)), daemon=True)
            poll.start()
            reply = admin.post("/admin/reload", json={"path": str(bundles[1])}, headers=AUTH)
            answered = time.monotonic()
            poll.join(10)
        assert reply.status_code == 200, reply.text
        summary = reply.json()["bundle"]
        assert summary["path"] == str(bundles[1]) and summary["reranker"] == "blend"
        assert summary["recommended"] == "blend" and summary["items"] == 1682 and summary["created"]

        observed = [entry for log in logs for entry in log]
        assert len(observed) > 100
        assert [entry.status for entry in observed if entry.status != 200] == []  # 0 errors
        verdicts = [which(entry.answer, entry.user, old_answers, new_answers) for entry in observed]
        assert "neither" not in verdicts  # every answer wholly one bundle's
        for entry, verdict in zip(observed, verdicts, strict=True):
            if entry.ended < asked:
                assert verdict == "old"
            if entry.started > answered:
                assert verdict == "new"
        for log in logs:  # per client, in order: old answers, then new ones, never back
            names = [which(entry.answer, entry.user, old_answers, new_answers) for entry in log]
            assert names == sorted(names, key=lambda name: name == "new")
            assert names[0] == "old" and names[-1] == "new"
        assert readiness and set(readiness) == {200}  # ready throughout the reload
        # The old store was closed once its last batch was done (a query after close would have failed above).
        assert stores[0].closed.wait(5) and not stores[1].closed.is_set()
    assert stores[1].closed.is_set()  # and the app closes the store it serves when it stops


def _poll_readyz(base_url: str, seconds: float) -> list[int]:
    statuses = []
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=base_url, timeout=10.0) as http:
        while time.monotonic() < deadline:
            statuses.append(http.get("/readyz").status_code)
    return statuses


def test_a_bundle_that_fails_to_load_leaves_the_old_one_serving(
    bundles: tuple[Path, Path], answers: tuple[dict[str, Answer], dict[str, Answer]], tmp_path: Path
) -> None:
    old_answers, _ = answers
    settings = ServiceSettings(models=bundles[0], store="memory", admin_token=AdminToken(TOKEN))
    app, _ = build_service(settings)
    (tmp_path / "not-a-bundle").mkdir()
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=60.0) as http:
        with load_during(base_url, clients=2) as logs:
            reply = http.post("/admin/reload", json={"path": str(tmp_path / "not-a-bundle")}, headers=AUTH)
        assert reply.status_code == 422
        body = reply.json()
        assert body["error"] == "reload_failed"
        assert "not a models bundle" in body["detail"] and "previous one is still served" in body["detail"]
        observed = [entry for log in logs for entry in log]
        assert observed and all(entry.status == 200 for entry in observed)
        assert {which(entry.answer, entry.user, old_answers, {}) for entry in observed} == {"old"}
        # A reload without a path reads the served bundle again and serves the same answers.
        again = http.post("/admin/reload", headers=AUTH)
        assert again.status_code == 200 and again.json()["bundle"]["path"] == str(bundles[0])
        user = USERS[3]
        items = http.get(f"/recommendations/{user}", params={"k": K}).json()["items"]
        assert tuple(item["item_id"] for item in items) == old_answers[user][0]
        metrics = http.get("/metrics").text
        assert 'two_stage_rec_reloads_total{outcome="failure"} 1.0' in metrics
        assert 'two_stage_rec_reloads_total{outcome="success"} 1.0' in metrics


def test_one_reload_at_a_time_and_the_service_answers_meanwhile(bundles: tuple[Path, Path]) -> None:
    release = threading.Event()
    started = threading.Event()

    def slow_load(path: Path) -> AssembledRecommender:
        started.set()
        release.wait(30)
        return assemble(path, store="memory")

    app = create_bundle_app(assemble(bundles[0], store="memory"), path=bundles[0], loader=slow_load, admin_token=TOKEN)
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=60.0) as http:
        first: list[httpx.Response] = []
        reloading = threading.Thread(
            target=lambda: first.append(http.post("/admin/reload", json={"path": str(bundles[1])}, headers=AUTH))
        )
        reloading.start()
        assert started.wait(10)
        with httpx.Client(base_url=base_url, timeout=10.0) as other:
            second = other.post("/admin/reload", headers=AUTH)
            assert second.status_code == 409 and second.json()["error"] == "reload_in_progress"
            assert other.get("/readyz").status_code == 200
            assert other.get("/recommendations/42").status_code == 200
        release.set()
        reloading.join(30)
        assert first[0].status_code == 200
        assert http.post("/admin/reload", headers=AUTH).status_code == 200  # free again


def test_admin_endpoints_are_absent_without_a_token_and_guarded_with_one(
    bundles: tuple[Path, Path], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    served = assemble(bundles[0], store="memory")
    plain = TestClient(create_bundle_app(served, path=bundles[0], loader=lambda p: assemble(p, store="memory")))
    assert plain.post("/admin/reload", headers=AUTH).status_code == 404
    assert plain.put("/admin/items", json={"items": [{"id": "1"}]}, headers=AUTH).status_code == 404
    assert "/admin/reload" not in plain.get("/openapi.json").json()["paths"]

    caplog.set_level(logging.DEBUG)
    guarded = TestClient(
        create_bundle_app(
            assemble(bundles[0], store="memory"),
            path=bundles[0],
            loader=lambda p: assemble(p, store="memory"),
            admin_token=TOKEN,
        )
    )
    missing = guarded.post("/admin/reload")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    wrong = guarded.post("/admin/reload", headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"})
    assert wrong.status_code == 403 and wrong.json()["error"] == "forbidden"
    assert guarded.post("/admin/reload", headers={"Authorization": TOKEN}).status_code == 401  # not a bearer
    failed = guarded.post("/admin/reload", json={"path": str(tmp_path)}, headers=AUTH)
    assert failed.status_code == 422
    schema = guarded.get("/openapi.json")
    assert {"/admin/reload", "/admin/items"} <= set(schema.json()["paths"])
    assert schema.json()["paths"]["/admin/reload"]["post"]["security"]
    for text in (missing.text, wrong.text, failed.text, schema.text, guarded.get("/docs").text, caplog.text):
        assert TOKEN not in text
    settings = ServiceSettings(models=bundles[0], admin_token=AdminToken(TOKEN))
    assert TOKEN not in repr(settings) and TOKEN not in repr(AdminToken(TOKEN)) and TOKEN not in str(AdminToken(TOKEN))
    with pytest.raises(ValueError, match="at least 16") as short:
        AdminToken("short-secret")
    assert "short-secret" not in str(short.value)
    assert AdminToken(TOKEN) == AdminToken(TOKEN) and AdminToken(TOKEN) != AdminToken(TOKEN + "!")


def test_with_several_workers_admin_endpoints_refuse_to_update_one_worker(bundles: tuple[Path, Path]) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(
        create_bundle_app(
            assemble(bundles[0], store="memory"),
            path=bundles[0],
            loader=lambda p: assemble(p, store="memory"),
            admin_token=TOKEN,
            workers=2,
        )
    )
    for response in (
        client.post("/admin/reload", headers=AUTH),
        client.put("/admin/items", json={"items": [{"id": "1"}]}, headers=AUTH),
        client.request("DELETE", "/admin/items", json={"ids": ["1"]}, headers=AUTH),
    ):
        assert response.status_code == 501
        assert "rolling restart" in response.json()["detail"]
    assert client.post("/admin/reload").status_code == 401  # the token is still checked first


def test_an_app_around_a_bare_recommender_cannot_reload(bundles: tuple[Path, Path]) -> None:
    from fastapi.testclient import TestClient

    served = assemble(bundles[0], store="memory")
    client = TestClient(create_app(served.recommender, admin_token=TOKEN))
    response = client.post("/admin/reload", json={"path": str(bundles[1])}, headers=AUTH)
    assert response.status_code == 501 and response.json()["error"] == "not_supported"
