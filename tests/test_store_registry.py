"""two_stage_rec.stores.registry: stores by name, built-in and registered by third parties.

The third-party test registers a real package through the entry-point
mechanism: a module and a ``*.dist-info`` directory on ``sys.path``, found by
``importlib.metadata`` exactly as an installed distribution would be.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import distribution
from pathlib import Path

import numpy as np
import pytest

from test_bundle import DIMENSION, USERS, write_synthetic_bundle
from two_stage_rec.assembly import assemble
from two_stage_rec.errors import InvalidInputError
from two_stage_rec.protocols import VectorStore
from two_stage_rec.stores.memory import InMemoryVectorStore
from two_stage_rec.stores.registry import BUILTIN_STORES, ENTRY_POINT_GROUP, open_store, store_names

THIRD_PARTY_MODULE = "tsr_thirdparty_store"

THIRD_PARTY_SOURCE = '''
"""A store a third party ships: it wraps the in-memory store and adds a setting of its own."""

from two_stage_rec.stores.memory import InMemoryVectorStore


class ThirdPartyStore:
    def __init__(self, *, dimension, metric="dotproduct", label="unlabelled"):
        self.label = label
        self._inner = InMemoryVectorStore(dimension=dimension, metric=metric)

    dimension = property(lambda self: self._inner.dimension)
    metric = property(lambda self: self._inner.metric)
    is_exact = property(lambda self: self._inner.is_exact)
    supports_persistence = property(lambda self: False)

    def upsert(self, ids, vectors, metadata=None):
        return self._inner.upsert(ids, vectors, metadata)

    def query(self, vectors, top_k, *, filter=None, include_values=False, include_metadata=False):
        return self._inner.query(
            vectors, top_k, filter=filter, include_values=include_values, include_metadata=include_metadata
        )

    def fetch(self, ids):
        return self._inner.fetch(ids)

    def delete(self, ids):
        self._inner.delete(ids)

    def describe(self):
        return self._inner.describe()


def not_a_store(*, dimension, metric="dotproduct"):
    return {"dimension": dimension}
'''

THIRD_PARTY_ENTRY_POINTS = f"""
[{ENTRY_POINT_GROUP}]
thirdparty = {THIRD_PARTY_MODULE}:ThirdPartyStore
notastore = {THIRD_PARTY_MODULE}:not_a_store
memory = {THIRD_PARTY_MODULE}:ThirdPartyStore
"""


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An "installed" third-party distribution declaring stores in the two_stage_rec.stores group."""
    site = tmp_path / "site-packages"
    (site / THIRD_PARTY_MODULE).mkdir(parents=True)
    (site / THIRD_PARTY_MODULE / "__init__.py").write_text(THIRD_PARTY_SOURCE, encoding="utf-8")
    dist_info = site / "tsr_thirdparty_store-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tsr-thirdparty-store\nVersion: 1.0\n", encoding="utf-8"
    )
    (dist_info / "entry_points.txt").write_text(textwrap.dedent(THIRD_PARTY_ENTRY_POINTS), encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop(THIRD_PARTY_MODULE, None)


def works(store: VectorStore, dimension: int) -> None:
    """A store that answers a query with what was written (the full contract is in tests/test_store_contract*)."""
    assert isinstance(store, VectorStore) and store.dimension == dimension
    vectors = np.eye(dimension, dtype=np.float32)
    store.upsert([f"id-{row}" for row in range(dimension)], vectors, [{"row": row} for row in range(dimension)])
    result = store.query(vectors[[1]], 2, include_metadata=True)
    assert result.ids[0, 0] == "id-1" and result.metadata is not None and result.metadata[0][0] == {"row": 1}


# --------------------------------------------------------------------------- built-in stores


def test_built_in_names() -> None:
    assert set(BUILTIN_STORES) == {"faiss", "memory", "pgvector", "pinecone"}
    names = store_names()
    assert {"faiss", "memory", "pinecone"} <= set(names) and names == sorted(names)


def test_the_package_declares_its_stores_as_entry_points() -> None:
    declared = {
        entry.name: entry.value
        for entry in distribution("two-stage-rec").entry_points
        if entry.group == ENTRY_POINT_GROUP
    }
    assert declared == BUILTIN_STORES


def test_open_memory() -> None:
    store = open_store("memory", dimension=3, metric="cosine")
    assert isinstance(store, InMemoryVectorStore) and store.metric == "cosine"
    works(store, 3)


def test_open_faiss_with_settings() -> None:
    pytest.importorskip("faiss", reason="the faiss store needs the 'faiss' extra")
    store = open_store("faiss", dimension=4)
    assert type(store).__name__ == "FaissVectorStore" and store.is_exact
    works(store, 4)
    hnsw = open_store("faiss", dimension=4, settings={"index": "hnsw"})
    assert not hnsw.is_exact
    works(hnsw, 4)


def test_unknown_name_lists_the_choices() -> None:
    choices = r"unknown store 'redis'; choose one of faiss, memory, pgvector, pinecone"
    with pytest.raises(InvalidInputError, match=choices):
        open_store("redis", dimension=4)


def test_bad_settings() -> None:
    with pytest.raises(InvalidInputError, match=r"store 'memory' does not accept settings \['colour'\]"):
        open_store("memory", dimension=4, settings={"colour": "blue"})
    with pytest.raises(InvalidInputError, match="dimension"):
        open_store("memory", dimension=0)
    pytest.importorskip("faiss", reason="the faiss store needs the 'faiss' extra")
    with pytest.raises(InvalidInputError, match="index must be one of"):
        open_store("faiss", dimension=4, settings={"index": "bogus"})


def test_dimension_and_metric_are_arguments_not_settings() -> None:
    with pytest.raises(InvalidInputError, match=r"pass metric as open_store's own argument"):
        open_store("memory", dimension=2, settings={"metric": "cosine"})


def test_settings_of_none_are_left_to_the_store_default() -> None:
    assert open_store("memory", dimension=2, settings={"metric": None}).metric == "dotproduct"
    pytest.importorskip("faiss", reason="the faiss store needs the 'faiss' extra")
    assert open_store("faiss", dimension=2, settings={"hnsw": None, "ivf": None}).is_exact


# --------------------------------------------------------------------------- a third party


def test_a_third_party_store_is_registered_through_its_entry_point(third_party: Path) -> None:
    assert "thirdparty" in store_names() and "notastore" in store_names()
    assert THIRD_PARTY_MODULE not in sys.modules  # listing names imports nothing
    store = open_store("thirdparty", dimension=3, settings={"label": "hello"})
    assert type(store).__name__ == "ThirdPartyStore" and store.label == "hello"  # type: ignore[attr-defined]
    works(store, 3)
    with pytest.raises(InvalidInputError, match="does not accept settings"):
        open_store("thirdparty", dimension=3, settings={"colour": "blue"})


def test_a_third_party_cannot_replace_a_built_in_store(third_party: Path) -> None:
    assert store_names().count("memory") == 1
    assert isinstance(open_store("memory", dimension=2), InMemoryVectorStore)


def test_a_factory_that_returns_no_store_is_refused(third_party: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"'notastore' \(tsr_thirdparty_store:not_a_store\) did not return"):
        open_store("notastore", dimension=2)


def test_assemble_serves_from_a_third_party_store(third_party: Path, tmp_path: Path) -> None:
    path = write_synthetic_bundle(tmp_path / "models")
    with (
        assemble(path, store="thirdparty", store_settings={"label": "shop"}) as served,
        assemble(path, store="memory") as reference,
    ):
        assert type(served.store).__name__ == "ThirdPartyStore"
        for user in [*USERS, "c-new"]:
            got, expected = served.recommend(user, k=4), reference.recommend(user, k=4)
            assert [r.item_id for r in got] == [r.item_id for r in expected]
            np.testing.assert_allclose([r.score for r in got], [r.score for r in expected], rtol=1e-6)


def test_without_the_distribution_the_name_is_unknown() -> None:
    assert "thirdparty" not in store_names()


# --------------------------------------------------------------------------- pinecone


def test_pinecone_needs_an_index(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("PINECONE_HOST", "PINECONE_INDEX"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(InvalidInputError, match=r"needs an index: the setting index_name or host"):
        open_store("pinecone", dimension=4, settings={"api_key": "unused"})


def test_open_pinecone_against_the_local_server(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pinecone", reason="the pinecone store needs the 'pinecone' extra")
    from two_stage_rec.stores.pinecone import PineconeVectorStore
    from two_stage_rec.testing.pinecone_server import PineconeTestServer

    key = "pcsk_REGISTRY-TEST-5e1d"
    for variable in ("PINECONE_API_KEY", "PINECONE_HOST", "PINECONE_INDEX"):
        monkeypatch.delenv(variable, raising=False)
    with PineconeTestServer(api_key=key) as server:
        server.create_index("by-host", dimension=DIMENSION)
        store = open_store(
            "pinecone", dimension=DIMENSION, settings={"host": server.index_host("by-host"), "api_key": key}
        )
        try:
            assert isinstance(store, PineconeVectorStore)
            works(store, DIMENSION)
            assert set(server.stored("by-host")) == {f"id-{row}" for row in range(DIMENSION)}
        finally:
            store.close()  # type: ignore[attr-defined]

        # The same from the environment, as a service is configured.
        server.create_index("from-env", dimension=DIMENSION)
        monkeypatch.setenv("PINECONE_HOST", server.index_host("from-env"))
        monkeypatch.setenv("PINECONE_API_KEY", key)
        with open_store("pinecone", dimension=DIMENSION) as from_env:  # type: ignore[attr-defined]
            works(from_env, DIMENSION)
        assert len(server.stored("from-env")) == DIMENSION


def test_the_command_line_serves_from_a_third_party_store(third_party: Path, tmp_path: Path) -> None:
    """`--store thirdparty` is a valid choice of every command once the distribution is installed."""
    path = write_synthetic_bundle(tmp_path / "models")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(third_party), *sys.path])}
    command = [sys.executable, "-c", "from two_stage_rec.cli import main; main()", "recommend"]
    command += ["--models", str(path), "--user", USERS[0], "--k", "4"]
    answers = {}
    stores = {"thirdparty": ["--store", "thirdparty", "--store-setting", "label=shop"], "memory": ["--store", "memory"]}
    for store, options in stores.items():
        completed = subprocess.run(
            [*command, *options],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        answers[store] = completed.stdout
    assert "sku-" in answers["memory"] and answers["thirdparty"] == answers["memory"]
