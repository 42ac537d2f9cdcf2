"""The recommendation service: a FastAPI app around one :class:`Recommender`.

Endpoints (all JSON; every score is higher-is-better):

* ``GET  /recommendations/{user_id}`` — top-k for one user.
* ``POST /recommendations`` — top-k for many users, with an optional metadata
  filter and per-user exclusions, in one vectorised call.

Both take the request options of the library: a ``history`` folded into the
user's vector (new users without retraining), post-ranking ``policies``
(diversity, business rules; :mod:`two_stage_rec.policies`) and ``explain``.
* ``GET  /healthz`` — liveness; ``GET /readyz`` — the store holds items;
  ``GET /stats`` — what the store reports about itself; ``GET /metrics`` —
  Prometheus metrics (:mod:`two_stage_rec.serving.metrics`).
* ``POST /admin/reload``, ``PUT``/``DELETE /admin/items`` — live model swap and
  catalogue updates, behind a bearer token (:mod:`two_stage_rec.serving.admin`).

Every request is answered by one :class:`~two_stage_rec.serving.pipeline.Pipeline`
(recommender, titles, seen items of one bundle), taken once from the
:class:`~two_stage_rec.serving.pipeline.PipelineSlot` that a reload swaps.

Concurrent ``GET /recommendations/{user_id}`` requests are micro-batched
(:mod:`two_stage_rec.serving.batching`): gathered by one worker thread into
one ``recommend_batch`` call per group of compatible requests. Requests are
grouped by everything one call shares (``k``, ``candidates``, ``rerank``, the
filter, the policies and ``explain``); a ``history`` is per user, so requests
with and without one share a call.

Errors map to status codes at this boundary and always carry an
:class:`~two_stage_rec.serving.schemas.ErrorResponse` body: unknown user 404,
invalid filter 400, other invalid input 422, a request body over the limit 413
(:mod:`two_stage_rec.serving.middleware`), an unknown path 404 (``not_found``),
a wrong method 405 (``method_not_allowed``), store unreachable 503, anything
else 500. Store and internal errors are logged server-side and answered with
a generic message, so no backend detail (hosts, keys, tracebacks) leaks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from functools import lru_cache, partial
from pathlib import Path
from typing import Annotated, Any, NamedTuple, TypeAlias

from two_stage_rec._optional import require

require("fastapi", extra="serve")

from fastapi import Depends, FastAPI, Query, Request  # noqa: E402
from fastapi import Path as PathParameter  # noqa: E402
from fastapi.encoders import jsonable_encoder  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import JSONResponse, PlainTextResponse, Response  # noqa: E402
from fastapi.routing import APIRoute  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from starlette.concurrency import run_in_threadpool  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402

from two_stage_rec import __version__  # noqa: E402
from two_stage_rec.assembly import AssembledRecommender  # noqa: E402
from two_stage_rec.errors import (  # noqa: E402
    InvalidFilterError,
    InvalidInputError,
    StoreError,
    StoreUnavailableError,
    TwoStageRecError,
    UnknownUserError,
)
from two_stage_rec.filters import compile_filter  # noqa: E402
from two_stage_rec.policies.base import Policy  # noqa: E402
from two_stage_rec.policies.spec import PolicySpec, parse_policies  # noqa: E402
from two_stage_rec.recommender import History, Recommendation, Recommender  # noqa: E402
from two_stage_rec.serving._fast_path import PlainRecommendationPath  # noqa: E402
from two_stage_rec.serving.admin import AdminToken, BundleLoader, install_admin_routes  # noqa: E402
from two_stage_rec.serving.batching import BatchingSettings, MicroBatcher, recommend_each  # noqa: E402
from two_stage_rec.serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE  # noqa: E402
from two_stage_rec.serving.metrics import MetricsMiddleware, ServiceMetrics, instrument  # noqa: E402
from two_stage_rec.serving.middleware import (  # noqa: E402
    BATCH_SIZE_SCOPE_KEY,
    DEFAULT_MAX_BODY_BYTES,
    AccessLogMiddleware,
    BodySizeLimitMiddleware,
)
from two_stage_rec.serving.pipeline import Pipeline, PipelineSlot  # noqa: E402
from two_stage_rec.serving.schemas import (  # noqa: E402
    DEFAULT_CANDIDATES,
    MAX_CANDIDATES,
    MAX_FILTER_LENGTH,
    MAX_HISTORY,
    MAX_ID_LENGTH,
    MAX_K,
    MAX_POLICY_RULES,
    BatchRecommendationRequest,
    BatchRecommendationResponse,
    ErrorResponse,
    HealthResponse,
    ReadinessResponse,
    StatsResponse,
    UserRecommendations,
    json_safe,
    recommendations_json,
    user_recommendations,
)

__all__ = ["DEFAULT_BATCHING", "create_app", "create_bundle_app"]

DEFAULT_BATCHING = BatchingSettings()
"""Micro-batching as ``create_app`` and ``two-stage-rec serve`` configure it by default."""

logger = logging.getLogger("two_stage_rec.serving")

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "The metadata filter is not valid (`invalid_filter`)."},
    404: {
        "model": ErrorResponse,
        "description": "A user id is unknown and the service has no cold-start fallback (`unknown_user`).",
    },
    422: {
        "model": ErrorResponse,
        "description": "A parameter is out of range or malformed (`invalid_request`, `invalid_input`).",
    },
    413: {
        "model": ErrorResponse,
        "description": "The request body is larger than the service accepts (`payload_too_large`).",
    },
    500: {"model": ErrorResponse, "description": "An unexpected failure (`internal_error`); details go to the log."},
    503: {
        "model": ErrorResponse,
        "description": "The vector store could not be reached or failed (`store_unavailable`, `store_error`).",
    },
}


UserIdPath = Annotated[
    str, PathParameter(min_length=1, max_length=MAX_ID_LENGTH, description="The user's id, e.g. `42`.")
]
DEFAULT_K = 5
KQuery = Annotated[int, Query(ge=1, le=MAX_K, description="Recommendations wanted.")]
CandidatesQuery = Annotated[
    int | None,
    Query(
        ge=1,
        le=MAX_CANDIDATES,
        description=f"Items retrieved before reranking; must be >= k. Default: max(k, {DEFAULT_CANDIDATES}).",
    ),
]
RerankQuery = Annotated[bool, Query(description="Rerank with the reranker (when one is configured).")]
ExcludeSeenQuery = Annotated[bool, Query(description="Leave out items the service knows the user has already rated.")]
FilterQuery = Annotated[
    str | None,
    Query(
        max_length=MAX_FILTER_LENGTH,
        description="A metadata filter as a JSON object, in the filter language of `POST /recommendations`, "
        'e.g. `{"genres": {"$in": ["Comedy"]}, "year": {"$lt": 1980}}` (URL-encoded).',
    ),
]
ExplainQuery = Annotated[
    bool,
    Query(
        description="Attach an `explanation` to every item: the nearest items of the user's history, "
        "the candidate source and the retrieval rank."
    ),
]
DiversityQuery = Annotated[
    float | None,
    Query(
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Maximal marginal relevance: the trade-off in [0, 1] between relevance and variety "
        "among the top k (0 or absent: off); the `mmr` policy of `POST /recommendations`.",
    ),
]
MaxPerQuery = Annotated[
    list[str] | None,
    Query(
        max_length=MAX_POLICY_RULES,
        description="At most N items per value of a metadata field, as `FIELD:N` (repeatable), "
        "e.g. `genres:2`; the `max_per` policy of `POST /recommendations`.",
    ),
]
HistoryQuery = Annotated[
    str | None,
    Query(
        max_length=MAX_HISTORY * (MAX_ID_LENGTH + 1),
        description=f"Interactions given now, as comma-separated item ids (at most {MAX_HISTORY}): the user's "
        "vector is folded in from them (a new user is personalised; its items say `folded_in`), and they "
        "are left out of the recommendations when `exclude_seen` is true. Ratings: use `POST`.",
    ),
]
_GET_PARAMETERS = frozenset(
    {"k", "candidates", "rerank", "exclude_seen", "filter", "explain", "diversity", "max_per", "history"}
)

_ONE_USER_DESCRIPTION = """Top-k items for one user, best first.

Retrieves `candidates` items nearest to the user's vector, reranks them with the
scoring model (unless `rerank=false`), and returns the best `k`. An unknown user gets
404, or the most popular items (`source="fallback"`) when the service has a fallback.
`filter` (a JSON object) restricts the items, as in `POST /recommendations`; an
unknown query parameter is an error (422), never silently ignored.
`history` folds the user's vector in from the given items; `diversity` and
`max_per` shape the list after ranking; `explain=true` says why each item is there.
Concurrent requests are answered together, in batches."""


def _canonical_policies(diversity: float | None, max_per: list[str] | None) -> str | None:
    """The GET policy parameters checked and as canonical JSON (equal policies batch together), or None.

    Raises:
        InvalidInputError: a ``max_per`` not of the form ``FIELD:N``, or values a policy rejects.
    """
    if not diversity and not max_per:
        return None
    spec: PolicySpec = {}
    if diversity:
        spec["mmr"] = diversity
    if max_per:
        caps: dict[str, int] = {}
        for text in max_per:
            field, sep, number = text.rpartition(":")
            if not sep or not field or not number.isdigit():
                raise InvalidInputError(f"max_per must be FIELD:N with a whole N >= 1 (e.g. genres:2), got {text!r}")
            caps[field] = int(number)
        spec["max_per"] = caps
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    _policies(canonical)  # raises InvalidInputError, answered 422 before the request is queued
    return canonical


@lru_cache(maxsize=256)
def _policies(canonical: str) -> tuple[Policy, ...]:
    """The policies of a canonical spec, parsed once: a request checks them, its batch reuses them."""
    return tuple(parse_policies(json.loads(canonical)))


def _parse_history(raw: str | None) -> tuple[str, ...] | None:
    """The GET ``history`` parameter as item ids, or None.

    Raises:
        InvalidInputError: an empty id (a stray comma), an id too long, or too many ids.
    """
    if raw is None:
        return None
    items = tuple(raw.split(","))
    if len(items) > MAX_HISTORY:
        raise InvalidInputError(f"history holds {len(items)} items; at most {MAX_HISTORY} are accepted")
    for item in items:
        if not item or len(item) > MAX_ID_LENGTH:
            raise InvalidInputError(
                f"history must be comma-separated item ids of 1 to {MAX_ID_LENGTH} characters, got {raw[:100]!r}"
            )
    return items


def _check_can_fold_in(recommender: Recommender) -> None:
    if recommender.fold_in is None:
        raise InvalidInputError("a history was given but this service's recommender has no fold_in")


def _parse_filter(raw: str | None) -> str | None:
    """The GET ``filter`` parameter checked and in canonical JSON (equal filters batch together), or None.

    Raises:
        InvalidFilterError: not JSON, not an object, or not valid in the filter language.
    """
    if raw is None:
        return None
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidFilterError(f"filter must be a JSON object: {exc.msg} at position {exc.pos}") from None
    if not isinstance(spec, dict):
        raise InvalidFilterError(f"filter must be a JSON object, got {type(spec).__name__}")
    if not spec:
        return None
    compile_filter(spec)  # raises InvalidFilterError, answered 400 before the request is queued
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


async def _only_known_parameters(request: Request) -> None:
    """Unknown query parameters are a mistake (a misspelt ``filter`` would silently answer unfiltered): 422.

    ``async`` although it awaits nothing: FastAPI runs a plain ``def`` dependency in its
    thread pool, a hop per request for a set difference.
    """
    unknown = sorted(set(request.query_params) - _GET_PARAMETERS)
    if unknown:
        raise RequestValidationError(
            [
                {"type": "extra_forbidden", "loc": ("query", name), "msg": "Unknown query parameter", "input": None}
                for name in unknown
            ]
        )


def create_app(
    recommender: Recommender,
    *,
    item_titles: Mapping[str, str] | None = None,
    seen_items: Mapping[str, Collection[str]] | None = None,
    title: str = "two_stage_rec recommendation service",
    batching: BatchingSettings | None = DEFAULT_BATCHING,
    admin_token: AdminToken | str | None = None,
    metrics: bool = True,
    max_body_bytes: int | None = DEFAULT_MAX_BODY_BYTES,
    access_log: bool = False,
) -> FastAPI:
    """Build the service around a ready recommender (items already indexed).

    Args:
        recommender: answers every request; its store must already hold the items.
            Give it a ``fallback`` to answer unknown users (``source="fallback"``)
            instead of 404.
        item_titles: item id -> human-readable title, added to each item. Without
            it, a string ``title`` metadata field is used when present.
        seen_items: user id -> item ids the user has already rated; left out of
            their recommendations when a request says ``exclude_seen=true`` (the default).
        title: the OpenAPI title.
        batching: how concurrent ``GET /recommendations/{user_id}`` requests are
            gathered into one ``recommend_batch`` call (at most
            ``max_batch_size`` requests, waiting at most ``max_wait_ms`` for
            others, and only under load). None answers each request with its
            own call in FastAPI's thread pool.
        admin_token: enables the admin endpoints (:mod:`two_stage_rec.serving.admin`)
            behind this bearer token; None (default): they do not exist. An app
            built here can update its catalogue but not reload (use
            :func:`create_bundle_app`); catalogue updates keep a fallback in step
            only when it is a :class:`~two_stage_rec.serving.catalogue.CatalogueFallback`.
        metrics: serve Prometheus metrics at ``/metrics`` (:mod:`two_stage_rec.serving.metrics`).
        max_body_bytes: the largest request body read, in bytes (1 MiB by default);
            a larger one is answered 413 (``payload_too_large``) unread. None: no limit.
        access_log: write one JSON line per request on the ``two_stage_rec.serving.access``
            logger (:mod:`two_stage_rec.serving.middleware`).

    Returns:
        A FastAPI app; run it with uvicorn (``two-stage-rec serve`` does) or call
        it in tests with ``fastapi.testclient.TestClient``.

    Thread safety: batches run on their own worker thread and ``POST`` requests in
    FastAPI's thread pool, concurrently, so the recommender's store must allow
    concurrent queries (the in-memory and FAISS stores do).
    """
    service_metrics = _new_metrics() if metrics else None
    base = instrument(recommender, service_metrics) if service_metrics is not None else recommender
    pipeline = Pipeline.from_recommender(base, item_titles=item_titles, seen_items=seen_items)
    return _build_app(
        pipeline,
        title=title,
        batching=batching,
        admin_token=_token(admin_token),
        loader=None,
        workers=1,
        metrics=service_metrics,
        max_body_bytes=max_body_bytes,
        access_log=access_log,
    )


def create_bundle_app(
    served: AssembledRecommender,
    *,
    path: str | os.PathLike[str] | None = None,
    loader: BundleLoader | None = None,
    title: str = "two_stage_rec recommendation service",
    batching: BatchingSettings | None = DEFAULT_BATCHING,
    admin_token: AdminToken | str | None = None,
    workers: int = 1,
    metrics: bool = True,
    max_body_bytes: int | None = DEFAULT_MAX_BODY_BYTES,
    access_log: bool = False,
) -> FastAPI:
    """Build the service around an assembled bundle; the app owns it from now on.

    As :func:`create_app`, with the bundle's titles and seen items, and the admin
    endpoints complete: ``POST /admin/reload`` assembles another bundle with
    ``loader`` and swaps it in, and catalogue updates reach the popularity
    fallback too. The app closes the store of each bundle it stops serving
    (after a reload, and at shutdown).

    Args:
        served: the assembled bundle (:func:`~two_stage_rec.assembly.assemble`).
        path: where the bundle was read from; what a reload without a path reads again.
        loader: assembles the bundle at a path (same store kind and settings);
            None: reloads answer 501.
        title: the OpenAPI title.
        batching: as in :func:`create_app`.
        admin_token: as in :func:`create_app`.
        workers: processes serving the same port (``serve --workers``); above 1,
            the admin endpoints answer 501, as an update would reach one worker only.
        metrics: as in :func:`create_app`.
        max_body_bytes: as in :func:`create_app`.
        access_log: as in :func:`create_app`.
    """
    service_metrics = _new_metrics() if metrics else None
    wrap = partial(instrument, metrics=service_metrics) if service_metrics is not None else None

    def make_pipeline(assembled: AssembledRecommender, where: Path | None) -> Pipeline:
        return Pipeline.from_assembled(assembled, where, instrument=wrap)

    return _build_app(
        make_pipeline(served, Path(path) if path is not None else None),
        title=title,
        batching=batching,
        admin_token=_token(admin_token),
        loader=loader,
        make_pipeline=make_pipeline,
        workers=workers,
        metrics=service_metrics,
        max_body_bytes=max_body_bytes,
        access_log=access_log,
    )


def _token(token: AdminToken | str | None) -> AdminToken | None:
    return AdminToken(token) if isinstance(token, str) else token


def _new_metrics() -> ServiceMetrics:
    return ServiceMetrics()


def _build_app(
    initial: Pipeline,
    *,
    title: str,
    batching: BatchingSettings | None,
    admin_token: AdminToken | None,
    loader: BundleLoader | None,
    workers: int,
    metrics: ServiceMetrics | None,
    max_body_bytes: int | None,
    access_log: bool,
    make_pipeline: Callable[[AssembledRecommender, Path], Pipeline] | None = None,
) -> FastAPI:
    if max_body_bytes is not None and max_body_bytes < 1:
        raise InvalidInputError(f"max_body_bytes must be positive (or None: no limit), got {max_body_bytes}")
    slot = PipelineSlot(initial)

    def count_fallbacks(outcomes: Sequence[object]) -> None:
        if metrics is None:
            return
        fallbacks = sum(
            1 for outcome in outcomes if isinstance(outcome, list) and outcome and outcome[0].source == "fallback"
        )
        if fallbacks:
            metrics.fallbacks.inc(fallbacks)

    def answer_group(
        pipeline: Pipeline, group: _Group, requests: list[_Request]
    ) -> list[tuple[bytes, int] | Exception]:
        users = [user_id for user_id, _, _ in requests]
        histories: list[History | None] | None = None
        if any(history is not None for _, _, history in requests):
            histories = [history for _, _, history in requests]
        outcomes = recommend_each(
            pipeline.recommender,
            users,
            [
                pipeline.excluded_for(user_id, exclude_seen, history if exclude_seen and history else ())
                for user_id, exclude_seen, history in requests
            ],
            k=group.k,
            candidates=group.candidates,
            filter=json.loads(group.filter) if group.filter is not None else None,
            rerank=group.rerank,
            history=histories,
            policies=_policies(group.policies) if group.policies is not None else (),
            explain=group.explain,
        )
        count_fallbacks(outcomes)
        # Each answer carries how many requests this recommend_batch call answered (for the access log).
        return [
            outcome if isinstance(outcome, Exception) else (user_json(pipeline, user_id, outcome), len(users))
            for user_id, outcome in zip(users, outcomes, strict=True)
        ]

    @contextmanager
    def one_pipeline_per_batch() -> Iterator[
        Callable[[_Group, list[_Request]], Sequence[tuple[bytes, int] | Exception]]
    ]:
        # The pipeline is read once per batch: a reload swaps it between batches, never within one.
        with slot.use() as pipeline:
            yield partial(answer_group, pipeline)

    batcher = (
        MicroBatcher[_Group, _Request, tuple[bytes, int]].per_batch(
            one_pipeline_per_batch, batching, name="recommendation-batches"
        )
        if batching is not None
        else None
    )
    if batcher is not None and metrics is not None:
        batcher.observe_batch = metrics.observe_batch
    wait_for_reload: Callable[[], None] = lambda: None  # noqa: E731  # replaced when admin routes exist

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        # uvicorn has finished the in-flight requests by now; the worker answers what is queued and stops.
        if batcher is not None:
            await asyncio.to_thread(batcher.close)
        await asyncio.to_thread(wait_for_reload)
        await asyncio.to_thread(slot.current.close_when_idle, 10.0)

    app = FastAPI(
        lifespan=lifespan,
        title=title,
        version=__version__,
        description=(
            "Two-stage recommendation in real time: embed the user, retrieve candidates from a vector "
            "index, rerank them with a scoring model. Every score is higher-is-better."
        ),
    )

    def user_json(pipeline: Pipeline, user_id: str, recommendations: list[Recommendation]) -> bytes:
        return recommendations_json(
            user_recommendations(user_id, recommendations, pipeline.title_of, pipeline.item_title)
        )

    # The recommendation endpoints never run the numpy work on the event loop. A
    # request is CPU-bound numpy (embedding lookup, a (1, d) x (d, n_items) product,
    # one MLP call), plus a blocking network call when the store is Pinecone. Run on
    # the loop (an `async def` endpoint doing the work), a 943-user batch would hold
    # it for its whole duration, and every other request, /healthz included, would
    # wait behind it (benchmarks/serve_latency.py, `liveness_during_batches`: the
    # /healthz p50 rises to the batch's own duration, hundreds of ms, against ~15 ms
    # otherwise). So the single-user GET is `async def` but only queues the request
    # for the micro-batcher's worker thread and awaits its answer; without batching
    # it is a plain `def`, which FastAPI runs in its thread pool, like the POST.
    #
    # They return ready JSON rather than the model: FastAPI would otherwise
    # re-validate the returned model against `response_model` (for a `def` endpoint,
    # in a second thread-pool hop). `response_model` stays declared so the OpenAPI
    # schema documents the body.
    #
    # Every request is answered by one pipeline (`slot.use()`), so a live model swap
    # never mixes two bundles in one answer.

    get_one = app.get(
        "/recommendations/{user_id}",
        dependencies=[Depends(_only_known_parameters)],
        response_model=UserRecommendations,
        responses=_ERROR_RESPONSES,
        summary="Recommend items for one user",
        description=_ONE_USER_DESCRIPTION,
        tags=["recommendations"],
    )

    def answer_alone(
        user_id: str,
        k: int = DEFAULT_K,
        candidates: int | None = None,
        rerank: bool = True,
        exclude_seen: bool = True,
        filter: str | None = None,
        explain: bool = False,
        diversity: float | None = None,
        max_per: list[str] | None = None,
        history: str | None = None,
    ) -> bytes:
        """One request answered by its own ``recommend`` call (no batching), as JSON."""
        canonical = _parse_filter(filter)
        policies = _canonical_policies(diversity, max_per)
        items = _parse_history(history)
        with slot.use() as pipeline:
            if items is not None:
                _check_can_fold_in(pipeline.recommender)
            recommendations = pipeline.recommender.recommend(
                user_id,
                k=k,
                candidates=candidates if candidates is not None else max(k, DEFAULT_CANDIDATES),
                exclude=pipeline.excluded_for(user_id, exclude_seen, items if exclude_seen and items else ()),
                filter=json.loads(canonical) if canonical is not None else None,
                rerank=rerank,
                history=items,
                policies=_policies(policies) if policies is not None else (),
                explain=explain,
            )
            count_fallbacks([recommendations])
            return user_json(pipeline, user_id, recommendations)

    answer_plain: Callable[[str], Awaitable[tuple[bytes, int | None]]]
    if batcher is not None:
        micro_batcher = batcher

        @get_one
        async def recommend_one(
            request: Request,
            user_id: UserIdPath,
            k: KQuery = DEFAULT_K,
            candidates: CandidatesQuery = None,
            rerank: RerankQuery = True,
            exclude_seen: ExcludeSeenQuery = True,
            filter: FilterQuery = None,
            explain: ExplainQuery = False,
            diversity: DiversityQuery = None,
            max_per: MaxPerQuery = None,
            history: HistoryQuery = None,
        ) -> Response:
            chosen = candidates if candidates is not None else max(k, DEFAULT_CANDIDATES)
            group = _Group(k, chosen, rerank, _parse_filter(filter), _canonical_policies(diversity, max_per), explain)
            items = _parse_history(history)
            if items is not None:
                _check_can_fold_in(slot.current.recommender)
            body, batch_size = await micro_batcher.submit(group, (user_id, exclude_seen, items))
            request.scope[BATCH_SIZE_SCOPE_KEY] = batch_size
            return Response(body, media_type="application/json")

        async def answer_plain_batched(user_id: str) -> tuple[bytes, int | None]:
            body, batch_size = await micro_batcher.submit(_PLAIN_GROUP, (user_id, True, None))
            return body, batch_size

        answer_plain = answer_plain_batched

    else:

        @get_one
        def recommend_one_unbatched(
            user_id: UserIdPath,
            k: KQuery = DEFAULT_K,
            candidates: CandidatesQuery = None,
            rerank: RerankQuery = True,
            exclude_seen: ExcludeSeenQuery = True,
            filter: FilterQuery = None,
            explain: ExplainQuery = False,
            diversity: DiversityQuery = None,
            max_per: MaxPerQuery = None,
            history: HistoryQuery = None,
        ) -> Response:
            body = answer_alone(
                user_id, k, candidates, rerank, exclude_seen, filter, explain, diversity, max_per, history
            )
            return Response(body, media_type="application/json")

        async def answer_plain_alone(user_id: str) -> tuple[bytes, int | None]:
            return await run_in_threadpool(answer_alone, user_id), None

        answer_plain = answer_plain_alone

    # The plain request (no query string), by far the most common, skips FastAPI's routing and
    # parameter solving (`two_stage_rec.serving._fast_path`); the routed endpoint above
    # still documents it and answers every request with options.
    plain_route = next(
        route
        for route in app.router.routes
        if isinstance(route, APIRoute) and route.path == "/recommendations/{user_id}" and "GET" in (route.methods or ())
    )
    app.add_middleware(
        PlainRecommendationPath,
        prefix="/recommendations/",
        max_id_length=MAX_ID_LENGTH,
        answer=answer_plain,
        route=plain_route,
        exception_handlers=app.exception_handlers,
        batch_size_key=BATCH_SIZE_SCOPE_KEY,
    )
    # add_middleware wraps what is already there: the access log is outermost (it sees every
    # answer, 413s included, and times all of it), then the metrics, the body limit (metrics
    # count its 413s), and innermost the plain path (every outer layer sees its answers).
    if max_body_bytes is not None:
        app.add_middleware(BodySizeLimitMiddleware, max_bytes=max_body_bytes)
    if metrics is not None:
        app.add_middleware(MetricsMiddleware, metrics=metrics)
    if access_log:
        app.add_middleware(AccessLogMiddleware)

    @app.post(
        "/recommendations",
        response_model=BatchRecommendationResponse,
        responses=_ERROR_RESPONSES,
        summary="Recommend items for many users",
        tags=["recommendations"],
    )
    def recommend_many(request: BatchRecommendationRequest) -> Response:
        """Top-k items for each user, in request order, computed in one vectorised pass.

        `filter` (Pinecone filter language) applies to every user; `exclude` adds per-user
        item ids to leave out. `history` folds a user's vector in from interactions given now;
        `policies` shape every user's list after ranking; `explain` says why each item is there.
        If any user id is unknown (and has no usable `history`) and there is no fallback, the
        whole request fails with 404 and `user_ids` lists every unknown id.
        """
        extra = request.exclude or {}
        given = request.history or {}
        asked = set(request.user_ids)
        strangers = sorted(user for user in given if user not in asked)
        if strangers:
            raise InvalidInputError(f"history is given for users not in user_ids: {strangers[:10]}")
        histories: list[History | None] | None = None
        if given:
            histories = [given.get(user) for user in request.user_ids]
        policies = parse_policies(request.policies.spec()) if request.policies is not None else []

        def excluded(pipeline: Pipeline, user: str) -> frozenset[str]:
            more = extra.get(user, ())
            history = given.get(user)
            if history and request.exclude_seen:
                more = [*more, *history]
            return pipeline.excluded_for(user, request.exclude_seen, more)

        with slot.use() as pipeline:
            batches = pipeline.recommender.recommend_batch(
                request.user_ids,
                k=request.k,
                candidates=request.candidates if request.candidates is not None else max(request.k, DEFAULT_CANDIDATES),
                exclude=[excluded(pipeline, u) for u in request.user_ids],
                filter=request.filter or None,
                rerank=request.rerank,
                history=histories,
                policies=policies,
                explain=request.explain,
            )
            count_fallbacks(batches)
            results = [
                user_recommendations(user_id, recommendations, pipeline.title_of, pipeline.item_title)
                for user_id, recommendations in zip(request.user_ids, batches, strict=True)
            ]
        return Response(recommendations_json({"results": results}), media_type="application/json")

    # Liveness must answer even when every worker thread is busy computing, so it is
    # `async def` and touches nothing that blocks.
    @app.get("/healthz", response_model=HealthResponse, summary="Liveness", tags=["operations"])
    async def healthz() -> HealthResponse:
        """200 while the process is up; says nothing about the store."""
        return HealthResponse()

    # `def`: describe() is a network call for a remote store.
    @app.get(
        "/readyz",
        response_model=ReadinessResponse,
        responses={503: {"model": ReadinessResponse, "description": "The store is empty or unreachable."}},
        summary="Readiness",
        tags=["operations"],
    )
    def readyz() -> Response:
        """200 when the store answers and holds at least one item, else 503 (a reload keeps it 200)."""
        try:
            with slot.use() as pipeline:
                count = pipeline.recommender.store.describe().count
        except StoreError as exc:
            logger.warning("readiness check: store did not answer: %s", exc)
            body = ReadinessResponse(ready=False, count=None, detail="the vector store did not answer")
            return _json(body, status_code=503)
        if count <= 0:
            return _json(ReadinessResponse(ready=False, count=count, detail="the vector store holds no items"), 503)
        return _json(ReadinessResponse(ready=True, count=count))

    @app.get(
        "/stats",
        response_model=StatsResponse,
        responses={503: _ERROR_RESPONSES[503]},
        summary="Store statistics",
        tags=["operations"],
    )
    def stats() -> Response:
        """The store's backend, dimension, metric and count, and the recommender's composition."""
        with slot.use() as pipeline:
            recommender = pipeline.recommender
            described = recommender.store.describe()
        return _json(
            StatsResponse(
                backend=described.backend,
                dimension=described.dimension,
                metric=described.metric,
                count=described.count,
                details=json_safe(described.details),
                reranker=recommender.reranker is not None,
                fallback=recommender.fallback is not None,
            )
        )

    if metrics is not None:
        service_metrics = metrics

        @app.get(
            "/metrics",
            response_class=PlainTextResponse,
            summary="Prometheus metrics",
            tags=["operations"],
            responses={200: {"content": {"text/plain": {}}, "description": "The Prometheus text format."}},
        )
        def prometheus_metrics() -> Response:
            """Request counts and latencies, batch sizes, store and reranker times, fallbacks, reloads."""
            return Response(service_metrics.render(), media_type=METRICS_CONTENT_TYPE)

    if admin_token is not None:
        wait_for_reload = install_admin_routes(
            app,
            token=admin_token,
            slot=slot,
            loader=loader,
            make_pipeline=make_pipeline or _cannot_make_pipeline,
            workers=workers,
            metrics=metrics,
        )

    _install_error_handlers(app)
    return app


def _cannot_make_pipeline(served: AssembledRecommender, path: Path) -> Pipeline:
    raise AssertionError("an app built around a bare recommender has no loader")


class _Group(NamedTuple):
    """What the requests answered by one ``recommend_batch`` call share (exclusions are per user)."""

    k: int
    candidates: int
    rerank: bool
    filter: str | None  # canonical JSON, so that equal filters group together
    policies: str | None = None  # likewise
    explain: bool = False


_PLAIN_GROUP = _Group(DEFAULT_K, max(DEFAULT_K, DEFAULT_CANDIDATES), rerank=True, filter=None)
"""The group of a request without query parameters: every default."""

_Request: TypeAlias = tuple[str, bool, tuple[str, ...] | None]
"""One queued GET: the user id, ``exclude_seen``, and the history's item ids (None: none given)."""


_HTTP_ERRORS = {404: "not_found", 405: "method_not_allowed"}


def _json(body: BaseModel, status_code: int = 200) -> Response:
    return Response(body.model_dump_json(), status_code=status_code, media_type="application/json")


def _error(status: int, error: str, detail: str, **extra: Any) -> JSONResponse:
    body = ErrorResponse(error=error, detail=detail, **extra)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    """Translate the library's typed errors into status codes.

    Starlette picks the handler of the most specific class in the exception's MRO,
    so ``InvalidFilterError`` gets 400 although it is also an ``InvalidInputError``.
    """

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # Starlette's own answers (unknown path, wrong method) in the service's error shape.
        response = _error(exc.status_code, _HTTP_ERRORS.get(exc.status_code, "http_error"), str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(UnknownUserError)
    async def unknown_user(request: Request, exc: UnknownUserError) -> JSONResponse:
        return _error(404, "unknown_user", str(exc), user_ids=exc.keys)

    @app.exception_handler(InvalidFilterError)
    async def invalid_filter(request: Request, exc: InvalidFilterError) -> JSONResponse:
        return _error(400, "invalid_filter", str(exc))

    @app.exception_handler(InvalidInputError)
    async def invalid_input(request: Request, exc: InvalidInputError) -> JSONResponse:
        return _error(422, "invalid_input", str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # json_safe: a rejected NaN or infinity (JSON bodies may spell them) would make the answer invalid JSON.
        errors = json_safe(jsonable_encoder(exc.errors()))
        fields = "; ".join(
            f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', 'invalid')}" for error in errors
        )
        return _error(422, "invalid_request", fields or "invalid request", errors=errors)

    @app.exception_handler(StoreUnavailableError)
    async def store_unavailable(request: Request, exc: StoreUnavailableError) -> JSONResponse:
        logger.warning("vector store unavailable: %s", exc)
        response = _error(503, "store_unavailable", "the vector store is unavailable; retry later")
        response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        logger.error("vector store error: %s", exc)
        return _error(503, "store_error", "the vector store failed to answer")

    @app.exception_handler(TwoStageRecError)
    async def library_error(request: Request, exc: TwoStageRecError) -> JSONResponse:
        logger.exception("recommendation failed", exc_info=exc)
        return _error(500, "internal_error", "the recommender failed; see the server log")

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette still re-raises after sending this body, so the server logs the traceback;
        # the client sees only the generic message.
        return _error(500, "internal_error", "internal server error")
