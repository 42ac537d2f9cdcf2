"""Comparing recommendations computed in differently shaped batches.

BLAS does not promise the same float32 result for a row of a batched product
and the same row computed alone (5.537593841552734 vs 5.537593364715576 on
one machine), so ids, order, metadata and sources are compared exactly and
scores to a tolerance.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from two_stage_rec import Recommendation

RTOL = 1e-5
ATOL = 1e-6


def assert_same_recommendations(
    got: Sequence[Recommendation], want: Sequence[Recommendation], *, rtol: float = RTOL, atol: float = ATOL
) -> None:
    """Same items in the same order with the same metadata and source; scores equal to a tolerance."""
    assert [(r.item_id, r.source, dict(r.metadata)) for r in got] == [
        (r.item_id, r.source, dict(r.metadata)) for r in want
    ]
    np.testing.assert_allclose([r.score for r in got], [r.score for r in want], rtol=rtol, atol=atol)
    np.testing.assert_allclose(
        [r.retrieval_score for r in got], [r.retrieval_score for r in want], rtol=rtol, atol=atol
    )  # NaN (fallback) equals NaN
