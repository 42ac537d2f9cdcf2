"""Shared set-up for the Pinecone tests: a local server and a store factory with tiny retry delays."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("pinecone", reason="the pinecone extra is not installed")

from two_stage_rec.stores.pinecone import PineconeVectorStore, RetryPolicy
from two_stage_rec.testing.pinecone_server import PineconeTestServer

API_KEY = "pcsk_TEST-SECRET-7f3a9c1e5b"

FAST_RETRY = RetryPolicy(max_attempts=5, initial_delay=0.001, max_delay=0.01, request_timeout=5.0, total_timeout=20.0)

_names = itertools.count()

StoreFactory = Callable[..., PineconeVectorStore]


def unique_index_name() -> str:
    return f"test-index-{next(_names)}"


@pytest.fixture(scope="module")
def server() -> Iterator[PineconeTestServer]:
    with PineconeTestServer(api_key=API_KEY) as running:
        yield running


@pytest.fixture
def make_store(server: PineconeTestServer) -> Iterator[StoreFactory]:
    """Build stores on fresh indexes of the module's server; closes them afterwards."""
    server.clear_faults()
    opened: list[PineconeVectorStore] = []

    def factory(**overrides: Any) -> PineconeVectorStore:
        options: dict[str, Any] = {
            "index_name": unique_index_name(),
            "dimension": 4,
            "metric": "dotproduct",
            "api_key": API_KEY,
            "controller_host": server.url,
            "create_if_missing": True,
            "retry": FAST_RETRY,
        }
        options.update(overrides)
        store = PineconeVectorStore(**options)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()
    server.clear_faults()
