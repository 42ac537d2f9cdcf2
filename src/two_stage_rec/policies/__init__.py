"""Post-ranking policies: diversity and business rules applied after ranking.

See :mod:`two_stage_rec.policies.base` for how policies compose,
:mod:`~two_stage_rec.policies.diversity` and :mod:`~two_stage_rec.policies.rules`
for the policies, and :mod:`~two_stage_rec.policies.spec` for building them
from plain data (the command line, a service request).
"""

from two_stage_rec.policies.base import AddsItems, NeedsVectors, Policy, RankedList, apply_policies
from two_stage_rec.policies.diversity import MMR, MaxPerValue
from two_stage_rec.policies.rules import Block, Boost, Bury, Pin, Pins
from two_stage_rec.policies.spec import POLICY_ORDER, PolicySpec, RuleSpec, cli_spec, parse_max_per, parse_policies

__all__ = [
    "MMR",
    "POLICY_ORDER",
    "AddsItems",
    "Block",
    "Boost",
    "Bury",
    "MaxPerValue",
    "NeedsVectors",
    "Pin",
    "Pins",
    "Policy",
    "PolicySpec",
    "RankedList",
    "RuleSpec",
    "apply_policies",
    "cli_spec",
    "parse_max_per",
    "parse_policies",
]
