"""parse_policies / cli_spec: canonical order, validation with paths; chains of policies: k results, purity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import two_stage_rec.policies as policies_module
from two_stage_rec.errors import InvalidFilterError, InvalidIdError, InvalidInputError
from two_stage_rec.policies import (
    MMR,
    POLICY_ORDER,
    Block,
    Boost,
    Bury,
    MaxPerValue,
    Pins,
    RankedList,
    apply_policies,
    cli_spec,
    parse_max_per,
    parse_policies,
)
from two_stage_rec.policies.base import extra_items, needs_vectors


def test_parse_policies_returns_the_canonical_order_whatever_the_key_order():
    spec = {
        "pin": {"9": 2, "8": 1},
        "max_per": {"genres": 2},
        "mmr": 0.3,
        "bury": [{"filter": {"year": {"$lt": 1960}}}],
        "boost": [{"filter": {"genres": "Documentary"}, "by": 3}, {"filter": {"new": True}}],
        "block": ["181", "50"],
    }
    assert parse_policies(spec) == [
        Block(["50", "181"]),
        Boost({"genres": "Documentary"}, by=3),
        Boost({"new": True}),
        Bury({"year": {"$lt": 1960}}),
        MMR(0.3),
        MaxPerValue("genres", 2),
        Pins({"8": 1, "9": 2}),
    ]
    assert POLICY_ORDER == ("block", "boost", "bury", "mmr", "max_per", "pin")


def test_parse_policies_of_nothing_and_mmr_zero_is_no_policy():
    assert parse_policies(None) == []
    assert parse_policies({}) == []
    assert parse_policies({"mmr": 0}) == []  # off: the recommender then fetches no vectors
    assert needs_vectors(parse_policies({"mmr": 0.5}))
    assert extra_items(parse_policies({"pin": {"a": 1, "b": 3}})) == frozenset({"a", "b"})


@pytest.mark.parametrize(
    ("spec", "error", "where"),
    [
        ({"diversity": 0.3}, InvalidInputError, "unknown key"),
        ({"mmr": "0.3"}, InvalidInputError, r"policies\.mmr"),
        ({"mmr": True}, InvalidInputError, r"policies\.mmr"),
        ({"mmr": 1.5}, InvalidInputError, "trade_off"),
        ({"max_per": ["genres", 2]}, InvalidInputError, r"policies\.max_per"),
        ({"max_per": {"genres": 0}}, InvalidInputError, "limit"),
        ({"boost": {"filter": {}}}, InvalidInputError, r"policies\.boost"),
        ({"boost": [{"filter": {"a": 1}, "amount": 2}]}, InvalidInputError, r"policies\.boost\[0\]"),
        ({"bury": [{"by": 2}]}, InvalidInputError, r"policies\.bury\[0\]"),
        ({"bury": [{"filter": {"a": {"$bad": 1}}}]}, InvalidFilterError, "unknown operator"),
        ({"boost": [{"filter": {"a": 1}, "by": 0}]}, InvalidInputError, "by"),
        ({"pin": {"a": 0}}, InvalidInputError, "position"),
        ({"pin": [["a", 1]]}, InvalidInputError, r"policies\.pin"),
        ({"block": []}, InvalidInputError, "at least one"),
        ({"block": "50"}, InvalidInputError, r"policies\.block"),
        ({"block": [""]}, InvalidIdError, "non-empty"),
        ([("mmr", 0.3)], InvalidInputError, "must be an object"),
    ],
)
def test_parse_policies_rejects_bad_specs_with_the_path(spec, error, where):
    with pytest.raises(error, match=where):
        parse_policies(spec)


def test_cli_spec_and_max_per_text():
    assert cli_spec() == {}
    assert cli_spec(diversity=0.0) == {}
    assert cli_spec(diversity=0.3, max_per=["genres=2", "year=1", "genres=3"]) == {
        "mmr": 0.3,
        "max_per": {"genres": 3, "year": 1},
    }
    assert parse_policies(cli_spec(diversity=0.3, max_per=["genres=2"])) == [MMR(0.3), MaxPerValue("genres", 2)]
    assert parse_max_per(" genres = 2 ") == ("genres", 2)


@pytest.mark.parametrize("text", ["genres", "genres=", "=2", "genres=0", "genres=-1", "genres=two", "genres=1.5"])
def test_parse_max_per_rejects_malformed_text(text):
    with pytest.raises(InvalidInputError, match="FIELD=N"):
        parse_max_per(text)


def test_policies_module_exports_exactly_its_api():
    assert set(policies_module.__all__) == {
        "AddsItems", "Block", "Boost", "Bury", "MMR", "MaxPerValue", "NeedsVectors", "POLICY_ORDER", "Pin",
        "Pins", "Policy", "PolicySpec", "RankedList", "RuleSpec", "apply_policies", "cli_spec", "parse_max_per",
        "parse_policies",
    }  # fmt: skip
    for name in policies_module.__all__:
        assert getattr(policies_module, name) is not None


# ------------------------------------------------------------------ chains


def catalogue(m, seed=0):
    rng = np.random.default_rng(seed)
    genre_names = ["Action", "Comedy", "Drama", "Horror"]
    md = [
        {"genres": sorted(set(rng.choice(genre_names, size=rng.integers(1, 3)).tolist())), "year": int(1950 + i)}
        for i in range(m)
    ]
    return RankedList.of(
        [str(i) for i in range(m)], np.sort(rng.normal(size=m))[::-1], md, vectors=rng.normal(size=(m, 8))
    )


def test_a_full_chain_hand_checked():
    md = [
        {"genres": ["Comedy"], "year": 1990},  # a
        {"genres": ["Comedy"], "year": 1950},  # b: buried to the end
        {"genres": ["Comedy"], "year": 1991},  # c: over the Comedy cap
        {"genres": ["Drama"], "year": 1992},  # d
        {"genres": ["Drama"], "year": 1993},  # e: blocked
        {"genres": ["Horror"], "year": 1994},  # f: pinned first
    ]
    lst = RankedList.of(list("abcdef"), [6, 5, 4, 3, 2, 1], md)
    chain = parse_policies(
        {"block": ["e"], "bury": [{"filter": {"year": {"$lt": 1960}}}], "max_per": {"genres": 1}, "pin": {"f": 1}}
    )
    # block: a b c d f; bury: a c d f b; cap 1 per genre in the top 3: a d f | c b; pin f first: f a d c b.
    assert apply_policies(lst, chain, k=3).ids == ("f", "a", "d")
    assert apply_policies(lst, chain, k=5).ids == ("f", "a", "d", "c", "b")


def test_order_matters_a_cap_after_a_boost_holds_a_boost_after_a_cap_can_break_it():
    md = [{"genres": ["Comedy"]}, {"genres": ["Comedy"]}, {"genres": ["Drama"]}, {"genres": ["Comedy"], "new": True}]
    lst = RankedList.of(list("abcd"), [4, 3, 2, 1], md)
    cap, boost = MaxPerValue("genres", 1), Boost({"new": True})
    assert apply_policies(lst, [boost, cap], k=2).ids == ("d", "c")
    assert apply_policies(lst, [cap, boost], k=2).ids == ("d", "a")  # two comedies: the canonical order avoids this


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(1, 40),
    k=st.integers(1, 20),
    trade_off=st.sampled_from([0.0, 0.2, 0.7, 1.0]),
    limit=st.integers(1, 3),
    blocked=st.lists(st.integers(0, 39), max_size=5),
    seed=st.integers(0, 1000),
)
def test_a_chain_keeps_k_results_when_k_survive_and_never_changes_its_input(m, k, trade_off, limit, blocked, seed):
    lst = catalogue(m, seed)
    frozen = (lst.ids, lst.scores.copy(), lst.positions.copy(), lst.vectors.copy(), repr(lst.metadata))
    spec = {
        "block": [str(b) for b in blocked] or ["none"],
        "boost": [{"filter": {"genres": "Horror"}, "by": 2}],
        "bury": [{"filter": {"year": {"$lt": 1960}}}],
        "mmr": trade_off,
        "max_per": {"genres": limit},
        "pin": {"0": 3},
    }
    out = apply_policies(lst, parse_policies(spec), k)
    survivors = m - len({b for b in blocked if b < m})
    assert len(out) == min(k, survivors)
    assert len(set(out.ids)) == len(out)
    assert not set(out.ids) & {str(b) for b in blocked}
    assert (lst.ids, repr(lst.metadata)) == (frozen[0], frozen[4])
    np.testing.assert_array_equal(lst.scores, frozen[1])
    np.testing.assert_array_equal(lst.positions, frozen[2])
    np.testing.assert_array_equal(lst.vectors, frozen[3])
    # Every item keeps its own score and metadata through the chain.
    for item, score, position in zip(out.ids, out.scores.tolist(), out.positions.tolist(), strict=True):
        assert lst.ids[position] == item and lst.scores[position] == score
