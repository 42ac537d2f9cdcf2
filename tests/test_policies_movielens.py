"""Policies through a served MovieLens-100K bundle: the recommender applies them to all its ranked candidates."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from two_stage_rec.policies import MMR, Block, MaxPerValue, Pins, RankedList, apply_policies, parse_policies

pytestmark = pytest.mark.integration

USER, K, CANDIDATES = "55", 10, 50


@pytest.fixture(scope="module")
def served(tiny_movielens_models: Path):
    pytest.importorskip("faiss", reason="the served bundle indexes into FAISS")
    from two_stage_rec.assembly import assemble

    with assemble(tiny_movielens_models, store="faiss") as assembled:
        yield assembled


def as_ranked(recommendations) -> RankedList:
    return RankedList.of(
        [r.item_id for r in recommendations], [r.score for r in recommendations], [r.metadata for r in recommendations]
    )


def test_a_genre_cap_is_the_policy_applied_to_all_ranked_candidates(served):
    everything = served.recommend(USER, k=CANDIDATES, candidates=CANDIDATES)
    expected = apply_policies(as_ranked(everything), [MaxPerValue("genres", 2)], K)
    got = served.recommend(USER, k=K, candidates=CANDIDATES, policies=[MaxPerValue("genres", 2)])
    assert [r.item_id for r in got] == list(expected.ids)
    assert len(got) == K
    score_of = {r.item_id: r.score for r in everything}
    assert [r.score for r in got] == pytest.approx([score_of[r.item_id] for r in got], abs=1e-6)


def test_caps_hold_on_real_genres_as_far_as_the_candidates_allow(served):
    # Multi-genre films fill the caps fast: among 50 candidates fewer than 10 may fit under 2 per genre,
    # and demoted films then fill the rest. The caps must hold on every film placed under them.
    everything = served.recommend(USER, k=CANDIDATES, candidates=CANDIDATES)
    counts: Counter[str] = Counter()
    fit = []
    for r in everything:
        if len(fit) < K and all(counts[g] < 2 for g in r.metadata["genres"]):
            fit.append(r.item_id)
            counts.update(r.metadata["genres"])
    got = [r.item_id for r in served.recommend(USER, k=K, candidates=CANDIDATES, policies=[MaxPerValue("genres", 2)])]
    assert got[: len(fit)] == fit
    assert len(got) == K
    placed = Counter(g for r in everything if r.item_id in set(fit) for g in r.metadata["genres"])
    assert max(placed.values()) <= 2


def test_mmr_zero_changes_nothing_and_mmr_keeps_k_of_the_candidates(served):
    plain = [r.item_id for r in served.recommend(USER, k=K, candidates=CANDIDATES)]
    assert [r.item_id for r in served.recommend(USER, k=K, candidates=CANDIDATES, policies=[MMR(0.0)])] == plain
    candidates = {r.item_id for r in served.recommend(USER, k=CANDIDATES, candidates=CANDIDATES)}
    varied = [r.item_id for r in served.recommend(USER, k=K, candidates=CANDIDATES, policies=[MMR(0.5)])]
    assert len(varied) == K == len(set(varied))
    assert set(varied) <= candidates
    assert varied[0] == plain[0]


def test_block_and_pins_from_a_spec(served):
    plain = [r.item_id for r in served.recommend(USER, k=CANDIDATES, candidates=CANDIDATES)]
    chain = parse_policies({"block": plain[:2], "pin": {plain[20]: 1}})
    assert chain == [Block(plain[:2]), Pins({plain[20]: 1})]
    got = [r.item_id for r in served.recommend(USER, k=K, candidates=CANDIDATES, policies=chain)]
    assert got == [plain[20], *plain[2:11]]


def test_a_pinned_item_the_ranking_did_not_return_is_fetched_unless_excluded(served):
    candidates = {r.item_id for r in served.recommend(USER, k=CANDIDATES, candidates=CANDIDATES)}
    seen = served.bundle.seen_items[USER]
    outside = next(str(i) for i in range(1, 1683) if str(i) not in candidates and str(i) not in seen)
    got = served.recommend(USER, k=K, candidates=CANDIDATES, policies=[Pins({outside: 2})])
    assert got[1].item_id == outside and got[1].source == "pinned"
    assert len(got) == K
    watched = sorted(seen)[0]
    got = served.recommend(USER, k=K, candidates=CANDIDATES, policies=[Pins({watched: 1})])
    assert watched not in [r.item_id for r in got]
