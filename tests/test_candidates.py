"""Candidate sources and the merged pool, against answers computed by hand or with plain numpy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from two_stage_rec.candidates import (
    CandidateSource,
    ItemItemSource,
    PopularitySource,
    TowerSource,
    candidate_recall,
    merge_candidates,
)
from two_stage_rec.datasets import Interactions
from two_stage_rec.embedders.table import TableEmbedder
from two_stage_rec.errors import InvalidInputError

ITEMS = [f"i{j}" for j in range(6)]


def log() -> Interactions:
    pairs = [("a", "i0"), ("a", "i1"), ("a", "i2"), ("b", "i1"), ("b", "i2"), ("c", "i0"), ("c", "i3"), ("d", "i4")]
    return Interactions.from_arrays(user_ids=[u for u, _ in pairs], item_ids=[i for _, i in pairs])


def tower() -> TowerSource:
    rng = np.random.default_rng(0)
    users = TableEmbedder(["a", "b", "c", "d"], rng.normal(size=(4, 3)).astype(np.float32))
    items = TableEmbedder(ITEMS, rng.normal(size=(6, 3)).astype(np.float32))
    return TowerSource(users, items, ITEMS)


def test_ease_matches_the_closed_form() -> None:
    source = ItemItemSource.fit(log(), ITEMS, l2=2.0)
    x = np.zeros((4, 6))
    for user, item in zip(log().user_ids, log().item_ids, strict=True):
        x["abcd".index(user), ITEMS.index(item)] = 1.0
    p = np.linalg.inv(x.T @ x + 2.0 * np.eye(6))
    b = np.eye(6) - p / np.diag(p)[None, :]
    np.testing.assert_allclose(source.weights, b, atol=1e-6)
    assert np.all(np.diag(source.weights) == 0.0)
    np.testing.assert_allclose(source.scores(["a", "c"]), (x[[0, 2]] @ b).astype(np.float32), atol=1e-5)
    assert np.all(source.scores(["stranger"]) == 0.0)


def test_ease_rejects_a_non_positive_penalty() -> None:
    with pytest.raises(InvalidInputError):
        ItemItemSource.fit(log(), ITEMS, l2=0.0)


def test_tower_source_is_the_dot_product() -> None:
    source = tower()
    np.testing.assert_allclose(source.scores(["a"]), source.user_vectors(["a"]) @ source.item_vectors.T, rtol=1e-6)


def test_popularity_source_counts_events() -> None:
    scores = PopularitySource(log(), ITEMS).scores(["a", "zz"])
    np.testing.assert_allclose(scores[0], np.log1p([2, 2, 2, 1, 1, 0]))
    np.testing.assert_array_equal(scores[0], scores[1])


def test_merge_takes_each_sources_best_once_and_scores_every_candidate() -> None:
    sources: dict[str, CandidateSource] = {
        "tower": tower(),
        "item_item": ItemItemSource.fit(log(), ITEMS, l2=1.0),
        "pop": PopularitySource(log(), ITEMS),
    }
    users = ["a", "b", "c", "d"]
    seen = log().items_by_user()
    merged = merge_candidates(sources, {"tower": 2, "item_item": 2}, users, exclude=[seen[u] for u in users])
    dense = {name: s.scores(users) for name, s in sources.items()}
    for row, user in enumerate(users):
        real = merged.columns[row, : merged.counts[row]]
        assert len(set(real.tolist())) == real.size  # no duplicates
        assert not {ITEMS[c] for c in real} & seen[user]
        allowed = [c for c in range(6) if ITEMS[c] not in seen[user]]
        best_tower = sorted(allowed, key=lambda c: (-dense["tower"][row, c], c))[:2]
        assert real[:2].tolist() == best_tower  # the first source's best come first
        for name in sources:
            np.testing.assert_array_equal(merged.scores[name][row, : real.size], dense[name][row, real])
            assert np.isnan(merged.scores[name][row, real.size :]).all()
        assert merged.retrieved_by["tower"][row, :2].all()
        assert not merged.retrieved_by["pop"].any()
    assert merged.columns.shape[1] <= 4
    assert set(merged.ids[merged.present].tolist()) <= set(ITEMS)


def test_merge_rejects_sources_over_different_items() -> None:
    with pytest.raises(InvalidInputError, match="another item list"):
        merge_candidates(
            {"a": PopularitySource(log(), ITEMS), "b": PopularitySource(log(), ITEMS[:3])}, {"a": 1}, ["a"]
        )
    with pytest.raises(InvalidInputError, match="unknown sources"):
        merge_candidates({"a": PopularitySource(log(), ITEMS)}, {"x": 1}, ["a"])


def test_candidate_recall_by_hand() -> None:
    ids = np.array([["x", "y", "z"], ["p", "", ""]], dtype=object)
    recall = candidate_recall(ids, [{"y", "q"}, {"p"}], (1, 2, 3))
    np.testing.assert_allclose(recall[1], [0.0, 1.0])
    np.testing.assert_allclose(recall[2], [0.5, 1.0])
    np.testing.assert_allclose(recall[3], [0.5, 1.0])
    np.testing.assert_allclose(candidate_recall(ids, [set(), {"p"}])[3], [0.0, 1.0])


class FixedScores:
    """A source answering fixed scores (ties included) for users u0, u1, ..."""

    def __init__(self, scores: np.ndarray, items: list[str]) -> None:
        self._scores = scores.astype(np.float32)
        self._items = tuple(items)

    @property
    def item_ids(self) -> tuple[str, ...]:
        return self._items

    def scores(self, users: Sequence[str]) -> np.ndarray:
        return self._scores[[int(user[1:]) for user in users]]


def reference_merge(
    dense: dict[str, np.ndarray], depth: dict[str, int], allowed: np.ndarray
) -> tuple[list[list[int]], dict[str, list[set[int]]]]:
    """Per user: each source's best allowed columns not taken yet (score descending, then column), in order."""
    merged: list[list[int]] = []
    own: dict[str, list[set[int]]] = {name: [] for name in dense}
    for row in range(allowed.shape[0]):
        taken: list[int] = []
        for name, scores in dense.items():
            ranking = sorted(np.flatnonzero(allowed[row]).tolist(), key=lambda c: (-scores[row, c], c))
            own[name].append(set(ranking[: depth.get(name, 0)]))
            taken += [c for c in ranking if c not in taken][: depth.get(name, 0)]
        merged.append(taken)
    return merged, own


@pytest.mark.parametrize("n_users", [3, 150])  # 150: the ranking runs in blocks of users
def test_merge_equals_a_brute_force_reference_with_ties_and_exclusions(n_users: int) -> None:
    rng = np.random.default_rng(n_users)
    items = [f"i{j}" for j in range(40)]
    users = [f"u{i}" for i in range(n_users)]
    values = np.array([-1.0, -0.0, 0.0, 0.5, 2.0], dtype=np.float32)  # many ties, and -0.0 == 0.0
    sources = {name: FixedScores(rng.choice(values, size=(n_users, 40)), items) for name in ("x", "y", "z")}
    depth = {"x": 6, "y": 5}
    exclude = [set(rng.choice(items, size=int(rng.integers(0, 38)), replace=False).tolist()) for _ in users]
    exclude[0] = set(items)  # nothing left for this user
    merged = merge_candidates(sources, depth, users, exclude=exclude)
    allowed = np.array([[item not in skip for item in items] for skip in exclude])
    dense = {name: source.scores(users) for name, source in sources.items()}
    expected, own = reference_merge(dense, depth, allowed)
    for row in range(n_users):
        real = merged.columns[row, : merged.counts[row]].tolist()
        assert real == expected[row]
        assert (merged.columns[row, merged.counts[row] :] == -1).all()
        for name in sources:
            got = {c for c, hit in zip(real, merged.retrieved_by[name][row].tolist(), strict=False) if hit}
            assert got == own[name][row] & set(real)
    assert merged.columns.shape[1] == max(len(e) for e in expected)


def test_one_user_merges_as_in_a_batch() -> None:
    """One user takes its own path (1-D rows): the same candidates, scores and flags as the batch's row."""
    rng = np.random.default_rng(5)
    items = [f"i{j}" for j in range(40)]
    users = [f"u{i}" for i in range(12)]
    values = np.array([-1.0, -0.0, 0.0, 0.5, 2.0], dtype=np.float32)
    sources = {name: FixedScores(rng.choice(values, size=(12, 40)), items) for name in ("x", "y", "z")}
    depth = {"x": 6, "z": 5, "y": 0}
    exclude = [
        set(rng.choice(items, size=int(rng.integers(0, 38)), replace=False).tolist()) | {"stranger"} for _ in users
    ]
    exclude[0] = set(items)  # nothing left
    exclude[1] = set(items[2:])  # fewer left than the depths
    batch = merge_candidates(sources, depth, users, exclude=exclude)
    dense = {name: source.scores(users) for name, source in sources.items()}
    allowed = np.array([[item not in skip for item in items] for skip in exclude])
    expected, own = reference_merge(dense, depth, allowed)
    for row, user in enumerate(users):
        one = merge_candidates(sources, depth, [user], exclude=[exclude[row]])
        count = int(batch.counts[row])
        assert one.columns.shape == (1, count) and one.counts.tolist() == [count]
        assert one.columns[0].tolist() == batch.columns[row, :count].tolist() == expected[row]
        assert one.ids[0].tolist() == batch.ids[row, :count].tolist()
        for name in sources:
            np.testing.assert_array_equal(one.scores[name][0], batch.scores[name][row, :count])
            np.testing.assert_array_equal(one.retrieved_by[name][0], batch.retrieved_by[name][row, :count])
            got = {c for c, hit in zip(one.columns[0].tolist(), one.retrieved_by[name][0].tolist(), strict=True) if hit}
            assert got == own[name][row] & set(expected[row])
    alone = merge_candidates(sources, depth, ["u3"])
    assert alone.columns[0].tolist() == merge_candidates(sources, depth, ["u3", "u4"]).columns[0].tolist()
