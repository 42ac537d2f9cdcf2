"""Embedders that need no model framework. TensorFlow adapters live in
:mod:`two_stage_rec.adapters.tensorflow`."""

from two_stage_rec.embedders.known import KnownKeysEmbedder
from two_stage_rec.embedders.table import TableEmbedder, UnknownKeyPolicy

__all__ = ["KnownKeysEmbedder", "TableEmbedder", "UnknownKeyPolicy"]
