"""Candidate sources for the first stage, and one pool that merges them.

A production two-stage system rarely retrieves from one index: it merges
several sources (the two-tower index, an item-to-item model, popularity) and
lets the ranker weigh them. This package makes that one composable step:

* :class:`CandidateSource` — the contract: higher-is-better scores of a batch
  of users against a fixed item list (dense, so every source can score every
  candidate another source retrieved: those scores are the ranker's features).
* :class:`TowerSource` — the two towers' retrieval score (exact).
* :class:`ItemItemSource` — an item-to-item co-occurrence model (EASE, Steck 2019).
* :class:`PopularitySource` — training counts.
* :func:`merge_candidates` — each source's top items per user, merged,
  with every source's score of every candidate; :func:`candidate_recall`
  measures the ceiling the merged pool sets for any ranker.

Scores are dense over the item list, so memory is ``users_per_batch x items``
floats: fine for catalogues up to about 10^5 items; the item-to-item source
holds an ``items x items`` matrix and is meant for catalogues up to a few
tens of thousands of items.
"""

from two_stage_rec.candidates.item_item import ItemItemSource
from two_stage_rec.candidates.pool import MergedCandidates, candidate_recall, merge_candidates
from two_stage_rec.candidates.sources import CandidateSource, PopularitySource, TowerSource

__all__ = [
    "CandidateSource",
    "ItemItemSource",
    "MergedCandidates",
    "PopularitySource",
    "TowerSource",
    "candidate_recall",
    "merge_candidates",
]
