"""How the mean and learned fold-ins combine a history with a known user's trained vector."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from two_stage_rec.fold_in._batch import Batch

__all__ = ["with_priors"]


def with_priors(folded: npt.NDArray[np.float64], batch: Batch, strength: float) -> npt.NDArray[np.float64]:
    """Pull each folded vector of a user with a prior towards that prior.

    ``u = (κ p + h f) / (κ + h)``: the trained vector ``p`` counts as ``κ``
    (``strength``) history items, the ``h`` new items' fold-in ``f`` as
    ``h``. Users without a prior keep ``f``.
    """
    if not batch.has_prior.any():
        return folded
    h = batch.lengths.astype(np.float64)[:, None]
    mixed = (strength * batch.priors + h * folded) / (strength + h)
    return np.where(batch.has_prior[:, None], mixed, folded)
