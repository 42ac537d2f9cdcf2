"""Local stores under concurrent reads and writes (``concurrent_writes = True``).

Reader threads query with a metadata filter (directly, and through a
:class:`~two_stage_rec.recommender.Recommender` with per-user exclusions)
while a writer thread upserts new items, overwrites old ones with other
metadata, and deletes items. Before the stores had a readers-writer lock
this produced, within 0.3 s, results holding the padding id ``""`` and items
that fail the filter.

Every answer is checked: no exception, no padding id, no duplicate, every
item passes the filter by the metadata returned with it, no excluded item,
and no id whose delete had returned before the query started.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import pytest

from two_stage_rec.embedders.table import TableEmbedder
from two_stage_rec.protocols import Closeable, VectorStore, concurrent_writes
from two_stage_rec.recommender import Recommender
from two_stage_rec.stores.memory import InMemoryVectorStore

DIMENSION = 8
BASE_ITEMS = 400
DURATION_S = 1.2
FILTER = {"genre": {"$eq": "comedy"}}


def _memory() -> VectorStore:
    return InMemoryVectorStore(dimension=DIMENSION)


def _faiss(kind: str) -> Callable[[], VectorStore]:
    def build() -> VectorStore:
        pytest.importorskip("faiss", reason="the faiss extra is not installed")
        from two_stage_rec.stores.faiss import FaissVectorStore, IvfParams

        if kind == "ivf":
            return FaissVectorStore(dimension=DIMENSION, index="ivf", ivf=IvfParams(nlist=8, nprobe=2))
        return FaissVectorStore(dimension=DIMENSION, index=kind)  # type: ignore[arg-type]

    return build


STORES = {"memory": _memory, "faiss-flat": _faiss("flat"), "faiss-hnsw": _faiss("hnsw"), "faiss-ivf": _faiss("ivf")}
PGVECTOR = ("pgvector-exact", "pgvector-hnsw")
"""Stores on a real PostgreSQL server (started by the test session), whose transactions give the guarantee."""


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    pytest.importorskip("psycopg", reason="the pgvector extra is not installed")
    from pg_helpers import shared_server

    with shared_server() as server:
        yield server.dsn


def _pgvector(name: str, dsn: str) -> VectorStore:
    from pg_helpers import FAST_RETRY, unique_table
    from two_stage_rec.stores.pgvector import PgvectorVectorStore

    index = "hnsw" if name.endswith("hnsw") else "exact"
    return PgvectorVectorStore(dimension=DIMENSION, dsn=dsn, table=unique_table(), index=index, retry=FAST_RETRY)


class Ledger:
    """When each delete returned (ids are never written again after their delete)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.deleted_at: dict[str, float] = {}

    def deleted(self, ids: list[str]) -> None:
        now = time.monotonic()
        with self._lock:
            for item in ids:
                self.deleted_at[item] = now

    def gone_before(self, moment: float) -> set[str]:
        with self._lock:
            return {item for item, when in self.deleted_at.items() if when < moment}


def _genre(rng: np.random.Generator) -> str:
    return "comedy" if rng.random() < 0.5 else "drama"


def _writer(store: VectorStore, ledger: Ledger, stop: threading.Event, errors: list[BaseException]) -> None:
    rng = np.random.default_rng(1)
    live: list[str] = []
    batch = 0
    try:
        while not stop.is_set():
            batch += 1
            fresh = [f"w{batch}-{i}" for i in range(16)]
            store.upsert(
                fresh,
                rng.normal(size=(16, DIMENSION)).astype(np.float32),
                [{"genre": _genre(rng), "batch": batch} for _ in fresh],
            )
            live.extend(fresh)
            # Overwrite base items with other metadata (a filter match may stop matching).
            changed = [f"base-{i}" for i in rng.choice(BASE_ITEMS, 12, replace=False).tolist()]
            store.upsert(
                changed,
                rng.normal(size=(12, DIMENSION)).astype(np.float32),
                [{"genre": _genre(rng)} for _ in changed],
            )
            if len(live) > 48:
                doomed = [live.pop(int(rng.integers(len(live)))) for _ in range(24)]
                store.delete(doomed)
                ledger.deleted(doomed)
    except BaseException as exc:
        errors.append(exc)


def _check_rows(
    ids: list[list[str]],
    metadata: Sequence[Sequence[Mapping[str, object]]],
    gone: set[str],
    excluded: list[frozenset[str]] | None = None,
) -> list[str]:
    problems = []
    for row, (row_ids, row_metadata) in enumerate(zip(ids, metadata, strict=True)):
        if "" in row_ids:
            problems.append(f"padding id in {row_ids}")
        if len(set(row_ids)) != len(row_ids):
            problems.append(f"duplicate ids in {row_ids}")
        if any(entry.get("genre") != "comedy" for entry in row_metadata):
            problems.append(f"filter violated: {row_metadata}")
        if gone & set(row_ids):
            problems.append(f"deleted ids returned: {sorted(gone & set(row_ids))}")
        if excluded is not None and excluded[row] & set(row_ids):
            problems.append(f"excluded ids returned: {sorted(excluded[row] & set(row_ids))}")
    return problems


def _store_reader(
    store: VectorStore, ledger: Ledger, stop: threading.Event, problems: list[str], counts: list[int]
) -> None:
    rng = np.random.default_rng(threading.get_ident() % 2**32)
    try:
        while not stop.is_set() and not problems:
            gone = ledger.gone_before(time.monotonic())
            queries = rng.normal(size=(4, DIMENSION)).astype(np.float32)
            result = store.query(queries, 30, filter=FILTER, include_metadata=True)
            assert result.metadata is not None
            ids = [result.row_ids(row) for row in range(4)]
            problems.extend(_check_rows(ids, result.metadata, gone))
            counts.append(1)
    except BaseException as exc:
        problems.append(f"{type(exc).__name__}: {exc}")


def _recommender_reader(
    recommender: Recommender, ledger: Ledger, stop: threading.Event, problems: list[str], counts: list[int]
) -> None:
    rng = np.random.default_rng(threading.get_ident() % 2**32 + 1)
    users = [f"u{i}" for i in range(6)]
    try:
        while not stop.is_set() and not problems:
            gone = ledger.gone_before(time.monotonic())
            # Exclusions of different sizes split the query into groups (and over-fetch).
            excluded = [
                frozenset(f"base-{i}" for i in rng.choice(BASE_ITEMS, size, replace=False).tolist())
                for size in (0, 3, 40, 150, 5, 80)
            ]
            batches = recommender.recommend_batch(users, k=10, candidates=30, exclude=excluded, filter=FILTER)
            ids = [[r.item_id for r in recs] for recs in batches]
            metadata = [[dict(r.metadata) for r in recs] for recs in batches]
            problems.extend(_check_rows(ids, metadata, gone, excluded))
            counts.append(1)
    except BaseException as exc:
        problems.append(f"{type(exc).__name__}: {exc}")


@pytest.mark.parametrize("name", [*STORES, *PGVECTOR])
def test_readers_with_filters_and_exclusions_while_a_writer_upserts_and_deletes(
    name: str, request: pytest.FixtureRequest
) -> None:
    store = _pgvector(name, request.getfixturevalue("pg_dsn")) if name in PGVECTOR else STORES[name]()
    assert concurrent_writes(store)
    rng = np.random.default_rng(0)
    base = [f"base-{i}" for i in range(BASE_ITEMS)]
    store.upsert(
        base, rng.normal(size=(BASE_ITEMS, DIMENSION)).astype(np.float32), [{"genre": _genre(rng)} for _ in base]
    )
    users = [f"u{i}" for i in range(6)]
    recommender = Recommender(
        user_embedder=TableEmbedder(users, rng.normal(size=(6, DIMENSION)).astype(np.float32)), store=store
    )
    ledger, stop = Ledger(), threading.Event()
    problems: list[str] = []
    writer_errors: list[BaseException] = []
    reads: list[int] = []
    threads = [threading.Thread(target=_writer, args=(store, ledger, stop, writer_errors))]
    threads += [threading.Thread(target=_store_reader, args=(store, ledger, stop, problems, reads)) for _ in range(2)]
    threads += [threading.Thread(target=_recommender_reader, args=(recommender, ledger, stop, problems, reads))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + DURATION_S
    while time.monotonic() < deadline and not problems and not writer_errors:
        time.sleep(0.02)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert not writer_errors
    assert problems == []
    assert len(reads) > 20 and len(ledger.deleted_at) > 0  # both sides really ran
    # The end state is what the writer left: every deleted id is gone.
    assert store.fetch(sorted(ledger.deleted_at)).ids == []
    if isinstance(store, Closeable):
        store.close()


def test_a_writer_waits_for_running_readers_and_holds_back_new_ones() -> None:
    from two_stage_rec.stores.memory import ReadWriteLock

    lock = ReadWriteLock()
    order: list[str] = []
    reading = threading.Event()
    release_reader = threading.Event()

    def reader(name: str, hold: threading.Event | None) -> None:
        with lock.reading():
            order.append(f"{name} in")
            if hold is not None:
                reading.set()
                hold.wait(5)
            order.append(f"{name} out")

    def writer() -> None:
        with lock.writing():
            order.append("writer")

    first = threading.Thread(target=reader, args=("r1", release_reader))
    first.start()
    assert reading.wait(5)
    write = threading.Thread(target=writer)
    write.start()
    time.sleep(0.05)  # the writer is waiting for r1
    late = threading.Thread(target=reader, args=("r2", None))
    late.start()
    time.sleep(0.05)
    assert order == ["r1 in"]  # neither the writer nor the late reader got in
    release_reader.set()
    for thread in (first, write, late):
        thread.join(5)
    assert order == ["r1 in", "r1 out", "writer", "r2 in", "r2 out"]
