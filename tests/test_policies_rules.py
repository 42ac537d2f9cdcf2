"""Boost, Bury, Pin, Block: hand-computed moves, pins composing, construction errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from two_stage_rec.errors import InvalidFilterError, InvalidIdError, InvalidInputError
from two_stage_rec.policies import AddsItems, Block, Boost, Bury, Pin, Pins, RankedList, apply_policies


def ranked(ids, metadata=None):
    return RankedList.of(list(ids), np.linspace(1.0, 0.0, len(ids)), metadata)


def tagged(ids, marked):
    """Items with metadata ``{"promo": True}`` for those in ``marked``."""
    return ranked(ids, [{"promo": True} if i in marked else {"promo": False} for i in ids])


PROMO = {"promo": True}

# ------------------------------------------------------------------- Boost


def test_boost_by_places_hand_computed():
    assert Boost(PROMO, by=2).apply(tagged("abcdef", "d"), k=3).ids == ("a", "d", "b", "c", "e", "f")
    assert Boost(PROMO, by=10).apply(tagged("abcdef", "d"), k=3).ids == ("d", "a", "b", "c", "e", "f")


def test_boost_ranks_each_match_as_if_it_were_n_places_higher():
    # e (4) ranks as 2, f (5) as 3: f passes the unmatched d only, as e moved up too.
    assert Boost(PROMO, by=2).apply(tagged("abcdef", "ef"), k=6).ids == ("a", "b", "e", "c", "f", "d")


def test_boost_without_amount_puts_every_match_first_in_order():
    assert Boost(PROMO).apply(tagged("abcdef", "ec"), k=2).ids == ("c", "e", "a", "b", "d", "f")


def test_boost_without_matches_returns_the_list_itself():
    lst = tagged("abc", "")
    assert Boost(PROMO, by=1).apply(lst, k=2) is lst


def test_boost_keeps_scores_and_the_input():
    lst = tagged("abcd", "d")
    scores = lst.scores.copy()
    out = Boost(PROMO, by=1).apply(lst, k=2)
    np.testing.assert_array_equal(lst.scores, scores)
    assert lst.ids == ("a", "b", "c", "d")
    assert dict(zip(out.ids, out.scores.tolist(), strict=True)) == dict(zip(lst.ids, scores.tolist(), strict=True))
    assert out.positions.tolist() == [0, 1, 3, 2]


def test_boost_uses_the_full_filter_language():
    md = [{"genres": ["Drama"], "year": 1950}, {"genres": ["Comedy", "Drama"], "year": 1995}, {"year": 1999}]
    rule = Boost({"$or": [{"genres": {"$in": ["Comedy"]}}, {"year": {"$gte": 1999}}]})
    assert rule.apply(ranked("abc", md), k=3).ids == ("b", "c", "a")


# -------------------------------------------------------------------- Bury


def test_bury_by_places_and_to_the_end():
    assert Bury(PROMO, by=2).apply(tagged("abcdef", "a"), k=3).ids == ("b", "c", "a", "d", "e", "f")
    assert Bury(PROMO).apply(tagged("abcdef", "ac"), k=3).ids == ("b", "d", "e", "f", "a", "c")


def test_bury_to_the_end_still_fills_k_when_nothing_else_is_left():
    out = apply_policies(tagged("abcd", "abc"), [Bury(PROMO)], k=3)
    assert out.ids == ("d", "a", "b")


# --------------------------------------------------------------------- Pin


def test_pin_moves_the_item_to_its_position():
    assert Pin("d", 1).apply(ranked("abcde"), k=3).ids == ("d", "a", "b", "c", "e")
    assert Pin("a", 3).apply(ranked("abcde"), k=3).ids == ("b", "c", "a", "d", "e")
    assert Pin("b", 10).apply(ranked("abcde"), k=3).ids == ("a", "c", "d", "e", "b")


def test_pin_of_an_item_not_in_the_list_does_nothing():
    lst = ranked("abc")
    assert Pin("z", 1).apply(lst, k=2) is lst
    assert Pin("b", 2).apply(lst, k=2) is lst


def test_pin_declares_its_item_for_the_recommender_to_fetch():
    pin = Pin("50", 2)
    assert isinstance(pin, AddsItems) and pin.extra_items == frozenset({"50"})
    assert not isinstance(Block(["1"]), AddsItems)


def test_pins_place_every_item_exactly():
    assert Pins({"d": 3, "e": 1, "a": 2}).apply(ranked("abcde"), k=5).ids == ("e", "a", "d", "b", "c")
    # The case a chain of single pins gets wrong: b leaves from above a's place.
    assert Pins({"a": 2, "b": 3}).apply(ranked("abc"), k=3).ids == ("c", "a", "b")
    assert apply_policies(ranked("abc"), [Pin("a", 2), Pin("b", 3)], k=3).ids == ("a", "c", "b")


def test_pins_beyond_the_end_go_last_in_position_order_and_absent_items_are_skipped():
    assert Pins({"a": 9, "b": 7, "zz": 1}).apply(ranked("abcd"), k=4).ids == ("c", "d", "b", "a")
    lst = ranked("abc")
    assert Pins({"zz": 1, "b": 2}).apply(lst, k=3) is lst
    assert Pins({"a": 1, "zz": 2}).extra_items == frozenset({"a", "zz"})


@settings(max_examples=80, deadline=None)
@given(m=st.integers(1, 15), data=st.data())
def test_pins_all_hold(m, data):
    ids = [f"i{j}" for j in range(m)]
    chosen = data.draw(st.lists(st.sampled_from(ids), unique=True, min_size=1, max_size=m))
    places = data.draw(st.lists(st.integers(1, m), unique=True, min_size=len(chosen), max_size=len(chosen)))
    wanted = dict(zip(chosen, places, strict=True))
    out = Pins(wanted).apply(ranked(ids), k=m)
    assert sorted(out.ids) == sorted(ids)
    for item, place in wanted.items():
        assert out.ids[place - 1] == item
    others = [i for i in out.ids if i not in wanted]
    assert others == [i for i in ids if i not in wanted]  # the rest keep their order


# ------------------------------------------------------------------- Block


def test_block_drops_the_items_and_ignores_unknown_ids():
    assert Block(["b", "d", "zz"]).apply(ranked("abcde"), k=3).ids == ("a", "c", "e")
    lst = ranked("abc")
    assert Block(["zz"]).apply(lst, k=2) is lst


def test_block_keeps_k_results_when_k_survive():
    out = apply_policies(ranked("abcdef"), [Block(["a", "b"])], k=4)
    assert out.ids == ("c", "d", "e", "f")
    assert out.positions.tolist() == [2, 3, 4, 5]


# ---------------------------------------------------------- errors, equality


@pytest.mark.parametrize(
    "bad_filter",
    [{"genres": {"$regex": "x"}}, {"$and": []}, {"year": {"$gt": "1990"}}, "genres", None, {"a": {"$in": []}}],
)
def test_rules_reject_bad_filters_when_built(bad_filter):
    with pytest.raises(InvalidFilterError):
        Boost(bad_filter)
    with pytest.raises(InvalidFilterError):
        Bury(bad_filter, by=2)


@pytest.mark.parametrize("by", [0, -1, 1.5, True, "2"])
def test_rules_reject_bad_amounts(by):
    with pytest.raises(InvalidInputError, match="by"):
        Boost(PROMO, by=by)
    with pytest.raises(InvalidInputError, match="by"):
        Bury(PROMO, by=by)


@pytest.mark.parametrize(
    ("item", "position", "error"),
    [
        ("a", 0, InvalidInputError),
        ("a", -2, InvalidInputError),
        ("a", 1.0, InvalidInputError),
        ("", 1, InvalidIdError),
        (5, 1, InvalidIdError),
    ],
)
def test_pin_rejects_bad_positions_and_ids(item, position, error):
    with pytest.raises(error):
        Pin(item, position)


@pytest.mark.parametrize(
    ("positions", "error"),
    [
        ({}, InvalidInputError),
        ({"a": 1, "b": 1}, InvalidInputError),
        ({"a": 0}, InvalidInputError),
        ({"": 1}, InvalidIdError),
        ([("a", 1)], InvalidInputError),
    ],
)
def test_pins_reject_bad_positions(positions, error):
    with pytest.raises(error):
        Pins(positions)


@pytest.mark.parametrize("ids", [[], "abc", ["a", ""], ["a", 3], 5])
def test_block_rejects_empty_or_malformed_ids(ids):
    with pytest.raises(InvalidInputError):
        Block(ids)


def test_rules_copy_their_filter_and_compare_by_content():
    spec = {"genres": {"$in": ["Comedy"]}, "year": 1990}
    rule = Boost(spec, by=2)
    spec["genres"]["$in"].append("Drama")
    assert rule.filter == {"genres": {"$in": ["Comedy"]}, "year": 1990}
    assert Boost({"year": 1990, "genres": {"$in": ["Comedy"]}}, by=2) == rule
    assert hash(Boost({"year": 1990, "genres": {"$in": ["Comedy"]}}, by=2)) == hash(rule)
    assert Bury({"a": 1}) != Boost({"a": 1})
    assert Boost({"a": 1}, by=1) != Boost({"a": 1}, by=2)


def test_rules_are_frozen_hashable_and_readable():
    assert repr(Boost({"genres": "Comedy"}, by=3)) == "Boost(filter={'genres': 'Comedy'}, by=3)"
    assert repr(Bury({"year": {"$lt": 1960}})) == "Bury(filter={'year': {'$lt': 1960}}, by=None)"
    assert repr(Pin("50", 1)) == "Pin(item_id='50', position=1)"
    assert repr(Block(["b", "a", "b"])) == "Block(item_ids=('a', 'b'))"
    assert Block(["b", "a"]) == Block(("a", "b")) and hash(Block(["b", "a"])) == hash(Block(["a", "b"]))
    assert len({Pin("1", 1), Pin("1", 1), Pin("1", 2)}) == 2
    assert repr(Pins({"b": 3, "a": 1})) == "Pins({'a': 1, 'b': 3})"
    assert Pins({"b": 3, "a": 1}) == Pins({"a": 1, "b": 3}) and hash(Pins({"a": 1})) == hash(Pins({"a": 1}))
    with pytest.raises(AttributeError):
        Pin("1", 1).position = 2  # type: ignore[misc]
