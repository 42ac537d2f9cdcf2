"""A learned ranker over per-candidate features: LightGBM learning-to-rank, served in numpy.

Why: the blend (:mod:`two_stage_rec.rerankers.blend`) is linear in the
retrieval score, the rating score and an item prior, and adds under a
hundredth of NDCG@10. A ranker that sees the user's history, the item's
popularity and metadata and several sources' scores
(:class:`~two_stage_rec.rerankers.features.CandidateFeatures`) can weigh them
non-linearly. It is trained listwise (by default XE-NDCG, a cross-entropy
surrogate of NDCG; LambdaRank and pointwise logistic loss are options) on
held-out interactions: for each user of a validation split V,
the merged candidates retrieved with the V items hidden, the V items among
them as positives and every other candidate as a negative.

How it is built: :func:`fit_feature_ranker` trains gradient-boosted trees
with LightGBM (the ``ranking`` extra, imported only there) and converts them
to :class:`TreeEnsemble`, plain arrays that :meth:`TreeEnsemble.predict`
evaluates in numpy with LightGBM's own routing rules (missing values, the
zero threshold), so serving and saved rankers need neither LightGBM nor
TensorFlow. A saved ranker is one NPZ file (no pickle).

It is not a :class:`~two_stage_rec.protocols.Reranker`: that contract scores
(user vector, item vector) pairs, and these features need the user's id and
history. :meth:`FeatureRanker.rank` orders merged candidates instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from two_stage_rec._optional import require
from two_stage_rec.candidates.pool import MergedCandidates
from two_stage_rec.errors import InvalidInputError, ModelError
from two_stage_rec.rerankers._trees import MISSING_NAN, MISSING_NONE, MISSING_ZERO, CompiledTrees, compile_trees

__all__ = ["FeatureRanker", "RankerParams", "TreeEnsemble", "fit_feature_ranker"]

FORMAT_VERSION = 1

# LightGBM's missing-value handling of a numerical split (tree.h, NumericalDecision).
_MISSING_CODES = {"None": MISSING_NONE, "Zero": MISSING_ZERO, "NaN": MISSING_NAN}

RankingObjective: TypeAlias = Literal["rank_xendcg", "lambdarank", "binary"]
"""LightGBM objectives :class:`RankerParams` accepts: listwise cross-entropy NDCG
surrogate (XE-NDCG), LambdaRank, or pointwise logistic loss."""


@dataclass(frozen=True, eq=False)
class TreeEnsemble:
    """Regression trees summed: LightGBM's numerical splits as flat arrays.

    Node ``i`` of the flat arrays sends a row left when its feature value is
    ``<= threshold[i]`` (a missing value goes the ``default_left`` way, with
    LightGBM's rules per ``missing`` code); a child index ``c >= 0`` is another
    node, ``c < 0`` the leaf ``~c``. Tree ``t`` starts at ``roots[t]`` (a
    negative root is a single-leaf tree).

    Attributes:
        feature: int32 (nodes,) feature column of each split.
        threshold: float64 (nodes,).
        left, right: int32 (nodes,) children.
        default_left: bool (nodes,).
        missing: int8 (nodes,) 0 = none (NaN counts as 0), 1 = zero (0 and NaN are missing), 2 = NaN.
        leaf_value: float64 (leaves,).
        roots: int32 (trees,).
        n_features: F, the width of the rows predicted.
    """

    feature: npt.NDArray[np.int32]
    threshold: npt.NDArray[np.float64]
    left: npt.NDArray[np.int32]
    right: npt.NDArray[np.int32]
    default_left: npt.NDArray[np.bool_]
    missing: npt.NDArray[np.int8]
    leaf_value: npt.NDArray[np.float64]
    roots: npt.NDArray[np.int32]
    n_features: int

    @classmethod
    def from_lightgbm(cls, dumped: Mapping[str, Any]) -> TreeEnsemble:
        """Convert ``Booster.dump_model()``'s dictionary.

        Raises:
            ModelError: a categorical split or a decision other than ``<=``.
        """
        feature: list[int] = []
        threshold: list[float] = []
        left: list[int] = []
        right: list[int] = []
        default_left: list[bool] = []
        missing: list[int] = []
        leaves: list[float] = []
        roots: list[int] = []

        def visit(node: Mapping[str, Any]) -> int:
            if "leaf_value" in node:
                leaves.append(float(node["leaf_value"]))
                return ~(len(leaves) - 1)
            if node.get("decision_type") != "<=":
                raise ModelError(f"only numerical '<=' splits can be converted, got {node.get('decision_type')!r}")
            index = len(feature)
            feature.append(int(node["split_feature"]))
            threshold.append(float(node["threshold"]))
            default_left.append(bool(node["default_left"]))
            missing.append(_MISSING_CODES[str(node["missing_type"])])
            left.append(0)
            right.append(0)
            left[index] = visit(node["left_child"])
            right[index] = visit(node["right_child"])
            return index

        for tree in dumped["tree_info"]:
            roots.append(visit(tree["tree_structure"]))
        return cls(
            feature=np.array(feature, dtype=np.int32),
            threshold=np.array(threshold, dtype=np.float64),
            left=np.array(left, dtype=np.int32),
            right=np.array(right, dtype=np.int32),
            default_left=np.array(default_left, dtype=bool),
            missing=np.array(missing, dtype=np.int8),
            leaf_value=np.array(leaves, dtype=np.float64),
            roots=np.array(roots, dtype=np.int32),
            n_features=int(dumped["max_feature_idx"]) + 1,
        )

    @property
    def n_trees(self) -> int:
        """Number of trees summed."""
        return int(self.roots.size)

    def predict(self, rows: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Sum of the trees' leaf values for each row (as LightGBM's raw score).

        Every split of every tree is decided for all rows at once, then each
        tree's decisions index a table of its leaf values (trees of more than
        12 splits are walked level by level instead). Float32 rows are
        compared as they are, with the same decisions as in float64.

        Args:
            rows: float (n, n_features); NaN is a missing value.

        Returns:
            float64 (n,); higher ranks first.
        """
        x = np.asarray(rows)
        if x.dtype != np.float32:
            x = x.astype(np.float64, copy=False)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise InvalidInputError(f"need rows of {self.n_features} features, got shape {x.shape}")
        return self._compiled.predict(x)

    def prepare(self) -> None:
        """Build the evaluation tables now instead of at the first :meth:`predict` (serving start-up)."""
        _ = self._compiled

    @cached_property
    def _compiled(self) -> CompiledTrees:
        return compile_trees(
            feature=self.feature,
            threshold=self.threshold,
            left=self.left,
            right=self.right,
            default_left=self.default_left,
            missing=self.missing,
            leaf_value=self.leaf_value,
            roots=self.roots,
            n_features=self.n_features,
        )


@dataclass(frozen=True)
class RankerParams:
    """LightGBM learning-to-rank settings of :func:`fit_feature_ranker` (keyword-only).

    The defaults were chosen on MovieLens-100K's validation split V (2-fold
    cross-fitted NDCG@10; ``benchmarks/results/ranking_quality.json``):
    small, heavily regularised trees, since V holds only about ten positives per user.

    Attributes:
        objective: the LightGBM objective (:data:`RankingObjective`).
        n_trees: boosting rounds.
        learning_rate: shrinkage.
        num_leaves: leaves per tree.
        min_data_in_leaf: rows per leaf at least.
        feature_fraction: share of features per tree.
        l2: L2 penalty on leaf values.
        truncation: LambdaRank's ``lambdarank_truncation_level`` (pairs below it are ignored).
        seed: LightGBM's seed.
    """

    objective: RankingObjective = "rank_xendcg"
    n_trees: int = 100
    learning_rate: float = 0.05
    num_leaves: int = 7
    min_data_in_leaf: int = 200
    feature_fraction: float = 0.8
    l2: float = 10.0
    truncation: int = 20
    seed: int = 0

    def lightgbm(self) -> dict[str, Any]:
        """These settings as LightGBM parameters (one thread, deterministic)."""
        if self.objective not in ("rank_xendcg", "lambdarank", "binary"):
            raise InvalidInputError(f"unknown objective {self.objective!r}")
        return {
            "objective": self.objective,
            "metric": "auc" if self.objective == "binary" else "ndcg",
            "eval_at": [10],
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_seed": self.seed,
            "feature_fraction_seed": self.seed,
            "seed": self.seed,
            "lambda_l2": self.l2,
            "lambdarank_truncation_level": self.truncation,
            "num_threads": 1,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }


@dataclass(frozen=True, eq=False)
class FeatureRanker:
    """Orders merged candidates by a tree ensemble over their features.

    Attributes:
        feature_names: the F feature names, in column order (see
            :class:`~two_stage_rec.rerankers.features.CandidateFeatures`).
        trees: the ensemble.
        report: how it was fitted (users, positives, settings).
    """

    feature_names: tuple[str, ...]
    trees: TreeEnsemble
    report: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.feature_names) != self.trees.n_features:
            raise InvalidInputError(f"{len(self.feature_names)} feature names for {self.trees.n_features} features")

    def score(self, features: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Scores of candidates; higher is better.

        Args:
            features: float (..., F); all-NaN rows (padding) score ``-inf``.

        Returns:
            float32 of the leading shape.
        """
        x = np.asarray(features)
        if x.dtype != np.float32:  # float32 (what the features are built in) is evaluated as it is
            x = x.astype(np.float64, copy=False)
        if x.ndim < 1 or x.shape[-1] != len(self.feature_names):
            raise InvalidInputError(f"need {len(self.feature_names)} features, got shape {x.shape}")
        flat = x.reshape(-1, x.shape[-1])
        # Padding rows are scored with the rest (cheaper than selecting the others), then overwritten.
        scores = self.trees.predict(flat)
        scores[np.isnan(flat).all(axis=1)] = -np.inf
        return scores.reshape(x.shape[:-1]).astype(np.float32)

    def rank(
        self, candidates: MergedCandidates, features: npt.ArrayLike, k: int
    ) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.float32]]:
        """The best ``k`` candidates of each user.

        Args:
            candidates: the merged candidates.
            features: float (n, width, F) their features (``CandidateFeatures.build``).
            k: items per user; fewer candidates give ``""``-padded rows.

        Returns:
            ``(ids, scores)``: object (n, k) and float32 (n, k), best first,
            ``-inf`` pads; ties keep the candidates' merged order.
        """
        if k < 1:
            raise InvalidInputError(f"k must be positive, got {k}")
        scores = self.score(features)
        if scores.shape != candidates.columns.shape:
            raise InvalidInputError(f"features of shape {scores.shape} for candidates {candidates.columns.shape}")
        scores = np.where(candidates.present, scores, -np.inf).astype(np.float32)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        ids = np.full((scores.shape[0], k), "", dtype=object)
        top = np.full((scores.shape[0], k), -np.inf, dtype=np.float32)
        width = order.shape[1]
        ids[:, :width] = np.take_along_axis(candidates.ids, order, axis=1)
        top[:, :width] = np.take_along_axis(scores, order, axis=1)
        ids[~np.isfinite(top)] = ""
        return ids, top

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the ranker as one NPZ file (no pickle)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        t = self.trees
        with open(target, "wb") as handle:
            np.savez(
                handle,
                feature_names=np.array(self.feature_names, dtype=np.str_),
                feature=t.feature,
                threshold=t.threshold,
                left=t.left,
                right=t.right,
                default_left=t.default_left,
                missing=t.missing,
                leaf_value=t.leaf_value,
                roots=t.roots,
                n_features=np.int64(t.n_features),
                format_version=np.int64(FORMAT_VERSION),
            )
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FeatureRanker:
        """Read a ranker written by :meth:`save`.

        Raises:
            ModelError: not such a file, or another format version.
        """
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                version = int(data["format_version"])
                names = tuple(str(n) for n in data["feature_names"])
                trees = TreeEnsemble(
                    feature=np.asarray(data["feature"], np.int32),
                    threshold=np.asarray(data["threshold"], np.float64),
                    left=np.asarray(data["left"], np.int32),
                    right=np.asarray(data["right"], np.int32),
                    default_left=np.asarray(data["default_left"], bool),
                    missing=np.asarray(data["missing"], np.int8),
                    leaf_value=np.asarray(data["leaf_value"], np.float64),
                    roots=np.asarray(data["roots"], np.int32),
                    n_features=int(data["n_features"]),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise ModelError(f"{path} is not a feature ranker file: {exc}") from exc
        if version != FORMAT_VERSION:
            raise ModelError(f"{path} has format version {version}; this library reads {FORMAT_VERSION}")
        return cls(names, trees)


def fit_feature_ranker(
    features: npt.ArrayLike,
    labels: npt.ArrayLike,
    feature_names: Sequence[str],
    *,
    params: RankerParams | None = None,
) -> FeatureRanker:
    """Train a learning-to-rank tree ensemble on each user's candidates (one query per user).

    Args:
        features: float (n_users, width, F) candidate features; all-NaN rows are padding.
        labels: bool or int (n_users, width) relevance (1 = the user
            interacted with the candidate in the held-out split).
        feature_names: the F names.
        params: LightGBM settings (default :class:`RankerParams`).

    Returns:
        A :class:`FeatureRanker` evaluated in numpy.

    Raises:
        InvalidInputError: shapes disagree, or no user has a positive and a negative.
        MissingDependencyError: LightGBM is not installed (the ``ranking`` extra).
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64)
    names = tuple(str(n) for n in feature_names)
    if x.ndim != 3 or y.shape != x.shape[:2] or x.shape[2] != len(names):
        raise InvalidInputError(
            f"need features (n, width, {len(names)}) and labels (n, width); got {x.shape}, {y.shape}"
        )
    present: npt.NDArray[np.bool_] = np.asarray(~np.isnan(x).all(axis=2))
    positives = (y * present).sum(axis=1)
    informative = (positives > 0) & (positives < present.sum(axis=1))
    if not informative.any():
        raise InvalidInputError("no user has both a positive and a negative candidate; nothing to learn from")
    chosen = params or RankerParams()
    lightgbm = require("lightgbm", extra="ranking")
    rows = x[informative][present[informative]]
    row_labels = y[informative][present[informative]]
    groups = present[informative].sum(axis=1)
    # Names stay ours: LightGBM rejects the ":" they use.
    dataset = lightgbm.Dataset(rows, label=row_labels, group=groups, free_raw_data=True)
    booster = lightgbm.train(chosen.lightgbm(), dataset, num_boost_round=chosen.n_trees)
    trees = TreeEnsemble.from_lightgbm(booster.dump_model())
    report = {
        "users": int(informative.sum()),
        "rows": int(rows.shape[0]),
        "positives": int(row_labels.sum()),
        "params": chosen.__dict__.copy(),
        "gain_importance": dict(
            zip(names, (round(float(v), 2) for v in booster.feature_importance("gain")), strict=True)
        ),
    }
    return FeatureRanker(names, trees, report)
