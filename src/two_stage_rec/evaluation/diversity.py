"""Beyond accuracy: how varied and how unexpected each user's top k is.

Relevance metrics (:mod:`two_stage_rec.evaluation.metrics`) reward a list of
ten near-identical hits. These measure what they miss, per user, so that two
rankings can be compared user by user like any other metric
(:func:`~two_stage_rec.evaluation.bootstrap.paired_bootstrap`):

* :func:`intra_list_diversity`: mean pairwise cosine distance of the items'
  vectors (how different the items are from each other);
* :func:`distinct_values`: how many distinct values of a metadata field
  (e.g. genres) the list covers;
* :func:`novelty`: mean self-information of the items, -log2 of the share of
  training users who interacted with each (how far from the obvious hits);
* :func:`~two_stage_rec.evaluation.metrics.catalog_coverage` (one number over
  all users): share of the catalogue recommended to anyone.

Higher is always more diverse / more novel; whether that is *better* is
the trade-off the MMR curve of ``two-stage-rec evaluate --diversity-curve``
measures. Every function returns float64 of shape (n_users,).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from two_stage_rec.errors import InvalidInputError
from two_stage_rec.types import Metadata

__all__ = ["distinct_values", "intra_list_diversity", "novelty"]

PerUser = npt.NDArray[np.float64]


def intra_list_diversity(vectors: npt.ArrayLike, valid: npt.ArrayLike | None = None) -> PerUser:
    """Mean pairwise cosine distance (1 - cos) of each list's item vectors.

    ILD = (2 / (m (m - 1))) * sum over pairs i < j of (1 - cos(v_i, v_j)),
    over the m valid items of the list. It lies in [0, 2]: 0 when all items
    point the same way, 1 for orthogonal items. A zero vector has cosine 0
    with everything (distance 1).

    Args:
        vectors: float (n_users, k, d), the item vectors of each top k, best first.
        valid: bool (n_users, k), False for padding (fewer than k items, or an
            item without a vector); None means every slot is valid.

    Returns:
        float64 (n_users,); 0 for a list with fewer than two valid items (no pair).

    Raises:
        InvalidInputError: ``vectors`` is not 3-D, ``valid`` does not match its
            first two dimensions, or a valid vector is not finite.
    """
    stack = np.asarray(vectors, dtype=np.float64)
    if stack.ndim != 3:
        raise InvalidInputError(f"vectors must be 3-D (n_users, k, d), got shape {stack.shape}")
    mask = np.ones(stack.shape[:2], dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if mask.shape != stack.shape[:2]:
        raise InvalidInputError(f"valid must have shape {stack.shape[:2]}, got {mask.shape}")
    if not np.isfinite(stack[mask]).all():
        raise InvalidInputError("item vectors must be finite")
    stack = np.where(mask[:, :, None], stack, 0.0)
    norms = np.linalg.norm(stack, axis=2, keepdims=True)
    unit = np.divide(stack, norms, out=np.zeros_like(stack), where=norms > 0)
    cosine = unit @ unit.transpose(0, 2, 1)  # (n, k, k)
    k = stack.shape[1]
    upper = np.triu(np.ones((k, k), dtype=bool), 1)
    pairs = mask[:, :, None] & mask[:, None, :] & upper  # each valid pair once
    total = np.where(pairs, 1.0 - cosine, 0.0).sum(axis=(1, 2))
    count = pairs.sum(axis=(1, 2)).astype(np.float64)
    return np.asarray(np.divide(total, count, out=np.zeros_like(total), where=count > 0), np.float64)


def distinct_values(metadata: Sequence[Sequence[Metadata]], field: str) -> PerUser:
    """How many distinct values of ``field`` each list covers.

    A list-valued field (``"genres": ["Action", "Sci-Fi"]``) contributes each
    of its values; a scalar field its one value; an item without the field
    (or with ``None``) nothing.

    Args:
        metadata: n_users lists of the top-k items' metadata, best first.
        field: the metadata key, e.g. ``"genres"``.

    Returns:
        float64 (n_users,), counts >= 0 (higher covers more values).
    """
    counts = np.zeros(len(metadata), dtype=np.float64)
    for row, items in enumerate(metadata):
        seen: set[object] = set()
        for item in items:
            value = item.get(field)
            if value is None:
                continue
            if isinstance(value, list | tuple | set | frozenset):
                seen.update(value)
            else:
                seen.add(value)
        counts[row] = len(seen)
    return counts


def novelty(
    recommended: npt.ArrayLike, users_per_item: Mapping[str, int], n_users: int, k: int | None = None
) -> PerUser:
    """Mean self-information of each list's items: mean of -log2(p(i)).

    p(i) is the share of the ``n_users`` training users who interacted with
    item i; an item no training user touched counts as touched by one (the
    most novel finite value, log2(n_users)) so that novelty stays finite.

    Args:
        recommended: array-like (n_lists, >= k) of item ids, best first; ``""``
            pads are left out of the mean.
        users_per_item: item id -> number of distinct training users who
            interacted with it.
        n_users: training users (> 0), the denominator of p.
        k: cut-off; None uses every column.

    Returns:
        float64 (n_lists,) in [0, log2(n_users)], higher is more novel (less
        popular); 0 for a list of pads only.

    Raises:
        InvalidInputError: ``recommended`` is not 2-D, ``n_users`` < 1, or a
            count exceeds ``n_users``.
    """
    if n_users < 1:
        raise InvalidInputError(f"n_users must be positive, got {n_users}")
    ids = np.asarray(recommended, dtype=object)
    if ids.ndim != 2:
        raise InvalidInputError(f"recommended must be 2-D (n_lists, k), got shape {ids.shape}")
    if k is not None:
        ids = ids[:, :k]
    if any(count > n_users for count in users_per_item.values()):
        raise InvalidInputError(f"an item is counted for more than the {n_users} training users")
    unique, inverse = np.unique(ids.astype(str), return_inverse=True)
    counts = np.array([max(users_per_item.get(item, 0), 1) for item in unique.tolist()], dtype=np.float64)
    information = (np.log2(float(n_users)) - np.log2(counts))[inverse.reshape(ids.shape)]
    real = ids != ""
    total = np.where(real, information, 0.0).sum(axis=1)
    found = real.sum(axis=1).astype(np.float64)
    return np.asarray(np.divide(total, found, out=np.zeros_like(total), where=found > 0), np.float64)
