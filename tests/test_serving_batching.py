"""Micro-batching: the batcher on its own, error isolation, and the service under concurrent load."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from two_stage_rec import InvalidInputError, Recommender, StoreUnavailableError, UnknownUserError
from two_stage_rec.embedders.table import TableEmbedder
from two_stage_rec.explain import Explanation
from two_stage_rec.policies import Policy
from two_stage_rec.recommender import HistoryArg, Recommendation
from two_stage_rec.serving import create_app, serve_in_thread
from two_stage_rec.serving.batching import BatchingSettings, MicroBatcher, recommend_each
from two_stage_rec.stores.memory import InMemoryVectorStore
from two_stage_rec.types import Filter

DIMENSION = 8
N_ITEMS = 200
N_USERS = 40


# ------------------------------------------------------------------ the batcher


class _Recorder:
    """An ``answer`` function that records its calls and can hold the worker until released."""

    def __init__(self, *, hold_first: bool = False) -> None:
        self.calls: list[tuple[str, list[int]]] = []
        self.release = threading.Event()
        self.busy = threading.Event()  # set once the worker is inside a call
        if not hold_first:
            self.release.set()

    def __call__(self, key: str, items: list[int]) -> list[int | Exception]:
        self.busy.set()
        self.release.wait(10)
        self.calls.append((key, list(items)))
        return [ValueError(f"odd item {i}") if i % 2 and key == "strict" else i * 10 for i in items]


async def _submit_all(batcher: MicroBatcher[str, int, int], keyed: Sequence[tuple[str, int]]) -> list[object]:
    tasks = [asyncio.create_task(batcher.submit(key, item)) for key, item in keyed]
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_requests_queued_while_a_batch_runs_form_the_next_batch() -> None:
    recorder = _Recorder(hold_first=True)
    batcher: MicroBatcher[str, int, int] = MicroBatcher(recorder, BatchingSettings(max_wait_ms=0, max_batch_size=64))

    async def scenario() -> list[object]:
        tasks = [asyncio.create_task(batcher.submit("k", 0))]
        assert await asyncio.to_thread(recorder.busy.wait, 10)  # the worker holds the first batch
        tasks += [asyncio.create_task(batcher.submit("k", i)) for i in range(1, 20)]
        await asyncio.sleep(0.05)  # every task has queued its item
        recorder.release.set()
        return await asyncio.gather(*tasks)

    try:
        answers = asyncio.run(scenario())
    finally:
        batcher.close()
    assert answers == [i * 10 for i in range(20)]
    sizes = [len(items) for _, items in recorder.calls]
    assert sizes == [1, 19]  # the held batch, then everything queued behind it
    assert [i for _, items in recorder.calls for i in items] == list(range(20))  # arrival order
    assert (batcher.batches, batcher.items) == (2, 20)


def test_batches_are_bounded_in_size() -> None:
    recorder = _Recorder(hold_first=True)
    batcher: MicroBatcher[str, int, int] = MicroBatcher(recorder, BatchingSettings(max_wait_ms=0, max_batch_size=4))

    async def scenario() -> list[object]:
        tasks = [asyncio.create_task(batcher.submit("k", i)) for i in range(13)]
        await asyncio.sleep(0.05)
        recorder.release.set()
        return await asyncio.gather(*tasks)

    try:
        assert asyncio.run(scenario()) == [i * 10 for i in range(13)]
    finally:
        batcher.close()
    assert max(len(items) for _, items in recorder.calls) <= 4
    assert len(recorder.calls) >= 4


def test_each_key_gets_its_own_call_and_errors_stay_with_their_item() -> None:
    recorder = _Recorder(hold_first=True)
    batcher: MicroBatcher[str, int, int] = MicroBatcher(recorder, BatchingSettings(max_wait_ms=0))

    async def scenario() -> list[object]:
        first = asyncio.create_task(batcher.submit("lenient", 100))
        assert await asyncio.to_thread(recorder.busy.wait, 10)
        rest = [asyncio.create_task(batcher.submit(key, i)) for i, key in enumerate(["strict", "lenient"] * 3)]
        await asyncio.sleep(0.05)
        recorder.release.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    try:
        answers = asyncio.run(scenario())
    finally:
        batcher.close()
    assert answers[0] == 1000
    # Items 0, 2, 4 are "strict" and even: answered; 1, 3, 5 are "lenient": answered too.
    assert answers[1:] == [0, 10, 20, 30, 40, 50]
    assert recorder.calls[1:] == [("strict", [0, 2, 4]), ("lenient", [1, 3, 5])]

    batcher = MicroBatcher(_Recorder(), BatchingSettings(max_wait_ms=0))
    try:
        mixed = asyncio.run(_submit_all(batcher, [("strict", i) for i in range(6)]))
    finally:
        batcher.close()
    assert [a for a in mixed if not isinstance(a, Exception)] == [0, 20, 40]
    assert [str(a) for a in mixed if isinstance(a, Exception)] == ["odd item 1", "odd item 3", "odd item 5"]


def test_a_failing_batch_fails_only_its_own_group() -> None:
    def answer(key: str, items: list[int]) -> list[int | Exception]:
        if key == "broken":
            raise RuntimeError("the model is gone")
        return list(items)

    batcher: MicroBatcher[str, int, int] = MicroBatcher(answer, BatchingSettings(max_wait_ms=0))
    try:
        answers = asyncio.run(_submit_all(batcher, [("broken", 1), ("fine", 2), ("broken", 3), ("fine", 4)]))
    finally:
        batcher.close()
    assert answers[1] == 2 and answers[3] == 4
    assert all(isinstance(a, RuntimeError) and str(a) == "the model is gone" for a in (answers[0], answers[2]))


def test_an_idle_batcher_does_not_wait_for_company() -> None:
    """With a one-second wait configured, a lone request is still answered at once."""
    batcher: MicroBatcher[str, int, int] = MicroBatcher(_Recorder(), BatchingSettings(max_wait_ms=1000))

    async def sequential() -> float:
        slowest = 0.0
        for i in range(5):
            start = time.perf_counter()
            assert await batcher.submit("k", i) == i * 10
            slowest = max(slowest, time.perf_counter() - start)
        return slowest

    try:
        slowest = asyncio.run(sequential())
    finally:
        batcher.close()
    assert slowest < 0.5  # the wait would have been 1 s
    assert batcher.batches == 5


def test_under_load_the_batcher_waits_for_more_requests() -> None:
    """After a batch of several requests, the next one waits (bounded) for others to join it."""
    recorder = _Recorder()
    batcher: MicroBatcher[str, int, int] = MicroBatcher(recorder, BatchingSettings(max_wait_ms=1000, max_batch_size=2))

    async def scenario() -> None:
        await _submit_all(batcher, [("k", 1), ("k", 2)])  # one batch of two: the service is busy
        late = asyncio.create_task(batcher.submit("k", 3))
        await asyncio.sleep(0.1)  # within the wait of the request before it
        assert list(await asyncio.gather(late, batcher.submit("k", 4))) == [30, 40]

    try:
        asyncio.run(scenario())
    finally:
        batcher.close()
    assert [items for _, items in recorder.calls][-1] == [3, 4]


def test_close_answers_what_is_queued_and_refuses_more() -> None:
    recorder = _Recorder(hold_first=True)
    batcher: MicroBatcher[str, int, int] = MicroBatcher(recorder, BatchingSettings(max_wait_ms=0))

    async def scenario() -> list[object]:
        tasks = [asyncio.create_task(batcher.submit("k", i)) for i in range(5)]
        await asyncio.sleep(0.05)
        closer = threading.Thread(target=batcher.close)
        closer.start()
        recorder.release.set()
        answers = await asyncio.gather(*tasks)
        closer.join()
        with pytest.raises(RuntimeError, match="closed"):
            await batcher.submit("k", 99)
        return list(answers)

    assert asyncio.run(scenario()) == [0, 10, 20, 30, 40]
    assert not any(t.name == "micro-batcher" for t in threading.enumerate())


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_wait_ms": -1.0}, "max_wait_ms"),
        ({"max_wait_ms": 5000.0}, "max_wait_ms"),
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"max_batch_size": True}, "max_batch_size"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        BatchingSettings(**settings)  # type: ignore[arg-type]


# ------------------------------------------------------ recommendations in batches


class _CountingRecommender(Recommender):
    """Records every ``recommend_batch`` call; can fail for chosen users or when the store 'goes away'."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_sizes: list[int] = []
        self.poison: set[str] = set()
        self.store_down = False
        self.delay_s = 0.0
        self._lock = threading.Lock()

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
        with self._lock:
            self.batch_sizes.append(len(user_ids))
        if self.delay_s:
            time.sleep(self.delay_s)
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


def _counting_recommender(*, fallback: bool = False) -> _CountingRecommender:
    from two_stage_rec import PopularityFallback

    rng = np.random.default_rng(11)
    item_ids = [str(i) for i in range(N_ITEMS)]
    user_ids = [f"u{i}" for i in range(N_USERS)]
    recommender = _CountingRecommender(
        user_embedder=TableEmbedder(user_ids, rng.normal(size=(N_USERS, DIMENSION)).astype(np.float32)),
        item_embedder=TableEmbedder(item_ids, rng.normal(size=(N_ITEMS, DIMENSION)).astype(np.float32)),
        store=InMemoryVectorStore(dimension=DIMENSION),
        fallback=PopularityFallback(item_ids[:20]) if fallback else None,
    )
    recommender.index_items(item_ids, metadata=[{"title": f"Item {i}"} for i in range(N_ITEMS)])
    recommender.batch_sizes.clear()
    return recommender


def _ids(recommendations: list[Recommendation]) -> list[str]:
    return [r.item_id for r in recommendations]


def test_recommend_each_matches_single_calls_and_isolates_unknown_users() -> None:
    recommender = _counting_recommender()
    users = ["u1", "ghost", "u2", "u3", "phantom"]
    excludes = [frozenset({"5"}), frozenset(), frozenset(), frozenset({"7", "8"}), frozenset()]
    outcomes = recommend_each(recommender, users, excludes, k=4, candidates=30)
    for user, excluded, outcome in zip(users, excludes, outcomes, strict=True):
        if user in ("ghost", "phantom"):
            assert isinstance(outcome, UnknownUserError) and outcome.keys == [user]
        else:
            assert not isinstance(outcome, Exception)
            assert _ids(outcome) == _ids(recommender.recommend(user, k=4, candidates=30, exclude=excluded))
            assert not set(_ids(outcome)) & excluded
    assert recommender.batch_sizes[:2] == [5, 3]  # all, then the known users once more


def test_recommend_each_isolates_other_failures_but_shares_store_failures() -> None:
    recommender = _counting_recommender()
    recommender.poison = {"u3"}
    outcomes = recommend_each(recommender, ["u1", "u3", "u2"], [frozenset()] * 3, k=3, candidates=10)
    assert isinstance(outcomes[1], RuntimeError)
    assert not isinstance(outcomes[0], Exception) and not isinstance(outcomes[2], Exception)
    assert _ids(outcomes[0]) == _ids(recommender.recommend("u1", k=3, candidates=10))

    recommender.poison = set()
    recommender.store_down = True
    recommender.batch_sizes.clear()
    outcomes = recommend_each(recommender, ["u1", "u2", "u4"], [frozenset()] * 3, k=3, candidates=10)
    assert all(isinstance(o, StoreUnavailableError) for o in outcomes)
    assert recommender.batch_sizes == [3]  # asked once, not once per user


def test_concurrent_http_requests_are_answered_in_batches_with_their_own_answers() -> None:
    recommender = _counting_recommender()
    seen = {f"u{i}": [str(i), str(i + 1)] for i in range(N_USERS)}
    expected = {
        u: _ids(recommender.recommend(u, k=4, exclude=frozenset(seen[u]))) for u in (f"u{i}" for i in range(N_USERS))
    }
    recommender.batch_sizes.clear()
    recommender.delay_s = 0.01  # each batch takes a while, so requests pile up behind it
    app = create_app(recommender, seen_items=seen, batching=BatchingSettings(max_wait_ms=2, max_batch_size=16))
    requests = [f"u{i % N_USERS}" for i in range(160)]
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=20.0) as http:

        def fetch(user: str) -> tuple[str, int, list[str]]:
            response = http.get(f"/recommendations/{user}", params={"k": 4})
            return user, response.status_code, [item["item_id"] for item in response.json()["items"]]

        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(fetch, requests))
    assert all(status == 200 for _, status, _ in answers)
    assert all(ids == expected[user] for user, _, ids in answers)
    assert sum(recommender.batch_sizes) == len(requests)
    assert max(recommender.batch_sizes) > 1 and len(recommender.batch_sizes) < len(requests)
    assert max(recommender.batch_sizes) <= 16


def test_an_unknown_user_in_a_batch_gets_404_and_the_others_their_answers() -> None:
    recommender = _counting_recommender()
    recommender.delay_s = 0.01
    app = create_app(recommender, batching=BatchingSettings(max_wait_ms=2))
    users = [f"u{i}" for i in range(12)] + ["ghost-1", "ghost-2"]
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=20.0) as http:

        def fetch(user: str) -> tuple[str, httpx.Response]:
            return user, http.get(f"/recommendations/{user}", params={"k": 3})

        with ThreadPoolExecutor(max_workers=14) as pool:
            answers = list(pool.map(fetch, users * 4))
    for user, response in answers:
        if user.startswith("ghost"):
            assert response.status_code == 404
            assert response.json() == {
                "error": "unknown_user",
                "detail": f"unknown user(s): '{user}'",
                "user_ids": [user],
            }
        else:
            assert response.status_code == 200, response.text
            assert len(response.json()["items"]) == 3
    assert max(recommender.batch_sizes) > 1


def test_requests_with_different_parameters_are_batched_apart() -> None:
    recommender = _counting_recommender(fallback=True)
    recommender.delay_s = 0.02
    app = create_app(recommender, batching=BatchingSettings(max_wait_ms=2))
    cases = [("u1", 2, "true"), ("u2", 3, "true"), ("u3", 2, "false"), ("newcomer", 2, "true")] * 5
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=20.0) as http:

        def fetch(case: tuple[str, int, str]) -> tuple[tuple[str, int, str], httpx.Response]:
            user, k, rerank = case
            return case, http.get(f"/recommendations/{user}", params={"k": k, "rerank": rerank})

        with ThreadPoolExecutor(max_workers=10) as pool:
            answers = list(pool.map(fetch, cases))
    for (user, k, rerank), response in answers:
        items = response.raise_for_status().json()["items"]
        expected = recommender.recommend(user, k=k, rerank=rerank == "true")
        assert [item["item_id"] for item in items] == _ids(expected)
        assert {item["source"] for item in items} == {r.source for r in expected}


def test_batching_off_answers_each_request_alone() -> None:
    recommender = _counting_recommender()
    client = TestClient(create_app(recommender, batching=None))
    for user in ("u1", "u2", "nobody"):
        response = client.get(f"/recommendations/{user}", params={"k": 3})
        if user == "nobody":
            assert response.status_code == 404
        else:
            assert [i["item_id"] for i in response.json()["items"]] == _ids(recommender.recommend(user, k=3))
    assert recommender.batch_sizes[:3] == [1, 1, 1]


def test_shutting_the_server_down_stops_the_batching_thread() -> None:
    recommender = _counting_recommender()
    before = set(threading.enumerate())

    def batching_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "recommendation-batches" and t not in before]

    with (
        serve_in_thread(create_app(recommender)) as base_url,
        httpx.Client(base_url=base_url, timeout=10.0) as http,
    ):
        assert http.get("/recommendations/u1").status_code == 200
        assert len(batching_threads()) == 1
    assert batching_threads() == []


def test_the_fast_json_is_what_the_pydantic_models_render() -> None:
    from two_stage_rec.serving.schemas import (
        RecommendedItem,
        UserRecommendations,
        recommendations_json,
        user_recommendations,
    )

    recommendations = [
        Recommendation("7", 2.5, 0.25, {"title": "Seven", "genres": ["Drama", "War"], "year": 1999}, "reranked"),
        Recommendation("8", -1.0, float("nan"), {}, "fallback"),
        Recommendation("9", float("inf"), 1e-30, {"flag": True, "price": 9.99}, "retrieval"),
        Recommendation(
            "10",
            1.5,
            0.5,
            {},
            "reranked",
            folded_in=True,
            explanation=Explanation((("7", 0.9), ("3", 0.25)), "index", 4, (("age", -0.5),)),
        ),
        Recommendation("11", float("-inf"), float("nan"), {}, "pinned", explanation=Explanation((), "pinned", None)),
    ]
    titles = {"7": "Seven (1995)", "9": None}
    fast = recommendations_json(
        user_recommendations("u1", recommendations, lambda r: titles.get(r.item_id), titles.get)
    )
    models = UserRecommendations(
        user_id="u1",
        items=[RecommendedItem.from_recommendation(r, titles.get(r.item_id), titles.get) for r in recommendations],
    )
    assert fast == models.model_dump_json().encode()


def test_the_fast_json_renders_what_orjson_refuses_as_pydantic_does() -> None:
    from pydantic_core import to_json

    from two_stage_rec.serving.schemas import recommendations_json, user_recommendations

    huge = 2**70  # beyond orjson's 64-bit integers
    body = user_recommendations("u1", [Recommendation("7", 2.5, 0.25, {"views": huge}, "reranked")], lambda r: None)
    assert recommendations_json(body) == to_json(body, inf_nan_mode="null")
    assert json.loads(recommendations_json(body))["items"][0]["metadata"] == {"views": huge}
