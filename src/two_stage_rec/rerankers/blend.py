"""A reranker that blends the retrieval score with a rating model, learned from implicit feedback.

Why it exists: a rating model (the notebook's scoring model) predicts *how
much a user would like an item they watch*, not *which items they will
watch*. Reordering retrieval candidates by predicted rating alone promotes
well-liked niche films over what the user actually goes on to watch, and top-k
relevance drops (measured in ``benchmarks/results/evaluation.json``). This
reranker keeps the retrieval score, which *is* a relevance signal, and learns
how much the rating model and the item itself should move it:

    score(u, v) = a * retrieval(u, v) + b * rating(u, v) + <c, v> + bias

``retrieval(u, v)`` is the store's own similarity, recomputed from the two
vectors (the :class:`~two_stage_rec.protocols.Reranker` protocol receives only
the user and item vectors, not the store's scores): ``<u, v>`` for a
``"dotproduct"`` store, cosine for ``"cosine"``, ``-|u - v|^2`` for
``"euclidean"``. Set ``metric`` to the store's metric. ``<c, v>`` is a learned
item prior (e.g. popularity, which a two-tower model trained with in-batch
negatives systematically underrates) read off the item vector.

``rating(u, v)`` is whatever the scoring model outputs, higher is better: a
predicted rating for a model trained on explicit feedback, a relevance logit
for one trained on implicit feedback. Nothing here assumes a rating scale:
the fit standardises every feature, and the weight ``b`` absorbs the scale.

The weights are fitted by :func:`fit_blend` on implicit feedback with
negatives: for each user, retrieve candidates with some of their items hidden,
and maximise the softmax likelihood of the hidden items among the candidates
(a conditional logit, solved by Newton's method with an L2 penalty).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from two_stage_rec.errors import DimensionMismatchError, InvalidInputError, ModelError
from two_stage_rec.protocols import Embedder, Reranker, VectorStore, input_width
from two_stage_rec.scoring import normalize_rows
from two_stage_rec.types import METRICS, FloatMatrix, FloatVector, Metric

__all__ = ["BlendReranker", "BlendWeights", "fit_blend", "hold_out_items"]

FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class BlendWeights:
    """The learned coefficients of :class:`BlendReranker`.

    Attributes:
        retrieval: weight a of the retrieval score.
        rating: weight b of the scoring model's score (a rating or a relevance
            logit; 0 when there is no model). The name is kept for the file format.
        item: float32 (d,) item-prior weights c, or None for no item term.
        bias: constant added to every score (does not change any ranking).
    """

    retrieval: float
    rating: float
    item: npt.NDArray[np.float32] | None
    bias: float = 0.0


def _pairwise_retrieval(users: FloatMatrix, items: FloatMatrix, metric: Metric) -> FloatVector:
    """The store's similarity of row pairs, higher is better (matches :func:`~two_stage_rec.scoring.exact_scores`)."""
    if metric == "dotproduct":
        scores = np.einsum("ij,ij->i", users, items)
    elif metric == "cosine":
        scores = np.einsum("ij,ij->i", normalize_rows(users), normalize_rows(items))
    else:
        difference = users - items
        scores = -np.einsum("ij,ij->i", difference, difference)
    return np.asarray(scores, dtype=np.float32)


class BlendReranker:
    """``a * retrieval(u, v) + b * rating(u, v) + <c, v> + bias``; see the module docstring.

    Args:
        weights: the coefficients (usually from :func:`fit_blend`).
        rating_model: the scoring model (predicted rating, or relevance logit
            for implicit feedback), or None to blend only the retrieval score
            and the item prior.
        metric: the metric of the store whose candidates are reranked; the
            retrieval score is recomputed with it.

    Raises:
        InvalidInputError: unknown metric, or a rating weight without a rating model.

    Thread safety: ``score`` is safe to call concurrently when the rating model's is.
    """

    def __init__(
        self, weights: BlendWeights, *, rating_model: Reranker | None = None, metric: Metric = "dotproduct"
    ) -> None:
        if metric not in METRICS:
            raise InvalidInputError(f"metric must be one of {METRICS}, got {metric!r}")
        if rating_model is None and weights.rating != 0.0:
            raise InvalidInputError("a non-zero rating weight needs a rating_model")
        self.weights = weights
        self.rating_model = rating_model
        self.metric: Metric = metric

    def __repr__(self) -> str:
        item = "none" if self.weights.item is None else f"{self.weights.item.shape[0]}-d"
        return (
            f"BlendReranker(retrieval={self.weights.retrieval:.4g}, rating={self.weights.rating:.4g}, "
            f"item_prior={item}, metric={self.metric!r}, rating_model={self.rating_model!r})"
        )

    @property
    def input_width(self) -> int | None:
        """The rating model's pair width d_user + d_item when it declares one, else None."""
        return input_width(self.rating_model) if self.rating_model is not None else None

    def score(self, user_vectors: FloatMatrix, item_vectors: FloatMatrix) -> FloatVector:
        """Blended score of row pairs.

        Args:
            user_vectors: float32 (n, d).
            item_vectors: float32 (n, d).

        Returns:
            float32 (n,); higher is better.
        """
        users = np.asarray(user_vectors, dtype=np.float32)
        items = np.asarray(item_vectors, dtype=np.float32)
        if users.ndim != 2 or items.ndim != 2 or users.shape != items.shape:
            raise InvalidInputError(f"need two (n, d) arrays of one shape, got {users.shape} and {items.shape}")
        w = self.weights
        total = w.retrieval * _pairwise_retrieval(users, items, self.metric).astype(np.float64) + w.bias
        if self.rating_model is not None and w.rating != 0.0:
            total += w.rating * np.asarray(self.rating_model.score(users, items), dtype=np.float64).reshape(-1)
        if w.item is not None:
            if w.item.shape[0] != items.shape[1]:
                raise DimensionMismatchError(w.item.shape[0], items.shape[1], "item vectors")
            total += items.astype(np.float64) @ w.item.astype(np.float64)
        return total.astype(np.float32)

    def moved_to(
        self,
        source_item_vectors: npt.ArrayLike,
        target_item_vectors: npt.ArrayLike,
        *,
        rating_model: Reranker | None = None,
    ) -> tuple[BlendReranker, float]:
        """The same blend for other towers trained on the same items (e.g. retrained on more data).

        The retrieval and rating weights carry over unchanged (same model
        family, same score scales). The item prior is a number per item,
        ``<c, v_source>``; it is re-expressed in the target towers' space by
        least squares, ``c_target = argmin |V_target c - V_source c|^2``.

        Args:
            source_item_vectors: float (n_items, d) item vectors of the towers
                the blend was fitted with.
            target_item_vectors: float (n_items, d') vectors of the same items,
                same order, from the new towers.
            rating_model: the new towers' rating model (None keeps the current one).

        Returns:
            ``(blend, r2)``: the moved blend and the share of the item prior's
            variance the target space reproduces (1.0 = exactly; 1.0 when there
            is no item prior).
        """
        source = np.asarray(source_item_vectors, dtype=np.float64)
        target = np.asarray(target_item_vectors, dtype=np.float64)
        if source.ndim != 2 or target.ndim != 2 or source.shape[0] != target.shape[0]:
            raise InvalidInputError(
                f"need item vectors of the same items in the same order, got {source.shape} and {target.shape}"
            )
        w = self.weights
        model = rating_model if rating_model is not None else self.rating_model
        if w.item is None:
            return BlendReranker(w, rating_model=model, metric=self.metric), 1.0
        if source.shape[1] != w.item.shape[0]:
            raise DimensionMismatchError(w.item.shape[0], source.shape[1], "source item vectors")
        prior = source @ w.item.astype(np.float64)
        moved, *_ = np.linalg.lstsq(target, prior, rcond=None)
        spread = float(np.var(prior))
        r2 = 1.0 - float(np.var(target @ moved - prior)) / spread if spread > 0 else 1.0
        weights = BlendWeights(retrieval=w.retrieval, rating=w.rating, item=moved.astype(np.float32), bias=w.bias)
        return BlendReranker(weights, rating_model=model, metric=self.metric), r2

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the weights as NPZ (no pickle); the rating model is saved separately."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        item = self.weights.item if self.weights.item is not None else np.zeros(0, np.float32)
        with open(target, "wb") as handle:
            np.savez(
                handle,
                retrieval=np.float64(self.weights.retrieval),
                rating=np.float64(self.weights.rating),
                item=item,
                bias=np.float64(self.weights.bias),
                metric=np.str_(self.metric),
                format_version=np.int64(FORMAT_VERSION),
            )
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, rating_model: Reranker | None = None) -> BlendReranker:
        """Read weights written by :meth:`save`; pass the same rating model it was fitted with."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                version = int(data["format_version"])
                item = np.asarray(data["item"], dtype=np.float32)
                weights = BlendWeights(
                    retrieval=float(data["retrieval"]),
                    rating=float(data["rating"]),
                    item=item if item.size else None,
                    bias=float(data["bias"]),
                )
                metric = str(data["metric"])
        except (OSError, KeyError, ValueError) as exc:
            raise ModelError(f"{path} is not a blend reranker file: {exc}") from exc
        if version != FORMAT_VERSION:
            raise ModelError(f"{path} has format version {version}; this library reads {FORMAT_VERSION}")
        if metric not in METRICS:
            raise ModelError(f"{path} names an unknown metric {metric!r}")
        return cls(weights, rating_model=rating_model, metric=metric)


def hold_out_items(
    items_by_user: Mapping[str, Collection[str]], *, fraction: float = 0.2, min_items: int = 5, seed: int = 0
) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Split each user's items into what the user "has seen" and what is hidden as a target.

    Args:
        items_by_user: user -> items (e.g. the training split grouped by user).
        fraction: share of each user's items hidden (at least one).
        min_items: users with fewer items are left out entirely.
        seed: seed of the random split.

    Returns:
        ``(seen, targets)``: two dicts user -> item set, with the same users.
    """
    if not 0.0 < fraction < 1.0:
        raise InvalidInputError(f"fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    seen: dict[str, set[str]] = {}
    targets: dict[str, set[str]] = {}
    for user in sorted(items_by_user):
        items = sorted(items_by_user[user])
        if len(items) < max(min_items, 2):
            continue
        hidden = max(1, round(fraction * len(items)))
        order = rng.permutation(len(items))
        targets[user] = {items[i] for i in order[:hidden]}
        seen[user] = {items[i] for i in order[hidden:]}
    return seen, targets


def fit_blend(
    *,
    user_embedder: Embedder,
    store: VectorStore,
    seen: Mapping[str, Collection[str]],
    targets: Mapping[str, Collection[str]],
    rating_model: Reranker | None = None,
    item_prior: bool = True,
    candidates: int = 50,
    l2: float = 1.0,
    max_iterations: int = 50,
) -> BlendReranker:
    """Learn blend weights from implicit feedback: hidden items versus the other candidates.

    For every user in ``targets``: retrieve ``candidates`` items from the
    store, leaving out ``seen[user]`` (exactly as a recommendation request
    would), and fit the weights so that the user's target items score high
    among those candidates (softmax over each user's candidates, one term per
    target retrieved; L2 penalty ``l2`` on standardised weights).

    Fit on interactions the two towers were **not** trained on (a validation
    split) for an honest blend. Fitting on hidden training items also works,
    but the towers have already seen those items, so the retrieval weight comes
    out larger than it should.

    Args:
        user_embedder: the user tower (or its table).
        store: the store recommendations are retrieved from.
        seen: user -> items excluded from that user's candidates.
        targets: user -> items the user interacted with (the positives).
        rating_model: the scoring model to blend in (any reranker whose
            score is higher for better items: a rating or a relevance logit), or None.
        item_prior: learn the item term ``<c, v>``.
        candidates: candidates per user (as in ``Recommender.recommend``).
        l2: L2 penalty on standardised weights (> 0).
        max_iterations: Newton steps at most.

    Returns:
        A fitted :class:`BlendReranker` using the store's metric.

    Raises:
        InvalidInputError: no user had a target among its candidates.
    """
    if l2 <= 0:
        raise InvalidInputError(f"l2 must be positive, got {l2}")
    users = [user for user in sorted(targets) if targets[user]]
    features, labels = _candidate_features(
        user_embedder, store, users, seen, targets, rating_model, item_prior, candidates
    )
    if not labels.any():
        raise InvalidInputError("no target item appears among any user's candidates; nothing to learn from")
    weights = _fit_conditional_logit(features, labels, l2=l2, max_iterations=max_iterations)
    item = weights[2:].astype(np.float32) if item_prior else None
    blend = BlendWeights(retrieval=float(weights[0]), rating=float(weights[1]), item=item)
    return BlendReranker(blend, rating_model=rating_model, metric=store.metric)


def _candidate_features(
    user_embedder: Embedder,
    store: VectorStore,
    users: Sequence[str],
    seen: Mapping[str, Collection[str]],
    targets: Mapping[str, Collection[str]],
    rating_model: Reranker | None,
    item_prior: bool,
    candidates: int,
    batch_size: int = 256,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Features (n_users, candidates, F) and labels (n_users, candidates); missing candidates are NaN rows."""
    blocks: list[npt.NDArray[np.float64]] = []
    label_blocks: list[npt.NDArray[np.bool_]] = []
    for start in range(0, len(users), batch_size):
        batch = list(users[start : start + batch_size])
        vectors = np.asarray(user_embedder.embed(batch), dtype=np.float32)
        excluded = [set(seen.get(user, ())) for user in batch]
        top_k = candidates + max((len(e) for e in excluded), default=0)
        result = store.query(vectors, top_k, include_values=True)
        assert result.values is not None
        d = vectors.shape[1]
        n_features = 2 + (d if item_prior else 0)
        block = np.full((len(batch), candidates, n_features), np.nan)
        labels = np.zeros((len(batch), candidates), dtype=bool)
        rows: list[int] = []
        cols: list[int] = []
        item_rows: list[npt.NDArray[np.float32]] = []
        for row, user in enumerate(batch):
            kept = [c for c in range(int(result.counts[row])) if result.ids[row, c] not in excluded[row]]
            kept = kept[:candidates]
            wanted = targets[user]
            for position, column in enumerate(kept):
                rows.append(row)
                cols.append(position)
                item_rows.append(result.values[row, column])
                labels[row, position] = result.ids[row, column] in wanted
        if not rows:
            continue
        pair_users = vectors[np.array(rows)]
        pair_items = np.stack(item_rows).astype(np.float32)
        block[rows, cols, 0] = _pairwise_retrieval(pair_users, pair_items, store.metric)
        block[rows, cols, 1] = (
            np.asarray(rating_model.score(pair_users, pair_items), dtype=np.float64).reshape(-1)
            if rating_model is not None
            else 0.0
        )
        if item_prior:
            block[rows, cols, 2:] = pair_items
        blocks.append(block)
        label_blocks.append(labels)
    if not blocks:
        return np.zeros((0, candidates, 2)), np.zeros((0, candidates), dtype=bool)
    return np.concatenate(blocks), np.concatenate(label_blocks)


def _fit_conditional_logit(
    features: npt.NDArray[np.float64], labels: npt.NDArray[np.bool_], *, l2: float, max_iterations: int
) -> npt.NDArray[np.float64]:
    """Weights w maximising sum over users and positives of log softmax(x @ w)[positive] - l2/2 |w_std|^2.

    Args:
        features: (n_users, C, F); rows of NaN are absent candidates.
        labels: (n_users, C) positives.

    Returns:
        float64 (F,) weights in the original (unstandardised) feature units.
        A constant feature (e.g. a missing rating model) gets weight 0.
    """
    present = ~np.isnan(features[..., 0])
    keep = labels.any(axis=1)  # users with no positive among candidates carry no information
    x, mask, y = features[keep], present[keep], labels[keep].astype(np.float64)
    flat = x[mask]
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    informative = std > 1e-12
    z = np.where(mask[..., None], (np.nan_to_num(x) - mean) / np.where(informative, std, 1.0), 0.0)
    z[..., ~informative] = 0.0
    positives = y.sum(axis=1)  # (n,)
    w = np.zeros(x.shape[2])

    def objective(weights: npt.NDArray[np.float64]) -> float:
        logits = np.where(mask, z @ weights, -np.inf)
        top = logits.max(axis=1, keepdims=True)
        log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
        gained = (np.where(mask, logits, 0.0) * y).sum() - (positives * log_norm).sum()
        return float(-gained + 0.5 * l2 * weights @ weights)

    current = objective(w)
    for _ in range(max_iterations):
        logits = np.where(mask, z @ w, -np.inf)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        expected = np.einsum("nc,ncf->nf", p, z)
        gradient = -(np.einsum("nc,ncf->f", y, z) - positives @ expected) + l2 * w
        # Hessian = sum over users of positives * Cov_p(z), formed as one (rows, F) matrix product.
        weighted = (z - expected[:, None, :]) * np.sqrt(positives[:, None] * p)[..., None]
        flat_weighted = weighted.reshape(-1, w.shape[0])
        hessian = flat_weighted.T @ flat_weighted + l2 * np.eye(w.shape[0])
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while scale > 1e-6:
            candidate = w - scale * step
            value = objective(candidate)
            if value <= current:
                break
            scale /= 2.0
        else:
            break
        improvement = current - value
        w, current = candidate, value
        if improvement < 1e-9 * max(1.0, abs(current)):
            break
    return np.where(informative, w / np.where(informative, std, 1.0), 0.0)
