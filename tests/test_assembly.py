"""two_stage_rec.assembly: a bundle and a store in, the served recommender out.

Every expectation is checked against a :class:`Recommender` composed by hand
from the same parts over the exact in-memory store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from test_bundle import DIMENSION, ITEMS, POPULARITY_ORDER, USERS, make_parts, write_synthetic_bundle
from two_stage_rec import PopularityFallback, Recommender
from two_stage_rec import assembly as assembly_module
from two_stage_rec.assembly import AssembledRecommender, assemble, popularity_fallback
from two_stage_rec.bundle import Bundle, read_bundle
from two_stage_rec.embedders.known import KnownKeysEmbedder
from two_stage_rec.embedders.table import TableEmbedder
from two_stage_rec.errors import (
    DimensionMismatchError,
    InvalidInputError,
    StoreUnavailableError,
    UnknownKeyError,
    UnknownUserError,
)
from two_stage_rec.protocols import Closeable, EventuallyConsistent
from two_stage_rec.recommender import Recommendation
from two_stage_rec.stores.memory import InMemoryVectorStore

K = 5


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_bundle(tmp_path_factory.mktemp("assembly") / "models", recommended="blend")


@pytest.fixture(scope="module")
def bundle(bundle_path: Path) -> Bundle:
    return read_bundle(bundle_path)


@pytest.fixture
def served(bundle: Bundle) -> Iterator[AssembledRecommender]:
    with assemble(bundle, store="memory") as recommender:
        yield recommender


def by_hand(bundle: Bundle, reranker_name: str) -> Recommender:
    """The recommender assemble() should build: same towers, an exact store, the named reranker."""
    store = InMemoryVectorStore(dimension=DIMENSION)
    recommender = Recommender(
        user_embedder=bundle.user_embedder,
        item_embedder=bundle.item_embedder,
        store=store,
        reranker=bundle.rerankers[reranker_name],  # type: ignore[index]
    )
    recommender.index_items(list(bundle.catalogue.item_ids), metadata=bundle.catalogue.metadata)
    return recommender


def pairs(recommendations: list[Recommendation]) -> list[tuple[str, float]]:
    return [(r.item_id, r.score) for r in recommendations]


def assert_same(got: list[Recommendation], expected: list[Recommendation]) -> None:
    assert [r.item_id for r in got] == [r.item_id for r in expected]
    np.testing.assert_allclose([r.score for r in got], [r.score for r in expected], rtol=1e-5, atol=1e-6)
    assert [r.source for r in got] == [r.source for r in expected]


TRAINED_USERS = USERS[:5]  # USERS[5] is in the towers but has no training events


# --------------------------------------------------------------------------- stores


def test_memory_and_faiss_serve_the_same_recommendations(bundle_path: Path) -> None:
    pytest.importorskip("faiss", reason="the faiss store needs the 'faiss' extra")
    with assemble(bundle_path, store="memory") as memory, assemble(bundle_path, store="faiss") as faiss:
        assert type(faiss.store).__name__ == "FaissVectorStore" and memory.indexed == faiss.indexed == len(ITEMS)
        for rerank in (True, False):
            got = faiss.recommend_batch(USERS, k=K, rerank=rerank)
            expected = memory.recommend_batch(USERS, k=K, rerank=rerank)
            for row in range(len(USERS)):
                assert_same(got[row], expected[row])
                np.testing.assert_allclose(
                    [r.retrieval_score for r in got[row]], [r.retrieval_score for r in expected[row]], rtol=1e-5
                )


def test_a_store_instance_is_used_and_indexed(bundle: Bundle) -> None:
    store = InMemoryVectorStore(dimension=DIMENSION)
    with assemble(bundle, store=store) as served:
        assert served.store is store and served.indexed == len(store) == len(ITEMS)
        assert store.fetch(["sku-01"]).metadata[0] == bundle.catalogue.metadata_of("sku-01")
        expected = by_hand(bundle, "blend")
        for user in TRAINED_USERS:
            assert_same(served.recommend(user, k=K), expected.recommend(user, k=K, exclude=served.seen(user)))


def test_index_false_uses_a_prefilled_store(bundle: Bundle) -> None:
    store = InMemoryVectorStore(dimension=DIMENSION)
    store.upsert(list(ITEMS), bundle.item_embedder.embed(ITEMS), list(bundle.catalogue.metadata))
    served = assemble(bundle, store=store, index=False)
    assert served.indexed == 0 and len(store) == len(ITEMS)
    with assemble(bundle, store="memory") as reference:
        for user in USERS:
            assert_same(served.recommend(user, k=K), reference.recommend(user, k=K))


def test_a_store_of_another_dimension_is_refused(bundle: Bundle) -> None:
    with pytest.raises(DimensionMismatchError):
        assemble(bundle, store=InMemoryVectorStore(dimension=DIMENSION + 1))


def test_a_path_and_a_loaded_bundle_serve_the_same(bundle_path: Path, bundle: Bundle) -> None:
    with assemble(bundle_path, store="memory") as from_path, assemble(bundle, store="memory") as from_bundle:
        assert from_path.bundle.path == bundle_path
        for user in USERS:
            assert_same(from_path.recommend(user, k=K), from_bundle.recommend(user, k=K))


def test_a_bundle_built_in_memory(bundle: Bundle) -> None:
    """Models made elsewhere: the parts passed to Bundle directly, no directory."""
    parts = make_parts()
    in_memory = Bundle(
        manifest=bundle.manifest,
        user_embedder=TableEmbedder(parts["user_keys"], parts["user_vectors"]),
        item_embedder=TableEmbedder(parts["item_keys"], parts["item_vectors"]),
        catalogue=parts["catalogue"],
        seen_items={user: frozenset(items) for user, items in parts["train"].items_by_user().items()},
        popularity=parts["train"].item_counts(),
        scoring=parts["scoring"],
        blend=parts["blend"],
    )
    assert "in memory" in repr(in_memory)
    with assemble(in_memory, store="memory") as served, assemble(bundle, store="memory") as reference:
        for user in [*USERS, "c-new"]:
            assert_same(served.recommend(user, k=K), reference.recommend(user, k=K))


class FailingStore(InMemoryVectorStore):
    """A store that is down when written to, and counts how often it was closed."""

    closed = 0

    def upsert(self, ids: object, vectors: object, metadata: object = None) -> int:
        raise StoreUnavailableError("the store is down")

    def close(self) -> None:
        self.closed += 1


def test_a_store_opened_by_name_is_closed_when_indexing_fails(bundle: Bundle, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[FailingStore] = []

    def open_failing_store(name: str, **options: Any) -> FailingStore:
        opened.append(FailingStore(dimension=options["dimension"]))
        return opened[-1]

    monkeypatch.setattr(assembly_module, "open_store", open_failing_store)
    with pytest.raises(StoreUnavailableError):
        assemble(bundle, store="memory")
    assert [store.closed for store in opened] == [1]
    # A store the caller passed in stays the caller's to close.
    mine = FailingStore(dimension=DIMENSION)
    with pytest.raises(StoreUnavailableError):
        assemble(bundle, store=mine)
    assert mine.closed == 0


def test_context_manager_closes_the_store(bundle: Bundle) -> None:
    class ClosingStore(InMemoryVectorStore):
        closed = 0

        def close(self) -> None:
            self.closed += 1

    store = ClosingStore(dimension=DIMENSION)
    with assemble(bundle, store=store) as served:
        assert "AssembledRecommender(" in repr(served) and store.closed == 0
    assert store.closed == 1


def test_an_eventually_consistent_store_is_waited_for_after_indexing(bundle: Bundle) -> None:
    class SlowToShowStore(InMemoryVectorStore):
        def __init__(self, dimension: int) -> None:
            super().__init__(dimension=dimension)
            self.waited_for: list[tuple[int, int]] = []

        def wait_until_count(self, count: int) -> int:
            self.waited_for.append((count, len(self)))
            return len(self)

    store = SlowToShowStore(DIMENSION)
    assert isinstance(store, EventuallyConsistent) and not isinstance(store, Closeable)
    with assemble(bundle, store=store) as served:
        assert store.waited_for == [(served.indexed, served.indexed)]  # after the last write
    with assemble(bundle, store=SlowToShowStore(DIMENSION), index=False) as served:
        assert served.store.waited_for == []  # type: ignore[attr-defined]  # nothing written, nothing to wait for


# --------------------------------------------------------------------------- rerankers


def test_the_recommended_reranker_is_the_default(served: AssembledRecommender, bundle: Bundle) -> None:
    assert bundle.manifest.recommended == "blend"
    assert served.reranker_name == "blend" and served.recommender.reranker is bundle.blend
    expected = by_hand(bundle, "blend")
    for user in TRAINED_USERS:
        got = served.recommend(user, k=K)
        assert {r.source for r in got} == {"reranked"}
        assert_same(got, expected.recommend(user, k=K, exclude=served.seen(user)))


@pytest.mark.parametrize("name", ["none", "scoring", "blend"])
def test_each_reranker_by_name(bundle: Bundle, name: str) -> None:
    expected = by_hand(bundle, name)
    with assemble(bundle, store="memory", reranker=name) as served:  # type: ignore[arg-type]
        assert served.reranker_name == name
        for user in TRAINED_USERS:
            got = served.recommend(user, k=K, candidates=8)
            assert_same(got, expected.recommend(user, k=K, candidates=8, exclude=served.seen(user)))
            assert {r.source for r in got} == {"retrieval" if name == "none" else "reranked"}


def test_the_rerankers_rank_differently(bundle: Bundle) -> None:
    """Otherwise the test above could not tell the rerankers apart."""
    rankings = {
        name: tuple(r.item_id for r in by_hand(bundle, name).recommend("c-1f9a", k=K, candidates=len(ITEMS)))
        for name in ("none", "scoring", "blend")
    }
    assert len(set(rankings.values())) == 3


def test_rerank_false_ranks_by_retrieval(served: AssembledRecommender, bundle: Bundle) -> None:
    expected = by_hand(bundle, "none")
    for user in TRAINED_USERS:
        assert_same(served.recommend(user, k=K, rerank=False), expected.recommend(user, k=K, exclude=served.seen(user)))


def test_unknown_reranker_and_store_names_list_the_choices(bundle: Bundle, bundle_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="choose one of recommended, none, scoring, blend"):
        assemble(bundle, store="memory", reranker="fancy")  # type: ignore[arg-type]
    choices = r"unknown store 'redis'; choose one of .*faiss, memory, pgvector, pinecone"
    with pytest.raises(InvalidInputError, match=choices):
        assemble(bundle_path, store="redis")


def test_a_reranker_the_bundle_lacks_is_refused(tmp_path: Path) -> None:
    path = write_synthetic_bundle(tmp_path / "models", recommended="scoring", blend=None)
    with pytest.raises(
        InvalidInputError, match=r"'blend' is not in this bundle; choose one of recommended, none, scoring$"
    ):
        assemble(path, store="memory", reranker="blend")
    with assemble(path, store="memory") as served:
        assert served.reranker_name == "scoring"


# --------------------------------------------------------------------------- seen items


def test_seen_items_are_excluded_by_default(served: AssembledRecommender, bundle: Bundle) -> None:
    for user in TRAINED_USERS:
        seen = served.seen(user)
        assert seen == bundle.seen_items[user] and seen
        everything = served.recommend(user, k=len(ITEMS), candidates=len(ITEMS))
        assert not {r.item_id for r in everything} & seen
        assert len(everything) == len(ITEMS) - len(seen)
        kept = served.recommend(user, k=len(ITEMS), candidates=len(ITEMS), include_seen=True)
        assert {r.item_id for r in kept} == set(ITEMS)


def test_exclude_adds_to_the_seen_items(served: AssembledRecommender) -> None:
    user = "c-1f9a"
    first = served.recommend(user, k=1)[0].item_id
    again = served.recommend(user, k=len(ITEMS), candidates=len(ITEMS), exclude={first})
    assert first not in {r.item_id for r in again}
    assert not {r.item_id for r in again} & served.seen(user)
    batch = served.recommend_batch([user, user], k=3, exclude=[{first}, ()])
    assert first not in {r.item_id for r in batch[0]} and batch[1][0].item_id == first
    with pytest.raises(InvalidInputError, match="2 exclusion sets for 1 users"):
        served.recommend_batch([user], exclude=[(), ()])


def test_a_user_without_training_events_is_served_by_the_towers(served: AssembledRecommender) -> None:
    assert served.seen("c-6f00") == frozenset()
    assert served.is_known("c-1f9a") and not served.is_known("c-new")
    assert {r.source for r in served.recommend("c-6f00", k=K)} == {"reranked"}


# --------------------------------------------------------------------------- unknown users


def test_unknown_users_get_the_popular_items(served: AssembledRecommender, bundle: Bundle) -> None:
    got = served.recommend("c-new", k=len(ITEMS))
    assert {r.source for r in got} == {"fallback"}
    # Items with training events by count, then the rest in catalogue order.
    rest = [item for item in ITEMS if item not in POPULARITY_ORDER]
    assert [r.item_id for r in got] == [*POPULARITY_ORDER, *rest]
    assert [r.score for r in got] == [float(bundle.popularity.get(r.item_id, 0)) for r in got]
    assert all(np.isnan(r.retrieval_score) for r in got)
    assert [r.metadata for r in got] == [bundle.catalogue.metadata_of(r.item_id) for r in got]
    batch = served.recommend_batch(["c-1f9a", "c-new"], k=3)
    assert {r.source for r in batch[0]} == {"reranked"} and [r.item_id for r in batch[1]] == POPULARITY_ORDER[:3]


def test_without_fallback_unknown_users_raise(bundle: Bundle) -> None:
    with assemble(bundle, store="memory", fallback=False) as served:
        assert served.recommender.fallback is None
        with pytest.raises(UnknownUserError, match="c-new"):
            served.recommend("c-new")
        assert served.recommend("c-1f9a", k=1)


def test_popularity_fallback_ranks_the_catalogue(bundle: Bundle) -> None:
    fallback = popularity_fallback(bundle)
    top = fallback.top(len(ITEMS))
    assert [item for item, _, _ in top][: len(POPULARITY_ORDER)] == POPULARITY_ORDER
    assert [score for _, score, _ in top] == [4.0, 3.0, 2.0, 1.0, 1.0, 1.0, *[0.0] * (len(ITEMS) - 6)]


# --------------------------------------------------------------------------- filters and labels


@pytest.mark.parametrize(
    "metadata_filter",
    [
        {"genre": {"$eq": "odd"}},
        {"year": {"$gte": 1996}},
        {"tags": {"$in": ["new"]}},
        {"$and": [{"in_stock": True}, {"price": {"$lt": 7.0}}]},
    ],
)
def test_filters_on_catalogue_metadata(served: AssembledRecommender, bundle: Bundle, metadata_filter: dict) -> None:
    from two_stage_rec.filters import compile_filter

    matches = compile_filter(metadata_filter)
    allowed = {item for item in ITEMS if matches(bundle.catalogue.metadata_of(item))}
    assert 0 < len(allowed) < len(ITEMS)
    for user in ["c-1f9a", "c-6f00", "c-new"]:  # reranked, never trained on, fallback
        got = served.recommend(user, k=len(ITEMS), candidates=len(ITEMS), filter=metadata_filter)
        assert {r.item_id for r in got} == allowed - served.seen(user)
        assert all(matches(r.metadata) for r in got)


def test_labels_come_from_the_catalogue(served: AssembledRecommender) -> None:
    assert served.label("sku-01") == "Item 1"
    assert served.label("sku-12") == "sku-12"  # no title
    assert served.label("sku-99") == "sku-99"


# --------------------------------------------------------------------------- ported from test_pipeline.py


def test_known_keys_embedder_raises_for_unknown_keys_and_delegates_the_rest() -> None:
    # "zeros" stands in for a SavedModel's silent out-of-vocabulary vector.
    inner = TableEmbedder(["a", "b"], np.eye(2), unknown="zeros")
    wrapped = KnownKeysEmbedder(inner, {"a", "b"})
    assert wrapped.dimension == 2
    np.testing.assert_array_equal(wrapped.embed(["b", "a"]), inner.embed(["b", "a"]))
    with pytest.raises(UnknownKeyError) as caught:
        wrapped.embed(["a", "x", "y"])
    assert caught.value.keys == ["x", "y"]


def test_unknown_users_reach_the_fallback_through_the_wrapper() -> None:
    store = InMemoryVectorStore(dimension=2)
    store.upsert(["i1", "i2"], np.eye(2))
    recommender = Recommender(
        user_embedder=KnownKeysEmbedder(TableEmbedder(["a"], [[1.0, 0.0]], unknown="zeros"), {"a"}),
        store=store,
        fallback=PopularityFallback(["i2", "i1"]),
    )
    assert [r.source for r in recommender.recommend("a", k=1)] == ["retrieval"]
    assert [(r.item_id, r.source) for r in recommender.recommend("new", k=1)] == [("i2", "fallback")]


def test_history_is_folded_in_and_left_out(served: AssembledRecommender, bundle: Bundle) -> None:
    history = list(bundle.catalogue.item_ids[:3])
    got = served.recommend("a-user-never-trained", k=5, history=history)
    assert got and all(rec.folded_in and rec.source != "fallback" for rec in got)
    assert not set(history) & {rec.item_id for rec in got}
    with_seen = served.recommend("a-user-never-trained", k=len(ITEMS), history=history, include_seen=True)
    assert len(with_seen) == len(ITEMS)
    plain = served.recommend("a-user-never-trained", k=5)
    assert all(rec.source == "fallback" and not rec.folded_in for rec in plain)


def test_fold_in_false_refuses_histories(bundle: Bundle) -> None:
    with assemble(bundle, store="memory", fold_in=False) as served:
        assert served.recommender.fold_in is None
        with pytest.raises(InvalidInputError, match="no fold_in"):
            served.recommend("someone", history=[bundle.catalogue.item_ids[0]])
