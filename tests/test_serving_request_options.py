"""The service's request options: ``history`` (fold-in), ``policies`` and ``explain``, on GET and POST.

Every answer is compared, ids exactly and scores to a tolerance, with what the
library's :class:`~two_stage_rec.assembly.AssembledRecommender` gives for the
same options; a real bundle (random towers over the MovieLens-100K catalogue)
served from the in-memory store.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from synthetic_models import write_synthetic_models
from test_recommender_request_options import SumFoldIn
from two_stage_rec.assembly import AssembledRecommender, assemble
from two_stage_rec.policies import parse_policies
from two_stage_rec.policies.spec import PolicySpec
from two_stage_rec.recommender import History, Recommendation
from two_stage_rec.serving import BatchingSettings, serve_in_thread
from two_stage_rec.serving.app import create_bundle_app
from two_stage_rec.serving.schemas import DEFAULT_CANDIDATES, Policies

pytestmark = pytest.mark.integration

NEW_HISTORY = ["50", "181", "172", "174"]  # the Star Wars films and Raiders: a new user who likes adventure
RATED = {"50": 5.0, "98": 4.0, "1": 1.0}
POLICIES: PolicySpec = {"mmr": 0.3, "max_per": {"genres": 2}}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, movielens_dir: Path) -> Path:
    return write_synthetic_models(
        tmp_path_factory.mktemp("options") / "b", dimension=8, seed=43, data_dir=movielens_dir
    )


def with_fold_in(served: AssembledRecommender) -> AssembledRecommender:
    """The bundle's fold-in when assembling gives one, else a test fold-in (a sum of the history's vectors)."""
    if served.recommender.fold_in is None:
        served.recommender.fold_in = SumFoldIn()
    return served


@pytest.fixture(scope="module")
def served(bundle: Path) -> AssembledRecommender:
    return with_fold_in(assemble(bundle, store="memory"))


@pytest.fixture(scope="module", params=[BatchingSettings(max_wait_ms=2), None], ids=["batched", "unbatched"])
def client(request: pytest.FixtureRequest, bundle: Path) -> TestClient:
    app = create_bundle_app(with_fold_in(assemble(bundle, store="memory")), path=bundle, batching=request.param)
    return TestClient(app)


def expected(
    served: AssembledRecommender,
    user: str,
    *,
    k: int = 5,
    history: History | None = None,
    policies: PolicySpec | None = None,
    explain: bool = False,
    include_seen: bool = False,
) -> list[Recommendation]:
    return served.recommend(
        user,
        k=k,
        candidates=max(k, DEFAULT_CANDIDATES),
        history=history,
        policies=parse_policies(policies),
        explain=explain,
        include_seen=include_seen,
    )


def same(items: list[dict[str, Any]], recommendations: list[Recommendation]) -> None:
    """The service's items are the library's recommendations: ids exactly, scores to a tolerance."""
    assert [item["item_id"] for item in items] == [rec.item_id for rec in recommendations]
    assert [item["source"] for item in items] == [rec.source for rec in recommendations]
    assert [item["folded_in"] for item in items] == [rec.folded_in for rec in recommendations]
    for item, rec in zip(items, recommendations, strict=True):
        if item["score"] is None:
            assert rec.source == "pinned"
        else:
            assert item["score"] == pytest.approx(rec.score, rel=1e-5, abs=1e-6)


# ------------------------------------------------------------------ history


def test_get_with_history_folds_a_new_user_in(client: TestClient, served: AssembledRecommender) -> None:
    response = client.get("/recommendations/somebody-new", params={"k": 5, "history": ",".join(NEW_HISTORY)})
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    same(items, expected(served, "somebody-new", history=NEW_HISTORY))
    assert all(item["folded_in"] and item["source"] != "fallback" for item in items)
    assert not {item["item_id"] for item in items} & set(NEW_HISTORY)  # the history counts as seen
    # Without a history the same user is a stranger: the fallback, not folded in.
    plain = client.get("/recommendations/somebody-new", params={"k": 5}).json()["items"]
    assert {item["source"] for item in plain} == {"fallback"} and not any(item["folded_in"] for item in plain)
    assert all(item["explanation"] is None for item in plain + items)


def test_exclude_seen_false_keeps_the_history_items_recommendable(
    client: TestClient, served: AssembledRecommender
) -> None:
    params: dict[str, Any] = {"k": 8, "history": ",".join(NEW_HISTORY), "exclude_seen": "false"}
    items = client.get("/recommendations/somebody-new", params=params).json()["items"]
    same(items, expected(served, "somebody-new", k=8, history=NEW_HISTORY, include_seen=True))


def test_post_takes_a_history_per_user_ids_or_ratings(client: TestClient, served: AssembledRecommender) -> None:
    body = {
        "user_ids": ["42", "somebody-new", "another-new", "7"],
        "k": 4,
        "history": {"somebody-new": NEW_HISTORY, "another-new": RATED, "7": ["50", "100"]},
    }
    response = client.post("/recommendations", json=body)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [entry["user_id"] for entry in results] == body["user_ids"]
    same(results[0]["items"], expected(served, "42", k=4))
    same(results[1]["items"], expected(served, "somebody-new", k=4, history=NEW_HISTORY))
    same(results[2]["items"], expected(served, "another-new", k=4, history=RATED))
    same(results[3]["items"], expected(served, "7", k=4, history=["50", "100"]))
    assert not any(item["folded_in"] for item in results[0]["items"])
    assert all(item["folded_in"] for entry in results[1:] for item in entry["items"])


def test_ratings_reach_the_fold_in(bundle: Path) -> None:
    """The ratings are passed through: with a fold-in that weighs by them, other ratings answer differently."""
    weighing = assemble(bundle, store="memory")
    weighing.recommender.fold_in = SumFoldIn()  # whatever the bundle's own fold-in does with ratings
    client = TestClient(create_bundle_app(weighing, path=bundle, batching=None))
    reversed_ratings = {item: 6.0 - rating for item, rating in RATED.items()}
    answers = []
    for ratings in (RATED, reversed_ratings):
        body = {"user_ids": ["another-new"], "k": 4, "history": {"another-new": ratings}}
        items = client.post("/recommendations", json=body).json()["results"][0]["items"]
        same(items, expected(weighing, "another-new", k=4, history=ratings))
        answers.append([item["item_id"] for item in items])
    assert answers[0] != answers[1]


# ------------------------------------------------------------------ policies


def test_get_diversity_and_max_per_are_the_library_policies(client: TestClient, served: AssembledRecommender) -> None:
    params: dict[str, Any] = {"k": 10, "diversity": 0.3, "max_per": ["genres:2"]}
    items = client.get("/recommendations/42", params=params).json()["items"]
    same(items, expected(served, "42", k=10, policies=POLICIES))
    plain = client.get("/recommendations/42", params={"k": 10}).json()["items"]
    assert [item["item_id"] for item in items] != [item["item_id"] for item in plain]
    # One cap alone.
    capped = client.get("/recommendations/42", params={"k": 10, "max_per": "year:1"}).json()["items"]
    same(capped, expected(served, "42", k=10, policies={"max_per": {"year": 1}}))
    assert len({item["metadata"]["year"] for item in capped}) == len(capped)
    # diversity=0 is off: the plain answer.
    off = client.get("/recommendations/42", params={"k": 10, "diversity": 0}).json()["items"]
    assert [item["item_id"] for item in off] == [item["item_id"] for item in plain]


def test_post_policies_of_every_kind(client: TestClient, served: AssembledRecommender) -> None:
    plain = [rec.item_id for rec in expected(served, "42", k=10)]
    outside = next(rec.item_id for rec in expected(served, "42", k=60)[40:] if rec.item_id not in plain)
    spec: PolicySpec = {
        "block": [plain[0], plain[1]],
        "boost": [{"filter": {"year": {"$lt": 1980}}, "by": 2}],
        "bury": [{"filter": {"genres": {"$in": ["Drama"]}}}],
        "mmr": 0.2,
        "max_per": {"genres": 3},
        "pin": {outside: 1},
    }
    body = {"user_ids": ["42", "somebody-new"], "k": 10, "policies": spec, "history": {"somebody-new": NEW_HISTORY}}
    response = client.post("/recommendations", json=body)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    mine = results[0]["items"]
    same(mine, expected(served, "42", k=10, policies=spec))
    same(results[1]["items"], expected(served, "somebody-new", k=10, history=NEW_HISTORY, policies=spec))
    assert mine[0]["item_id"] == outside
    assert not {plain[0], plain[1]} & {item["item_id"] for item in mine}


def test_a_pinned_item_the_ranking_did_not_return_says_pinned(client: TestClient, served: AssembledRecommender) -> None:
    ranked = {rec.item_id for rec in expected(served, "42", k=DEFAULT_CANDIDATES)}
    far = next(
        item for item in served.bundle.catalogue.item_ids if item not in ranked and item not in served.seen("42")
    )
    body = {"user_ids": ["42"], "k": 5, "policies": {"pin": {far: 2}}, "explain": True}
    items = client.post("/recommendations", json=body).json()["results"][0]["items"]
    same(items, expected(served, "42", policies={"pin": {far: 2}}, explain=True))
    pinned = items[1]
    assert pinned["item_id"] == far and pinned["source"] == "pinned"
    assert pinned["score"] is None and pinned["retrieval_score"] is None
    assert pinned["explanation"]["candidate_source"] == "pinned" and pinned["explanation"]["retrieval_rank"] is None


# ------------------------------------------------------------------ explain


def test_explain_names_the_nearest_history_items_the_source_and_the_rank(
    client: TestClient, served: AssembledRecommender
) -> None:
    items = client.get("/recommendations/42", params={"k": 5, "explain": "true"}).json()["items"]
    recommendations = expected(served, "42", explain=True)
    same(items, recommendations)
    seen = served.seen("42")
    for item, rec in zip(items, recommendations, strict=True):
        explanation = item["explanation"]
        assert rec.explanation is not None
        assert [(near["item_id"], near["similarity"]) for near in explanation["because"]] == [
            (near, pytest.approx(similarity, abs=1e-6)) for near, similarity in rec.explanation.because
        ]
        assert len(explanation["because"]) == 2 and {near["item_id"] for near in explanation["because"]} <= seen
        assert all(near["title"] == served.label(near["item_id"]) for near in explanation["because"])
        assert explanation["candidate_source"] == "index"
        rank = rec.explanation.retrieval_rank
        assert rank is not None and explanation["retrieval_rank"] == rank >= 1
        assert explanation["contributions"] == []
    # A folded-in stranger is explained by its request history.
    new = client.get(
        "/recommendations/somebody-new", params={"k": 3, "explain": "true", "history": ",".join(NEW_HISTORY)}
    ).json()["items"]
    assert all({near["item_id"] for near in item["explanation"]["because"]} <= set(NEW_HISTORY) for item in new)
    # A fallback answer says so.
    stranger = client.get("/recommendations/somebody-new", params={"k": 3, "explain": "true"}).json()["items"]
    assert {item["explanation"]["candidate_source"] for item in stranger} == {"fallback"}
    assert all(item["explanation"]["because"] == [] for item in stranger)


def test_get_and_post_give_the_same_answer(client: TestClient) -> None:
    for user, history in (("42", ["1", "2"]), ("somebody-new", NEW_HISTORY)):
        params: dict[str, Any] = {
            "k": 6,
            "explain": "true",
            "diversity": 0.3,
            "max_per": ["genres:2"],
            "history": ",".join(history),
        }
        got = client.get(f"/recommendations/{user}", params=params)
        body = {"user_ids": [user], "k": 6, "explain": True, "policies": POLICIES, "history": {user: history}}
        posted = client.post("/recommendations", json=body)
        assert got.status_code == posted.status_code == 200
        assert got.json() == posted.json()["results"][0]


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"policies": {"mmr": 1.5}}, 422, "invalid_request"),
        ({"policies": {"diversity": 0.3}}, 422, "invalid_request"),
        ({"policies": {"max_per": {"genres": 0}}}, 422, "invalid_request"),
        ({"policies": {"max_per": {"genres": "two"}}}, 422, "invalid_request"),
        ({"policies": {"pin": {"50": 0}}}, 422, "invalid_request"),
        ({"policies": {"block": []}}, 422, "invalid_request"),
        ({"policies": {"boost": [{"filter": {"year": 1990}, "places": 2}]}}, 422, "invalid_request"),
        ({"policies": {"boost": [{"filter": {"year": {"$near": 3}}}]}}, 400, "invalid_filter"),
        ({"history": {"42": []}}, 422, "invalid_request"),
        ({"history": {"42": [""]}}, 422, "invalid_request"),
        ({"history": {"42": "50,181"}}, 422, "invalid_request"),
        ({"history": {"42": {"50": "five"}}}, 422, "invalid_request"),
        ({"history": {"42": ["50"] * 1001}}, 422, "invalid_request"),
        ({"history": {"someone-else": ["50"]}}, 422, "invalid_input"),
        ({"explain": "maybe"}, 422, "invalid_request"),
    ],
)
def test_bad_policies_and_histories_are_refused(
    client: TestClient, body: dict[str, Any], status: int, error: str
) -> None:
    response = client.post("/recommendations", json={"user_ids": ["42"], "k": 3} | body)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.json()["detail"]


def test_a_non_finite_rating_is_refused(client: TestClient) -> None:
    raw = '{"user_ids": ["42"], "history": {"42": {"50": NaN}}}'
    response = client.post("/recommendations", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"diversity": 2}, "invalid_request"),
        ({"diversity": "much"}, "invalid_request"),
        ({"max_per": "genres"}, "invalid_input"),
        ({"max_per": "genres:two"}, "invalid_input"),
        ({"max_per": "genres:0"}, "invalid_input"),
        ({"history": "50,,181"}, "invalid_input"),
        ({"history": ",".join(["50"] * 1001)}, "invalid_input"),
        ({"explain": "maybe"}, "invalid_request"),
        ({"policies": json.dumps(POLICIES)}, "invalid_request"),  # policies are a POST body field
    ],
)
def test_bad_get_options_are_refused(client: TestClient, params: dict[str, Any], error: str) -> None:
    response = client.get("/recommendations/42", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == error


def test_a_service_without_fold_in_refuses_a_history(bundle: Path) -> None:
    bare = assemble(bundle, store="memory")
    bare.recommender.fold_in = None
    client = TestClient(create_bundle_app(bare, path=bundle))
    got = client.get("/recommendations/42", params={"history": "50"})
    posted = client.post("/recommendations", json={"user_ids": ["42"], "history": {"42": ["50"]}})
    for response in (got, posted):
        assert response.status_code == 422 and response.json()["error"] == "invalid_input"
        assert "fold_in" in response.json()["detail"]
    assert client.get("/recommendations/42").status_code == 200


# ------------------------------------------------------------------ batching and schema


def test_concurrent_gets_with_different_options_each_get_their_own(bundle: Path, served: AssembledRecommender) -> None:
    """Requests with and without history, policies and explain share batches; each answer is its own."""
    app = create_bundle_app(
        with_fold_in(assemble(bundle, store="memory")), path=bundle, batching=BatchingSettings(max_wait_ms=5)
    )
    variants: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({}, {}),
        ({"history": "50,181"}, {"history": ["50", "181"]}),
        ({"diversity": 0.3, "max_per": "genres:2"}, {"policies": POLICIES}),
        ({"explain": "true"}, {"explain": True}),
        ({"explain": "true", "history": "172,174"}, {"explain": True, "history": ["172", "174"]}),
    ]
    users = [str(u) for u in range(1, 61)] + [f"new-{n}" for n in range(20)]
    problems: list[str] = []
    with serve_in_thread(app) as base_url:

        def client_thread(offset: int) -> None:
            with httpx.Client(base_url=base_url, timeout=30.0) as http:
                for n, user in enumerate(users[offset::5]):
                    params, options = variants[(n + offset) % len(variants)]
                    response = http.get(f"/recommendations/{user}", params={"k": 5} | params)
                    want = expected(served, user, **options)
                    items = response.json()["items"]
                    ids = [item["item_id"] for item in items]
                    explained = [item["explanation"] is not None for item in items]
                    if ids != [r.item_id for r in want] or explained != [r.explanation is not None for r in want]:
                        problems.append(f"user {user} {params}: {ids}")

        threads = [threading.Thread(target=client_thread, args=(n,)) for n in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert problems == []


def test_the_openapi_schema_documents_the_options(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    request = components["BatchRecommendationRequest"]["properties"]
    assert {"history", "policies", "explain"} <= set(request)
    assert all(request[name].get("description") for name in ("history", "policies", "explain"))
    policies = components["Policies"]["properties"]
    assert set(policies) == set(PolicySpec.__annotations__) == set(Policies.model_fields)
    assert all(field.get("description") for field in policies.values())
    item = components["RecommendedItem"]["properties"]
    assert "pinned" in item["source"]["enum"]
    assert item["folded_in"]["description"] and item["explanation"]["description"]
    explanation = components["ItemExplanation"]["properties"]
    assert set(explanation) == {"because", "candidate_source", "retrieval_rank", "contributions"}
    assert all(field.get("description") for field in explanation.values())
    one = schema["paths"]["/recommendations/{user_id}"]["get"]
    described = {p["name"]: p.get("description") for p in one["parameters"]}
    assert all(described[name] for name in ("explain", "diversity", "max_per", "history"))
