"""The shared VectorStore contract, run against PineconeVectorStore through the real
``pinecone`` client and the local Pinecone-compatible server.

Pinecone itself ranks approximately, so the store declares ``is_exact = False``
and the suite checks recall; the test server ranks exactly, so the floor is 1.0.

Like Pinecone, the server here is eventually consistent: a write becomes
visible 20 ms after it is acknowledged. The suite's ``wait_for_consistency``
hook is the store's own ``wait_for_writes`` (read-your-writes by polling
``fetch``), so every contract test also checks that waiting works.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pinecone_helpers import API_KEY, FAST_RETRY, unique_index_name
from two_stage_rec.protocols import VectorStore
from two_stage_rec.stores.pinecone import PineconeVectorStore
from two_stage_rec.testing import VectorStoreContract
from two_stage_rec.testing.pinecone_server import PineconeTestServer
from two_stage_rec.types import Metric

VISIBILITY_DELAY = 0.02


class TestPineconeStore(VectorStoreContract):
    min_recall = 1.0  # the test server is exact; real Pinecone is not

    _server: PineconeTestServer
    _opened: list[PineconeVectorStore]

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _running_server(cls) -> Iterator[None]:
        with PineconeTestServer(api_key=API_KEY, visibility_delay=VISIBILITY_DELAY) as server:
            cls._server = server
            yield

    @pytest.fixture(autouse=True)
    def _close_stores(self) -> Iterator[None]:
        # The suite never closes the stores it makes; close their connections here.
        self._opened = []
        yield
        for store in self._opened:
            store.close()

    def make_store(self, dimension: int, metric: Metric) -> VectorStore:
        store = PineconeVectorStore(
            index_name=unique_index_name(),
            dimension=dimension,
            metric=metric,
            api_key=API_KEY,
            controller_host=self._server.url,
            create_if_missing=True,
            retry=FAST_RETRY,
            track_writes=True,
        )
        self._opened.append(store)
        return store

    def wait_for_consistency(self, store: VectorStore) -> None:
        assert isinstance(store, PineconeVectorStore)
        store.wait_for_writes(timeout=10)
