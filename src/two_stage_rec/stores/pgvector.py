"""A vector store in PostgreSQL with the pgvector extension: one table, any number of readers and writers.

Needs the ``pgvector`` extra (``pip install "two-stage-rec[pgvector]"``:
psycopg 3, psycopg-pool and the ``pgvector`` package) and a PostgreSQL server
with the ``vector`` extension available (pgvector >= 0.8 for filtered
approximate queries; see ``docs/guides/pgvector.md``).

How it is built (and why):

* **One table** ``(id text primary key, embedding vector(d), metadata jsonb)``
  with a GIN index on ``metadata``. The store's metric and format live in the
  table's comment, and the dimension in the column type, so a second process
  (or tomorrow's) that opens the same table with another dimension or metric
  is refused with :class:`~two_stage_rec.IndexConfigurationError` instead of
  ranking by the wrong distance. ``create=True`` (the default) creates the
  extension, table and indexes when they are missing, under an advisory lock
  so that two processes starting together do not race.
* **Index kinds.** ``"exact"`` (no vector index: a sequential scan, the true
  top-k), ``"hnsw"`` or ``"ivfflat"``, with typed parameters
  (:class:`PgHnswParams`, :class:`PgIvfflatParams`). Query-time settings
  (``hnsw.ef_search``, ``ivfflat.probes``, pgvector 0.8's iterative scans) are
  set per query with ``set_config(..., true)``, local to that query's
  transaction, so they survive connection poolers such as PgBouncer. An
  IVFFlat index learns its lists from the rows present when it is built, so
  it is built once the table holds ``PgIvfflatParams.min_rows`` rows (until
  then queries are exact); :meth:`PgvectorVectorStore.build_index` rebuilds it.
* **Filters** (the Pinecone filter language, :mod:`two_stage_rec.filters`)
  become a SQL condition with every value and field name bound as a
  parameter (:mod:`two_stage_rec.stores._pg_filters`); never string-built SQL.
  A filtered approximate query that still finds fewer than ``top_k`` rows is
  repeated exactly for that query vector, so a selective filter never
  returns short.
* **Writes** go in batches of ``batch_size`` rows, each one
  ``INSERT ... SELECT FROM unnest(...) ON CONFLICT (id) DO UPDATE``
  statement: a batch lands whole or not at all. An upsert is idempotent, so a
  batch whose connection dropped (server restart, failover, network) is
  retried on a fresh connection under one
  :class:`~two_stage_rec.stores.retry.RetryPolicy` (jittered exponential
  backoff, bounded total time): nothing is lost or duplicated. When retries
  run out, :class:`~two_stage_rec.PartialWriteError` names the ids of the
  batches that committed and of those that did not (or are unconfirmed).
* **Persistence is the database.** ``supports_persistence`` is False: there
  is no ``save(directory)``. The rows are durable once ``upsert`` returns;
  another store opened on the same DSN and table sees them.

Scores are higher-is-better: dot product (``-(embedding <#> q)``), cosine
similarity (``1 - (embedding <=> q)``; a zero vector scores 0, as in
:func:`~two_stage_rec.scoring.exact_scores`) and negative squared euclidean
distance (``-(embedding <-> q)^2``).

The DSN's password never appears in ``repr``, logs or error text.

Thread safety: every method may be called from several threads (each call
takes its own pooled connection), writes included (``concurrent_writes =
True``): PostgreSQL answers each query from one snapshot and commits each
write batch whole, so a service may update its catalogue while it serves.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt

from two_stage_rec._optional import require
from two_stage_rec.errors import (
    AuthenticationError,
    IndexConfigurationError,
    InvalidIdError,
    InvalidInputError,
    InvalidMetadataError,
    PartialWriteError,
    StoreError,
    StoreUnavailableError,
    TwoStageRecError,
)
from two_stage_rec.stores._pg_filters import filter_sql
from two_stage_rec.stores.memory import check_store_config
from two_stage_rec.stores.retry import RetryPolicy, Transient, call_with_retry
from two_stage_rec.types import FetchResult, Filter, Metadata, Metric, QueryResult, StoreStats
from two_stage_rec.validation import as_query_matrix, check_ids, check_top_k, check_upsert

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql
    from psycopg_pool import ConnectionPool

__all__ = [
    "DSN_ENVIRONMENT_VARIABLE",
    "PgHnswParams",
    "PgIndexKind",
    "PgIvfflatParams",
    "PgvectorVectorStore",
    "redact_dsn",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DSN_ENVIRONMENT_VARIABLE: Final = "TWO_STAGE_REC_PG_DSN"
"""Where the store reads its DSN when none is passed."""

PgIndexKind: TypeAlias = Literal["exact", "hnsw", "ivfflat"]
"""``"exact"``: no vector index, the true top-k by a sequential scan. ``"hnsw"``:
graph index, approximate, fast. ``"ivfflat"``: inverted lists, approximate, built
once the table holds enough rows."""

_INDEX_KINDS: Final[tuple[PgIndexKind, ...]] = ("exact", "hnsw", "ivfflat")
_FORMAT: Final = "two_stage_rec.PgvectorVectorStore"
_FORMAT_VERSION: Final = 1
_OPERATORS: Final[dict[Metric, str]] = {"dotproduct": "<#>", "cosine": "<=>", "euclidean": "<->"}
_OPCLASSES: Final[dict[Metric, str]] = {
    "dotproduct": "vector_ip_ops",
    "cosine": "vector_cosine_ops",
    "euclidean": "vector_l2_ops",
}
_METRIC_OF_OPCLASS: Final[dict[str, Metric]] = {opclass: metric for metric, opclass in _OPCLASSES.items()}
# pgvector's limits: the vector type holds up to 16,000 dimensions, its indexes 2,000.
MAX_DIMENSION: Final = 16_000
MAX_INDEXED_DIMENSION: Final = 2_000
_MAX_EF_SEARCH: Final = 1_000
FILTERED_EF_FACTOR: Final = 4
"""A filtered HNSW query searches a list of at least this many times top_k (see ``_query_settings``)."""
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")
_IDS_PER_STATEMENT: Final = 10_000


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class PgHnswParams:
    """Parameters of a pgvector HNSW index (``index="hnsw"``).

    Attributes:
        m: neighbours per node (pgvector's default 16); more is better recall,
            a larger index, slower builds. Fixed when the index is built.
        ef_construction: candidate list size while building (default 64);
            at least ``2 * m``. Fixed when the index is built.
        ef_search: candidate list size while searching (at least ``top_k`` is
            used, at most pgvector's 1,000); more is better recall, slower
            queries. Set per query.
    """

    m: int = 16
    ef_construction: int = 64
    ef_search: int = 100

    def __post_init__(self) -> None:
        m = _positive_int("PgHnswParams.m", self.m)
        if not 2 <= m <= 100:
            raise InvalidInputError(f"PgHnswParams.m must be in [2, 100] (pgvector's range), got {m}")
        ef_construction = _positive_int("PgHnswParams.ef_construction", self.ef_construction)
        if not 2 * m <= ef_construction <= 1_000:
            raise InvalidInputError(f"PgHnswParams.ef_construction must be in [2 * m, 1000], got {ef_construction}")
        if _positive_int("PgHnswParams.ef_search", self.ef_search) > _MAX_EF_SEARCH:
            raise InvalidInputError(f"PgHnswParams.ef_search must be at most {_MAX_EF_SEARCH}")


@dataclass(frozen=True, slots=True, kw_only=True)
class PgIvfflatParams:
    """Parameters of a pgvector IVFFlat index (``index="ivfflat"``).

    Attributes:
        lists: number of inverted lists (k-means cells); pgvector suggests
            rows / 1000 up to 1M rows, sqrt(rows) beyond. Fixed when built.
        probes: lists searched per query (at most ``lists``); more is better
            recall, slower. Set per query.
        min_rows: rows the table must hold before the index is built; until
            then queries are exact. ``None`` means ``39 * lists`` (below
            that, k-means learns poor centroids).
    """

    lists: int = 100
    probes: int = 10
    min_rows: int | None = None

    def __post_init__(self) -> None:
        lists = _positive_int("PgIvfflatParams.lists", self.lists)
        if lists > 32_768:
            raise InvalidInputError("PgIvfflatParams.lists must be at most 32768 (pgvector's limit)")
        if _positive_int("PgIvfflatParams.probes", self.probes) > lists:
            raise InvalidInputError(f"PgIvfflatParams.probes={self.probes} exceeds lists={lists}")
        if self.min_rows is not None and _positive_int("PgIvfflatParams.min_rows", self.min_rows) < lists:
            raise InvalidInputError(f"PgIvfflatParams.min_rows={self.min_rows} is below lists={lists}")

    @property
    def build_threshold(self) -> int:
        """Rows needed before the index is built."""
        return self.min_rows if self.min_rows is not None else 39 * self.lists


def _psycopg() -> Any:
    return require("psycopg", extra="pgvector", package="psycopg[binary]")


def redact_dsn(dsn: str) -> str:
    """The DSN with its password replaced by ``***`` (key=value form), for messages and reprs.

    A DSN that cannot be parsed is not shown at all.
    """
    psycopg = _psycopg()
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return "<unparseable DSN>"
    if params.get("password"):
        params["password"] = "***"
    text: str = psycopg.conninfo.make_conninfo(**params)
    return text


def _table_name(table: str, schema: str | None) -> tuple[str, ...]:
    for what, name in (("table", table), ("schema", schema)):
        if name is not None and (not isinstance(name, str) or not _IDENTIFIER.fullmatch(name)):
            raise InvalidInputError(
                f"{what} must be a letter or underscore then up to 47 letters, digits or underscores, got {name!r}"
            )
    return (schema, table) if schema else (table,)


def _lock_key(parts: tuple[str, ...]) -> int:
    """A stable signed 64-bit key for ``pg_advisory_xact_lock``, from the qualified table name."""
    digest = hashlib.blake2b(".".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _check_postgres_text(id_list: list[str], documents: list[str]) -> None:
    """PostgreSQL text holds neither NUL nor unpaired surrogates: refuse them before anything is written."""
    for item_id in id_list:
        if "\x00" in item_id:
            raise InvalidIdError(f"PostgreSQL ids cannot contain NUL characters; got {item_id[:40]!r}")
    try:
        "".join(id_list).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidIdError(f"ids must be valid Unicode (no lone surrogates): {exc}") from exc
    for item_id, document in zip(id_list, documents, strict=True):
        if "\\u0000" in document or "\x00" in document:
            raise InvalidMetadataError(f"metadata of {item_id!r} holds a NUL character, which PostgreSQL refuses")
        try:
            document.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidMetadataError(f"metadata of {item_id!r} is not valid Unicode: {exc}") from exc


@dataclass(frozen=True, slots=True)
class _TableState:
    """What the store learned about its table when it connected."""

    ann_index: PgIndexKind  # the vector index the table has: "exact" when none
    server_version: str
    extension_version: str


class PgvectorVectorStore:
    """Vectors in one PostgreSQL table, searched with pgvector.

    Example::

        store = PgvectorVectorStore(dimension=32, dsn="postgresql://app@db/recs",
                                    index="hnsw", hnsw=PgHnswParams(ef_search=200))
        store.upsert(["1", "2"], vectors, metadata=[{"genre": "comedy"}, {"genre": "drama"}])
        result = store.query(user_vectors, top_k=50, filter={"genre": "comedy"})
        store.close()

    Args:
        dimension: vector length d (at most 16,000; 2,000 with an index).
        metric: ``"dotproduct"`` (default), ``"cosine"`` or ``"euclidean"``;
            scores are higher-is-better for all three.
        dsn: a libpq connection string or URI; default ``$TWO_STAGE_REC_PG_DSN``.
        table: the table's name (letters, digits, underscores).
        schema: the table's schema; ``None`` means the connection's search path.
        create: create the extension, table and indexes when missing.
            With False, a missing table is an error (for a role that may
            only read and write rows).
        index: ``"exact"`` (default), ``"hnsw"`` or ``"ivfflat"``.
        hnsw: parameters for ``index="hnsw"`` (defaults when None).
        ivfflat: parameters for ``index="ivfflat"`` (defaults when None).
        batch_size: rows per write statement (and transaction).
        pool_size: most connections held open (at least 1 stays open).
        retry: retry policy for dropped connections and server restarts.

    Raises:
        InvalidInputError: no DSN, bad dimension, metric, names or parameters.
        IndexConfigurationError: the existing table's dimension, metric or
            vector index disagrees with these arguments, or it was not made
            by this store.
        AuthenticationError: the server refused the credentials.
        StoreUnavailableError: the server could not be reached within the retry policy.
        StoreError: the table is missing (and ``create`` is False), or
            creating it failed (e.g. for lack of privileges).
        MissingDependencyError: the ``pgvector`` extra is not installed.
    """

    supports_persistence = False
    returns_values = True
    # Each query is one statement, which PostgreSQL answers from one snapshot, and each
    # write batch is one transaction: a query sees a batch wholly or not at all, and
    # never an id whose delete has committed (returned).
    concurrent_writes = True

    def __init__(
        self,
        *,
        dimension: int,
        metric: Metric = "dotproduct",
        dsn: str | None = None,
        table: str = "two_stage_rec_items",
        schema: str | None = None,
        create: bool = True,
        index: PgIndexKind = "exact",
        hnsw: PgHnswParams | None = None,
        ivfflat: PgIvfflatParams | None = None,
        batch_size: int = 1_000,
        pool_size: int = 4,
        retry: RetryPolicy | None = None,
    ) -> None:
        check_store_config(dimension, metric)
        if dimension > MAX_DIMENSION:
            raise InvalidInputError(f"pgvector holds at most {MAX_DIMENSION} dimensions, got {dimension}")
        if index not in _INDEX_KINDS:
            raise InvalidInputError(f"index must be one of {_INDEX_KINDS}, got {index!r}")
        if index != "exact" and dimension > MAX_INDEXED_DIMENSION:
            raise InvalidInputError(f"pgvector indexes hold at most {MAX_INDEXED_DIMENSION} dimensions")
        if hnsw is not None and (index != "hnsw" or not isinstance(hnsw, PgHnswParams)):
            raise InvalidInputError(f"hnsw must be PgHnswParams and needs index='hnsw' (index={index!r})")
        if ivfflat is not None and (index != "ivfflat" or not isinstance(ivfflat, PgIvfflatParams)):
            raise InvalidInputError(f"ivfflat must be PgIvfflatParams and needs index='ivfflat' (index={index!r})")
        self._batch_size = _positive_int("batch_size", batch_size)
        _positive_int("pool_size", pool_size)
        self._name = _table_name(table, schema)
        resolved = dsn if dsn is not None else os.environ.get(DSN_ENVIRONMENT_VARIABLE, "")
        if not resolved:
            raise InvalidInputError(f"no PostgreSQL DSN: pass dsn= or set ${DSN_ENVIRONMENT_VARIABLE}")
        self._psycopg: ModuleType = _psycopg()
        self._sql: ModuleType = require("psycopg.sql", extra="pgvector", package="psycopg[binary]")
        self._pool_module: ModuleType = require("psycopg_pool", extra="pgvector", package="psycopg-pool")
        self._pgvector: ModuleType = require("pgvector.psycopg.vector", extra="pgvector", package="pgvector")
        self._dsn = resolved
        try:
            self._password: str = self._psycopg.conninfo.conninfo_to_dict(resolved).get("password") or ""
        except self._psycopg.Error:
            raise InvalidInputError("the PostgreSQL DSN cannot be parsed (not shown: it may hold a password)") from None
        self._safe_dsn = redact_dsn(resolved)
        self._dimension = int(dimension)
        self._metric: Metric = metric
        self._kind: PgIndexKind = index
        self._hnsw = (hnsw or PgHnswParams()) if index == "hnsw" else None
        self._ivfflat = (ivfflat or PgIvfflatParams()) if index == "ivfflat" else None
        self._retry = retry or RetryPolicy(total_timeout=60.0)
        self._table: sql.Identifier = self._sql.Identifier(*self._name)
        self._index_lock = threading.Lock()
        self._pool: ConnectionPool[Any] | None = None
        self._vector_info: Any = None
        self._state = self._call("connecting to PostgreSQL", lambda timeout: self._setup(create, timeout), pooled=False)
        self._pool = self._pool_module.ConnectionPool(
            resolved,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True},
            configure=self._configure,
            open=False,
            name=f"two_stage_rec.pgvector.{'.'.join(self._name)}",
        )
        self._pool.open(wait=False)

    # ---------------------------------------------------------------- facts

    def __repr__(self) -> str:
        return (
            f"PgvectorVectorStore(dsn={self._safe_dsn!r}, table={'.'.join(self._name)!r}, "
            f"dimension={self._dimension}, metric={self._metric!r}, index={self._kind!r})"
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
    def index_kind(self) -> PgIndexKind:
        """``"exact"``, ``"hnsw"`` or ``"ivfflat"``: the kind this store was opened with."""
        return self._kind

    @property
    def is_exact(self) -> bool:
        """True for ``index="exact"``; HNSW and IVFFlat are approximate."""
        return self._kind == "exact"

    @property
    def table(self) -> str:
        """The table's (schema-qualified, when given) name."""
        return ".".join(self._name)

    def describe(self) -> StoreStats:
        """Dimension, metric, count, and the table's details.

        ``details`` holds ``table``, ``index`` (the kind asked for),
        ``index_built`` (False for an IVFFlat index still waiting for
        ``min_rows``), the index parameters, ``server_version`` and
        ``pgvector_version``. Never the DSN's password. ``count`` is exact
        (``count(*)``: a scan of the table, some milliseconds per 100k rows).
        """
        statement = self._sql.SQL("SELECT count(*) FROM {}").format(self._table)
        count = self._call("count rows", lambda timeout: self._scalar(statement, ()))
        details: dict[str, object] = {
            "table": self.table,
            "dsn": self._safe_dsn,
            "index": self._kind,
            "index_built": self._kind == "exact" or self._state.ann_index == self._kind,
            "server_version": self._state.server_version,
            "pgvector_version": self._state.extension_version,
        }
        if self._hnsw is not None:
            details["hnsw"] = asdict(self._hnsw)
        if self._ivfflat is not None:
            details["ivfflat"] = asdict(self._ivfflat)
        return StoreStats(
            dimension=self._dimension, metric=self._metric, count=int(count), backend="pgvector", details=details
        )

    # ------------------------------------------------------------ connecting

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        """Teach a new pooled connection the ``vector`` type (known since setup: no round trip)."""
        self._pgvector.register_vector_info(conn, self._vector_info)

    def _setup(self, create: bool, timeout: float) -> _TableState:
        """Check (and with ``create``, make) the extension, table and indexes, on one connection."""
        with self._psycopg.connect(self._dsn, autocommit=True, connect_timeout=max(1, int(timeout))) as conn:
            if create and not self._exists(conn, "SELECT 1 FROM pg_extension WHERE extname = 'vector'"):
                with conn.transaction():
                    # Two stores starting together on a new database would both create it.
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(("pg_extension", "vector"))])
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            self._vector_info = self._psycopg.types.TypeInfo.fetch(conn, "vector")
            if self._vector_info is None:
                raise StoreError(
                    "the pgvector extension is not installed in this database; run CREATE EXTENSION vector "
                    "(or open the store with create=True as a role allowed to)"
                )
            server_version = str(self._scalar_on(conn, "SHOW server_version"))
            extension_version = str(
                self._scalar_on(conn, "SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            )
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(self._name)])
                if self._relation(conn) is None:
                    if not create:
                        raise StoreError(f"table {self.table!r} does not exist; open the store with create=True")
                    self._create_table(conn)
                    ann_index = self._kind
                    if self._kind == "ivfflat":
                        ann_index = "exact"  # built once the table holds min_rows rows
                else:
                    ann_index = self._check_table(conn, create)
            return _TableState(ann_index, server_version, extension_version)

    @staticmethod
    def _exists(conn: psycopg.Connection[Any], query: str, params: Sequence[object] = ()) -> bool:
        return conn.execute(query, params).fetchone() is not None

    @staticmethod
    def _scalar_on(conn: psycopg.Connection[Any], query: Any, params: Sequence[object] = ()) -> Any:
        row = conn.execute(query, params).fetchone()
        return None if row is None else row[0]

    def _relation(self, conn: psycopg.Connection[Any]) -> int | None:
        qualified = self._table.as_string(conn)
        oid = self._scalar_on(conn, "SELECT to_regclass(%s)::oid", [qualified])
        return None if oid is None else int(oid)

    def _comment(self) -> str:
        return json.dumps(
            {"format": _FORMAT, "version": _FORMAT_VERSION, "dimension": self._dimension, "metric": self._metric}
        )

    def _index_name(self, suffix: str) -> sql.Identifier:
        # The table name is at most 48 characters, so this stays within PostgreSQL's 63.
        identifier: sql.Identifier = self._sql.Identifier(*self._name[:-1], f"{self._name[-1]}_{suffix}")
        return identifier

    def _create_table(self, conn: psycopg.Connection[Any]) -> None:
        sql = self._sql
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id text PRIMARY KEY, embedding vector({}) NOT NULL, "
                "metadata jsonb NOT NULL DEFAULT '{{}}'::jsonb)"
            ).format(self._table, sql.Literal(self._dimension))
        )
        # COMMENT takes no bound parameters; the text is our own JSON of validated
        # values, quoted by psycopg as a literal.
        conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(self._table, sql.Literal(self._comment())))
        conn.execute(
            sql.SQL("CREATE INDEX {} ON {} USING gin (metadata)").format(
                sql.Identifier(f"{self._name[-1]}_metadata_idx"), self._table
            )
        )
        if self._kind == "hnsw":
            self._create_vector_index(conn)

    def _create_vector_index(self, conn: psycopg.Connection[Any]) -> None:
        sql = self._sql
        opclass = sql.SQL(_OPCLASSES[self._metric])
        if self._hnsw is not None:
            method = sql.SQL("hnsw")
            options = sql.SQL("m = {}, ef_construction = {}").format(
                sql.Literal(self._hnsw.m), sql.Literal(self._hnsw.ef_construction)
            )
        else:
            assert self._ivfflat is not None
            method = sql.SQL("ivfflat")
            options = sql.SQL("lists = {}").format(sql.Literal(self._ivfflat.lists))
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING {} (embedding {}) WITH ({})").format(
                sql.Identifier(f"{self._name[-1]}_embedding_idx"), self._table, method, opclass, options
            )
        )

    def _check_table(self, conn: psycopg.Connection[Any], create: bool) -> PgIndexKind:
        """Refuse a table whose columns, dimension, metric or vector index disagree; returns its index kind."""
        oid = self._relation(conn)
        columns = dict(
            conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped",
                [oid],
            ).fetchall()
        )
        wanted = {"id": "text", "embedding": f"vector({self._dimension})", "metadata": "jsonb"}
        if columns.get("embedding", "").startswith("vector(") and columns["embedding"] != wanted["embedding"]:
            raise IndexConfigurationError(
                f"table {self.table!r} holds {columns['embedding']}, but this store was configured with "
                f"dimension {self._dimension}"
            )
        if any(columns.get(name) != kind for name, kind in wanted.items()):
            raise IndexConfigurationError(
                f"table {self.table!r} exists with columns {columns}, not the store's {wanted}"
            )
        comment = self._scalar_on(conn, "SELECT obj_description(%s, 'pg_class')", [oid])
        try:
            meta = json.loads(comment) if comment else None
        except ValueError:
            meta = None
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            raise IndexConfigurationError(
                f"table {self.table!r} was not created by this store (its comment does not name the metric); "
                "see docs/guides/pgvector.md to adopt an existing table"
            )
        if meta.get("metric") != self._metric:
            raise IndexConfigurationError(
                f"table {self.table!r} uses metric {meta.get('metric')!r}, but this store was configured "
                f"with {self._metric!r}"
            )
        indexes = conn.execute(
            "SELECT am.amname, opc.opcname FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam "
            "JOIN pg_opclass opc ON opc.oid = x.indclass[0] "
            "WHERE x.indrelid = %s AND am.amname IN ('hnsw', 'ivfflat')",
            [oid],
        ).fetchall()
        for _, opclass in indexes:
            if _METRIC_OF_OPCLASS.get(opclass, self._metric) != self._metric:
                raise IndexConfigurationError(
                    f"table {self.table!r} has a vector index for {_METRIC_OF_OPCLASS[opclass]!r}, "
                    f"but this store was configured with {self._metric!r}"
                )
        kinds = {str(method) for method, _ in indexes}
        if self._kind == "exact" or self._kind in kinds:
            return "exact" if not kinds else ("hnsw" if "hnsw" in kinds else "ivfflat")
        if kinds:
            raise IndexConfigurationError(
                f"table {self.table!r} has a {'/'.join(sorted(kinds))} index, but this store asked for {self._kind!r}"
            )
        if self._kind == "hnsw":
            if not create:
                raise IndexConfigurationError(
                    f"table {self.table!r} has no hnsw index; open the store with create=True to build it"
                )
            self._create_vector_index(conn)
            return "hnsw"
        return "exact"  # ivfflat: built by the first write that reaches min_rows

    # --------------------------------------------------------------- errors

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    def _translate(self, exc: BaseException, what: str) -> TwoStageRecError:
        psycopg = self._psycopg
        # The primary message only: the DETAIL of a rejected row repeats its whole vector.
        primary = getattr(getattr(exc, "diag", None), "message_primary", None)
        text = self._scrub(str(primary or exc).strip())
        sqlstate = getattr(exc, "sqlstate", None) or ""
        if sqlstate.startswith("28") or "authentication failed" in text:
            return AuthenticationError(f"{what}: PostgreSQL refused the credentials ({text})")
        if isinstance(exc, psycopg.DataError):
            return InvalidInputError(f"{what}: PostgreSQL rejected the data: {text}")
        return StoreError(f"{what}: {text}")

    def _call(self, what: str, operation: Callable[[float], T], *, pooled: bool = True) -> T:
        """Run one operation under the retry policy: dropped connections and restarts are retried."""
        psycopg = self._psycopg

        def attempt(timeout: float) -> T:
            try:
                return operation(timeout)
            except TwoStageRecError:
                raise
            except (psycopg.OperationalError, psycopg.errors.TransactionRollback) as exc:
                sqlstate = getattr(exc, "sqlstate", None) or ""
                text = self._scrub(str(exc).strip())
                if sqlstate.startswith("28") or "authentication failed" in text:
                    raise self._translate(exc, what) from exc
                if pooled and self._pool is not None:
                    self._pool.check()  # drop the pool's other connections to a server that went away
                raise Transient(text) from exc
            except psycopg.Error as exc:
                raise self._translate(exc, what) from exc

        try:
            return call_with_retry(attempt, self._retry, what=what)
        except StoreUnavailableError as exc:
            raise StoreUnavailableError(self._scrub(str(exc))) from exc

    def _connection(self, timeout: float) -> Any:
        assert self._pool is not None, "the store is closed"
        return self._pool.connection(timeout=timeout)

    def _scalar(self, statement: Any, params: Sequence[object]) -> Any:
        with self._connection(self._retry.request_timeout) as conn:
            return self._scalar_on(conn, statement, params)

    # --------------------------------------------------------------- writing

    def upsert(
        self,
        ids: Sequence[str],
        vectors: npt.ArrayLike,
        metadata: Sequence[Metadata] | None = None,
    ) -> int:
        """Insert or overwrite vectors, ``batch_size`` rows per transaction.

        The whole batch is validated first; nothing is written when any of it
        is invalid. Overwriting an id replaces its metadata too.

        Args:
            ids: n unique, non-empty ids (no NUL characters).
            vectors: array-like (n, dimension), converted to float32.
            metadata: n mappings (str, number, bool or list of str values; no
                nulls), or None.

        Returns:
            n, the number of vectors written.

        Raises:
            InvalidInputError: a subclass naming the problem; nothing was written.
            PartialWriteError: a batch still failed after retries;
                ``written_ids`` committed, ``failed_ids`` did not or are unconfirmed.
        """
        id_list, matrix, metadata_copies = check_upsert(ids, vectors, metadata, self._dimension)
        if metadata_copies is None:
            documents = ["{}"] * len(id_list)
        else:
            documents = [json.dumps(entry, ensure_ascii=False, allow_nan=False) for entry in metadata_copies]
        _check_postgres_text(id_list, documents)
        statement = self._sql.SQL(
            "INSERT INTO {} (id, embedding, metadata) "
            "SELECT * FROM unnest(%s::text[], %s::vector[], %s::jsonb[]) "
            "ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding, metadata = EXCLUDED.metadata"
        ).format(self._table)
        written: list[str] = []
        for start in range(0, len(id_list), self._batch_size):
            stop = start + self._batch_size
            batch = id_list[start:stop]
            params = [batch, list(matrix[start:stop]), documents[start:stop]]

            def send(timeout: float, params: list[Any] = params) -> None:
                with self._connection(timeout) as conn:
                    conn.execute(statement, params)

            try:
                self._call(f"upsert of {len(batch)} vectors", send)
            except TwoStageRecError as exc:
                if not written and isinstance(exc, AuthenticationError | InvalidInputError):
                    raise
                raise PartialWriteError(
                    f"upsert into {self.table!r} stopped: {exc}", written_ids=written, failed_ids=id_list[start:]
                ) from exc
            written.extend(batch)
        self._maybe_build_ivfflat()
        return len(id_list)

    def _maybe_build_ivfflat(self) -> None:
        if self._ivfflat is None or self._state.ann_index == "ivfflat":
            return
        count = self._call(
            "count rows", lambda t: self._scalar(self._sql.SQL("SELECT count(*) FROM {}").format(self._table), ())
        )
        if int(count) >= self._ivfflat.build_threshold:
            self._build_index(rebuild=False)  # another process may have built it meanwhile: then only use it

    def build_index(self) -> None:
        """Build (or rebuild, on the rows present now) the IVFFlat or HNSW index.

        IVFFlat learns its lists from the rows present when it is built, so
        rebuild after the data has drifted. Writes wait while it builds.
        Does nothing for ``index="exact"``.
        """
        if self._kind != "exact":
            self._build_index(rebuild=True)

    def _build_index(self, *, rebuild: bool) -> None:
        sql = self._sql

        def build(timeout: float) -> None:
            with self._connection(timeout) as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(self._name)])
                index = sql.Identifier(*self._name[:-1], f"{self._name[-1]}_embedding_idx")
                exists = self._scalar_on(conn, "SELECT to_regclass(%s)", [index.as_string(conn)])
                if exists is None:
                    self._create_vector_index(conn)
                elif rebuild:
                    conn.execute(sql.SQL("REINDEX INDEX {}").format(index))

        with self._index_lock:
            self._call(f"build the {self._kind} index of {self.table!r}", build)
            self._state = _TableState(self._kind, self._state.server_version, self._state.extension_version)

    def delete(self, ids: Sequence[str]) -> None:
        """Remove ids; ids that are not stored are ignored."""
        id_list = list(dict.fromkeys(check_ids(ids, allow_empty_batch=True, require_unique=False)))
        statement = self._sql.SQL("DELETE FROM {} WHERE id = ANY(%s::text[])").format(self._table)
        for start in range(0, len(id_list), _IDS_PER_STATEMENT):
            chunk = [i for i in id_list[start : start + _IDS_PER_STATEMENT] if "\x00" not in i]

            def send(timeout: float, chunk: list[str] = chunk) -> None:
                with self._connection(timeout) as conn:
                    conn.execute(statement, [chunk])

            self._call(f"delete of {len(chunk)} ids", send)

    # --------------------------------------------------------------- reading

    def fetch(self, ids: Sequence[str]) -> FetchResult:
        """Stored vectors (as given, float32) and metadata; unknown ids go to ``missing``."""
        id_list = check_ids(ids, allow_empty_batch=True, require_unique=False)
        unique = [i for i in dict.fromkeys(id_list) if "\x00" not in i]
        statement = self._sql.SQL("SELECT id, embedding, metadata FROM {} WHERE id = ANY(%s::text[])").format(
            self._table
        )
        found: dict[str, tuple[Any, Metadata]] = {}
        for start in range(0, len(unique), _IDS_PER_STATEMENT):
            chunk = unique[start : start + _IDS_PER_STATEMENT]

            def read(timeout: float, chunk: list[str] = chunk) -> list[Any]:
                with self._connection(timeout) as conn:
                    return list(conn.execute(statement, [chunk]).fetchall())

            for item_id, embedding, stored in self._call(f"fetch of {len(chunk)} ids", read):
                found[item_id] = (embedding, stored)
        present = [i for i in id_list if i in found]
        vectors = np.empty((len(present), self._dimension), dtype=np.float32)
        for row, item_id in enumerate(present):
            vectors[row] = found[item_id][0].to_numpy()
        return FetchResult(
            ids=present,
            vectors=vectors,
            metadata=[dict(found[i][1]) for i in present],
            missing=[i for i in id_list if i not in found],
        )

    def query(
        self,
        vectors: npt.ArrayLike,
        top_k: int,
        *,
        filter: Filter | None = None,
        include_values: bool = False,
        include_metadata: bool = False,
    ) -> QueryResult:
        """The ``top_k`` best matches of each query vector, higher score first.

        Args:
            vectors: array-like (n, dimension) of query vectors.
            top_k: matches wanted per query (>= 1); fewer are returned when
                fewer rows exist or pass the filter.
            filter: a filter in the Pinecone filter language, or None.
            include_values: also return the stored vectors.
            include_metadata: also return the stored metadata.

        Returns:
            A :class:`~two_stage_rec.QueryResult`; one statement for all n
            query vectors (a ``LATERAL`` join), plus one exact statement per
            query vector that an approximate index left short of ``top_k``.

        Raises:
            InvalidInputError: bad vectors or ``top_k``; InvalidFilterError
                for a malformed filter.
        """
        queries = as_query_matrix(vectors, self._dimension)
        k = check_top_k(top_k)
        condition, params = filter_sql(filter)
        approximate = self._state.ann_index != "exact" and self._kind != "exact"
        rows = self._call(
            f"query of {queries.shape[0]} vectors",
            lambda t: self._search(queries, k, condition, params, include_values, include_metadata, approximate, t),
        )
        if approximate:
            short = [r for r in range(queries.shape[0]) if len(rows[r]) < k]
            if short:
                exact = self._call(
                    f"exact query of {len(short)} vectors",
                    lambda t: self._search(
                        queries[short], k, condition, params, include_values, include_metadata, False, t
                    ),
                )
                for position, row in enumerate(short):
                    rows[row] = exact[position]
        return self._result(rows, include_values, include_metadata)

    def _order(self, exact: bool) -> str:
        operator = _OPERATORS[self._metric]
        if exact and self._metric == "cosine":
            # pgvector's cosine distance of a zero vector is NaN, which sorts last;
            # its similarity is 0 (distance 1), as the numpy oracle says.
            return f"coalesce(nullif(embedding {operator} q.vec, 'NaN'::float8), 1.0)"
        if exact:
            # An expression a vector index cannot serve: an exact query stays exact even
            # when another store has since built an HNSW or IVFFlat index on the table.
            return f"(embedding {operator} q.vec) + 0"
        return f"embedding {operator} q.vec"

    def _search(
        self,
        queries: npt.NDArray[np.float32],
        k: int,
        condition: str,
        params: list[Any],
        include_values: bool,
        include_metadata: bool,
        approximate: bool,
        timeout: float,
    ) -> list[list[tuple[Any, ...]]]:
        sql = self._sql
        order = self._order(exact=not approximate)
        extra = (", embedding" if include_values else "") + (", metadata" if include_metadata else "")
        statement = sql.SQL(
            "SELECT q.ord, r.id, r.distance" + extra.replace(", ", ", r.") + " "
            "FROM unnest(%s::vector[]) WITH ORDINALITY AS q(vec, ord) "
            "CROSS JOIN LATERAL (SELECT id, " + order + " AS distance" + extra + " FROM {} "
            "WHERE " + condition + " ORDER BY " + order + " LIMIT %s) r"
        ).format(self._table)
        arguments = [list(queries), *params, k]
        settings = self._query_settings(k, approximate, filtered=condition != "true")
        with self._connection(timeout) as conn:
            if settings:
                # Local to this transaction: a pooled (or PgBouncer) connection keeps no state.
                # (Pipeline mode measured slower here than these four round trips: 0.23 vs 0.14 ms.)
                assignments = ", ".join(["set_config(%s, %s, true)"] * len(settings))
                with conn.transaction():
                    conn.execute("SELECT " + assignments, [part for pair in settings for part in pair])
                    found = conn.execute(statement, arguments).fetchall()
            else:
                found = conn.execute(statement, arguments).fetchall()
        rows: list[list[tuple[Any, ...]]] = [[] for _ in range(queries.shape[0])]
        for record in found:
            rows[int(record[0]) - 1].append(record[1:])
        for row in rows:
            row.sort(key=lambda record: (record[1] != record[1], record[1]))  # relaxed orders; NaN last
        return rows

    def _query_settings(self, k: int, approximate: bool, *, filtered: bool = False) -> list[tuple[str, str]]:
        if not approximate:
            return []  # _order's exact expression keeps any vector index out of the plan
        if self._hnsw is not None:
            # Iterative scans (pgvector 0.8) go on searching the graph / further
            # lists while a filter leaves fewer than top_k rows.
            # A filter leaves part of each neighbourhood out: a search list of 2k (100 for
            # k = 50) found 0.58 of the true filtered top 50 on a 10% filter over 30k
            # items (benchmarks/store_comparison.py found 0.55 at 100k); 4k found all.
            wanted = max(self._hnsw.ef_search, FILTERED_EF_FACTOR * k if filtered else k)
            return [
                ("hnsw.ef_search", str(min(_MAX_EF_SEARCH, wanted))),
                ("hnsw.iterative_scan", "strict_order"),
            ]
        assert self._ivfflat is not None
        return [("ivfflat.probes", str(self._ivfflat.probes)), ("ivfflat.iterative_scan", "relaxed_order")]

    def _scores(self, distances: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        if self._metric == "dotproduct":
            scores = -distances
        elif self._metric == "cosine":
            scores = np.where(np.isnan(distances), 0.0, 1.0 - distances)
        else:
            scores = -np.square(distances)
        return scores.astype(np.float32)

    def _result(self, rows: list[list[tuple[Any, ...]]], include_values: bool, include_metadata: bool) -> QueryResult:
        ids = [[str(record[0]) for record in row] for row in rows]
        scores = [self._scores(np.array([record[1] for record in row], dtype=np.float64)) for row in rows]
        values = None
        if include_values:
            values = [
                np.array([record[2].to_numpy() for record in row], dtype=np.float32).reshape(len(row), self._dimension)
                for row in rows
            ]
        metadata = None
        if include_metadata:
            column = 3 if include_values else 2
            metadata = [[dict(record[column]) for record in row] for row in rows]
        return QueryResult.from_rows(ids, scores, values=values, metadata=metadata, dimension=self._dimension)

    # --------------------------------------------------------------- closing

    def drop_table(self) -> None:
        """Delete the table and everything in it (its indexes too). The store cannot be used afterwards."""
        statement = self._sql.SQL("DROP TABLE IF EXISTS {}").format(self._table)

        def drop(timeout: float) -> None:
            with self._connection(timeout) as conn:
                conn.execute(statement)

        self._call(f"drop table {self.table!r}", drop)
        self.close()

    def close(self) -> None:
        """Close the connection pool; the store cannot be used afterwards."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def __enter__(self) -> PgvectorVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # A store dropped without close() must not leave the pool's threads behind.
        pool = getattr(self, "_pool", None)
        if pool is not None:
            with contextlib.suppress(Exception):
                pool.close(timeout=0)
