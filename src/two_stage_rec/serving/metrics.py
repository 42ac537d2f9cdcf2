"""Prometheus metrics for the service, served at ``GET /metrics``.

Needs ``prometheus-client`` (in the ``serve`` extra). Each app has its own
registry, so several apps in one process (tests, notebooks) never share or
collide on a metric. What is measured, and where:

* ``two_stage_rec_http_requests_total`` and
  ``two_stage_rec_http_request_duration_seconds`` — every request, by
  endpoint (the route's path template, e.g. ``/recommendations/{user_id}``;
  ``unmatched`` for paths no route serves, so a scan of random URLs cannot
  grow the label set), method and status. Measured by an ASGI middleware
  from the first byte received to the last byte sent.
* ``two_stage_rec_batch_size`` and ``two_stage_rec_batch_duration_seconds`` —
  each micro-batch (requests answered together, and its compute time).
* ``two_stage_rec_store_query_seconds`` — each vector store query, timed
  around the store's ``query`` (:class:`TimedStore`).
* ``two_stage_rec_reranker_seconds`` — each reranker call (one per batch of
  candidates), timed around the reranker's ``score`` (:class:`TimedReranker`).
* ``two_stage_rec_fallback_recommendations_total`` — users answered by the
  cold-start fallback.
* ``two_stage_rec_reloads_total`` (by ``outcome``: ``success``/``failure``),
  ``two_stage_rec_catalogue_writes_total`` (by ``operation``).

With ``serve --workers N`` the workers write their metrics to files in one
directory (prometheus-client's multiprocess mode, :data:`MULTIPROCESS_DIR_ENV`,
which :func:`~two_stage_rec.serving.server.run_workers` sets up), and
``/metrics``, whichever worker answers it, adds up every worker's counts. The
same happens in any process started with ``PROMETHEUS_MULTIPROC_DIR`` set.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import numpy.typing as npt

from two_stage_rec._optional import require
from two_stage_rec.protocols import Closeable, Reranker, VectorStore, concurrent_writes, input_width, returns_values
from two_stage_rec.recommender import Recommender
from two_stage_rec.types import FetchResult, Filter, FloatMatrix, FloatVector, Metadata, Metric, QueryResult, StoreStats

require("prometheus_client", extra="serve")

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest  # noqa: E402

__all__ = [
    "CONTENT_TYPE",
    "MULTIPROCESS_DIR_ENV",
    "MetricsMiddleware",
    "ServiceMetrics",
    "TimedReranker",
    "TimedStore",
    "instrument",
    "multiprocess_mode",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The ``Content-Type`` of :meth:`ServiceMetrics.render`'s text."""

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client's variable: set (to a directory) when the process starts, every metric
of the process is kept in files there, which any process can add up."""


def multiprocess_mode() -> bool:
    """Whether this process keeps its metrics in :data:`MULTIPROCESS_DIR_ENV`'s directory.

    prometheus-client decides once, when it is imported, from the environment,
    so setting the variable later in the same process changes nothing.
    """
    from prometheus_client import values

    # In multiprocess mode its value class is the file-backed one, not the in-memory MutexValue.
    return values.ValueClass is not values.MutexValue and bool(os.environ.get(MULTIPROCESS_DIR_ENV))


_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ServiceMetrics:
    """The service's metrics, in a registry of their own.

    Args:
        registry: where to register them; a new one when None.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        labels = ("endpoint", "method", "status")
        self.requests = Counter("two_stage_rec_http_requests", "HTTP requests answered.", labels, registry=r)
        self.latency = Histogram(
            "two_stage_rec_http_request_duration_seconds",
            "Time to answer an HTTP request.",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "two_stage_rec_batch_size", "Requests answered by one micro-batch.", buckets=_BATCH_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            "two_stage_rec_batch_duration_seconds",
            "Time to compute one micro-batch.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.store_query_seconds = Histogram(
            "two_stage_rec_store_query_seconds", "Time of one vector store query.", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.reranker_seconds = Histogram(
            "two_stage_rec_reranker_seconds", "Time of one reranker call.", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.fallbacks = Counter(
            "two_stage_rec_fallback_recommendations", "Users answered by the cold-start fallback.", registry=r
        )
        self.reloads = Counter("two_stage_rec_reloads", "Model reloads.", ("outcome",), registry=r)
        self.catalogue_writes = Counter(
            "two_stage_rec_catalogue_writes", "Live catalogue updates.", ("operation",), registry=r
        )

    def __repr__(self) -> str:
        return "ServiceMetrics()"

    def observe_batch(self, size: int, seconds: float) -> None:
        """Record one micro-batch."""
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def render(self) -> bytes:
        """The metrics in the Prometheus text format.

        In multiprocess mode (:func:`multiprocess_mode`), those of every process
        writing to the same directory, added up (counters and histograms summed;
        the ``_created`` samples are left out, as prometheus-client does).
        """
        if multiprocess_mode():
            from prometheus_client import multiprocess

            every_process = CollectorRegistry()
            multiprocess.MultiProcessCollector(every_process)  # type: ignore[no-untyped-call]
            return bytes(generate_latest(every_process))
        return bytes(generate_latest(self.registry))


class MetricsMiddleware:
    """ASGI middleware counting and timing every HTTP request by route template, method and status."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics
        # The labelled children by (endpoint, method, status): ``labels()`` takes a lock and
        # checks its arguments on every call, on the event loop's thread.
        self._children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            labels = (endpoint, str(scope.get("method", "")), str(status))
            children = self._children.get(labels)
            if children is None:
                children = (self.metrics.requests.labels(*labels), self.metrics.latency.labels(*labels))
                self._children[labels] = children
            children[0].inc()
            children[1].observe(time.perf_counter() - started)


class TimedStore:
    """A vector store that records each ``query``'s duration; every call goes to ``store``.

    The capabilities (``is_exact``, ``supports_persistence``, ``returns_values``,
    ``concurrent_writes``) are the wrapped store's.
    """

    def __init__(self, store: VectorStore, histogram: Histogram) -> None:
        self.store = store
        self._histogram = histogram
        self.returns_values = returns_values(store)
        self.concurrent_writes = concurrent_writes(store)

    def __repr__(self) -> str:
        return repr(self.store)

    @property
    def dimension(self) -> int:
        """The wrapped store's dimension."""
        return self.store.dimension

    @property
    def metric(self) -> Metric:
        """The wrapped store's metric."""
        return self.store.metric

    @property
    def is_exact(self) -> bool:
        """The wrapped store's ``is_exact``."""
        return self.store.is_exact

    @property
    def supports_persistence(self) -> bool:
        """The wrapped store's ``supports_persistence``."""
        return self.store.supports_persistence

    def upsert(self, ids: Sequence[str], vectors: npt.ArrayLike, metadata: Sequence[Metadata] | None = None) -> int:
        """The wrapped store's ``upsert``."""
        return self.store.upsert(ids, vectors, metadata)

    def query(
        self,
        vectors: npt.ArrayLike,
        top_k: int,
        *,
        filter: Filter | None = None,
        include_values: bool = False,
        include_metadata: bool = False,
    ) -> QueryResult:
        """The wrapped store's ``query``, timed."""
        started = time.perf_counter()
        try:
            return self.store.query(
                vectors, top_k, filter=filter, include_values=include_values, include_metadata=include_metadata
            )
        finally:
            self._histogram.observe(time.perf_counter() - started)

    def fetch(self, ids: Sequence[str]) -> FetchResult:
        """The wrapped store's ``fetch``."""
        return self.store.fetch(ids)

    def delete(self, ids: Sequence[str]) -> None:
        """The wrapped store's ``delete``."""
        self.store.delete(ids)

    def describe(self) -> StoreStats:
        """The wrapped store's ``describe``."""
        return self.store.describe()

    def close(self) -> None:
        """Close the wrapped store when it holds connections."""
        if isinstance(self.store, Closeable):
            self.store.close()


class TimedReranker:
    """A reranker that records each ``score`` call's duration."""

    def __init__(self, reranker: Reranker, histogram: Histogram) -> None:
        self.reranker = reranker
        self._histogram = histogram
        self.input_width = input_width(reranker)

    def __repr__(self) -> str:
        return repr(self.reranker)

    def score(self, user_vectors: FloatMatrix, item_vectors: FloatMatrix) -> FloatVector:
        """The wrapped reranker's ``score``, timed."""
        started = time.perf_counter()
        try:
            return self.reranker.score(user_vectors, item_vectors)
        finally:
            self._histogram.observe(time.perf_counter() - started)


def instrument(recommender: Recommender, metrics: ServiceMetrics) -> Recommender:
    """The same recommender with its store's queries and its reranker's calls timed.

    A subclass of :class:`~two_stage_rec.recommender.Recommender` is returned
    unchanged (rebuilding it would drop what the subclass adds).
    """
    if type(recommender) is not Recommender:
        return recommender
    reranker = recommender.reranker
    return Recommender(
        user_embedder=recommender.user_embedder,
        item_embedder=recommender.item_embedder,
        store=TimedStore(recommender.store, metrics.store_query_seconds),
        reranker=TimedReranker(reranker, metrics.reranker_seconds) if reranker is not None else None,
        fallback=recommender.fallback,
        candidate_ranker=recommender.candidate_ranker,
        fold_in=recommender.fold_in,
        user_items=recommender.user_items,
    )
