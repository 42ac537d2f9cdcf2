"""Options shared by several commands: one spelling, one help text, one default each.

Enums, because typer renders them as choices (it does not read Literal types).
The store choices come from :mod:`two_stage_rec.stores.registry`, so a store
a third party registers is a valid ``--store`` everywhere.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from two_stage_rec.errors import InvalidInputError
from two_stage_rec.stores.registry import store_names

__all__ = [
    "BackendChoice",
    "BackendOption",
    "CandidatesOption",
    "DataDirOption",
    "IncludeSeenOption",
    "ModelsOption",
    "PineconeHostOption",
    "PineconeIndexOption",
    "RerankerChoice",
    "RerankerOption",
    "StoreChoice",
    "StoreOption",
    "StoreSettingOption",
    "store_settings",
]

StoreChoice = Enum("StoreChoice", {name: name for name in store_names()}, type=str)  # type: ignore[misc]
"""Every store name the registry knows (built-in and registered by third parties)."""


class BackendChoice(str, Enum):
    """Serve the models through numpy (no TensorFlow) or the TensorFlow SavedModels."""

    numpy = "numpy"
    tensorflow = "tensorflow"


class RerankerChoice(str, Enum):
    """The second stage: the one training measured best, or one by name."""

    recommended = "recommended"
    blend = "blend"
    scoring = "scoring"
    none = "none"
    ranker = "ranker"


ModelsOption = Annotated[
    Path,
    typer.Option("--models", help="Models bundle written by `two-stage-rec train`.", file_okay=False),
]
StoreOption = Annotated[
    StoreChoice,
    typer.Option("--store", help="Vector store for the item vectors (faiss: exact flat index)."),
]
StoreSettingOption = Annotated[
    list[str] | None,
    typer.Option(
        "--store-setting",
        help="A store setting KEY=VALUE (repeatable), e.g. index=hnsw for faiss, namespace=prod for pinecone.",
    ),
]
PineconeIndexOption = Annotated[
    str | None, typer.Option("--pinecone-index", help="Pinecone index name (default $PINECONE_INDEX).")
]
PineconeHostOption = Annotated[
    str | None, typer.Option("--pinecone-host", help="Pinecone index host (default $PINECONE_HOST).")
]
BackendOption = Annotated[
    BackendChoice,
    typer.Option(
        "--backend", help="numpy: embedding tables + numpy MLP (fast, no TensorFlow); tensorflow: the SavedModels."
    ),
]
RerankerOption = Annotated[
    RerankerChoice,
    typer.Option(
        "--reranker",
        help="Second stage: recommended (measured best on held-out data), blend, scoring (the notebook's "
        "predicted rating), ranker (the learned ranking stage, when the bundle has one) or none (retrieval order).",
    ),
]
IncludeSeenOption = Annotated[
    bool, typer.Option("--include-seen", help="Also recommend items the user interacted with in training.")
]
CandidatesOption = Annotated[
    int, typer.Option("--candidates", min=1, help="Items retrieved from the store before reranking.")
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="An ml-100k folder. Default: $TWO_STAGE_REC_DATA, else the cache (downloading if needed).",
        file_okay=False,
    ),
]


def _value(text: str) -> Any:
    """Settings arrive as text: numbers and booleans are read as such, anything else stays a string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def store_settings(
    pairs: list[str] | None, *, pinecone_index: str | None = None, pinecone_host: str | None = None
) -> dict[str, Any]:
    """``--store-setting KEY=VALUE`` pairs (and the Pinecone shorthands) as the store's settings.

    Raises:
        InvalidInputError: a pair without ``=``.
    """
    settings: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"--store-setting must be KEY=VALUE, got {pair!r}")
        settings[key.strip()] = _value(value.strip())
    if pinecone_index:
        settings["index_name"] = pinecone_index
    if pinecone_host:
        settings["host"] = pinecone_host
    return settings
