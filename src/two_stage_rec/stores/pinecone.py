"""A :class:`~two_stage_rec.VectorStore` backed by a Pinecone index (the notebook's production path).

Needs the ``pinecone`` extra (``pip install "two-stage-rec[pinecone]"``,
the ``pinecone`` package 10.x; the old ``pinecone-client`` package does not work).

What this store adds on top of the client:

* Validation of the whole batch before anything is sent (ids: non-empty ASCII
  without NUL, at most 512 characters; values: finite, right dimension;
  metadata: Pinecone's types, no nulls, at most 40 KB of JSON per vector).
* Upserts split by *both* of Pinecone's request limits, 1,000 vectors and
  2 MB. The size of each request is computed exactly, from the same JSON
  encoder (orjson) the client sends with. Vectors are sent as the shortest
  decimals that round-trip float32, which is what Pinecone stores, so a
  1536-d vector costs ~17 KB instead of ~30 KB.
* Retries of 429 (``Retry-After`` honoured), 5xx, timeouts and dropped
  connections under one :class:`~two_stage_rec.stores.retry.RetryPolicy`
  (jittered exponential backoff, bounded total time). Upserts are idempotent
  (same id, same record), so a retry never duplicates; a batch that still fails
  raises :class:`~two_stage_rec.PartialWriteError` naming the ids written and
  the ids not written (or unconfirmed).
* Scores that are higher-is-better: Pinecone's ``euclidean`` score is the
  squared distance, so it is negated.
* The API key (argument or ``PINECONE_API_KEY``) never appears in ``repr``,
  logs or error text; errors from the client are scrubbed before they are
  chained.

**Eventual consistency.** Pinecone applies writes asynchronously: a vector can
be missing from ``query``/``fetch``/``describe`` for a moment after ``upsert``
returns, and a deleted one can still show up. Call :meth:`wait_until_count`
or :meth:`wait_for_ids` when the next step must see the writes (tests, or an
indexing job before it reports success).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar
from urllib.parse import quote

import numpy as np
import numpy.typing as npt

from two_stage_rec._optional import require
from two_stage_rec.errors import (
    AuthenticationError,
    IndexConfigurationError,
    InvalidFilterError,
    InvalidIdError,
    InvalidInputError,
    InvalidMetadataError,
    LimitExceededError,
    PartialWriteError,
    StoreError,
    StoreUnavailableError,
    TwoStageRecError,
)
from two_stage_rec.filters import compile_filter
from two_stage_rec.stores.memory import check_store_config
from two_stage_rec.stores.retry import RetryPolicy, Transient, call_with_retry
from two_stage_rec.types import FetchResult, Filter, FloatMatrix, FloatVector, Metadata, Metric, QueryResult, StoreStats
from two_stage_rec.validation import as_query_matrix, check_ids, check_top_k, check_upsert

__all__ = [
    "MAX_IDS_PER_REQUEST",
    "MAX_ID_LENGTH",
    "MAX_METADATA_BYTES",
    "MAX_TOP_K",
    "MAX_TOP_K_WITH_DATA",
    "MAX_UPSERT_BYTES",
    "MAX_VECTORS_PER_UPSERT",
    "PineconeVectorStore",
    "RetryPolicy",
]

logger = logging.getLogger(__name__)

# Pinecone's documented limits (https://docs.pinecone.io/reference/api/database-limits).
# "2 MB" and "40 KB" are read the strict way round.
MAX_VECTORS_PER_UPSERT = 1_000
MAX_UPSERT_BYTES = 2_000_000
MAX_METADATA_BYTES = 40_960
MAX_ID_LENGTH = 512
MAX_TOP_K = 10_000
MAX_TOP_K_WITH_DATA = 1_000
"""Largest top_k when values or metadata are returned."""
MAX_IDS_PER_REQUEST = 1_000
"""Ids per fetch or delete request."""
_MAX_FETCH_QUERY_BYTES = 16_000
# fetch sends ids in the URL; 1,000 long ids would make a URL that proxies and
# servers refuse (http.server stops at 64 KB, many proxies at 8-16 KB).

_DEFAULT_NAMESPACE = "__default__"

T = TypeVar("T")


class _Secret:
    """Holds the API key; its repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "_Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class _Batch:
    ids: list[str]
    records: list[dict[str, Any]]
    body_bytes: int


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


def _scrub(value: Any, secret: str) -> Any:
    if isinstance(value, str):
        return _redact(value, secret)
    if isinstance(value, dict):
        return {_scrub(k, secret): _scrub(v, secret) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v, secret) for v in value)
    return value


def _scrub_exception_chain(exc: BaseException, secret: str) -> None:
    """Remove the key from every exception in the chain, in place.

    Errors are chained (``raise ... from exc``) so the cause stays visible; a
    server or proxy may echo request headers into an error body, so the cause
    itself must not carry the key.
    """
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        link.args = tuple(_scrub(a, secret) for a in link.args)
        for attribute in ("message", "body", "headers", "reason"):
            if isinstance(getattr(link, attribute, None), str | dict | list | tuple):
                with contextlib.suppress(AttributeError):
                    setattr(link, attribute, _scrub(getattr(link, attribute), secret))
        link = link.__cause__ or link.__context__


def _pinecone_id_problem(item_id: str) -> str | None:
    if not item_id.isascii():
        return "must contain only ASCII characters"
    if "\x00" in item_id:
        return "must not contain NUL characters"
    if len(item_id) > MAX_ID_LENGTH:
        return f"is longer than {MAX_ID_LENGTH} characters"
    return None


def _plan_batches(
    ids: list[str], records: list[dict[str, Any]], sizes: list[int], overhead: int, max_vectors: int, max_bytes: int
) -> list[_Batch]:
    """Greedy packing by both limits; ``sizes`` are exact encoded record sizes."""
    batches: list[_Batch] = []
    start, body = 0, overhead
    for position, size in enumerate(sizes):
        count = position - start
        added = size + (1 if count else 0)  # a comma separates records
        if count and (count >= max_vectors or body + added > max_bytes):
            batches.append(_Batch(ids[start:position], records[start:position], body))
            start, body, added = position, overhead, size
        body += added
    if start < len(ids):
        batches.append(_Batch(ids[start:], records[start:], body))
    return batches


class PineconeVectorStore:
    """Vectors in one namespace of a Pinecone index.

    Connect by ``index_name`` (the host is looked up, and the index created
    when ``create_if_missing``) or by ``host`` directly. The index's dimension
    and metric must match ``dimension`` and ``metric``, else
    :class:`~two_stage_rec.IndexConfigurationError`.

    Pinecone ranks approximately, so ``is_exact`` is False; scores are
    higher-is-better (``euclidean`` = negative squared distance). Queries of
    several vectors send one request per vector (Pinecone's query takes one),
    ``query_workers`` at a time. Writes are eventually consistent; see the
    module docstring and :meth:`wait_until_count`.

    Thread safety: every method may be called from several threads.

    Args:
        dimension: vector length d.
        metric: ``"dotproduct"`` (default, as in the notebook), ``"cosine"`` or
            ``"euclidean"``.
        index_name: the index to use (1-45 lowercase letters, digits, hyphens).
        host: the index's data-plane host, instead of or as well as ``index_name``.
        namespace: the namespace this store reads and writes (``""`` = default).
        api_key: the API key; default ``PINECONE_API_KEY``.
        controller_host: control-plane URL (default: Pinecone's, or
            ``PINECONE_CONTROLLER_HOST``); point it at
            :class:`~two_stage_rec.testing.pinecone_server.PineconeTestServer` in tests.
        create_if_missing: create a serverless index when ``index_name`` does
            not exist.
        cloud: serverless cloud for a created index.
        region: serverless region for a created index.
        retry: retry policy for every request.
        query_workers: concurrent requests for multi-vector queries.
        upsert_workers: concurrent upsert requests (1 = one batch at a time).
            Several in flight hide the cloud's per-request latency; against the
            local test server 4 workers cost nothing (see
            ``benchmarks/pinecone_throughput.py``). Pinecone's client uses 8.
        max_upsert_bytes: request-size limit used for batching (Pinecone's 2 MB).
        track_writes: remember what each write should make visible, so that
            :meth:`wait_for_writes` can wait for it (keeps the written vectors
            in memory until then).

    Raises:
        AuthenticationError: no API key, or Pinecone refused it.
        IndexConfigurationError: the index disagrees on dimension or metric.
        StoreError: the index does not exist (and ``create_if_missing`` is False).
        MissingDependencyError: the ``pinecone`` extra is not installed.
    """

    is_exact = False
    supports_persistence = False
    returns_values = True

    def __init__(
        self,
        *,
        dimension: int,
        metric: Metric = "dotproduct",
        index_name: str | None = None,
        host: str | None = None,
        namespace: str = "",
        api_key: str | None = None,
        controller_host: str | None = None,
        create_if_missing: bool = False,
        cloud: str = "aws",
        region: str = "us-east-1",
        retry: RetryPolicy | None = None,
        query_workers: int = 4,
        upsert_workers: int = 4,
        max_upsert_bytes: int = MAX_UPSERT_BYTES,
        track_writes: bool = False,
    ) -> None:
        check_store_config(dimension, metric)
        if not index_name and not host:
            raise InvalidInputError("pass index_name= or host= to say which Pinecone index to use")
        if query_workers < 1 or upsert_workers < 1:
            raise InvalidInputError("query_workers and upsert_workers must be >= 1")
        if not 0 < max_upsert_bytes <= MAX_UPSERT_BYTES:
            raise InvalidInputError(f"max_upsert_bytes must be in (0, {MAX_UPSERT_BYTES}]")
        key = api_key or os.environ.get("PINECONE_API_KEY", "")
        if not key:
            raise AuthenticationError("no Pinecone API key: pass api_key= or set PINECONE_API_KEY")
        self._secret = _Secret(key)
        self._dimension = int(dimension)
        self._metric: Metric = metric
        self._namespace = namespace
        self._index_name = index_name
        self._retry = retry or RetryPolicy()
        self._query_workers = query_workers
        self._upsert_workers = upsert_workers
        self._max_upsert_bytes = max_upsert_bytes
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._track_writes = track_writes
        self._pending: dict[str, tuple[FloatVector | None, Metadata]] = {}
        self._pending_lock = threading.Lock()
        self._pc: ModuleType = require("pinecone", extra="pinecone")
        self._orjson: ModuleType = require("orjson", extra="pinecone")
        self._control: Any = None
        self._index: Any = None
        try:
            self._connect(host, controller_host, create_if_missing, cloud, region)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ connecting

    def _connect(self, host: str | None, controller_host: str | None, create: bool, cloud: str, region: str) -> None:
        pc = self._pc
        # The client's own retries (4 attempts, Retry-After waits up to 60 s)
        # would nest inside ours and break the total-time bound; ours decide.
        no_retries = pc.RetryConfig(max_retries=0)
        self._control = self._translate_call(
            "connecting to Pinecone",
            lambda: pc.Pinecone(
                api_key=self._secret.reveal(),
                host=controller_host,
                timeout=self._retry.request_timeout,
                retry_config=no_retries,
                ssl_verify=not _is_plaintext(controller_host),
            ),
        )
        if self._index_name:
            model = self._describe_or_create(self._index_name, create, cloud, region)
            self._check_config(model.dimension, model.metric, f"index {self._index_name!r}")
            host = host or model.host
        assert host is not None
        # Built directly rather than by pc.index() so that a plaintext (local)
        # host skips loading the CA bundle, which costs ~0.1 s per client.
        self._index = self._translate_call(
            "connecting to the index",
            lambda: pc.Index(
                host=host,
                api_key=self._secret.reveal(),
                timeout=self._retry.request_timeout,
                ssl_verify=not _is_plaintext(host),
            ),
        )
        self._disable_client_retries(self._index, no_retries)
        self._host: str = self._index.host
        if not self._index_name:
            stats = self._call("describe_index_stats", lambda t: self._index.describe_index_stats(timeout=t))
            self._check_config(stats.dimension, stats.metric, f"index at {self._host}")

    @staticmethod
    def _disable_client_retries(index: Any, config: Any) -> None:
        # pinecone 10.x gives data-plane clients a fixed RetryConfig that
        # callers cannot set; reach the one attribute that holds it. If a
        # future client moves it, its retries simply stack under ours.
        transport = getattr(getattr(getattr(index, "_http", None), "_client", None), "_transport", None)
        if transport is not None and hasattr(transport, "_config"):
            transport._config = config
        else:  # pragma: no cover - depends on the client's internals
            logger.debug("could not turn off the pinecone client's own data-plane retries")

    def _describe_or_create(self, name: str, create: bool, cloud: str, region: str) -> Any:
        pc = self._pc
        indexes = self._control.indexes
        try:
            return self._call("describe index", lambda t: indexes.describe(name))
        except StoreError as exc:
            if not _is_not_found(pc, exc.__cause__):
                raise
            if not create:
                raise StoreError(
                    f"Pinecone index {name!r} does not exist; pass create_if_missing=True to create it"
                ) from exc
        schema = {"fields": {"_values": {"type": "dense_vector", "dimension": self._dimension, "metric": self._metric}}}
        deployment = {"deployment_type": "managed", "cloud": cloud, "region": region}
        wait = max(1, int(self._retry.total_timeout))
        try:
            return self._call(
                "create index",
                lambda t: indexes.create(name=name, schema=schema, deployment=deployment, timeout=wait),
            )
        except StoreError as exc:
            # Someone else created it meanwhile (409): use theirs, after the config check.
            if isinstance(exc.__cause__, pc.ConflictError):
                return self._call("describe index", lambda t: indexes.describe(name))
            raise

    def _check_config(self, dimension: object, metric: object, what: str) -> None:
        if dimension is not None and dimension != self._dimension:
            raise IndexConfigurationError(
                f"{what} has dimension {dimension}, but this store was configured with {self._dimension}"
            )
        if metric is not None and metric != self._metric:
            raise IndexConfigurationError(
                f"{what} uses metric {metric!r}, but this store was configured with {self._metric!r}"
            )

    # --------------------------------------------------------------- errors

    def _translate(self, exc: BaseException, what: str) -> TwoStageRecError:
        """Map a client exception to this library's tree, with the key scrubbed."""
        pc = self._pc
        secret = self._secret.reveal()
        _scrub_exception_chain(exc, secret)
        text = _redact(str(exc), secret)
        if isinstance(exc, pc.UnauthorizedError | pc.ForbiddenError):
            return AuthenticationError(f"{what}: Pinecone refused the API key ({text})")
        if isinstance(exc, pc.PineconeValueError | pc.PineconeTypeError):
            return InvalidInputError(f"{what}: {text}")
        if isinstance(exc, pc.ApiError) and exc.status_code in (400, 413, 422):
            return InvalidInputError(f"{what}: Pinecone rejected the request: {text}")
        return StoreError(f"{what}: {text}")

    def _translate_call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except self._pc.PineconeError as exc:
            raise self._translate(exc, what) from exc

    def _call(self, what: str, fn: Callable[[float], T]) -> T:
        """One request under the retry policy; client errors translated, key scrubbed."""
        pc = self._pc
        secret = self._secret.reveal()

        def attempt(timeout: float) -> T:
            try:
                return fn(timeout)
            except pc.RateLimitError as exc:
                _scrub_exception_chain(exc, secret)
                raise Transient(_redact(str(exc), secret), retry_after=exc.retry_after) from exc
            except (pc.ServiceError, pc.PineconeTimeoutError, pc.PineconeConnectionError) as exc:
                _scrub_exception_chain(exc, secret)
                raise Transient(_redact(str(exc), secret)) from exc
            except pc.ApiError as exc:
                if exc.status_code == 408:
                    _scrub_exception_chain(exc, secret)
                    raise Transient(_redact(str(exc), secret)) from exc
                raise self._translate(exc, what) from exc
            except pc.PineconeError as exc:
                raise self._translate(exc, what) from exc

        return call_with_retry(attempt, self._retry, what=what)

    # ----------------------------------------------------------- properties

    def __repr__(self) -> str:
        where = f"index_name={self._index_name!r}" if self._index_name else f"host={self._host!r}"
        return (
            f"PineconeVectorStore({where}, namespace={self._namespace!r}, "
            f"dimension={self._dimension}, metric={self._metric!r})"
        )

    @property
    def dimension(self) -> int:
        """Vector dimension d."""
        return self._dimension

    @property
    def metric(self) -> Metric:
        """The similarity ranked by (scores are higher-is-better)."""
        return self._metric

    @property
    def namespace(self) -> str:
        """The namespace this store reads and writes (``""`` is the default one)."""
        return self._namespace

    @property
    def index_name(self) -> str | None:
        """The index name, when connected by name."""
        return self._index_name

    @property
    def host(self) -> str:
        """The index's data-plane host."""
        return self._host

    # -------------------------------------------------------------- writing

    def _encode_rows(self, matrix: FloatMatrix) -> list[list[float]]:
        """Rows as Python floats whose shortest repr is the float32 one (exact round trip)."""
        orjson = self._orjson
        rows: list[list[float]] = orjson.loads(orjson.dumps(matrix, option=orjson.OPT_SERIALIZE_NUMPY))
        return rows

    def _records(
        self, ids: list[str], matrix: FloatMatrix, metadata: Sequence[Mapping[str, object]] | None
    ) -> tuple[list[dict[str, Any]], list[int]]:
        """The records the client will send, and each one's exact size as JSON."""
        dumps = self._orjson.dumps
        rows = self._encode_rows(matrix)
        # One encode of all rows, cut at the row boundaries, sizes every
        # "values" array at once (floats hold no brackets, so "],[" only
        # separates rows); much cheaper than encoding each record.
        row_sizes = [len(part) + 2 for part in dumps(rows)[2:-2].split(b"],[")]
        fixed = len(b'{"id":,"values":}')
        records: list[dict[str, Any]] = []
        sizes: list[int] = []
        for position, (item_id, row) in enumerate(zip(ids, rows, strict=True)):
            record: dict[str, Any] = {"id": item_id, "values": row}
            size = fixed + len(dumps(item_id)) + row_sizes[position]
            if metadata is not None and metadata[position]:
                md = metadata[position]
                md_bytes = len(dumps(md))
                if md_bytes > MAX_METADATA_BYTES:
                    raise InvalidMetadataError(
                        f"metadata of {item_id!r} is {md_bytes} bytes of JSON; Pinecone's limit is "
                        f"{MAX_METADATA_BYTES} bytes per vector"
                    )
                record["metadata"] = md
                size += len(b',"metadata":') + md_bytes
            records.append(record)
            sizes.append(size)
        return records, sizes

    def upsert(
        self,
        ids: Sequence[str],
        vectors: npt.ArrayLike,
        metadata: Sequence[Metadata] | None = None,
    ) -> int:
        """Insert or overwrite vectors, in requests within Pinecone's limits.

        The whole batch is validated first; nothing is sent when any of it is
        invalid. Overwriting an id replaces its metadata too.

        Args:
            ids: n unique ids: non-empty ASCII, no NUL, at most 512 characters.
            vectors: array-like (n, dimension), converted to float32.
            metadata: n mappings (str, number, bool or list of str values; no
                nulls; at most 40 KB of JSON each), or None.

        Returns:
            n, the number of vectors written.

        Raises:
            InvalidInputError: a subclass naming the problem; nothing was sent.
            PartialWriteError: a request still failed after retries;
                ``written_ids`` landed, ``failed_ids`` did not or are unconfirmed.
            AuthenticationError: the key was refused before anything landed.
        """
        id_list, matrix, metadata_copies = check_upsert(
            ids, vectors, metadata, self._dimension, max_id_length=MAX_ID_LENGTH
        )
        for item_id in id_list:
            problem = _pinecone_id_problem(item_id)
            if problem:
                raise InvalidIdError(f"Pinecone ids {problem}; got {item_id[:40]!r}")
        records, sizes = self._records(id_list, matrix, metadata_copies)
        envelope: dict[str, Any] = {"vectors": []}
        if self._namespace:
            envelope["namespace"] = self._namespace
        overhead = len(self._orjson.dumps(envelope))
        if overhead + max(sizes) > self._max_upsert_bytes:
            raise LimitExceededError(
                f"one vector with its metadata takes {max(sizes)} bytes of JSON, more than the "
                f"{self._max_upsert_bytes}-byte request limit"
            )
        batches = _plan_batches(id_list, records, sizes, overhead, MAX_VECTORS_PER_UPSERT, self._max_upsert_bytes)
        logger.debug("upserting %d vectors in %d requests", len(id_list), len(batches))
        try:
            self._send_batches(batches)
        except PartialWriteError as exc:
            self._remember(exc.written_ids, matrix, id_list, metadata_copies)
            raise
        self._remember(id_list, matrix, id_list, metadata_copies)
        return len(id_list)

    def _remember(
        self,
        written: Sequence[str],
        matrix: FloatMatrix,
        ids: list[str],
        metadata: Sequence[Mapping[str, object]] | None,
    ) -> None:
        if not self._track_writes or not written:
            return
        row_of = {item_id: row for row, item_id in enumerate(ids)}
        with self._pending_lock:
            for item_id in written:
                row = row_of[item_id]
                stored: Metadata = dict(metadata[row]) if metadata is not None else {}  # type: ignore[arg-type]
                self._pending[item_id] = (matrix[row], stored)

    def _send_one(self, batch: _Batch) -> None:
        namespace = self._namespace
        index = self._index
        self._call(
            f"upsert of {len(batch.ids)} vectors",
            lambda t: index.upsert(vectors=batch.records, namespace=namespace, timeout=t),
        )

    def _send_batches(self, batches: list[_Batch]) -> None:
        written: list[str] = []
        if self._upsert_workers == 1 or len(batches) == 1:
            for position, batch in enumerate(batches):
                try:
                    self._send_one(batch)
                except TwoStageRecError as exc:
                    failed = [i for b in batches[position:] for i in b.ids]
                    raise self._write_failure(exc, written, failed) from exc
                written.extend(batch.ids)
            return
        pool = ThreadPoolExecutor(max_workers=self._upsert_workers, thread_name_prefix="pinecone-upsert")
        with pool:
            futures: list[Future[None]] = [pool.submit(self._send_one, batch) for batch in batches]
            first_error: TwoStageRecError | None = None
            failed_ids: list[str] = []
            for batch, future in zip(batches, futures, strict=True):
                if first_error is not None:
                    future.cancel()
                try:
                    future.result()
                    written.extend(batch.ids)
                except TwoStageRecError as exc:
                    first_error = first_error or exc
                    failed_ids.extend(batch.ids)
                except CancelledError:  # never sent, because an earlier batch failed
                    failed_ids.extend(batch.ids)
        if first_error is not None:
            raise self._write_failure(first_error, written, failed_ids) from first_error

    @staticmethod
    def _write_failure(exc: TwoStageRecError, written: list[str], failed: list[str]) -> TwoStageRecError:
        # A refused key or a rejected request is definitive: when nothing landed,
        # the error itself says more than a PartialWriteError would.
        if not written and isinstance(exc, AuthenticationError | InvalidInputError):
            return exc
        return PartialWriteError(f"upsert stopped: {exc}", written_ids=written, failed_ids=failed)

    # -------------------------------------------------------------- reading

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._query_workers, thread_name_prefix="pinecone-query")
            return self._pool

    def query(
        self,
        vectors: npt.ArrayLike,
        top_k: int,
        *,
        filter: Filter | None = None,
        include_values: bool = False,
        include_metadata: bool = False,
    ) -> QueryResult:
        """Find the ``top_k`` best matches of each query vector.

        One request per query vector, ``query_workers`` at a time.

        Args:
            vectors: array-like (n, dimension) of query vectors.
            top_k: matches per query, 1..10,000 (Pinecone's limit). Fewer are
                returned when fewer vectors exist or pass the filter. Pinecone
                returns values or metadata for at most 1,000 matches; above
                that the store asks for the ranks only and fetches the
                payload of the returned ids (one more round trip).
            filter: a filter in the Pinecone filter language (validated locally).
            include_values: also return the stored vectors.
            include_metadata: also return the stored metadata (numbers come
                back as floats, as Pinecone stores them).

        Returns:
            A :class:`QueryResult`; scores float32, descending, higher is
            better (``euclidean``: negative squared distance).

        Raises:
            LimitExceededError: ``top_k`` is above Pinecone's limit.
            InvalidFilterError: the filter is malformed.
        """
        queries = as_query_matrix(vectors, self._dimension)
        k = check_top_k(top_k, maximum=MAX_TOP_K)
        if k > MAX_TOP_K_WITH_DATA and (include_values or include_metadata):
            ranks = self.query(queries, k, filter=filter)
            return self._with_payload(ranks, include_values, include_metadata)
        filter_dict = self._check_filter(filter)
        rows = self._encode_rows(queries)
        namespace, index = self._namespace, self._index

        def one(row: list[float]) -> Any:
            return self._call(
                f"query top_k={k}",
                lambda t: index.query(
                    top_k=k,
                    vector=row,
                    namespace=namespace,
                    filter=filter_dict,
                    include_values=include_values,
                    include_metadata=include_metadata,
                    timeout=t,
                ),
            )

        if len(rows) > 1 and self._query_workers > 1:
            responses = list(self._executor().map(one, rows))
        else:
            responses = [one(row) for row in rows]
        return self._query_result(responses, include_values, include_metadata)

    @staticmethod
    def _check_filter(filter: Filter | None) -> dict[str, Any] | None:
        if filter is None:
            return None
        if not isinstance(filter, Mapping):
            raise InvalidFilterError(f"filter must be a mapping, got {type(filter).__name__}")
        compile_filter(filter)
        as_dict: dict[str, Any] = _plain(filter)
        return as_dict or None

    def _query_result(self, responses: list[Any], include_values: bool, include_metadata: bool) -> QueryResult:
        sign = -1.0 if self._metric == "euclidean" else 1.0  # Pinecone's euclidean is a squared distance.
        ids: list[list[str]] = []
        scores: list[FloatVector] = []
        values: list[list[list[float]]] = []
        metadata: list[tuple[Metadata, ...]] = []
        for response in responses:
            matches = response.matches
            row_scores = np.array([sign * m.score for m in matches], dtype=np.float32)
            # Pinecone returns best first; a stable sort makes sure of it without reordering ties.
            order = np.argsort(-row_scores, kind="stable")
            ordered = [matches[i] for i in order.tolist()]
            ids.append([m.id for m in ordered])
            scores.append(row_scores[order])
            if include_values:
                values.append([m.values for m in ordered])
            if include_metadata:
                metadata.append(tuple(dict(m.metadata or {}) for m in ordered))
        return QueryResult.from_rows(
            ids,
            scores,
            values=values if include_values else None,
            metadata=metadata if include_metadata else None,
            dimension=self._dimension,
        )

    def _with_payload(self, ranks: QueryResult, include_values: bool, include_metadata: bool) -> QueryResult:
        """Ranks plus the values and metadata of their ids, fetched (Pinecone's top_k cap with payload).

        An id deleted between the query and the fetch keeps NaN values and empty metadata.
        """
        rows = [ranks.row_ids(row) for row in range(len(ranks))]
        fetched = self.fetch(list(dict.fromkeys(item_id for row in rows for item_id in row)))
        vector_of = fetched.as_dict()
        metadata_of = dict(zip(fetched.ids, fetched.metadata, strict=True))
        missing = np.full(self._dimension, np.nan, dtype=np.float32)
        empty: Metadata = {}
        return QueryResult.from_rows(
            rows,
            [ranks.row_scores(row) for row in range(len(ranks))],
            values=[[vector_of.get(i, missing) for i in row] for row in rows] if include_values else None,
            metadata=[[metadata_of.get(i, empty) for i in row] for row in rows] if include_metadata else None,
            dimension=self._dimension,
        )

    def _fetch_chunks(self, ids: list[str]) -> Iterator[list[str]]:
        chunk: list[str] = []
        url_bytes = 0
        for item_id in ids:
            cost = len("ids=") + len(quote(item_id, safe="")) + 1
            if chunk and (len(chunk) >= MAX_IDS_PER_REQUEST or url_bytes + cost > _MAX_FETCH_QUERY_BYTES):
                yield chunk
                chunk, url_bytes = [], 0
            chunk.append(item_id)
            url_bytes += cost
        if chunk:
            yield chunk

    def _fetch_map(self, ids: list[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        namespace, index = self._namespace, self._index
        for chunk in self._fetch_chunks(ids):

            def send(timeout: float, chunk: list[str] = chunk) -> Any:
                return index.fetch(ids=chunk, namespace=namespace, timeout=timeout)

            response = self._call(f"fetch of {len(chunk)} ids", send)
            found.update(response.vectors)
        return found

    def fetch(self, ids: Sequence[str]) -> FetchResult:
        """Stored vectors and metadata; ids Pinecone does not hold go to ``missing``.

        Sent in requests of at most 1,000 ids (and ~16 KB of URL).
        """
        id_list = check_ids(ids, allow_empty_batch=True, require_unique=False)
        askable = list(dict.fromkeys(i for i in id_list if _pinecone_id_problem(i) is None))
        found = self._fetch_map(askable) if askable else {}
        present = [i for i in id_list if i in found]
        vectors = np.asarray([found[i].values for i in present], dtype=np.float32).reshape(
            len(present), self._dimension
        )
        return FetchResult(
            ids=present,
            vectors=vectors,
            metadata=[dict(found[i].metadata or {}) for i in present],
            missing=[i for i in id_list if i not in found],
        )

    def delete(self, ids: Sequence[str]) -> None:
        """Remove ids (in requests of at most 1,000); unknown ids are ignored."""
        id_list = check_ids(ids, allow_empty_batch=True, require_unique=False)
        unique = list(dict.fromkeys(i for i in id_list if _pinecone_id_problem(i) is None))
        namespace, index = self._namespace, self._index
        for start in range(0, len(unique), MAX_IDS_PER_REQUEST):
            chunk = unique[start : start + MAX_IDS_PER_REQUEST]

            def send(timeout: float, chunk: list[str] = chunk) -> None:
                index.delete(ids=chunk, namespace=namespace, timeout=timeout)

            self._call(f"delete of {len(chunk)} ids", send)
            if self._track_writes:
                with self._pending_lock:
                    self._pending.update((i, (None, {})) for i in chunk)

    def _stats(self) -> Any:
        return self._call("describe_index_stats", lambda t: self._index.describe_index_stats(timeout=t))

    def _namespace_count(self, stats: Any) -> int:
        namespaces = stats.namespaces
        for name in (self._namespace or _DEFAULT_NAMESPACE, self._namespace):
            if name in namespaces:
                return int(namespaces[name].vector_count)
        return 0

    def describe(self) -> StoreStats:
        """Dimension, metric, this namespace's count and index-wide details.

        The count is Pinecone's, so it may lag recent writes (eventual consistency).
        """
        stats = self._stats()
        return StoreStats(
            dimension=self._dimension,
            metric=self._metric,
            count=self._namespace_count(stats),
            backend="pinecone",
            details={
                "index_name": self._index_name,
                "host": self._host,
                "namespace": self._namespace,
                "total_vector_count": int(stats.total_vector_count),
                "namespaces": {name: int(s.vector_count) for name, s in stats.namespaces.items()},
            },
        )

    # ------------------------------------------------------ administration

    def delete_namespace(self) -> None:
        """Delete this store's namespace and every vector in it (no error if it is absent)."""
        name = self._namespace or _DEFAULT_NAMESPACE
        try:
            self._call(f"delete namespace {name!r}", lambda t: self._index.delete_namespace(name=name, timeout=t))
        except StoreError as exc:
            if not _is_not_found(self._pc, exc.__cause__):
                raise

    def delete_index(self) -> None:
        """Delete the whole index (needs ``index_name``); the store is unusable afterwards."""
        if not self._index_name:
            raise InvalidInputError("delete_index needs a store connected by index_name")
        name = self._index_name
        wait = max(1, int(self._retry.total_timeout))
        self._call(f"delete index {name!r}", lambda t: self._control.indexes.delete(name, timeout=wait))

    # ------------------------------------------------- eventual consistency

    def wait_until_count(self, count: int, *, timeout: float = 30.0, poll_interval: float = 0.05) -> int:
        """Poll the index statistics until this namespace holds exactly ``count`` vectors.

        Returns:
            The count reached.

        Raises:
            StoreUnavailableError: the count did not reach ``count`` within ``timeout`` seconds.
        """
        return _poll(
            lambda: self._namespace_count(self._stats()),
            lambda seen: seen == count,
            timeout,
            poll_interval,
            lambda seen: f"namespace {self._namespace!r} still holds {seen} vectors, expected {count}",
        )

    def wait_for_ids(
        self, ids: Sequence[str], *, deleted: bool = False, timeout: float = 30.0, poll_interval: float = 0.05
    ) -> None:
        """Poll ``fetch`` until every id is visible (or, with ``deleted=True``, gone).

        Raises:
            StoreUnavailableError: some ids did not become visible (gone) in time;
                the message names them.
        """
        wanted = list(dict.fromkeys(check_ids(ids, allow_empty_batch=True, require_unique=False)))

        def pending() -> list[str]:
            found = self._fetch_map(wanted) if wanted else {}
            return [i for i in wanted if (i in found) == deleted]

        _poll(
            pending,
            lambda left: not left,
            timeout,
            poll_interval,
            lambda left: f"{len(left)} ids still {'visible' if deleted else 'missing'}: {left[:10]}",
        )

    def wait_for_writes(self, *, timeout: float = 30.0, poll_interval: float = 0.02) -> None:
        """Wait until every write made through this store (``track_writes=True``) is visible.

        Polls ``fetch`` until each upserted id returns the vector and metadata
        last written and each deleted id is gone: read-your-writes for the
        next query, fetch or describe.

        Raises:
            InvalidInputError: the store was built without ``track_writes=True``.
            StoreUnavailableError: some writes were not visible within
                ``timeout`` seconds; the message names them.
        """
        if not self._track_writes:
            raise InvalidInputError("wait_for_writes needs a store built with track_writes=True")
        with self._pending_lock:
            expected = dict(self._pending)

        def lagging() -> list[str]:
            found = self._fetch_map(list(expected)) if expected else {}
            behind = []
            for item_id, (vector, metadata) in expected.items():
                record = found.get(item_id)
                if vector is None:
                    visible = record is None
                else:
                    visible = (
                        record is not None
                        and np.array_equal(np.asarray(record.values, dtype=np.float32), vector)
                        and dict(record.metadata or {}) == dict(metadata)
                    )
                if not visible:
                    behind.append(item_id)
            return behind

        _poll(
            lagging,
            lambda behind: not behind,
            timeout,
            poll_interval,
            lambda behind: f"{len(behind)} writes not visible yet: {behind[:10]}",
        )
        with self._pending_lock:
            for item_id, entry in expected.items():
                if self._pending.get(item_id) is entry:
                    del self._pending[item_id]

    # ---------------------------------------------------------------- close

    def close(self) -> None:
        """Release connections and threads. The store cannot be used afterwards."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for client in (self._index, self._control):
            if client is not None:
                client.close()
        self._index = None
        self._control = None

    def __enter__(self) -> PineconeVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_plaintext(url: str | None) -> bool:
    """An ``http://`` URL uses no TLS, so certificate settings do not matter for it."""
    return bool(url) and str(url).lower().startswith("http://")


def _is_not_found(pc: ModuleType, exc: BaseException | None) -> bool:
    return isinstance(exc, pc.NotFoundError)


def _plain(value: Any) -> Any:
    """Mappings and sequences as dicts and lists, so the client can encode them."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _poll(
    probe: Callable[[], T],
    done: Callable[[T], bool],
    timeout: float,
    poll_interval: float,
    describe: Callable[[T], str],
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        seen = probe()
        if done(seen):
            return seen
        if time.monotonic() >= deadline:
            raise StoreUnavailableError(f"waited {timeout:g} s for Pinecone to catch up: {describe(seen)}")
        time.sleep(poll_interval)
