"""Options shared by several commands: one spelling, one help text, one default each.

Enums, because typer renders them as choices (it does not read Literal types).
The store choices come from :mod:`two_stage_rec.stores.registry`, so a store
a third party registers is a valid ``--store`` everywhere.
"""

from __future__ import annotations

import json
import math
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from two_stage_rec.errors import InvalidInputError
from two_stage_rec.stores.registry import store_names

if TYPE_CHECKING:
    from two_stage_rec.policies.spec import PolicySpec
    from two_stage_rec.recommender import History

__all__ = [
    "BackendChoice",
    "BackendOption",
    "BlockOption",
    "BoostOption",
    "BuryOption",
    "CandidatesOption",
    "DataDirOption",
    "DiversityOption",
    "ExplainOption",
    "HistoryOption",
    "IncludeSeenOption",
    "MaxPerOption",
    "ModelsOption",
    "PineconeHostOption",
    "PineconeIndexOption",
    "PinOption",
    "RerankerChoice",
    "RerankerOption",
    "StoreChoice",
    "StoreOption",
    "StoreSettingOption",
    "parse_history",
    "policy_spec",
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
HistoryOption = Annotated[
    str | None,
    typer.Option(
        "--history",
        help="Interactions given now, folded into the user's vector (a new user is personalised): item ids "
        "ITEM,ITEM,... or ratings ITEM=RATING,... They are left out of the recommendations unless --include-seen.",
    ),
]
DiversityOption = Annotated[
    float,
    typer.Option(
        "--diversity",
        min=0.0,
        max=1.0,
        help="MMR trade-off in [0, 1] between relevance and variety among the top k (0 = off).",
    ),
]
MaxPerOption = Annotated[
    list[str] | None,
    typer.Option(
        "--max-per", help="At most N items per value of a metadata field, FIELD=N (repeatable), e.g. genres=2."
    ),
]
BoostOption = Annotated[
    list[str] | None,
    typer.Option(
        "--boost",
        help="Move the items matching a metadata filter (JSON) to the top (repeatable), "
        'e.g. \'{"genres": "Documentary"}\'.',
    ),
]
BuryOption = Annotated[
    list[str] | None,
    typer.Option("--bury", help="Move the items matching a metadata filter (JSON) to the end (repeatable)."),
]
PinOption = Annotated[
    list[str] | None,
    typer.Option("--pin", help="Put an item at a 1-based position, ITEM=POS (repeatable), e.g. 50=1."),
]
BlockOption = Annotated[str | None, typer.Option("--block", help="Never recommend these items: ITEM,ITEM,...")]
ExplainOption = Annotated[
    bool,
    typer.Option(
        "--explain",
        help="Say why each item is there: the nearest items of the user's history, the candidate source "
        "and the retrieval rank.",
    ),
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


def _items(text: str, option: str) -> list[str]:
    """Comma-separated values, each stripped; an empty one is a mistake (a stray comma), not a skip."""
    parts = [part.strip() for part in text.split(",")]
    if not all(parts):
        raise InvalidInputError(f"{option} needs comma-separated values without empty ones, got {text!r}")
    return parts


def parse_history(text: str | None) -> History | None:
    """``--history``: ``ITEM,ITEM,...`` as item ids, or ``ITEM=RATING,...`` as item id -> rating.

    Raises:
        InvalidInputError: an empty entry, ids mixed with ratings, a rating
            that is not a finite number, or an item rated twice.
    """
    if text is None:
        return None
    entries = _items(text, "--history")
    rated = ["=" in entry for entry in entries]
    if not any(rated):
        return entries
    if not all(rated):
        raise InvalidInputError(f"--history gives either ids (ITEM,ITEM) or ratings (ITEM=RATING), not both: {text!r}")
    ratings: dict[str, float] = {}
    for entry in entries:
        item, _, number = (part.strip() for part in entry.partition("="))
        try:
            rating = float(number)
        except ValueError:
            rating = math.nan
        if not item or not math.isfinite(rating):
            raise InvalidInputError(f"--history needs ITEM=RATING with a finite number, got {entry!r}")
        if item in ratings:
            raise InvalidInputError(f"--history rates item {item!r} twice")
        ratings[item] = rating
    return ratings


def _json_object(text: str, option: str) -> dict[str, Any]:
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise InvalidInputError(f"{option} is not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise InvalidInputError(f"{option} must be a JSON object (a metadata filter), got {text!r}")
    return parsed


def _pins(pairs: list[str]) -> dict[str, int]:
    pins: dict[str, int] = {}
    for pair in pairs:
        item, sep, position = (part.strip() for part in pair.partition("="))
        if not sep or not item or not position.isdigit():
            raise InvalidInputError(f"--pin needs ITEM=POS with a whole position (1 is the top), got {pair!r}")
        pins[item] = int(position)
    return pins


def policy_spec(
    *,
    diversity: float = 0.0,
    max_per: list[str] | None = None,
    boost: list[str] | None = None,
    bury: list[str] | None = None,
    pin: list[str] | None = None,
    block: str | None = None,
) -> PolicySpec:
    """The policy options as a :class:`~two_stage_rec.policies.PolicySpec`, for
    :func:`~two_stage_rec.policies.parse_policies` (which checks the values themselves).

    Raises:
        InvalidInputError: a malformed ``--max-per``, ``--boost``/``--bury``
            (not a JSON object), ``--pin`` or ``--block``.
    """
    from two_stage_rec.policies.spec import cli_spec

    spec = cli_spec(diversity=diversity, max_per=max_per or ())
    if block is not None:
        spec["block"] = _items(block, "--block")
    if boost:
        spec["boost"] = [{"filter": _json_object(text, "--boost")} for text in boost]
    if bury:
        spec["bury"] = [{"filter": _json_object(text, "--bury")} for text in bury]
    if pin:
        spec["pin"] = _pins(pin)
    return spec
