"""Paired comparison of two rankers over the same users, with a bootstrap confidence interval.

"Reranking helps" is a statement about the per-user difference
``after[u] - before[u]``: its mean, and how far that mean could move if we
had drawn a different set of users. The percentile bootstrap resamples users
with replacement, so no normality is assumed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from two_stage_rec.errors import InvalidInputError

__all__ = ["PairedComparison", "paired_bootstrap"]

_CHUNK = 1000  # resamples drawn at once: bounds memory at CHUNK * n_users int64


@dataclass(frozen=True, slots=True)
class PairedComparison:
    """Per-user difference ``candidate - baseline`` of one metric.

    Attributes:
        mean_difference: mean over users of candidate minus baseline
            (positive means the candidate is better).
        ci_low: lower end of the bootstrap confidence interval of the mean.
        ci_high: upper end.
        confidence: level of the interval, e.g. 0.95.
        n_users: users compared.
        wins: users for whom the candidate scored higher.
        losses: users for whom it scored lower.
        ties: users with equal scores.
        n_resamples: bootstrap resamples drawn.
        seed: seed of the resampling generator (same seed, same interval).
    """

    mean_difference: float
    ci_low: float
    ci_high: float
    confidence: float
    n_users: int
    wins: int
    losses: int
    ties: int
    n_resamples: int
    seed: int

    @property
    def significant(self) -> bool:
        """True when the interval excludes zero."""
        return self.ci_low > 0.0 or self.ci_high < 0.0

    def verdict(self) -> str:
        """One plain-English phrase: ``"better"``, ``"worse"`` or ``"no significant difference"``."""
        if self.ci_low > 0.0:
            return "better"
        if self.ci_high < 0.0:
            return "worse"
        return "no significant difference"

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dict (includes ``significant`` and ``verdict``)."""
        return {**asdict(self), "significant": self.significant, "verdict": self.verdict()}


def paired_bootstrap(
    baseline: npt.ArrayLike,
    candidate: npt.ArrayLike,
    *,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """Compare two per-user metric arrays for the same users in the same order.

    Args:
        baseline: float (n_users,), e.g. NDCG@10 of retrieval only.
        candidate: float (n_users,), e.g. NDCG@10 after reranking.
        n_resamples: bootstrap resamples (>= 100).
        confidence: interval level in (0, 1).
        seed: seed for ``numpy.random.default_rng``.

    Returns:
        A :class:`PairedComparison`; its mean difference is candidate - baseline.

    Raises:
        InvalidInputError: shapes differ, arrays are empty or hold NaN, or the
            settings are out of range.
    """
    before = np.asarray(baseline, dtype=np.float64).reshape(-1)
    after = np.asarray(candidate, dtype=np.float64).reshape(-1)
    if before.shape != after.shape:
        raise InvalidInputError(f"paired arrays differ in length: {before.shape[0]} vs {after.shape[0]}")
    if before.size == 0:
        raise InvalidInputError("no users to compare")
    if not (np.isfinite(before).all() and np.isfinite(after).all()):
        raise InvalidInputError("per-user metrics must be finite")
    if n_resamples < 100:
        raise InvalidInputError(f"n_resamples must be at least 100, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"confidence must be in (0, 1), got {confidence}")
    difference = after - before
    n = difference.shape[0]
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples, dtype=np.float64)
    for start in range(0, n_resamples, _CHUNK):
        stop = min(start + _CHUNK, n_resamples)
        rows = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = difference[rows].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return PairedComparison(
        mean_difference=float(difference.mean()),
        ci_low=float(low),
        ci_high=float(high),
        confidence=confidence,
        n_users=n,
        wins=int((difference > 0).sum()),
        losses=int((difference < 0).sum()),
        ties=int((difference == 0).sum()),
        n_resamples=n_resamples,
        seed=seed,
    )
