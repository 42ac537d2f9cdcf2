"""The admin endpoints: live model swap and live catalogue updates, behind a bearer token.

* ``POST /admin/reload`` — assemble a bundle (by default the one being
  served, re-read from disk) in a background thread, with the store kind and
  settings the service started with, then swap it in atomically
  (:class:`~two_stage_rec.serving.pipeline.PipelineSlot`). Requests never
  wait and never fail because of it; each is answered wholly by the old or
  wholly by the new bundle. One reload at a time (409 otherwise). A bundle
  that fails to load leaves the old one serving, and the answer says why.
* ``PUT /admin/items`` — add or change items (metadata given, vectors from
  the item tower); ``DELETE /admin/items`` — remove items. Visible to the
  next request (:mod:`two_stage_rec.serving.catalogue`).

Without a token configured the admin endpoints do not exist (404). A request
without ``Authorization: Bearer <token>`` gets 401, a wrong token 403. The
token is compared in constant time (:func:`hmac.compare_digest`) and never
appears in a log line, a repr, an error or the OpenAPI document.

With several worker processes (``serve --workers N``) a request reaches one
worker only, so the other workers would go on serving the old bundle or
catalogue: the endpoints answer 501 there. Update such a deployment with a
rolling restart (see the serving guide).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from two_stage_rec.assembly import AssembledRecommender
from two_stage_rec.bundle import Bundle
from two_stage_rec.errors import (
    InvalidInputError,
    MissingDependencyError,
    ModelError,
    StoreError,
    TwoStageRecError,
    UnknownKeyError,
)
from two_stage_rec.protocols import concurrent_writes
from two_stage_rec.serving.catalogue import delete_items, upsert_items
from two_stage_rec.serving.metrics import ServiceMetrics
from two_stage_rec.serving.pipeline import Pipeline, PipelineSlot
from two_stage_rec.serving.schemas import MAX_ID_LENGTH, ErrorResponse, Id
from two_stage_rec.types import MetadataValue

__all__ = [
    "ADMIN_TOKEN_ENV",
    "MIN_TOKEN_LENGTH",
    "AdminToken",
    "BundleLoader",
    "BundleSummary",
    "DeleteItemsRequest",
    "ItemsResponse",
    "ReloadRequest",
    "ReloadResponse",
    "UpsertItemsRequest",
    "install_admin_routes",
]

logger = logging.getLogger("two_stage_rec.serving")

ADMIN_TOKEN_ENV = "TWO_STAGE_REC_ADMIN_TOKEN"
"""The variable ``serve`` reads the admin token from (safer than ``--admin-token``: ``ps`` does not show it)."""

MIN_TOKEN_LENGTH = 16
"""Shortest admin token accepted, e.g. ``python -c "import secrets; print(secrets.token_urlsafe(32))"``."""

MAX_ITEMS_PER_REQUEST = 10_000
"""Most items one catalogue update may hold."""

BundleLoader = Callable[[Path], AssembledRecommender]
"""Assembles the bundle at a path into a ready recommender (the service's store kind and settings)."""


class AdminToken:
    """The admin bearer token: compared in constant time, never shown.

    Its ``repr`` and ``str`` hide the value, so it can sit in settings that
    are logged or printed.

    Raises:
        InvalidInputError: the token is shorter than :data:`MIN_TOKEN_LENGTH`
            characters or holds whitespace (the message does not show it).
    """

    __slots__ = ("_secret",)

    def __init__(self, secret: str) -> None:
        if not isinstance(secret, str) or len(secret) < MIN_TOKEN_LENGTH:
            raise InvalidInputError(f"the admin token must be at least {MIN_TOKEN_LENGTH} characters long")
        if any(character.isspace() for character in secret):
            raise InvalidInputError("the admin token must not contain whitespace")
        self._secret = secret.encode("utf-8")

    def __repr__(self) -> str:
        return "AdminToken('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AdminToken) and hmac.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash(AdminToken)

    def matches(self, candidate: str) -> bool:
        """Whether ``candidate`` is the token (constant-time comparison)."""
        return hmac.compare_digest(self._secret, candidate.encode("utf-8"))

    def reveal(self) -> str:
        """The token itself (to hand it to worker processes through their environment)."""
        return self._secret.decode("utf-8")


# ------------------------------------------------------------------ bodies


class ReloadRequest(BaseModel):
    """Which bundle to serve next."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"path": "models/"}]})

    path: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="A bundle directory on the server. Default: the bundle being served, read again.",
    )


class BundleSummary(BaseModel):
    """What a bundle's manifest says about it."""

    path: str = Field(description="Where the bundle was read from.")
    recommended: str = Field(description="The reranker training measured best, served unless configured otherwise.")
    reranker: str = Field(description="The reranker the service now uses.")
    items: int = Field(description="Items in the bundle's catalogue.")
    created: str = Field(description="When the bundle was written (ISO-8601, UTC).")


class ReloadResponse(BaseModel):
    """The bundle now served."""

    status: str = Field(default="reloaded")
    bundle: BundleSummary


class ItemMetadata(BaseModel):
    """One item to add or change."""

    model_config = ConfigDict(extra="forbid")

    id: Id = Field(description="The item's id; the item tower must know it.")
    metadata: dict[str, MetadataValue] = Field(
        default_factory=dict, description="Its metadata (replaces what it had), e.g. title and genres."
    )


class UpsertItemsRequest(BaseModel):
    """Items to add or change."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"items": [{"id": "50", "metadata": {"title": "Star Wars", "year": 1977}}]}]},
    )

    items: list[ItemMetadata] = Field(min_length=1, max_length=MAX_ITEMS_PER_REQUEST)


class DeleteItemsRequest(BaseModel):
    """Items to remove."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"ids": ["50", "172"]}]})

    ids: list[Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]] = Field(
        min_length=1, max_length=MAX_ITEMS_PER_REQUEST
    )


class ItemsResponse(BaseModel):
    """What a catalogue update did."""

    status: str = Field(description="`upserted` or `deleted`.")
    ids: list[str] = Field(description="The ids written or removed (a removed id that was not stored is ignored).")
    count: int = Field(description="Items now in the store.")


def _summary(bundle: Bundle, path: Path, reranker: str) -> BundleSummary:
    manifest = bundle.manifest
    return BundleSummary(
        path=str(path),
        recommended=manifest.recommended,
        reranker=reranker,
        items=manifest.items or len(bundle.catalogue),
        created=manifest.created,
    )


def _error(status: int, error: str, detail: str, **extra: Any) -> JSONResponse:
    body = ErrorResponse(error=error, detail=detail, **extra)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status)


def _reload_failure(exc: BaseException, path: Path) -> JSONResponse:
    """The answer to a failed reload: its cause, typed, with the library's own message."""
    prefix = f"the bundle at {path} was not loaded and the previous one is still served"
    if isinstance(exc, ModelError | InvalidInputError):
        return _error(422, "reload_failed", f"{prefix}: {exc}")
    if isinstance(exc, StoreError):
        return _error(503, "reload_failed", f"{prefix}: the vector store failed: {exc}")
    if isinstance(exc, MissingDependencyError | TwoStageRecError):
        return _error(500, "reload_failed", f"{prefix}: {exc}")
    return _error(500, "reload_failed", f"{prefix}: an unexpected error (see the server log)")


_ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No `Authorization: Bearer` token (`unauthorized`)."},
    403: {"model": ErrorResponse, "description": "The token is wrong (`forbidden`)."},
    404: {"model": ErrorResponse, "description": "The service has no admin token configured: no admin endpoints."},
    422: {"model": ErrorResponse, "description": "The body is malformed (`invalid_request`, `invalid_input`)."},
    501: {
        "model": ErrorResponse,
        "description": "Not possible in this process (`not_supported`): one of several workers, or not started "
        "from a bundle.",
    },
}


_BEARER = HTTPBearer(auto_error=False, description=f"The admin token (`serve --admin-token` or ${ADMIN_TOKEN_ENV}).")


def _unsafe_store(pipeline: Pipeline) -> JSONResponse | None:
    """501 when the store does not say writes may overlap queries (a write could corrupt what readers see)."""
    store = pipeline.recommender.store
    if concurrent_writes(store):
        return None
    return _error(
        501,
        "not_supported",
        "the vector store does not declare concurrent_writes, so it cannot be written while it serves; "
        "rebuild the bundle and reload it instead",
    )


class _Unauthorized(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


def install_admin_routes(
    app: FastAPI,
    *,
    token: AdminToken,
    slot: PipelineSlot,
    loader: BundleLoader | None,
    make_pipeline: Callable[[AssembledRecommender, Path], Pipeline],
    workers: int = 1,
    metrics: ServiceMetrics | None = None,
) -> Callable[[], None]:
    """Add the admin endpoints to ``app``.

    Args:
        app: the service.
        token: the bearer token every admin request must carry.
        slot: holds the pipeline being served.
        loader: assembles a bundle for ``/admin/reload``; None: reloads answer 501.
        make_pipeline: turns an assembled bundle into a pipeline (titles, seen items, metrics).
        workers: processes serving the same port; above 1 every admin endpoint answers 501.
        metrics: where reloads and catalogue writes are counted.

    Returns:
        A function that waits for a running reload to finish (call it at shutdown).
    """
    reloading = threading.Lock()
    reload_thread: list[threading.Thread] = []

    def authorized(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]) -> None:
        if credentials is None:
            raise _Unauthorized(401, "unauthorized", "send the admin token as 'Authorization: Bearer <token>'")
        if not token.matches(credentials.credentials):
            raise _Unauthorized(403, "forbidden", "the admin token is not valid")

    @app.exception_handler(_Unauthorized)
    async def unauthorized(request: Any, exc: _Unauthorized) -> JSONResponse:
        response = _error(exc.status, exc.error, exc.detail)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    def not_supported(what: str) -> JSONResponse | None:
        if workers > 1:
            return _error(
                501,
                "not_supported",
                f"this process is one of {workers} workers and {what} would change only this one; "
                "update a multi-worker deployment with a rolling restart",
            )
        return None

    def reload_in_background(path: Path, outcome: Future[Pipeline]) -> None:
        pipeline: Pipeline | None = None
        failure: BaseException | None = None
        try:
            assert loader is not None
            served = loader(path)
            try:
                pipeline = make_pipeline(served, path)
            except BaseException:
                served.close()
                raise
            previous = slot.swap(pipeline)
            slot.retire(previous)
            logger.info("reloaded the models from %s", path)
            if metrics is not None:
                metrics.reloads.labels("success").inc()
        except BaseException as exc:
            logger.warning("reloading the models from %s failed: %s", path, exc)
            if metrics is not None:
                metrics.reloads.labels("failure").inc()
            failure = exc
        finally:
            # Released before the answer is handed back: a client that reloads again as soon
            # as its reload answered must not find the lock still held (a spurious 409).
            reloading.release()
        if failure is not None:
            outcome.set_exception(failure)
        else:
            assert pipeline is not None
            outcome.set_result(pipeline)

    @app.post(
        "/admin/reload",
        response_model=ReloadResponse,
        responses={
            **_ADMIN_ERRORS,
            409: {"model": ErrorResponse, "description": "A reload is already running (`reload_in_progress`)."},
            422: {"model": ErrorResponse, "description": "The bundle is missing or malformed (`reload_failed`)."},
            500: {"model": ErrorResponse, "description": "The bundle could not be assembled (`reload_failed`)."},
            503: {"model": ErrorResponse, "description": "The new store failed while indexing (`reload_failed`)."},
        },
        dependencies=[Depends(authorized)],
        summary="Serve another bundle (or the same one, re-read)",
        tags=["admin"],
    )
    async def reload(request: ReloadRequest | None = None) -> Response:
        """Assemble a bundle in the background, then switch to it atomically; requests keep being answered.

        Each request is answered wholly by the old bundle or wholly by the new one. A bundle that
        fails to load leaves the old one serving; the answer says why. Live catalogue changes made
        to the old bundle are not carried over.
        """
        refused = not_supported("a reload")
        if refused is not None:
            return refused
        if loader is None:
            return _error(501, "not_supported", "this service was not started from a bundle, so it cannot reload one")
        current = slot.current.path
        target = Path(request.path) if request is not None and request.path else current
        if target is None:
            return _error(422, "invalid_input", "give the bundle's path: the service was not started from one")
        if not reloading.acquire(blocking=False):
            return _error(409, "reload_in_progress", "a reload is already running; retry when it has finished")
        outcome: Future[Pipeline] = Future()
        # A thread of its own, not a pool: the reload finishes (and releases the lock) even if
        # this request is cancelled because its client went away.
        thread = threading.Thread(target=reload_in_background, args=(target, outcome), name="reload", daemon=True)
        reload_thread[:] = [thread]
        try:
            thread.start()
        except BaseException:
            reloading.release()
            raise
        try:
            pipeline = await asyncio.wrap_future(outcome)
        except Exception as exc:
            return _reload_failure(exc, target)
        assert pipeline.bundle is not None and pipeline.owned is not None
        body = ReloadResponse(bundle=_summary(pipeline.bundle, target, pipeline.owned.reranker_name))
        return Response(body.model_dump_json(), media_type="application/json")

    @app.put(
        "/admin/items",
        response_model=ItemsResponse,
        responses={
            **_ADMIN_ERRORS,
            422: {
                "model": ErrorResponse,
                "description": "The item tower does not know some ids (`unknown_items`, listed in `item_ids`), "
                "or the body is malformed.",
            },
        },
        dependencies=[Depends(authorized)],
        summary="Add or change items",
        tags=["admin"],
    )
    def put_items(request: UpsertItemsRequest) -> Response:
        """Add items, or replace their metadata; their vectors come from the bundle's item tower.

        Visible to the next request, retrieval and cold-start fallback alike.
        """
        refused = not_supported("a catalogue update")
        if refused is not None:
            return refused
        ids = [item.id for item in request.items]
        with slot.use() as pipeline, pipeline.write_lock:
            unsafe = _unsafe_store(pipeline)
            if unsafe is not None:
                return unsafe
            try:
                upsert_items(
                    pipeline.recommender,
                    pipeline.fallback,
                    pipeline.titles,
                    ids,
                    [item.metadata for item in request.items],
                )
            except UnknownKeyError as exc:
                return _error(422, "unknown_items", f"the item tower has no vector for {exc}", item_ids=exc.keys)
            count = pipeline.recommender.store.describe().count
        if metrics is not None:
            metrics.catalogue_writes.labels("upsert").inc()
        return Response(
            ItemsResponse(status="upserted", ids=ids, count=count).model_dump_json(), media_type="application/json"
        )

    @app.delete(
        "/admin/items",
        response_model=ItemsResponse,
        responses=_ADMIN_ERRORS,
        dependencies=[Depends(authorized)],
        summary="Remove items",
        tags=["admin"],
    )
    def delete_items_endpoint(request: DeleteItemsRequest) -> Response:
        """Remove items from retrieval and from the cold-start fallback; ids not stored are ignored.

        When this returns, no later request is answered with them.
        """
        refused = not_supported("a catalogue update")
        if refused is not None:
            return refused
        with slot.use() as pipeline, pipeline.write_lock:
            unsafe = _unsafe_store(pipeline)
            if unsafe is not None:
                return unsafe
            delete_items(pipeline.recommender, pipeline.fallback, pipeline.titles, request.ids)
            count = pipeline.recommender.store.describe().count
        if metrics is not None:
            metrics.catalogue_writes.labels("delete").inc()
        return Response(
            ItemsResponse(status="deleted", ids=request.ids, count=count).model_dump_json(),
            media_type="application/json",
        )

    def wait_for_reload(timeout: float = 60.0) -> None:
        for thread in reload_thread:
            thread.join(timeout)

    return wait_for_reload
