"""The result of training: both towers' output tables, the scoring MLP and the report."""

from __future__ import annotations

from dataclasses import dataclass

from two_stage_rec.embedders.table import TableEmbedder, UnknownKeyPolicy
from two_stage_rec.rerankers.mlp import MLPReranker
from two_stage_rec.training.report import TrainingReport
from two_stage_rec.types import FloatMatrix, FloatVector

__all__ = ["TrainedModels"]


@dataclass(frozen=True, eq=False)
class TrainedModels:
    """Trained models in plain numpy, ready to serve or export.

    Attributes:
        user_keys: the user ids the user tower knows, in row order.
        user_vectors: float32 (len(user_keys), d), the user tower's output per key.
        user_unknown: float32 (d,), the user tower's output for an unknown id.
        item_keys: the item ids the item tower knows, in row order.
        item_vectors: float32 (len(item_keys), d), the item tower's output per key.
        item_unknown: float32 (d,), the item tower's output for an unknown id.
        reranker: the scoring MLP.
        report: what training measured.
    """

    user_keys: list[str]
    user_vectors: FloatMatrix
    user_unknown: FloatVector
    item_keys: list[str]
    item_vectors: FloatMatrix
    item_unknown: FloatVector
    reranker: MLPReranker
    report: TrainingReport

    @property
    def dimension(self) -> int:
        """Width d of the tower outputs."""
        return int(self.user_vectors.shape[1])

    def user_embedder(self, *, unknown: UnknownKeyPolicy = "raise") -> TableEmbedder:
        """The user tower as a :class:`TableEmbedder` (no TensorFlow)."""
        return TableEmbedder(self.user_keys, self.user_vectors, unknown=unknown)

    def item_embedder(self, *, unknown: UnknownKeyPolicy = "raise") -> TableEmbedder:
        """The item tower as a :class:`TableEmbedder` (no TensorFlow)."""
        return TableEmbedder(self.item_keys, self.item_vectors, unknown=unknown)
