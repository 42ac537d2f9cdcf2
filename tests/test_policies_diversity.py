"""MMR and MaxPerValue: hand-computed cases, a brute-force MMR reference, identity at λ=0, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from two_stage_rec.errors import InvalidInputError
from two_stage_rec.policies import MMR, MaxPerValue, NeedsVectors, RankedList, apply_policies
from two_stage_rec.policies.diversity import list_relevance


def ranked(ids, scores=None, metadata=None, vectors=None):
    scores = np.linspace(1.0, 0.0, len(ids)) if scores is None else scores
    return RankedList.of(list(ids), scores, metadata, vectors=vectors)


def reference_mmr(vectors, relevance, trade_off, k, *, cosine=True):
    """MMR by the textbook loop: each step scans every remaining item against every picked one."""
    v = np.asarray(vectors, dtype=np.float64)
    if cosine:
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
    m = len(v)
    picked: list[int] = []
    remaining = list(range(m))
    for _ in range(min(k, m)):
        best, best_value = None, -np.inf
        for i in remaining:
            similarity = max((float(v[i] @ v[j]) for j in picked), default=0.0)
            value = (1.0 - trade_off) * relevance[i] - trade_off * similarity
            if value > best_value:  # strict: ties go to the item higher in the list
                best, best_value = i, value
        picked.append(best)
        remaining.remove(best)
    return picked + remaining


# ---------------------------------------------------------------- MMR by hand


def test_mmr_hand_computed_two_clusters():
    # a, b, c point one way, d another. Rank relevance over 4 items: 1, 2/3, 1/3, 0.
    vectors = [[1.0, 0.0], [1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]
    lst = ranked("abcd", vectors=vectors)
    # λ = 0.5, step 2: b: 0.5*2/3 - 0.5*1 = -0.17; c: 0.5/3 - 0.5*0.994 = -0.33; d: 0 - 0 = 0 -> d.
    out = MMR(0.5).apply(lst, k=2)
    assert out.ids == ("a", "d", "b", "c")
    # λ = 0.2, step 2: b: 0.8*2/3 - 0.2 = 0.33; d: 0 -> b; step 3: c: 0.8/3 - 0.2*0.994 = 0.07, d: 0 -> c.
    assert MMR(0.2).apply(lst, k=3).ids == ("a", "b", "c", "d")


def test_mmr_first_pick_is_the_top_item_even_at_lambda_one():
    vectors = np.random.default_rng(0).normal(size=(6, 4))
    out = MMR(1.0).apply(ranked("abcdef", vectors=vectors), k=6)
    assert out.ids[0] == "a"


def test_mmr_only_reorders_the_first_k_and_keeps_the_rest_in_order():
    vectors = np.random.default_rng(1).normal(size=(10, 3))
    lst = ranked("abcdefghij", vectors=vectors)
    out = MMR(0.9).apply(lst, k=3)
    assert sorted(out.ids) == sorted(lst.ids)
    assert list(out.ids[3:]) == [i for i in lst.ids if i not in out.ids[:3]]
    np.testing.assert_array_equal(np.sort(out.positions), np.arange(10))


def test_mmr_lambda_zero_returns_the_input_itself():
    lst = ranked("abc", vectors=np.eye(3))
    assert MMR(0).apply(lst, k=2) is lst
    assert MMR(0.0).apply(ranked("abc"), k=2).ids == ("a", "b", "c")  # no vectors needed when off


def test_mmr_leaves_scores_and_input_unchanged():
    vectors = np.random.default_rng(2).normal(size=(5, 3)).astype(np.float32)
    lst = ranked("abcde", scores=[5.0, 4.0, 3.0, 2.0, 1.0], vectors=vectors)
    before = (lst.ids, lst.scores.copy(), lst.positions.copy(), lst.vectors.copy())
    out = MMR(0.7).apply(lst, k=5)
    assert lst.ids == before[0]
    np.testing.assert_array_equal(lst.scores, before[1])
    np.testing.assert_array_equal(lst.positions, before[2])
    np.testing.assert_array_equal(lst.vectors, before[3])
    score_of = dict(zip(lst.ids, lst.scores.tolist(), strict=True))
    assert out.scores.tolist() == [score_of[i] for i in out.ids]


def test_mmr_declares_it_needs_vectors_and_fails_clearly_without():
    assert isinstance(MMR(0.3), NeedsVectors) and MMR(0.3).needs_vectors
    with pytest.raises(InvalidInputError, match="vectors"):
        MMR(0.3).apply(ranked("abc"), k=2)


def test_mmr_zero_vectors_are_not_similar_to_anything():
    vectors = [[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]
    out = MMR(0.6).apply(ranked("abc", vectors=vectors), k=2)
    # b: 0.4*0.5 - 0.6*1 = -0.4; c (zero vector, cosine 0): 0 -> c.
    assert out.ids == ("a", "c", "b")


# ------------------------------------------------------------ MMR vs reference


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(1, 25),
    d=st.integers(1, 6),
    k=st.integers(1, 30),
    trade_off=st.floats(0.0, 1.0),
    relevance=st.sampled_from(["minmax", "rank"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_mmr_matches_the_brute_force_reference_cosine(m, d, k, trade_off, relevance, seed):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(m, d)).astype(np.float32) + 1e-3
    scores = rng.normal(size=m).astype(np.float32)
    lst = RankedList.of([f"i{j}" for j in range(m)], np.sort(scores)[::-1], vectors=vectors)
    out = MMR(trade_off, relevance=relevance).apply(lst, k)
    expected = reference_mmr(vectors, list_relevance(lst, relevance), trade_off, k)
    assert out.positions.tolist() == expected


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.lists(st.integers(-3, 3), min_size=3, max_size=3), min_size=1, max_size=15),
    k=st.integers(1, 15),
    trade_off=st.sampled_from([0.1, 0.25, 0.5, 0.75, 1.0]),
    relevance=st.sampled_from(["minmax", "rank"]),
)
def test_mmr_matches_the_reference_with_exact_ties(data, k, trade_off, relevance):
    # Integer vectors under the dot product: similarities are exact, so ties are real and must break the same way.
    vectors = np.asarray(data, dtype=np.float32)
    lst = RankedList.of([f"i{j}" for j in range(len(data))], np.zeros(len(data)), vectors=vectors)
    out = MMR(trade_off, metric="dotproduct", relevance=relevance).apply(lst, k)
    expected = reference_mmr(vectors, list_relevance(lst, relevance), trade_off, k, cosine=False)
    assert out.positions.tolist() == expected


# ---------------------------------------------------------------- relevance


def test_rank_relevance_is_linear_in_position():
    np.testing.assert_allclose(list_relevance(ranked("abcde"), "rank"), [1.0, 0.75, 0.5, 0.25, 0.0])
    np.testing.assert_allclose(list_relevance(ranked("a"), "rank"), [1.0])


def test_minmax_relevance_keeps_score_gaps_and_follows_the_current_order():
    lst = ranked("abcd", scores=[10.0, 9.0, 5.0, 0.0])
    np.testing.assert_allclose(list_relevance(lst, "minmax"), [1.0, 0.9, 0.5, 0.0])
    # After a reordering that left the scores, the score profile is given out by position.
    moved = lst.take([2, 0, 1, 3])
    np.testing.assert_allclose(list_relevance(moved, "minmax"), [1.0, 0.9, 0.5, 0.0])


def test_minmax_relevance_handles_minus_infinity_and_equal_scores():
    lst = ranked("abc", scores=[2.0, 1.0, -np.inf])  # a pinned extra item arrives with -inf
    np.testing.assert_allclose(list_relevance(lst, "minmax"), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(list_relevance(ranked("ab", scores=[3.0, 3.0]), "minmax"), [1.0, 1.0])


def test_mmr_minmax_hand_computed():
    # Scores 10, 9.9, 0: the second item is nearly as relevant as the first (0.99), so a duplicate can win.
    vectors = [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
    lst = ranked("abc", scores=[10.0, 9.9, 0.0], vectors=vectors)
    # λ = 0.3, step 2: b: 0.7*0.99 - 0.3 = 0.393; c: 0.7*0 - 0 = 0 -> b under min-max.
    assert MMR(0.3, relevance="minmax").apply(lst, k=2).ids == ("a", "b", "c")
    # λ = 0.4: b: 0.6*0.99 - 0.4 = 0.194 > 0 under min-max; under rank relevance b has 0.5: 0.3 - 0.4 < 0 -> c.
    assert MMR(0.4).apply(lst, k=2).ids == ("a", "b", "c")  # min-max is the default
    assert MMR(0.4, relevance="rank").apply(lst, k=2).ids == ("a", "c", "b")


# ---------------------------------------------------------------- MaxPerValue


def genres(*lists):
    return [{"genres": list(g)} if g is not None else {} for g in lists]


def test_max_per_value_hand_computed_with_list_valued_field():
    md = genres(["Comedy"], ["Comedy", "Romance"], ["Comedy"], ["Romance"], ["Drama"], ["Romance"])
    out = MaxPerValue("genres", 2).apply(ranked("abcdef", metadata=md), k=4)
    # a (C1), b (C2, R1), c: Comedy full -> demoted, d (R2), e (D1): top 4 = a b d e; then c, f in order.
    assert out.ids == ("a", "b", "d", "e", "c", "f")


def test_max_per_value_any_full_value_demotes_the_item():
    md = genres(["Romance"], ["Comedy", "Romance"], ["Comedy"])
    out = MaxPerValue("genres", 1).apply(ranked("abc", metadata=md), k=3)
    assert out.ids == ("a", "c", "b")  # b has room in Comedy but not in Romance


def test_max_per_value_items_without_the_field_are_never_capped():
    md = [{}, {}, {"genres": []}, {"year": 1990}, {"genres": ["Drama"]}, {"genres": ["Drama"]}]
    out = MaxPerValue("genres", 1).apply(ranked("abcdef", metadata=md), k=5)
    assert out.ids == ("a", "b", "c", "d", "e", "f")  # f fills the top 5 only if needed: here it is 6th


def test_max_per_value_scalar_values_compare_by_type():
    md = [{"flag": True}, {"flag": 1}, {"flag": True}, {"flag": "1"}]
    out = MaxPerValue("flag", 1).apply(ranked("abcd", metadata=md), k=3)
    assert out.ids == ("a", "b", "d", "c")


def test_max_per_value_keeps_k_results_by_filling_with_demoted_items():
    md = genres(["Comedy"], ["Comedy"], ["Comedy"], ["Comedy"], ["Drama"])
    out = MaxPerValue("genres", 1).apply(ranked("abcde", metadata=md), k=4)
    assert out.ids == ("a", "e", "b", "c", "d")
    assert apply_policies(ranked("abcde", metadata=md), [MaxPerValue("genres", 1)], k=4).ids == ("a", "e", "b", "c")


def test_max_per_value_unchanged_list_is_returned_as_is():
    lst = ranked("abc", metadata=genres(["A"], ["B"], ["C"]))
    assert MaxPerValue("genres", 1).apply(lst, k=3) is lst


@settings(max_examples=80, deadline=None)
@given(
    rows=st.lists(st.lists(st.sampled_from("ABCD"), max_size=3, unique=True) | st.none(), min_size=1, max_size=20),
    limit=st.integers(1, 3),
    k=st.integers(1, 20),
)
def test_max_per_value_invariants(rows, limit, k):
    md = [{} if r is None else {"genres": r} for r in rows]
    lst = ranked([f"i{j}" for j in range(len(rows))], metadata=md)
    out = MaxPerValue("genres", limit).apply(lst, k)
    assert sorted(out.positions.tolist()) == list(range(len(rows)))  # nothing dropped
    top = out.positions[: min(k, len(rows))].tolist()
    # The top k is the greedy prefix: the caps hold in it unless it had to be filled with demoted items.
    counts: dict[str, int] = {}
    placed_under_caps = []
    for p in range(len(rows)):
        values = rows[p] or []
        if len(placed_under_caps) < k and all(counts.get(v, 0) < limit for v in values):
            placed_under_caps.append(p)
            for v in values:
                counts[v] = counts.get(v, 0) + 1
    assert top[: len(placed_under_caps)] == placed_under_caps


# ---------------------------------------------------------------- errors, repr


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "0.3", True, None])
def test_mmr_rejects_a_trade_off_outside_zero_one(bad):
    with pytest.raises(InvalidInputError, match="trade_off"):
        MMR(bad)


def test_mmr_rejects_unknown_metric_and_relevance():
    with pytest.raises(InvalidInputError, match="metric"):
        MMR(0.3, metric="euclidean")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="relevance"):
        MMR(0.3, relevance="softmax")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "limit"), [("genres", 0), ("genres", -1), ("genres", 1.5), ("genres", True), ("", 2)]
)
def test_max_per_value_rejects_bad_configuration(field, limit):
    with pytest.raises(InvalidInputError):
        MaxPerValue(field, limit)


def test_diversity_policies_are_frozen_hashable_and_readable():
    assert repr(MMR(0.3)) == "MMR(trade_off=0.3, metric='cosine', relevance='minmax')"
    assert repr(MaxPerValue("genres", 2)) == "MaxPerValue(field='genres', limit=2)"
    assert MMR(0.3) == MMR(0.3) and hash(MMR(0.3)) == hash(MMR(0.3))
    assert len({MaxPerValue("genres", 2), MaxPerValue("genres", 2), MaxPerValue("genres", 3)}) == 2
    with pytest.raises(AttributeError):
        MMR(0.3).trade_off = 0.5  # type: ignore[misc]
