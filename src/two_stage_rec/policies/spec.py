"""Policies from plain data: the one place the CLI and the service turn options into policies.

A :class:`PolicySpec` is the JSON a service request carries (and what the
command line's options are turned into by :func:`cli_spec`)::

    {
        "block": ["181"],
        "boost": [{"filter": {"genres": "Documentary"}, "by": 3}],
        "bury": [{"filter": {"year": {"$lt": 1960}}}],
        "mmr": 0.3,
        "max_per": {"genres": 2},
        "pin": {"50": 1}
    }

Every key is optional; :func:`parse_policies` checks the whole spec (types,
unknown keys, each policy's own checks) before returning anything, and
returns the policies in one canonical order, :data:`POLICY_ORDER`, whatever
the order of the keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, TypedDict, cast

from two_stage_rec.errors import InvalidInputError, InvalidPolicyError
from two_stage_rec.policies.base import Policy
from two_stage_rec.policies.diversity import MMR, MaxPerValue
from two_stage_rec.policies.rules import Block, Boost, Bury, Pins
from two_stage_rec.types import Filter

__all__ = ["POLICY_ORDER", "PolicySpec", "RuleSpec", "cli_spec", "parse_max_per", "parse_policies"]


class _RuleFilter(TypedDict):
    filter: Filter


class RuleSpec(_RuleFilter, total=False):
    """A boost or bury rule: ``{"filter": {...}, "by": 3}``; ``by`` omitted or null: to the top / to the end."""

    by: int | None


class PolicySpec(TypedDict, total=False):
    """Post-ranking policies as plain data (the service request's ``policies`` object).

    Attributes:
        block: item ids to drop (:class:`~two_stage_rec.policies.Block`).
        boost: rules moving matching items up (:class:`~two_stage_rec.policies.Boost`).
        bury: rules moving matching items down (:class:`~two_stage_rec.policies.Bury`).
        mmr: the MMR trade-off λ in [0, 1]; 0 means off (no policy, no vectors fetched).
        max_per: field -> at most this many items per value in the top k
            (:class:`~two_stage_rec.policies.MaxPerValue`).
        pin: item id -> 1-based position (:class:`~two_stage_rec.policies.Pins`).
    """

    block: list[str]
    boost: list[RuleSpec]
    bury: list[RuleSpec]
    mmr: float
    max_per: dict[str, int]
    pin: dict[str, int]


POLICY_ORDER: Final[tuple[str, ...]] = ("block", "boost", "bury", "mmr", "max_per", "pin")
"""The order :func:`parse_policies` applies the kinds of policy in, and why:

1. ``block``: a dropped item must not take part in anything after (count
   towards a cap, be picked by MMR, push another item down).
2. ``boost`` then ``bury``: they state the business's preference, which
   becomes the list's order of relevance that MMR then trades against
   variety (MMR reads the order, so a boosted item is also more relevant to it).
3. ``mmr``: a soft reordering of the top k.
4. ``max_per``: hard caps, so they must come after every soft reordering,
   which could otherwise break them again.
5. ``pin``: explicit placements win over everything, so they come last
   (all pins in one :class:`~two_stage_rec.policies.Pins`, so each lands on its position).
"""

_RULE_KEYS: Final = frozenset({"filter", "by"})


def _fail(path: str, message: str) -> InvalidInputError:
    return InvalidInputError(f"policies{path}: {message}")


def _mapping(value: object, path: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise _fail(path, f"must be an object, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise _fail(path, f"keys must be strings, got {key!r}")
    return value


def _list(value: object, path: str) -> list[object]:
    if not isinstance(value, list | tuple):
        raise _fail(path, f"must be a list, got {type(value).__name__}")
    return list(value)


def _rules(value: object, path: str) -> list[tuple[Filter, int | None]]:
    # The types are cast, not checked, here: each policy checks its filter and amount itself.
    rules: list[tuple[Filter, int | None]] = []
    for i, rule in enumerate(_list(value, path)):
        entry = _mapping(rule, f"{path}[{i}]")
        unknown = set(entry) - _RULE_KEYS
        if unknown or "filter" not in entry:
            raise _fail(f"{path}[{i}]", f'needs "filter" and optionally "by", got keys {sorted(entry)}')
        rules.append((cast(Filter, entry["filter"]), cast("int | None", entry.get("by"))))
    return rules


def _numbers(value: object, path: str) -> dict[str, int]:
    # Cast, not checked: MaxPerValue and Pin check the numbers themselves.
    return cast("dict[str, int]", dict(_mapping(value, path)))


def parse_policies(spec: Mapping[str, object] | None) -> list[Policy]:
    """The policies a spec describes, in :data:`POLICY_ORDER`.

    Within one kind: blocks as one :class:`~two_stage_rec.policies.Block`;
    boosts and buries in the order listed; caps (``max_per``) in the order
    listed (each cap holds in the list it is given, so with several fields
    the last cap is strict and an earlier one may be loosened where the
    later one demoted an item); pins as one :class:`~two_stage_rec.policies.Pins`.

    Args:
        spec: a :class:`PolicySpec` (or any mapping parsed from JSON); None or
            ``{}`` gives no policies.

    Returns:
        The policies, ready for ``Recommender.recommend(..., policies=)``.

    Raises:
        InvalidInputError: an unknown key, a value of the wrong type, or a
            value a policy rejects (its own subclass, e.g.
            :class:`~two_stage_rec.errors.InvalidFilterError` for a bad
            filter), with the path of the fault in the message.
    """
    if spec is None:
        return []
    entries = _mapping(spec, "")
    unknown = sorted(set(entries) - set(POLICY_ORDER))
    if unknown:
        raise _fail("", f"unknown key(s) {unknown}; expected some of {list(POLICY_ORDER)}")
    policies: list[Policy] = []
    if "block" in entries:
        policies.append(Block(cast("list[str]", _list(entries["block"], ".block"))))
    for filter_, by in _rules(entries.get("boost", []), ".boost"):
        policies.append(Boost(filter_, by=by))
    for filter_, by in _rules(entries.get("bury", []), ".bury"):
        policies.append(Bury(filter_, by=by))
    if "mmr" in entries:
        trade_off = entries["mmr"]
        if isinstance(trade_off, bool) or not isinstance(trade_off, int | float):
            raise _fail(".mmr", f"must be a number in [0, 1], got {trade_off!r}")
        if trade_off != 0:
            policies.append(MMR(trade_off))
    for field_name, limit in _numbers(entries.get("max_per", {}), ".max_per").items():
        policies.append(MaxPerValue(field_name, limit))
    pins = _numbers(entries.get("pin", {}), ".pin")
    if pins:
        policies.append(Pins(pins))
    return policies


def parse_max_per(text: str) -> tuple[str, int]:
    """``"FIELD=N"`` (the command line's ``--max-per``) as ``(field, n)``.

    Raises:
        InvalidInputError: not of the form ``FIELD=N`` with a non-empty field
            and a whole number N >= 1.
    """
    field_name, sep, number = text.partition("=")
    field_name, number = field_name.strip(), number.strip()
    if not sep or not field_name or not number.isdigit() or int(number) < 1:
        raise InvalidPolicyError(f"--max-per needs FIELD=N with N >= 1 (e.g. genres=2), got {text!r}")
    return field_name, int(number)


def cli_spec(*, diversity: float | None = None, max_per: Sequence[str] = ()) -> PolicySpec:
    """The spec of the command line's policy options, for :func:`parse_policies`.

    Args:
        diversity: ``--diversity LAMBDA``, the MMR trade-off; None or 0: off.
        max_per: ``--max-per FIELD=N`` values (repeatable; the last one for
            a field wins).

    Raises:
        InvalidInputError: a malformed ``--max-per``.
    """
    spec: PolicySpec = {}
    if diversity:
        spec["mmr"] = diversity
    caps = dict(parse_max_per(text) for text in max_per)
    if caps:
        spec["max_per"] = caps
    return spec
