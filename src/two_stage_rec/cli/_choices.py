"""Choices shared by several commands.

Enums, because typer renders them as choices (it does not read Literal types).
"""

from __future__ import annotations

from enum import Enum

__all__ = ["BackendChoice", "StoreChoice"]


class StoreChoice(str, Enum):
    """A local vector store: exact FAISS flat index, or the numpy reference store."""

    faiss = "faiss"
    memory = "memory"


class BackendChoice(str, Enum):
    """Serve the models through numpy (no TensorFlow) or the TensorFlow SavedModels."""

    numpy = "numpy"
    tensorflow = "tensorflow"
