"""A Pinecone-compatible HTTP server on loopback, for testing without the cloud.

The real ``pinecone`` client (10.x, API version ``2026-07``) talks to it over
HTTP, so code that uses :class:`~two_stage_rec.stores.pinecone.PineconeVectorStore`
(or the client directly) can be tested offline::

    from two_stage_rec.testing.pinecone_server import PineconeTestServer

    with PineconeTestServer(api_key="test-key") as server:
        store = PineconeVectorStore(
            index_name="movies", dimension=32, create_if_missing=True,
            api_key="test-key", controller_host=server.url,
        )
        ...

It can also run on its own: ``python -m two_stage_rec.testing.pinecone_server --port 5080``.

What it implements (shapes checked against the installed client's models):

* control plane: ``GET/POST /indexes``, ``GET/DELETE /indexes/{name}``; the
  ``IndexModel`` uses the 2026-07 shape (``schema.fields._values`` of type
  ``dense_vector``, ``deployment``, ``status.ready``) and its ``host`` carries
  ``http://`` because the client assumes https otherwise.
* data plane, one per index under ``{url}/data/{name}``: ``POST /vectors/upsert``,
  ``POST /query``, ``GET /vectors/fetch``, ``POST /vectors/delete``,
  ``POST /describe_index_stats``, ``DELETE /namespaces/{namespace}``.

It enforces Pinecone's documented limits (:class:`ServerLimits`), checks the
``Api-Key`` header, evaluates filters with :mod:`two_stage_rec.filters` (the
same semantics as every store here), ranks exactly with
:class:`~two_stage_rec.stores.memory.InMemoryVectorStore` (one per namespace),
and returns Pinecone's score conventions (``euclidean`` is the *squared
distance*, lower is closer). Like Pinecone it stores vectors as float32 and
metadata numbers as doubles, and it strips null metadata values.

Faults are injected on demand with :meth:`PineconeTestServer.inject`; every
request is recorded (:attr:`PineconeTestServer.requests`) with its body size
and vector count so tests can check that batching respects the limits. An
optional ``visibility_delay`` imitates Pinecone's eventual consistency: writes
become visible to reads only after that many seconds.

The server is a test double: single process, everything in memory, no TLS.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from two_stage_rec.errors import TwoStageRecError
from two_stage_rec.filters import compile_filter
from two_stage_rec.stores.memory import InMemoryVectorStore
from two_stage_rec.types import METRICS, Metric

__all__ = [
    "DEFAULT_NAMESPACE",
    "FaultKind",
    "PineconeTestServer",
    "RecordedRequest",
    "ServerLimits",
]

DEFAULT_NAMESPACE = "__default__"
"""How the 2026-07 API names the namespace a request without ``namespace`` uses."""

FaultKind = Literal["rate_limit", "unavailable", "slow", "drop", "apply_then_drop", "echo_headers"]
"""Faults :meth:`PineconeTestServer.inject` can cause:

* ``"rate_limit"``: HTTP 429 with a ``Retry-After`` header; nothing applied.
* ``"unavailable"``: HTTP 503; nothing applied.
* ``"slow"``: wait ``delay`` seconds (past the client's timeout), then apply
  the request and try to reply to a client that has usually given up.
* ``"drop"``: read part of the request, then close the connection; nothing applied.
* ``"apply_then_drop"``: apply the request, then close the connection without a
  reply (the write landed, the client cannot know).
* ``"echo_headers"``: an error (``status``, default 400) whose message quotes
  every request header, API key included, as a misbehaving proxy might.
"""


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Pinecone's documented per-request limits, enforced by the server.

    Sizes are in bytes. "2 MB" and "40 KB" are read the strict way round
    (2,000,000 bytes per upsert request, 40,960 bytes of JSON metadata per
    vector) so a client that respects these also respects Pinecone.
    """

    max_vectors_per_upsert: int = 1_000
    max_upsert_bytes: int = 2_000_000
    max_metadata_bytes: int = 40_960
    max_id_length: int = 512
    max_top_k: int = 10_000
    max_top_k_with_data: int = 1_000
    max_ids_per_fetch: int = 1_000
    max_ids_per_delete: int = 1_000


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the server received.

    Attributes:
        method: HTTP method.
        path: path without the data-plane prefix (e.g. ``"/vectors/upsert"``).
        index: the index name for data-plane requests, else None.
        body_bytes: size of the request body.
        vectors: number of vectors in an upsert body (0 otherwise).
        ids: the ids an upsert carried (empty otherwise).
        status: the HTTP status sent (0 when the connection was dropped).
        fault: the injected fault, if any.
    """

    method: str
    path: str
    index: str | None
    body_bytes: int
    vectors: int
    ids: tuple[str, ...]
    status: int
    fault: FaultKind | None


@dataclass(slots=True)
class _Fault:
    kind: FaultKind
    method: str | None
    path: str | None
    remaining: int
    skip: int
    retry_after: float
    delay: float
    status: int

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or self.path == path)


@dataclass(slots=True)
class _Index:
    name: str
    dimension: int
    metric: Metric
    cloud: str
    region: str
    namespaces: dict[str, InMemoryVectorStore] = field(default_factory=dict)
    pending: list[tuple[float, Callable[[], None]]] = field(default_factory=list)


class _ApiError(Exception):
    """An error reply in Pinecone's JSON error shape."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


try:  # orjson ships with the pinecone client and parses 2 MB bodies several times faster.
    import orjson

    def _loads(data: bytes) -> Any:
        return orjson.loads(data)

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

except ImportError:  # pragma: no cover - exercised only without the pinecone extra

    def _loads(data: bytes) -> Any:
        return json.loads(data)

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()


def _metadata_for_storage(raw: object, item_id: str, limits: ServerLimits) -> dict[str, Any]:
    """Pinecone's metadata rules: an object of str, number, bool or list of str; nulls stripped."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _ApiError(400, "INVALID_ARGUMENT", f"metadata of vector {item_id!r} must be an object")
    size = len(_dumps(raw))
    if size > limits.max_metadata_bytes:
        raise _ApiError(
            400,
            "INVALID_ARGUMENT",
            f"Metadata size is {size} bytes, which exceeds the limit of {limits.max_metadata_bytes} bytes "
            f"per vector (id {item_id!r})",
        )
    stored: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None:
            continue  # Pinecone strips null values on write.
        if isinstance(value, bool | str):
            stored[key] = value
        elif isinstance(value, int | float):
            stored[key] = float(value)  # Pinecone keeps every number as a double.
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            stored[key] = list(value)
        else:
            raise _ApiError(
                400,
                "INVALID_ARGUMENT",
                f"Metadata value must be a string, number, boolean or list of strings, got {value!r} for field {key!r}",
            )
    return stored


class PineconeTestServer:
    """A Pinecone-compatible server on ``127.0.0.1`` and an ephemeral port.

    Args:
        api_key: the only key the server accepts (header ``Api-Key``).
        limits: per-request limits to enforce (Pinecone's by default).
        visibility_delay: seconds before a write becomes visible to reads.
        port: 0 (default) picks a free port.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    Methods are thread-safe.
    """

    def __init__(
        self,
        *,
        api_key: str = "test-api-key",
        limits: ServerLimits | None = None,
        visibility_delay: float = 0.0,
        port: int = 0,
    ) -> None:
        self._api_key = api_key
        self.limits = limits or ServerLimits()
        self.visibility_delay = visibility_delay
        self._requested_port = port
        self._lock = threading.RLock()
        self._indexes: dict[str, _Index] = {}
        self._faults: list[_Fault] = []
        self._requests: list[RecordedRequest] = []
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"PineconeTestServer(url={self.url if self._httpd else None!r}, indexes={sorted(self._indexes)})"

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> PineconeTestServer:
        """Bind, and serve from a background thread. Returns self."""
        if self._httpd is not None:
            return self
        handler = type("_BoundHandler", (_Handler,), {"app": self})
        self._httpd = _Server(("127.0.0.1", self._requested_port), handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="pinecone-test-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every open connection and join the threads."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        httpd.shutdown()
        httpd.close_all_connections()
        httpd.server_close()
        thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> PineconeTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port."""
        if self._httpd is None:
            raise RuntimeError("the server is not running; call start()")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Control-plane URL, e.g. ``http://127.0.0.1:50123`` (pass as ``controller_host``)."""
        return f"http://127.0.0.1:{self.port}"

    def index_host(self, name: str) -> str:
        """The data-plane host of an index (what ``IndexModel.host`` reports)."""
        return f"{self.url}/data/{name}"

    # ------------------------------------------------------------ test controls

    def inject(
        self,
        kind: FaultKind,
        *,
        path: str | None = "/vectors/upsert",
        method: str | None = None,
        times: int = 1,
        after: int = 0,
        retry_after: float = 0.05,
        delay: float = 1.0,
        status: int = 400,
    ) -> None:
        """Make the next ``times`` matching requests fail with ``kind``.

        Args:
            kind: see :data:`FaultKind`.
            path: data-plane or control-plane path to match (None matches all).
            method: HTTP method to match (None matches all).
            times: how many requests to affect.
            after: let this many matching requests through first.
            retry_after: seconds sent in ``Retry-After`` for ``"rate_limit"``.
            delay: seconds ``"slow"`` waits before it applies and replies.
            status: HTTP status of ``"echo_headers"`` replies.
        """
        with self._lock:
            self._faults.append(_Fault(kind, method, path, times, after, retry_after, delay, status))

    def clear_faults(self) -> None:
        """Drop every fault that has not fired yet."""
        with self._lock:
            self._faults.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._requests.clear()

    def create_index(
        self, name: str, *, dimension: int, metric: Metric = "dotproduct", cloud: str = "aws", region: str = "us-east-1"
    ) -> None:
        """Create an index directly (no HTTP), e.g. to test connecting to an existing one."""
        with self._lock:
            self._indexes[name] = _Index(name, dimension, metric, cloud, region)

    def stored(self, index: str, namespace: str = "") -> dict[str, tuple[list[float], dict[str, Any]]]:
        """Ground truth for assertions: id -> (values, metadata), pending writes included."""
        with self._lock:
            state = self._indexes[index]
            self._apply_pending(state, force=True)
            store = state.namespaces.get(namespace or DEFAULT_NAMESPACE)
            if store is None or len(store) == 0:
                return {}
            fetched = store.fetch(list(store._ids))  # the reference store keeps ids in insertion order
            return {
                item_id: (fetched.vectors[i].tolist(), dict(fetched.metadata[i]))
                for i, item_id in enumerate(fetched.ids)
            }

    # -------------------------------------------------------------- dispatching

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.matches(method, path):
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _check_key(self, headers: Any) -> None:
        if headers.get("Api-Key") != self._api_key:
            raise _ApiError(401, "UNAUTHENTICATED", "Invalid API Key")

    def _index(self, name: str) -> _Index:
        state = self._indexes.get(name)
        if state is None:
            raise _ApiError(404, "NOT_FOUND", f"Resource {name} not found")
        return state

    def _index_model(self, state: _Index) -> dict[str, Any]:
        return {
            "name": state.name,
            "host": self.index_host(state.name),
            "status": {"ready": True, "state": "Ready"},
            "schema": {
                "fields": {"_values": {"type": "dense_vector", "dimension": state.dimension, "metric": state.metric}}
            },
            "deployment": {"deployment_type": "managed", "cloud": state.cloud, "region": state.region},
            "deletion_protection": "disabled",
            "tags": None,
        }

    def _apply_pending(self, state: _Index, *, force: bool = False) -> None:
        now = time.monotonic()
        due = [op for visible_at, op in state.pending if force or visible_at <= now]
        state.pending = [] if force else [(t, op) for t, op in state.pending if t > now]
        for op in due:
            op()

    def _write(self, state: _Index, op: Callable[[], None]) -> None:
        if self.visibility_delay > 0:
            state.pending.append((time.monotonic() + self.visibility_delay, op))
        else:
            op()

    @staticmethod
    def _drop_namespace(state: _Index, namespace: str) -> None:
        state.namespaces.pop(namespace, None)

    def _namespace(self, state: _Index, namespace: str, *, create: bool) -> InMemoryVectorStore | None:
        store = state.namespaces.get(namespace)
        if store is None and create:
            store = InMemoryVectorStore(dimension=state.dimension, metric=state.metric)
            state.namespaces[namespace] = store
        return store

    def handle(
        self, method: str, raw_path: str, headers: Any, payload: dict[str, Any]
    ) -> tuple[int, dict[str, Any] | None]:
        """Serve one request (already past fault injection); returns (status, JSON body)."""
        self._check_key(headers)
        parts = urlsplit(raw_path)
        path = parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        with self._lock:
            if path == "/indexes":
                if method == "GET":
                    return 200, {"indexes": [self._index_model(s) for s in self._indexes.values()]}
                if method == "POST":
                    return self._create_index(payload)
            elif path.startswith("/indexes/"):
                name = unquote(path[len("/indexes/") :])
                if method == "GET":
                    return 200, self._index_model(self._index(name))
                if method == "DELETE":
                    self._index(name)
                    del self._indexes[name]
                    return 202, None
            elif path.startswith("/data/"):
                name, _, rest = path[len("/data/") :].partition("/")
                return self._data_plane(method, "/" + rest, self._index(unquote(name)), payload, query)
        raise _ApiError(404, "NOT_FOUND", f"no route for {method} {path}")

    def _create_index(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = payload.get("name")
        if not isinstance(name, str) or not name:
            raise _ApiError(400, "INVALID_ARGUMENT", "name is required")
        if name in self._indexes:
            raise _ApiError(409, "ALREADY_EXISTS", f"Resource {name} already exists")
        dense = [f for f in payload.get("schema", {}).get("fields", {}).values() if f.get("type") == "dense_vector"]
        if len(dense) != 1:
            raise _ApiError(400, "INVALID_ARGUMENT", "this server supports one dense_vector field per index")
        dimension, metric = dense[0].get("dimension"), dense[0].get("metric", "cosine")
        if not isinstance(dimension, int) or dimension < 1 or metric not in METRICS:
            raise _ApiError(400, "INVALID_ARGUMENT", f"invalid dimension {dimension!r} or metric {metric!r}")
        deployment = payload.get("deployment") or {}
        state = _Index(name, dimension, metric, deployment.get("cloud", "aws"), deployment.get("region", "us-east-1"))
        self._indexes[name] = state
        return 201, self._index_model(state)

    def _data_plane(
        self, method: str, path: str, state: _Index, payload: dict[str, Any], query: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any] | None]:
        if path == "/vectors/upsert" and method == "POST":
            return 200, self._upsert(state, payload)
        if method == "DELETE" and path.startswith("/namespaces/"):
            namespace = unquote(path[len("/namespaces/") :])
            self._apply_pending(state)
            if namespace not in state.namespaces:
                raise _ApiError(404, "NOT_FOUND", f"Namespace {namespace} not found")
            self._write(state, lambda: self._drop_namespace(state, namespace))
            return 202, None
        self._apply_pending(state)
        if path == "/query" and method == "POST":
            return 200, self._query(state, payload)
        if path == "/vectors/fetch" and method == "GET":
            return 200, self._fetch(state, query)
        if path == "/vectors/delete" and method == "POST":
            return 200, self._delete(state, payload)
        if path == "/describe_index_stats" and method == "POST":
            counts = {ns: {"vectorCount": len(store)} for ns, store in state.namespaces.items() if len(store)}
            return 200, {
                "namespaces": counts,
                "dimension": state.dimension,
                "indexFullness": 0.0,
                "totalVectorCount": sum(c["vectorCount"] for c in counts.values()),
                "metric": state.metric,
                "vectorType": "dense",
            }
        raise _ApiError(404, "NOT_FOUND", f"no route for {method} {path}")

    def _upsert(self, state: _Index, payload: dict[str, Any]) -> dict[str, Any]:
        vectors = payload.get("vectors")
        if not isinstance(vectors, list) or not vectors:
            raise _ApiError(400, "INVALID_ARGUMENT", "vectors must be a non-empty list")
        if len(vectors) > self.limits.max_vectors_per_upsert:
            raise _ApiError(
                400,
                "INVALID_ARGUMENT",
                f"Upsert request contains {len(vectors)} vectors; the maximum is {self.limits.max_vectors_per_upsert}",
            )
        ids: list[str] = []
        rows: list[list[float]] = []
        metadata: list[dict[str, Any]] = []
        for vector in vectors:
            item_id = vector.get("id")
            if not isinstance(item_id, str) or not item_id or len(item_id) > self.limits.max_id_length:
                raise _ApiError(400, "INVALID_ARGUMENT", f"invalid vector id {str(item_id)[:40]!r}")
            values = vector.get("values")
            if not isinstance(values, list) or len(values) != state.dimension:
                got = len(values) if isinstance(values, list) else 0
                raise _ApiError(
                    400,
                    "INVALID_ARGUMENT",
                    f"Vector dimension {got} does not match the dimension of the index {state.dimension}",
                )
            ids.append(item_id)
            rows.append(values)
            metadata.append(_metadata_for_storage(vector.get("metadata"), item_id, self.limits))
        namespace = payload.get("namespace") or DEFAULT_NAMESPACE
        try:
            matrix = np.asarray(rows, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise _ApiError(400, "INVALID_ARGUMENT", "vector values must be numbers") from exc
        if not np.isfinite(matrix).all():
            raise _ApiError(400, "INVALID_ARGUMENT", "vector values must be finite")

        def apply() -> None:
            store = self._namespace(state, namespace, create=True)
            assert store is not None
            store.upsert(ids, matrix, metadata)

        try:
            self._write(state, apply)
        except TwoStageRecError as exc:
            raise _ApiError(400, "INVALID_ARGUMENT", str(exc)) from exc
        return {"upsertedCount": len(ids)}

    def _query(self, state: _Index, payload: dict[str, Any]) -> dict[str, Any]:
        namespace = payload.get("namespace") or DEFAULT_NAMESPACE
        top_k = payload.get("topK")
        include_values = bool(payload.get("includeValues"))
        include_metadata = bool(payload.get("includeMetadata"))
        limit = self.limits.max_top_k_with_data if include_values or include_metadata else self.limits.max_top_k
        if not isinstance(top_k, int) or not 1 <= top_k <= limit:
            raise _ApiError(400, "INVALID_ARGUMENT", f"topK must be between 1 and {limit}, got {top_k!r}")
        vector = payload.get("vector")
        if not isinstance(vector, list) or len(vector) != state.dimension:
            got = len(vector) if isinstance(vector, list) else 0
            raise _ApiError(
                400,
                "INVALID_ARGUMENT",
                f"Query vector dimension {got} does not match the dimension of the index {state.dimension}",
            )
        try:
            compile_filter(payload.get("filter"))
        except TwoStageRecError as exc:
            raise _ApiError(400, "INVALID_ARGUMENT", f"Invalid filter: {exc}") from exc
        store = self._namespace(state, namespace, create=False)
        matches: list[dict[str, Any]] = []
        if store is not None and len(store):
            result = store.query(
                np.asarray([vector], dtype=np.float32),
                top_k,
                filter=payload.get("filter"),
                include_values=include_values,
                include_metadata=include_metadata,
            )
            for column in range(int(result.counts[0])):
                score = float(result.scores[0, column])
                # Pinecone reports euclidean as the squared distance (lower is closer).
                match: dict[str, Any] = {
                    "id": str(result.ids[0, column]),
                    "score": -score if state.metric == "euclidean" else score,
                    "values": result.values[0, column].tolist() if result.values is not None else [],
                }
                if result.metadata is not None:
                    match["metadata"] = dict(result.metadata[0][column])
                matches.append(match)
        return {"matches": matches, "namespace": namespace, "usage": {"readUnits": 1}}

    def _fetch(self, state: _Index, query: dict[str, list[str]]) -> dict[str, Any]:
        ids = query.get("ids", [])
        if not ids:
            raise _ApiError(400, "INVALID_ARGUMENT", "ids must be a non-empty list")
        if len(ids) > self.limits.max_ids_per_fetch:
            raise _ApiError(
                400, "INVALID_ARGUMENT", f"fetch got {len(ids)} ids; the maximum is {self.limits.max_ids_per_fetch}"
            )
        namespace = (query.get("namespace") or [""])[0] or DEFAULT_NAMESPACE
        store = self._namespace(state, namespace, create=False)
        vectors: dict[str, Any] = {}
        if store is not None:
            found = store.fetch(ids)
            for i, item_id in enumerate(found.ids):
                record: dict[str, Any] = {"id": item_id, "values": found.vectors[i].tolist()}
                if found.metadata[i]:
                    record["metadata"] = dict(found.metadata[i])
                vectors[item_id] = record
        return {"vectors": vectors, "namespace": namespace, "usage": {"readUnits": 1}}

    def _delete(self, state: _Index, payload: dict[str, Any]) -> dict[str, Any]:
        namespace = payload.get("namespace") or DEFAULT_NAMESPACE
        store = self._namespace(state, namespace, create=False)
        if payload.get("deleteAll"):
            self._write(state, lambda: self._drop_namespace(state, namespace))
            return {}
        ids = payload.get("ids")
        if ids is not None:
            if not isinstance(ids, list) or len(ids) > self.limits.max_ids_per_delete:
                raise _ApiError(400, "INVALID_ARGUMENT", f"delete takes at most {self.limits.max_ids_per_delete} ids")
            if store is not None:
                self._write(state, lambda: store.delete(ids))
            return {}
        if payload.get("filter") is not None:
            raise _ApiError(400, "INVALID_ARGUMENT", "delete by filter is not supported by this test server")
        raise _ApiError(400, "INVALID_ARGUMENT", "delete needs ids or deleteAll")


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that disables Nagle and can close idle keep-alive connections."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        # Without TCP_NODELAY a small reply waits for the client's delayed ACK (~40 ms a call).
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._connections_lock:
            self._connections.add(connection)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_all_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client reuses one connection per thread.
    app: PineconeTestServer
    server_version = "PineconeTestServer/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging (stderr noise in test runs)."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _route(self) -> tuple[str | None, str]:
        path = urlsplit(self.path).path
        if path.startswith("/data/"):
            name, _, rest = path[len("/data/") :].partition("/")
            return unquote(name), "/" + rest
        return None, path

    def _serve(self, method: str) -> None:
        app = self.app
        length = int(self.headers.get("Content-Length") or 0)
        index, path = self._route()
        fault = app._take_fault(method, path)
        if fault is not None and fault.kind == "drop":
            self.rfile.read(length // 2)
            self._record(method, path, index, length, None, 0, fault)
            self._drop()
            return
        body = self.rfile.read(length) if length else b""
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
        try:
            payload: Any = _loads(body) if body else {}
        except ValueError:
            payload = None
        if fault is not None and fault.kind in ("rate_limit", "unavailable", "echo_headers"):
            self._reply_fault(method, path, index, length, payload, fault)
            return
        status, reply = self._dispatch(method, index, path, length, payload)
        self._record(method, path, index, length, payload, status, fault)
        if fault is not None and fault.kind == "apply_then_drop":
            self._drop()
            return
        self._send(status, reply)

    def _dispatch(
        self, method: str, index: str | None, path: str, length: int, payload: Any
    ) -> tuple[int, dict[str, Any] | None]:
        limits = self.app.limits
        try:
            if index is not None and path == "/vectors/upsert" and length > limits.max_upsert_bytes:
                raise _ApiError(
                    413,
                    "REQUEST_TOO_LARGE",
                    f"Request size {length} bytes exceeds the maximum supported size of "
                    f"{limits.max_upsert_bytes} bytes",
                )
            if not isinstance(payload, dict):
                raise _ApiError(400, "INVALID_ARGUMENT", "the request body is not a JSON object")
            return self.app.handle(method, self.path, self.headers, payload)
        except _ApiError as exc:
            return exc.status, {"error": {"code": exc.code, "message": exc.message}, "status": exc.status}
        except (ValueError, TypeError, AttributeError) as exc:
            return 400, {"error": {"code": "INVALID_ARGUMENT", "message": f"malformed request: {exc}"}, "status": 400}

    def _reply_fault(self, method: str, path: str, index: str | None, length: int, payload: Any, fault: _Fault) -> None:
        headers: dict[str, str] = {}
        if fault.kind == "rate_limit":
            status, code, message = 429, "RESOURCE_EXHAUSTED", "Too many requests. Please retry shortly."
            headers["Retry-After"] = f"{fault.retry_after:g}"
        elif fault.kind == "unavailable":
            status, code, message = 503, "UNAVAILABLE", "Service temporarily unavailable"
        else:
            status, code = fault.status, "INVALID_ARGUMENT"
            message = f"proxy rejected the request; request headers were {dict(self.headers.items())!r}"
        self._record(method, path, index, length, payload, status, fault)
        self._send(status, {"error": {"code": code, "message": message}, "status": status}, headers)

    def _record(
        self, method: str, path: str, index: str | None, length: int, payload: Any, status: int, fault: _Fault | None
    ) -> None:
        ids: tuple[str, ...] = ()
        if path == "/vectors/upsert" and isinstance(payload, dict) and isinstance(payload.get("vectors"), list):
            ids = tuple(str(v.get("id")) for v in payload["vectors"] if isinstance(v, dict))
        self.app._record(
            RecordedRequest(method, path, index, length, len(ids), ids, status, fault.kind if fault else None)
        )

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, status: int, payload: dict[str, Any] | None, headers: dict[str, str] | None = None) -> None:
        data = _dumps(payload) if payload is not None else b""
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. after a "slow" fault); nothing to tell it.
            self.close_connection = True


def main(argv: list[str] | None = None) -> None:
    """Run the server in the foreground: ``python -m two_stage_rec.testing.pinecone_server``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--api-key", default="test-api-key", help="the API key the server accepts")
    args = parser.parse_args(argv)
    server = PineconeTestServer(api_key=args.api_key, port=args.port).start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
