"""Recommender request options of the post-ranking step: history (fold-in), policies and explanations.

The fold-in and policies here are minimal test doubles with known answers;
the library's own implementations are tested in their modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest

from two_stage_rec import InvalidInputError, PopularityFallback, Recommender, UnknownUserError
from two_stage_rec.embedders import TableEmbedder
from two_stage_rec.policies import RankedList
from two_stage_rec.stores.memory import InMemoryVectorStore
from two_stage_rec.types import FloatMatrix, FloatVector

DIM = 6
N_ITEMS = 60


class SumFoldIn:
    """The user vector is the (rating-weighted) sum of the history's item vectors, plus the prior."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def fold_in(
        self,
        item_vectors: Sequence[FloatMatrix],
        *,
        ratings: Sequence[FloatVector | None],
        priors: Sequence[FloatVector | None],
    ) -> FloatMatrix:
        self.calls.append(len(item_vectors))
        out = []
        for vectors, weights, prior in zip(item_vectors, ratings, priors, strict=True):
            w = np.ones(len(vectors), np.float32) if weights is None else weights
            base = np.zeros(vectors.shape[1], np.float32) if prior is None else prior
            out.append(base + (w[:, None] * vectors).sum(axis=0))
        return np.asarray(out, dtype=np.float32)


@dataclass(frozen=True)
class Reverse:
    """Reverses the list (a policy whose effect is unmistakable)."""

    def apply(self, ranked: RankedList, k: int) -> RankedList:
        return ranked.take(np.arange(len(ranked))[::-1])


@dataclass(frozen=True)
class DropOdd:
    def apply(self, ranked: RankedList, k: int) -> RankedList:
        return ranked.take([i for i, m in enumerate(ranked.metadata) if m["n"] in range(0, N_ITEMS, 2)])


@dataclass(frozen=True)
class PinFirst:
    item: str
    extra_items: frozenset[str] = frozenset()

    def apply(self, ranked: RankedList, k: int) -> RankedList:
        where = [i for i, item in enumerate(ranked.ids) if item == self.item]
        rest = [i for i in range(len(ranked)) if i not in where]
        return ranked.take(where + rest)


@dataclass(frozen=True)
class VectorNorms:
    """Ranks by item-vector norm; records that it was given vectors."""

    needs_vectors: bool = True

    def apply(self, ranked: RankedList, k: int) -> RankedList:
        assert ranked.vectors is not None
        return ranked.take(np.argsort(-np.linalg.norm(ranked.vectors, axis=1), kind="stable"))


@pytest.fixture()
def setup() -> tuple[Recommender, FloatMatrix, FloatMatrix, SumFoldIn]:
    rng = np.random.default_rng(3)
    items = rng.normal(size=(N_ITEMS, DIM)).astype(np.float32)
    users = rng.normal(size=(3, DIM)).astype(np.float32)
    item_ids = [f"i{n}" for n in range(N_ITEMS)]
    fold_in = SumFoldIn()
    recommender = Recommender(
        user_embedder=TableEmbedder(["u0", "u1", "u2"], users),
        item_embedder=TableEmbedder(item_ids, items),
        store=InMemoryVectorStore(dimension=DIM),
        fallback=PopularityFallback(item_ids),
        fold_in=fold_in,
        user_items={"u0": {"i1", "i2", "i3"}},
    )
    recommender.index_items(item_ids, metadata=[{"n": n} for n in range(N_ITEMS)])
    return recommender, items, users, fold_in


def exact_top(items: FloatMatrix, vector: FloatVector, k: int, skip: Sequence[int] = ()) -> list[str]:
    scores = items @ vector
    order = [int(i) for i in np.argsort(-scores, kind="stable") if int(i) not in skip]
    return [f"i{i}" for i in order[:k]]


def test_new_user_with_history_is_folded_in(setup: tuple[Recommender, FloatMatrix, FloatMatrix, SumFoldIn]) -> None:
    recommender, items, _, fold_in = setup
    got = recommender.recommend("stranger", k=5, history=["i4", "i9"])
    assert [rec.item_id for rec in got] == exact_top(items, items[4] + items[9], 5)
    assert all(rec.folded_in and rec.source == "retrieval" for rec in got)
    assert fold_in.calls == [1]


def test_ratings_weight_the_history(setup: tuple[Recommender, FloatMatrix, FloatMatrix, SumFoldIn]) -> None:
    recommender, items, _, _ = setup
    got = recommender.recommend("stranger", k=5, history={"i4": 2.0, "i9": -1.0})
    assert [rec.item_id for rec in got] == exact_top(items, 2 * items[4] - items[9], 5)


def test_known_user_history_updates_the_trained_vector(
    setup: tuple[Recommender, FloatMatrix, FloatMatrix, SumFoldIn],
) -> None:
    recommender, items, users, _ = setup
    got = recommender.recommend("u1", k=5, history=["i7"])
    assert [rec.item_id for rec in got] == exact_top(items, users[1] + items[7], 5)
    plain = recommender.recommend("u1", k=5)
    assert [rec.item_id for rec in plain] == exact_top(items, users[1], 5)
    assert not any(rec.folded_in for rec in plain)


def test_batch_mixes_folded_known_and_fallback_users(
    setup: tuple[Recommender, FloatMatrix, FloatMatrix, SumFoldIn],
) -> None:
    recommender, items, users, fold_in = setup
    got = recommender.recommend_batch(
        ["u0", "new", "other", "u2"], k=4, history={"new": ["i5"], "u2": ["i6", "i6", "i8"]}
    )
    assert [r.item_id for r in got[0]] == exact_top(items, users[0], 4)
    assert [r.item_id for r in got[1]] == exact_top(items, items[5], 4)
    assert [r.source for r in got[2]] == ["fallback"] * 4
    assert [r.item_id for r in got[3]] == exact_top(items, users[2] + items[6] + items[8], 4)  # i6 counted once
    assert fold_in.calls == [2]


def test_history_of_unstored_items_only_is_answered_as_without_one(
    setup: tuple[Recommender, FloatMatrix, FloatMatrix, SumFoldIn],
) -> None:
    recommender, _, _, fold_in = setup
    got = recommender.recommend("stranger", k=3, history=["not-stored"])
    assert [rec.source for rec in got] == ["fallback"] * 3
    assert fold_in.calls == []


def test_history_errors(setup: tuple[Recommender, FloatMatrix, FloatMatrix, SumFoldIn]) -> None:
    recommender, _, _, _ = setup
    with pytest.raises(InvalidInputError, match="empty"):
        recommender.recommend("x", history=[])
    with pytest.raises(InvalidInputError, match="non-finite"):
        recommender.recommend("x", history={"i1": float("nan")})
    with pytest.raises(InvalidInputError):
        recommender.recommend("x", history=["i1", ""])
    with pytest.raises(InvalidInputError, match="one history"):
        recommender.recommend_batch(["a", "b"], history=[["i1"]])
    recommender.fold_in = None
    with pytest.raises(InvalidInputError, match="no fold_in"):
        recommender.recommend("u0", history=["i1"])


def test_unknown_user_without_fallback_raises_unless_folded_in() -> None:
    items = np.eye(DIM, dtype=np.float32)
    ids = [f"i{n}" for n in range(DIM)]
    recommender = Recommender(
        user_embedder=TableEmbedder(["u"], items[:1]),
        store=InMemoryVectorStore(dimension=DIM),
        item_embedder=TableEmbedder(ids, items),
        fold_in=SumFoldIn(),
    )
    recommender.index_items(ids)
    assert recommender.recommend("new", k=1, history=["i3"])[0].item_id == "i3"
    with pytest.raises(UnknownUserError):
        recommender.recommend("new", k=1)
    with pytest.raises(UnknownUserError):
        recommender.recommend("new", k=1, history=["gone"])


def test_policies_choose_among_all_candidates(setup: tuple[Recommender, FloatMatrix, FloatMatrix, SumFoldIn]) -> None:
    recommender, items, users, _ = setup
    got = recommender.recommend("u1", k=3, candidates=10, policies=[Reverse()])
    assert [rec.item_id for rec in got] == exact_top(items, users[1], 10)[::-1][:3]
    kept = recommender.recommend("u1", k=5, candidates=20, policies=[DropOdd()])
    expected = [i for i in exact_top(items, users[1], 20) if int(i[1:]) % 2 == 0][:5]
    assert [rec.item_id for rec in kept] == expected


def test_policies_apply_to_fallback_lists(setup: tuple[Recommender, FloatMatrix, FloatMatrix, SumFoldIn]) -> None:
    recommender, _, _, _ = setup
    got = recommender.recommend("stranger", k=3, candidates=6, policies=[Reverse()])
    assert [rec.item_id for rec in got] == ["i5", "i4", "i3"]


def test_policy_vectors_and_extra_items(setup: tuple[Recommender, FloatMatrix, FloatMatrix, SumFoldIn]) -> None:
    recommender, items, users, _ = setup
    by_norm = recommender.recommend("u1", k=4, candidates=12, policies=[VectorNorms()])
    pool = exact_top(items, users[1], 12)
    expected = sorted(pool, key=lambda i: -float(np.linalg.norm(items[int(i[1:])])))[:4]
    assert [rec.item_id for rec in by_norm] == expected
    far = exact_top(items, -users[1], 1)[0]  # the worst item for u1: never retrieved among 10
    pinned = recommender.recommend("u1", k=3, candidates=10, policies=[PinFirst(far, frozenset({far}))])
    assert pinned[0].item_id == far and pinned[0].source == "pinned" and np.isnan(pinned[0].score)
    assert [rec.item_id for rec in pinned[1:]] == pool[:2]
    blocked = recommender.recommend("u1", k=3, candidates=10, exclude={far}, policies=[PinFirst(far, frozenset({far}))])
    assert far not in [rec.item_id for rec in blocked]
    filtered = recommender.recommend(
        "u1", k=3, candidates=10, filter={"n": {"$ne": int(far[1:])}}, policies=[PinFirst(far, frozenset({far}))]
    )
    assert far not in [rec.item_id for rec in filtered]


def test_policies_must_be_policies(setup: tuple[Recommender, FloatMatrix, FloatMatrix, SumFoldIn]) -> None:
    recommender, _, _, _ = setup
    with pytest.raises(InvalidInputError, match="apply"):
        recommender.recommend("u1", policies=[object()])  # type: ignore[list-item]


def test_explanations_name_the_nearest_history_items(
    setup: tuple[Recommender, FloatMatrix, FloatMatrix, SumFoldIn],
) -> None:
    recommender, items, _, _ = setup
    got = recommender.recommend("u0", k=4, candidates=10, explain=True, history=["i20"])
    plain = recommender.recommend("u0", k=4, candidates=10, history=["i20"])
    assert [r.item_id for r in got] == [r.item_id for r in plain]
    unit = items / np.linalg.norm(items, axis=1, keepdims=True)
    history = ["i1", "i2", "i3", "i20"]
    for rank, rec in enumerate(got, start=1):
        assert rec.explanation is not None
        assert rec.explanation.candidate_source == "index"
        assert rec.explanation.retrieval_rank == rank  # no reranker: retrieval order
        n = int(rec.item_id[1:])
        similarity = {h: float(unit[n] @ unit[int(h[1:])]) for h in history}
        expected = sorted(history, key=lambda h: -similarity[h])[:2]
        assert [item for item, _ in rec.explanation.because] == expected
        for item, value in rec.explanation.because:
            assert value == pytest.approx(similarity[item], abs=1e-5)
    assert all(r.explanation is None for r in plain)


def test_explanations_for_fallback_users_without_history(
    setup: tuple[Recommender, FloatMatrix, FloatMatrix, SumFoldIn],
) -> None:
    recommender, _, _, _ = setup
    got = recommender.recommend("stranger", k=2, explain=True)
    explanations = [rec.explanation for rec in got]
    assert all(e is not None for e in explanations)
    assert [(e.candidate_source, e.because, e.retrieval_rank) for e in explanations if e is not None] == [
        ("fallback", (), None)
    ] * 2
