"""PineconeVectorStore through the real ``pinecone`` client against the local server:
connection and configuration, validation before sending, batching limits, faults,
secret hygiene and eventual consistency. (The shared contract is in
``test_store_contract_pinecone.py``.)"""

from __future__ import annotations

import logging
import math
import random
import traceback

import numpy as np
import pytest

from pinecone_helpers import API_KEY, FAST_RETRY, StoreFactory, make_store, server, unique_index_name
from two_stage_rec.errors import (
    AuthenticationError,
    DimensionMismatchError,
    IndexConfigurationError,
    InvalidIdError,
    InvalidInputError,
    InvalidMetadataError,
    LimitExceededError,
    NonFiniteVectorError,
    PartialWriteError,
    StoreError,
    StoreUnavailableError,
    TwoStageRecError,
)
from two_stage_rec.stores.memory import InMemoryVectorStore
from two_stage_rec.stores.pinecone import MAX_UPSERT_BYTES, PineconeVectorStore, RetryPolicy
from two_stage_rec.stores.retry import Transient, call_with_retry
from two_stage_rec.testing.pinecone_server import PineconeTestServer, RecordedRequest
from two_stage_rec.types import METRICS, Metric

__all__ = ["make_store", "server"]  # fixtures, imported for pytest


def _data(n: int, d: int = 4, seed: int = 0) -> tuple[list[str], np.ndarray]:
    return [f"v{i}" for i in range(n)], np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _upserts(server: PineconeTestServer, index: str) -> list[RecordedRequest]:
    return [r for r in server.requests if r.path == "/vectors/upsert" and r.index == index]


# ------------------------------------------------------------ connecting


def test_creates_the_index_with_the_stores_configuration(make_store: StoreFactory, server: PineconeTestServer) -> None:
    store = make_store(dimension=8, metric="cosine", cloud="gcp", region="europe-west4")
    assert store.index_name is not None
    assert store.host == server.index_host(store.index_name)
    stats = store.describe()
    assert (stats.dimension, stats.metric, stats.count, stats.backend) == (8, "cosine", 0, "pinecone")


@pytest.mark.parametrize(("dimension", "metric"), [(5, "dotproduct"), (4, "cosine")])
def test_refuses_an_index_whose_dimension_or_metric_disagrees(
    server: PineconeTestServer, dimension: int, metric: Metric
) -> None:
    name = unique_index_name()
    server.create_index(name, dimension=4, metric="dotproduct")
    with pytest.raises(IndexConfigurationError, match=r"dimension|metric"):
        PineconeVectorStore(
            index_name=name, dimension=dimension, metric=metric, api_key=API_KEY, controller_host=server.url
        )
    # ... also when connected by host only (the check uses the index statistics).
    with pytest.raises(IndexConfigurationError):
        PineconeVectorStore(host=server.index_host(name), dimension=dimension, metric=metric, api_key=API_KEY)


def test_a_missing_index_is_not_created_unless_asked(server: PineconeTestServer) -> None:
    with pytest.raises(StoreError, match="create_if_missing"):
        PineconeVectorStore(index_name="no-such-index", dimension=4, api_key=API_KEY, controller_host=server.url)


def test_connects_by_host_and_shares_the_index(make_store: StoreFactory, server: PineconeTestServer) -> None:
    by_name = make_store()
    ids, vectors = _data(10)
    by_name.upsert(ids, vectors)
    with PineconeVectorStore(host=by_name.host, dimension=4, api_key=API_KEY, retry=FAST_RETRY) as by_host:
        assert by_host.describe().count == 10
        assert "host=" in repr(by_host)
        with pytest.raises(InvalidInputError):
            by_host.delete_index()


def test_namespaces_are_separate(make_store: StoreFactory) -> None:
    first = make_store(namespace="first")
    assert first.index_name is not None
    second = make_store(index_name=first.index_name, namespace="second")
    ids, vectors = _data(6)
    first.upsert(ids, vectors)
    second.upsert(ids[:2], vectors[:2] * 2)
    assert (first.describe().count, second.describe().count) == (6, 2)
    assert first.describe().details["namespaces"] == {"first": 6, "second": 2}
    np.testing.assert_array_equal(second.fetch(ids[:1]).vectors, vectors[:1] * 2)
    second.delete_namespace()
    second.delete_namespace()  # deleting an absent namespace is harmless
    assert (first.describe().count, second.describe().count) == (6, 0)


def test_delete_index(make_store: StoreFactory, server: PineconeTestServer) -> None:
    store = make_store()
    assert store.index_name is not None
    store.delete_index()
    with pytest.raises(StoreError, match="does not exist"):
        PineconeVectorStore(index_name=store.index_name, dimension=4, api_key=API_KEY, controller_host=server.url)


# ------------------------------------------------------- same answers as the reference


@pytest.mark.parametrize("metric", METRICS)
def test_query_matches_the_in_memory_reference(make_store: StoreFactory, metric: Metric) -> None:
    store = make_store(dimension=8, metric=metric, namespace="movies")
    ids, vectors = _data(200, d=8)
    metadata = [{"genre": ["comedy", "drama"][i % 2], "year": 1990 + i % 10} for i in range(200)]
    store.upsert(ids, vectors, metadata)
    reference = InMemoryVectorStore(dimension=8, metric=metric)
    reference.upsert(ids, vectors, metadata)
    queries = np.random.default_rng(5).normal(size=(7, 8)).astype(np.float32)
    spec = {"genre": "drama", "year": {"$gte": 1993}}
    got = store.query(queries, 15, filter=spec, include_values=True, include_metadata=True)
    want = reference.query(queries, 15, filter=spec, include_values=True, include_metadata=True)
    assert got.ids.tolist() == want.ids.tolist()
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5, atol=1e-5)  # euclidean: -squared distance
    assert got.values is not None and want.values is not None
    np.testing.assert_array_equal(got.values, want.values)  # float32 survives the JSON round trip exactly
    assert got.metadata == want.metadata
    sequential = make_store(
        index_name=store.index_name, dimension=8, metric=metric, namespace="movies", query_workers=1
    )
    assert sequential.query(queries, 15, filter=spec).ids.tolist() == got.ids.tolist()


def test_metadata_numbers_come_back_as_floats_like_pinecone(make_store: StoreFactory) -> None:
    store = make_store()
    store.upsert(["a"], np.ones((1, 4)), [{"year": 1995, "ok": True, "tags": ["x"]}])
    (metadata,) = store.fetch(["a"]).metadata
    assert metadata == {"year": 1995.0, "ok": True, "tags": ["x"]}
    assert isinstance(metadata["year"], float) and metadata["ok"] is True


# ------------------------------------------------- validation before anything is sent


@pytest.mark.parametrize(
    ("ids", "vectors", "metadata", "error"),
    [
        (["é"], np.ones((1, 4)), None, InvalidIdError),
        (["a\x00b"], np.ones((1, 4)), None, InvalidIdError),
        (["x" * 513], np.ones((1, 4)), None, InvalidIdError),
        ([""], np.ones((1, 4)), None, InvalidIdError),
        (["a"], np.full((1, 4), np.nan), None, NonFiniteVectorError),
        (["a"], np.ones((1, 5)), None, DimensionMismatchError),
        (["a"], np.ones((1, 4)), [{"k": None}], InvalidMetadataError),
        (["a"], np.ones((1, 4)), [{"k": "x" * 41_000}], InvalidMetadataError),
    ],
    ids=["non_ascii_id", "nul_in_id", "id_513_chars", "empty_id", "nan", "dimension", "null", "metadata_41kb"],
)
def test_invalid_batches_are_refused_before_any_request(
    make_store: StoreFactory,
    server: PineconeTestServer,
    ids: list[str],
    vectors: np.ndarray,
    metadata: object,
    error: type,
) -> None:
    store = make_store()
    good_ids, good = _data(3)
    with pytest.raises(error):
        store.upsert(
            [*good_ids, *ids],
            np.concatenate([good, vectors]) if vectors.shape[1] == 4 else vectors,
            ([{}, {}, {}, *metadata] if isinstance(metadata, list) else None),
        )
    assert _upserts(server, str(store.index_name)) == []
    assert store.describe().count == 0


def test_an_id_of_512_characters_is_accepted(make_store: StoreFactory) -> None:
    store = make_store()
    store.upsert(["x" * 512], np.ones((1, 4)))
    assert store.fetch(["x" * 512]).ids == ["x" * 512]
    assert store.fetch(["é", "x" * 600]).missing == ["é", "x" * 600]  # ids Pinecone cannot hold are missing


def test_top_k_limits(make_store: StoreFactory, server: PineconeTestServer) -> None:
    store = make_store()
    ids, vectors = _data(5)
    store.upsert(ids, vectors)
    server.clear_requests()
    with pytest.raises(LimitExceededError, match="10000"):
        store.query(vectors[:1], 10_001)
    with pytest.raises(LimitExceededError, match="10000"):
        store.query(vectors[:1], 10_001, include_metadata=True)
    assert [r for r in server.requests if r.path == "/query"] == []
    assert store.query(vectors[:1], 10_000).counts.tolist() == [5]
    assert store.query(vectors[:1], 1_000, include_values=True).counts.tolist() == [5]


def test_payload_above_pinecones_top_k_cap_is_fetched(make_store: StoreFactory, server: PineconeTestServer) -> None:
    # Pinecone returns values or metadata for at most 1,000 matches: above that the
    # store asks for ranks, then fetches the payload, and answers as one query.
    store = make_store()
    ids, vectors = _data(5)
    metadata = [{"n": float(i)} for i in range(5)]
    store.upsert(ids, vectors, metadata)
    want = store.query(vectors[:2], 1_000, include_values=True, include_metadata=True)
    server.clear_requests()
    got = store.query(vectors[:2], 1_001, include_values=True, include_metadata=True)
    assert [r.path for r in server.requests] == ["/query", "/query", "/vectors/fetch"]
    assert got.ids.tolist() == want.ids.tolist() and got.counts.tolist() == [5, 5]
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-6)
    assert got.values is not None and want.values is not None
    np.testing.assert_allclose(got.values, want.values, rtol=1e-6)
    assert got.metadata == want.metadata
    only_metadata = store.query(vectors[:1], 5_000, include_metadata=True)
    assert only_metadata.values is None and only_metadata.metadata == want.metadata[:1]


# -------------------------------------------------------------------- batching


def test_5000_vectors_of_dimension_1536_respect_both_request_limits(
    make_store: StoreFactory, server: PineconeTestServer
) -> None:
    n, d = 5_000, 1_536
    # One request at a time, so that the recorded order is the batch order.
    store = make_store(dimension=d, upsert_workers=1)
    rng = np.random.default_rng(11)
    vectors = rng.normal(size=(n, d)).astype(np.float32)
    ids = [f"movie-{i}" for i in range(n)]
    metadata = [{"title": f"Movie number {i}", "genres": ["drama", "comedy"][: 1 + i % 2], "year": 1900 + i % 120}
                for i in range(n)]  # fmt: skip
    assert store.upsert(ids, vectors, metadata) == n
    requests = _upserts(server, str(store.index_name))
    assert all(r.status == 200 for r in requests)
    assert max(r.body_bytes for r in requests) <= MAX_UPSERT_BYTES
    assert max(r.vectors for r in requests) <= 1_000
    # Every vector was sent exactly once, in order.
    assert [i for r in requests for i in r.ids] == ids
    # Batches are packed: each but the last is within one vector (~18 KB) of the limit.
    per_vector = max(r.body_bytes / r.vectors for r in requests)
    assert all(r.body_bytes > MAX_UPSERT_BYTES - 2 * per_vector for r in requests[:-1])
    assert store.describe().count == n
    some = [0, 1_234, 4_999]
    fetched = store.fetch([ids[i] for i in some])
    np.testing.assert_array_equal(fetched.vectors, vectors[some])
    assert fetched.metadata[1]["title"] == "Movie number 1234"


@pytest.mark.parametrize("namespace", ["", "a-namespace"])
def test_small_vectors_are_split_by_count_and_sizes_are_exact(
    make_store: StoreFactory, server: PineconeTestServer, namespace: str
) -> None:
    import orjson

    store = make_store(namespace=namespace, upsert_workers=1)
    ids, vectors = _data(2_500)
    metadata = [{"i": i, "s": "é" * (i % 3)} for i in range(2_500)]
    store.upsert(ids, vectors, metadata)
    requests = _upserts(server, str(store.index_name))
    assert [r.vectors for r in requests] == [1_000, 1_000, 500]
    # The planned size of each request is the size the client sent, to the byte.
    _, sizes = store._records(ids, vectors, metadata)
    size_of = dict(zip(ids, sizes, strict=True))
    envelope = len(orjson.dumps({"vectors": [], **({"namespace": namespace} if namespace else {})}))
    assert [r.body_bytes for r in requests] == [
        envelope + sum(size_of[i] for i in r.ids) + len(r.ids) - 1 for r in requests
    ]


def test_fetch_and_delete_are_chunked(make_store: StoreFactory, server: PineconeTestServer) -> None:
    store = make_store()
    ids = [f"{i:04d}-" + "x" * 60 for i in range(2_500)]  # long ids: fetch is bounded by URL size too
    vectors = np.random.default_rng(1).normal(size=(2_500, 4)).astype(np.float32)
    store.upsert(ids, vectors)
    server.clear_requests()
    fetched = store.fetch([*ids, "missing"])
    assert fetched.ids == ids and fetched.missing == ["missing"]
    fetches = [r for r in server.requests if r.path == "/vectors/fetch"]
    assert len(fetches) > 3  # 1,000 ids of 65 characters would not fit in a 16 KB URL
    store.delete(ids)
    deletes = [r for r in server.requests if r.path == "/vectors/delete"]
    assert len(deletes) == 3
    assert store.describe().count == 0


# ---------------------------------------------------------------------- faults


def _assert_holds_exactly(
    server: PineconeTestServer, store: PineconeVectorStore, ids: list[str], vectors: np.ndarray
) -> None:
    stored = server.stored(str(store.index_name), store.namespace)
    assert sorted(stored) == sorted(ids)
    np.testing.assert_array_equal(np.array([stored[i][0] for i in ids], np.float32), vectors)
    assert store.describe().count == len(ids)


@pytest.mark.parametrize("kind", ["rate_limit", "unavailable", "drop", "apply_then_drop"])
def test_a_transient_fault_is_retried_and_every_vector_lands_once(
    make_store: StoreFactory, server: PineconeTestServer, kind: str
) -> None:
    store = make_store(max_upsert_bytes=2_000)  # ~20 vectors per request, so faults hit a middle batch
    ids, vectors = _data(100)
    server.inject(kind, times=2, after=1)  # type: ignore[arg-type]
    assert store.upsert(ids, vectors) == 100
    requests = _upserts(server, str(store.index_name))
    assert sum(1 for r in requests if r.fault == kind) == 2
    _assert_holds_exactly(server, store, ids, vectors)


def test_a_reply_slower_than_the_timeout_is_retried(make_store: StoreFactory, server: PineconeTestServer) -> None:
    policy = RetryPolicy(max_attempts=5, initial_delay=0.001, max_delay=0.01, request_timeout=0.3, total_timeout=10)
    store = make_store(retry=policy)
    ids, vectors = _data(30)
    server.inject("slow", delay=1.0)
    assert store.upsert(ids, vectors) == 30
    _assert_holds_exactly(server, store, ids, vectors)
    # The slow request is applied late too (idempotent): still one copy of each.
    import time

    deadline = time.monotonic() + 5
    while not any(r.fault == "slow" for r in _upserts(server, str(store.index_name))):
        assert time.monotonic() < deadline, "the slow request never finished"
        time.sleep(0.02)
    _assert_holds_exactly(server, store, ids, vectors)


def test_queries_and_reads_are_retried(make_store: StoreFactory, server: PineconeTestServer) -> None:
    store = make_store()
    ids, vectors = _data(20)
    store.upsert(ids, vectors)
    server.inject("rate_limit", path="/query", times=2)
    server.inject("unavailable", path="/vectors/fetch")
    server.inject("drop", path="/describe_index_stats")
    assert store.query(vectors[:3], 5).counts.tolist() == [5, 5, 5]
    assert store.fetch(ids).ids == ids
    assert store.describe().count == 20


@pytest.mark.parametrize("workers", [1, 3])
def test_a_batch_that_keeps_failing_names_written_and_failed_ids(
    make_store: StoreFactory, server: PineconeTestServer, workers: int
) -> None:
    store = make_store(max_upsert_bytes=2_000, upsert_workers=workers)
    ids, vectors = _data(100)
    server.inject("unavailable", times=1_000, after=2)
    with pytest.raises(PartialWriteError) as raised:
        store.upsert(ids, vectors)
    server.clear_faults()
    error = raised.value
    assert sorted(error.written_ids + error.failed_ids) == sorted(ids)
    assert len(error.written_ids) >= 2 * 10 and error.failed_ids
    assert isinstance(error.__cause__, StoreUnavailableError)
    # What the error says landed is exactly what the server holds.
    stored = server.stored(str(store.index_name))
    assert sorted(stored) == sorted(error.written_ids)


def test_a_long_retry_after_ends_within_the_total_timeout(make_store: StoreFactory, server: PineconeTestServer) -> None:
    store = make_store(retry=RetryPolicy(initial_delay=0.001, request_timeout=0.5, total_timeout=1.0))
    ids, vectors = _data(10)
    server.inject("rate_limit", retry_after=30)
    with pytest.raises(PartialWriteError, match="total timeout") as raised:
        store.upsert(ids, vectors)
    assert raised.value.failed_ids == ids and raised.value.written_ids == []
    assert server.stored(str(store.index_name)) == {}


def test_call_with_retry_honours_retry_after_and_backs_off() -> None:
    sleeps: list[float] = []
    outcomes: list[Exception | str] = [Transient("429", retry_after=0.7), Transient("503"), Transient("503"), "ok"]

    def operation(timeout: float) -> str:
        assert timeout == pytest.approx(2.0)
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    policy = RetryPolicy(initial_delay=0.1, multiplier=2.0, jitter=0.5, request_timeout=2.0, total_timeout=60)
    assert call_with_retry(operation, policy, what="test", sleep=sleeps.append) == "ok"
    assert sleeps[0] == 0.7  # the server's Retry-After, waited in full
    assert 0.1 <= sleeps[1] <= 0.2 and 0.2 <= sleeps[2] <= 0.4  # attempt n: initial * 2**(n-1), half jittered


def test_call_with_retry_stops_after_max_attempts() -> None:
    calls: list[float] = []

    def operation(timeout: float) -> None:
        calls.append(timeout)
        raise Transient("still down")

    with pytest.raises(StoreUnavailableError, match="3 attempts: still down"):
        call_with_retry(operation, RetryPolicy(max_attempts=3), what="test", sleep=lambda _: None)
    assert len(calls) == 3


def test_backoff_is_capped_and_jittered() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=5.0, jitter=0.5)
    rng = random.Random(0)
    delays = [policy.backoff(10, rng) for _ in range(200)]
    assert min(delays) >= 2.5 and max(delays) <= 5.0 and len(set(delays)) > 100
    with pytest.raises(InvalidInputError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(InvalidInputError):
        RetryPolicy(jitter=1.5)


# ------------------------------------------------------------------- secrets


def _all_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error)) + repr(error) + str(getattr(error, "__dict__", ""))


def test_the_api_key_never_shows(
    make_store: StoreFactory,
    server: PineconeTestServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("PINECONE_API_KEY", API_KEY)
    store = make_store(api_key=None)  # the key comes from the environment
    assert API_KEY not in repr(store) and API_KEY not in str(vars(store))
    ids, vectors = _data(5)
    store.upsert(ids, vectors)

    # A proxy that echoes request headers (Api-Key included) into its error body:
    server.inject("echo_headers", path="/vectors/upsert", status=400)
    with pytest.raises(InvalidInputError) as rejected:
        store.upsert(ids, vectors)
    assert "request headers were" in str(rejected.value)  # the echo did reach us ...
    assert API_KEY not in _all_text(rejected.value)  # ... with the key scrubbed, chained causes included

    server.inject("echo_headers", path="/query", status=503, times=100)
    with pytest.raises(StoreUnavailableError) as unavailable:
        store.query(vectors[:1], 3)
    server.clear_faults()
    assert API_KEY not in _all_text(unavailable.value)

    server.inject("echo_headers", path="/vectors/upsert", status=503, times=100)
    with pytest.raises(PartialWriteError) as partial:
        store.upsert(ids, vectors)
    server.clear_faults()
    assert API_KEY not in _all_text(partial.value)
    assert API_KEY not in caplog.text

    with pytest.raises(AuthenticationError) as refused:
        PineconeVectorStore(index_name="x", dimension=4, api_key="wrong-" + API_KEY, controller_host=server.url)
    assert API_KEY not in _all_text(refused.value)


def test_no_api_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PINECONE_API_KEY", raising=False)
    with pytest.raises(AuthenticationError, match="PINECONE_API_KEY"):
        PineconeVectorStore(index_name="x", dimension=4)


# --------------------------------------------------------- eventual consistency


def test_waiting_for_writes_to_become_visible() -> None:
    with PineconeTestServer(api_key=API_KEY, visibility_delay=0.2) as slow_server:
        store = PineconeVectorStore(
            index_name="eventual", dimension=4, api_key=API_KEY, controller_host=slow_server.url,
            create_if_missing=True, retry=FAST_RETRY,
        )  # fmt: skip
        with store:
            ids, vectors = _data(50)
            store.upsert(ids, vectors)
            assert store.describe().count == 0  # not visible yet
            assert store.wait_until_count(50, timeout=5) == 50
            store.delete(ids[:10])
            store.wait_for_ids(ids[:10], deleted=True, timeout=5)
            assert store.fetch(ids[:10]).missing == ids[:10]
            store.upsert(["late"], vectors[:1])
            store.wait_for_ids(["late"], timeout=5)
            with pytest.raises(StoreUnavailableError, match="never-written"):
                store.wait_for_ids(["never-written"], timeout=0.1)
            with pytest.raises(StoreUnavailableError, match="expected 1000"):
                store.wait_until_count(1_000, timeout=0.1)


def test_errors_are_in_the_library_tree(make_store: StoreFactory, server: PineconeTestServer) -> None:
    store = make_store()
    server.inject("echo_headers", path="/describe_index_stats", status=418)
    with pytest.raises(TwoStageRecError):
        store.describe()
    assert math.isfinite(store.describe().count)


def test_record_sizes_are_exact(make_store: StoreFactory) -> None:
    import orjson

    store = make_store(dimension=3)
    matrix = np.array([[0.1, -2.5e-8, 3e12], [1.0, 0.0, -0.0], [np.float32(1) / 3, 7, 1e-45]], dtype=np.float32)
    ids = ["a", 'quote"d', "ünïcode-not-sent-but-sized"]
    metadata = [{"title": "Ça va", "n": 3, "tags": ["x", "y"]}, {}, {"flag": True, "f": 0.5}]
    records, sizes = store._records(ids, matrix, metadata)
    assert sizes == [len(orjson.dumps(record)) for record in records]
    assert np.array_equal(np.array([r["values"] for r in records], dtype=np.float32), matrix)


def test_wait_for_writes_sees_overwrites_and_deletes(make_store: StoreFactory) -> None:
    with pytest.raises(InvalidInputError, match="track_writes"):
        make_store().wait_for_writes()
    with PineconeTestServer(api_key=API_KEY, visibility_delay=0.2) as slow_server:
        store = PineconeVectorStore(
            index_name="tracked", dimension=4, api_key=API_KEY, controller_host=slow_server.url,
            create_if_missing=True, retry=FAST_RETRY, track_writes=True,
        )  # fmt: skip
        with store:
            ids, vectors = _data(20)
            store.upsert(ids, vectors, [{"v": 1}] * 20)
            store.wait_for_writes(timeout=5)
            store.upsert(ids[:3], vectors[:3] * 2, [{"v": 2}] * 3)  # an overwrite: present before and after
            store.delete(ids[3:5])
            assert store.fetch(ids[:1]).metadata == [{"v": 1.0}]  # the old version is still served
            store.wait_for_writes(timeout=5)
            fetched = store.fetch(ids[:5])
            assert fetched.metadata == [{"v": 2.0}] * 3 and fetched.missing == ids[3:5]
            np.testing.assert_array_equal(fetched.vectors, vectors[:3] * 2)
            store.upsert(["slow"], vectors[:1])
            with pytest.raises(StoreUnavailableError, match="'slow'"):
                store.wait_for_writes(timeout=0.05)
            store.wait_for_writes(timeout=5)  # still pending after a timeout, so it can be waited for again


def test_a_missing_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from two_stage_rec.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "pinecone", None)  # import pinecone now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"two-stage-rec\[pinecone\]"):
        PineconeVectorStore(index_name="x", dimension=4, api_key=API_KEY)
