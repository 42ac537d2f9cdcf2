"""Load a models directory written by training (or assembled by hand) for serving.

Layout (the contract between training, adapters, evaluation, demo and benchmarks)::

    models/
      user_model/            TF SavedModel: user_model(np.array(["42"])) -> (1, 32)
      item_model/            TF SavedModel: item_model(np.array(["50"])) -> (1, 32)
      scoring_model/         TF SavedModel: scoring_model(tf.concat([u, m], axis=1)) -> (n, 1)
      user_embeddings.npz    TableEmbedder table (keys, vectors)
      item_embeddings.npz    TableEmbedder table
      scoring_mlp.npz        MLPReranker weights
      training_report.json   TrainingReport

The ``"numpy"`` backend reads only the three NPZ files (no TensorFlow); the
``"tensorflow"`` backend reads only the three SavedModels. The report is
optional for loading (models made elsewhere have none).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

from two_stage_rec.embedders.table import TableEmbedder
from two_stage_rec.errors import DimensionMismatchError, InvalidInputError, ModelError
from two_stage_rec.protocols import Embedder, Reranker
from two_stage_rec.rerankers.mlp import MLPReranker
from two_stage_rec.training.report import TrainingReport

__all__ = [
    "ITEM_EMBEDDINGS",
    "ITEM_MODEL",
    "LoadedModels",
    "ModelBackend",
    "REPORT",
    "SCORING_MLP",
    "SCORING_MODEL",
    "USER_EMBEDDINGS",
    "USER_MODEL",
    "load_models",
    "missing_artifacts",
]

USER_MODEL = "user_model"
ITEM_MODEL = "item_model"
SCORING_MODEL = "scoring_model"
USER_EMBEDDINGS = "user_embeddings.npz"
ITEM_EMBEDDINGS = "item_embeddings.npz"
SCORING_MLP = "scoring_mlp.npz"
REPORT = "training_report.json"

ModelBackend: TypeAlias = Literal["numpy", "tensorflow"]
"""``"numpy"``: TableEmbedder + MLPReranker (fast, no TensorFlow);
``"tensorflow"``: the SavedModels through :mod:`two_stage_rec.adapters.tensorflow`."""

_NEEDS: dict[ModelBackend, tuple[str, ...]] = {
    "numpy": (USER_EMBEDDINGS, ITEM_EMBEDDINGS, SCORING_MLP),
    "tensorflow": (USER_MODEL, ITEM_MODEL, SCORING_MODEL),
}


@dataclass(frozen=True, slots=True)
class LoadedModels:
    """What :func:`load_models` returns.

    Attributes:
        user_embedder: user id -> vector (n, d).
        item_embedder: item id -> vector (n, d).
        reranker: scores (user vector, item vector) pairs, higher is better.
        report: the training report, or None when the directory has none.
        path: the directory loaded.
        backend: which files were used.
    """

    user_embedder: Embedder
    item_embedder: Embedder
    reranker: Reranker
    report: TrainingReport | None
    path: Path
    backend: ModelBackend


def missing_artifacts(path: str | os.PathLike[str], backend: ModelBackend = "numpy") -> list[str]:
    """Names the given backend needs that ``path`` lacks (empty when complete)."""
    if backend not in _NEEDS:
        raise InvalidInputError(f"backend must be 'numpy' or 'tensorflow', got {backend!r}")
    root = Path(path)
    return [name for name in _NEEDS[backend] if not (root / name).exists()]


def load_models(path: str | os.PathLike[str], backend: ModelBackend = "numpy") -> LoadedModels:
    """Load a models directory for serving.

    Args:
        path: the directory written by ``two-stage-rec train`` /
            :meth:`~two_stage_rec.training.TrainedModels.save`.
        backend: ``"numpy"`` (default; TableEmbedder + MLPReranker, no
            TensorFlow import) or ``"tensorflow"`` (the SavedModels).

    Returns:
        A :class:`LoadedModels`; its embedders use policy ``"raise"`` for
        unknown ids on the numpy backend (pair it with a cold-start fallback).

    Raises:
        ModelError: the directory does not exist, lacks a file the backend
            needs (all missing names are listed), or a file is malformed.
        DimensionMismatchError: user, item and scoring dimensions disagree.
        MissingDependencyError: backend ``"tensorflow"`` without the extra.
    """
    root = Path(path)
    if backend not in _NEEDS:
        raise InvalidInputError(f"backend must be 'numpy' or 'tensorflow', got {backend!r}")
    if not root.is_dir():
        raise ModelError(f"models directory {root} does not exist")
    missing = missing_artifacts(root, backend)
    if missing:
        raise ModelError(f"models directory {root} is incomplete for backend {backend!r}: missing {', '.join(missing)}")
    user_embedder: Embedder
    item_embedder: Embedder
    reranker: Reranker
    if backend == "numpy":
        user_embedder = TableEmbedder.load(root / USER_EMBEDDINGS)
        item_embedder = TableEmbedder.load(root / ITEM_EMBEDDINGS)
        mlp = MLPReranker.load(root / SCORING_MLP)
        if (mlp.user_dimension, mlp.item_dimension) != (user_embedder.dimension, item_embedder.dimension):
            raise DimensionMismatchError(
                mlp.user_dimension + mlp.item_dimension,
                user_embedder.dimension + item_embedder.dimension,
                "user + item embeddings for the scoring MLP",
            )
        reranker = mlp
    else:
        from two_stage_rec.adapters.tensorflow import SavedModelEmbedder, SavedModelReranker

        user_embedder = SavedModelEmbedder(root / USER_MODEL)
        item_embedder = SavedModelEmbedder(root / ITEM_MODEL)
        reranker = SavedModelReranker(root / SCORING_MODEL)
    if user_embedder.dimension != item_embedder.dimension:
        raise DimensionMismatchError(user_embedder.dimension, item_embedder.dimension, "item embeddings")
    report = TrainingReport.load(root / REPORT) if (root / REPORT).is_file() else None
    return LoadedModels(
        user_embedder=user_embedder,
        item_embedder=item_embedder,
        reranker=reranker,
        report=report,
        path=root,
        backend=backend,
    )
