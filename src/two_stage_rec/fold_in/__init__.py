"""New users without retraining: turn a few interactions into a user vector (fold-in).

A :class:`~two_stage_rec.protocols.FoldIn` maps each user's history (the
vectors of the items they interacted with, optional ratings, and their
trained vector when they have one) to a user vector in the towers' space, so
that the store ranks items for them as for a trained user (dot product,
higher is better). Three implementations, each documented with its formula:

* :class:`MeanFoldIn`: the (rating-weighted) mean of the item vectors,
  rescaled to a trained user's norm (the baseline);
* :class:`RidgeFoldIn`: least squares in the dot-product model, with
  implicit-ALS's global negatives and a prior (closed form);
* :class:`LearnedFoldIn`: a linear map from the history's mean item vector
  to the user vector, fitted on the trained users (closed form);
* :class:`SplitFoldIn`: one fold-in for new users, another for known users
  (those with a trained vector).

:func:`fit_fold_in` fits any of them on the trained users' vectors and
histories; :func:`default_fold_in` does it for a bundle with what measured
best (:data:`DEFAULT_METHOD`: ridge for new users, learned for known ones;
``benchmarks/fold_in.py``).
"""

from __future__ import annotations

from two_stage_rec.fold_in.fit import DEFAULT_METHOD, FoldInMethod, default_fold_in, fit_fold_in
from two_stage_rec.fold_in.learned import HISTORY_SIZES, LearnedFoldIn
from two_stage_rec.fold_in.mean import MeanFoldIn
from two_stage_rec.fold_in.ridge import RidgeFoldIn
from two_stage_rec.fold_in.split import SplitFoldIn

__all__ = [
    "DEFAULT_METHOD",
    "HISTORY_SIZES",
    "FoldInMethod",
    "LearnedFoldIn",
    "MeanFoldIn",
    "RidgeFoldIn",
    "SplitFoldIn",
    "default_fold_in",
    "fit_fold_in",
]
