"""Post-ranking policies: diversity and business rules applied after ranking.

See :mod:`two_stage_rec.policies.base` for how policies compose.
"""

from two_stage_rec.policies.base import AddsItems, NeedsVectors, Policy, RankedList, apply_policies

__all__ = ["AddsItems", "NeedsVectors", "Policy", "RankedList", "apply_policies"]
