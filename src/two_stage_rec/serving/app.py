"""The recommendation service: a FastAPI app around one :class:`Recommender`.

Endpoints (all JSON; every score is higher-is-better):

* ``GET  /recommendations/{user_id}`` — top-k for one user.
* ``POST /recommendations`` — top-k for many users, with an optional metadata
  filter and per-user exclusions, in one vectorised call.
* ``GET  /healthz`` — liveness; ``GET /readyz`` — the store holds items;
  ``GET /stats`` — what the store reports about itself.

Concurrent ``GET /recommendations/{user_id}`` requests are micro-batched
(:mod:`two_stage_rec.serving.batching`): gathered by one worker thread into
one ``recommend_batch`` call per group of compatible requests.

Errors map to status codes at this boundary and always carry an
:class:`~two_stage_rec.serving.schemas.ErrorResponse` body: unknown user 404,
invalid filter 400, other invalid input 422, store unreachable 503, anything
else 500. Store and internal errors are logged server-side and answered with
a generic message, so no backend detail (hosts, keys, tracebacks) leaks.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any, NamedTuple

from two_stage_rec._optional import require

require("fastapi", extra="serve")

from fastapi import FastAPI, Path, Query, Request  # noqa: E402
from fastapi.encoders import jsonable_encoder  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import JSONResponse, Response  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from two_stage_rec import __version__  # noqa: E402
from two_stage_rec.errors import (  # noqa: E402
    InvalidFilterError,
    InvalidInputError,
    StoreError,
    StoreUnavailableError,
    TwoStageRecError,
    UnknownUserError,
)
from two_stage_rec.recommender import Recommendation, Recommender  # noqa: E402
from two_stage_rec.serving.batching import BatchingSettings, MicroBatcher, recommend_each  # noqa: E402
from two_stage_rec.serving.schemas import (  # noqa: E402
    DEFAULT_CANDIDATES,
    MAX_CANDIDATES,
    MAX_ID_LENGTH,
    MAX_K,
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

__all__ = ["DEFAULT_BATCHING", "create_app"]

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
    500: {"model": ErrorResponse, "description": "An unexpected failure (`internal_error`); details go to the log."},
    503: {
        "model": ErrorResponse,
        "description": "The vector store could not be reached or failed (`store_unavailable`, `store_error`).",
    },
}


UserIdPath = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH, description="The user's id, e.g. `42`.")]
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

_ONE_USER_DESCRIPTION = """Top-k items for one user, best first.

Retrieves `candidates` items nearest to the user's vector, reranks them with the
scoring model (unless `rerank=false`), and returns the best `k`. An unknown user gets
404, or the most popular items (`source="fallback"`) when the service has a fallback.
Concurrent requests are answered together, in batches."""


def create_app(
    recommender: Recommender,
    *,
    item_titles: Mapping[str, str] | None = None,
    seen_items: Mapping[str, Collection[str]] | None = None,
    title: str = "two_stage_rec recommendation service",
    batching: BatchingSettings | None = DEFAULT_BATCHING,
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

    Returns:
        A FastAPI app; run it with uvicorn (``two-stage-rec serve`` does) or call
        it in tests with ``fastapi.testclient.TestClient``.

    Thread safety: batches run on their own worker thread and ``POST`` requests in
    FastAPI's thread pool, concurrently, so the recommender's store must allow
    concurrent queries (the in-memory and FAISS stores do).
    """
    titles: Mapping[str, str] = item_titles or {}
    # Frozen once here, not per request: a heavy user has hundreds of rated items.
    seen: dict[str, frozenset[str]] = {str(u): frozenset(items) for u, items in (seen_items or {}).items()}

    def answer_group(group: _Group, requests: list[tuple[str, frozenset[str]]]) -> list[bytes | Exception]:
        users = [user_id for user_id, _ in requests]
        outcomes = recommend_each(
            recommender,
            users,
            [excluded for _, excluded in requests],
            k=group.k,
            candidates=group.candidates,
            filter=json.loads(group.filter) if group.filter is not None else None,
            rerank=group.rerank,
        )
        return [
            outcome if isinstance(outcome, Exception) else user_json(user_id, outcome)
            for user_id, outcome in zip(users, outcomes, strict=True)
        ]

    batcher = MicroBatcher(answer_group, batching, name="recommendation-batches") if batching is not None else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        # uvicorn has finished the in-flight requests by now; the worker answers what is queued and stops.
        if batcher is not None:
            await asyncio.to_thread(batcher.close)

    app = FastAPI(
        lifespan=lifespan,
        title=title,
        version=__version__,
        description=(
            "Two-stage recommendation in real time: embed the user, retrieve candidates from a vector "
            "index, rerank them with a scoring model. Every score is higher-is-better."
        ),
    )

    def title_of(recommendation: Recommendation) -> str | None:
        return titles.get(recommendation.item_id) or _metadata_title(recommendation)

    def user_json(user_id: str, recommendations: list[Recommendation]) -> bytes:
        return recommendations_json(user_recommendations(user_id, recommendations, title_of))

    def excluded_for(user_id: str, exclude_seen: bool, extra: Collection[str] = ()) -> frozenset[str]:
        already_seen = seen.get(user_id, frozenset()) if exclude_seen else frozenset()
        return already_seen | frozenset(extra) if extra else already_seen

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

    get_one = app.get(
        "/recommendations/{user_id}",
        response_model=UserRecommendations,
        responses=_ERROR_RESPONSES,
        summary="Recommend items for one user",
        description=_ONE_USER_DESCRIPTION,
        tags=["recommendations"],
    )

    if batcher is not None:
        micro_batcher = batcher

        @get_one
        async def recommend_one(
            user_id: UserIdPath,
            k: KQuery = 5,
            candidates: CandidatesQuery = None,
            rerank: RerankQuery = True,
            exclude_seen: ExcludeSeenQuery = True,
        ) -> Response:
            group = _Group(k, candidates if candidates is not None else max(k, DEFAULT_CANDIDATES), rerank, None)
            body = await micro_batcher.submit(group, (user_id, excluded_for(user_id, exclude_seen)))
            return Response(body, media_type="application/json")

    else:

        @get_one
        def recommend_one_unbatched(
            user_id: UserIdPath,
            k: KQuery = 5,
            candidates: CandidatesQuery = None,
            rerank: RerankQuery = True,
            exclude_seen: ExcludeSeenQuery = True,
        ) -> Response:
            recommendations = recommender.recommend(
                user_id,
                k=k,
                candidates=candidates if candidates is not None else max(k, DEFAULT_CANDIDATES),
                exclude=excluded_for(user_id, exclude_seen),
                rerank=rerank,
            )
            return Response(user_json(user_id, recommendations), media_type="application/json")

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
        item ids to leave out. If any user id is unknown and there is no fallback, the whole
        request fails with 404 and `user_ids` lists every unknown id.
        """
        extra = request.exclude or {}
        batches = recommender.recommend_batch(
            request.user_ids,
            k=request.k,
            candidates=request.candidates if request.candidates is not None else max(request.k, DEFAULT_CANDIDATES),
            exclude=[excluded_for(u, request.exclude_seen, extra.get(u, ())) for u in request.user_ids],
            filter=request.filter or None,
            rerank=request.rerank,
        )
        results = [
            user_recommendations(user_id, recommendations, title_of)
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
        """200 when the store answers and holds at least one item, else 503."""
        try:
            count = recommender.store.describe().count
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

    _install_error_handlers(app)
    return app


class _Group(NamedTuple):
    """What the requests answered by one ``recommend_batch`` call share (exclusions are per user)."""

    k: int
    candidates: int
    rerank: bool
    filter: str | None  # canonical JSON, so that equal filters group together


def _json(body: BaseModel, status_code: int = 200) -> Response:
    return Response(body.model_dump_json(), status_code=status_code, media_type="application/json")


def _metadata_title(recommendation: Recommendation) -> str | None:
    value = recommendation.metadata.get("title")
    return value if isinstance(value, str) else None


def _error(status: int, error: str, detail: str, **extra: Any) -> JSONResponse:
    body = ErrorResponse(error=error, detail=detail, **extra)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    """Translate the library's typed errors into status codes.

    Starlette picks the handler of the most specific class in the exception's MRO,
    so ``InvalidFilterError`` gets 400 although it is also an ``InvalidInputError``.
    """

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
        errors = jsonable_encoder(exc.errors())
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
