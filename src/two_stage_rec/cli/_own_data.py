"""The options that describe a user's own files, shared by ``train`` and ``evaluate``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from two_stage_rec.datasets.catalogue import Catalogue
from two_stage_rec.datasets.interactions import Interactions
from two_stage_rec.errors import InvalidInputError

__all__ = [
    "DropUnknownOption",
    "InteractionsOption",
    "ItemIdColumnOption",
    "ItemsOption",
    "ListColumnsOption",
    "OwnData",
    "RatingColumnOption",
    "TimestampColumnOption",
    "UserColumnOption",
    "ItemColumnOption",
    "WeightColumnOption",
    "own_data_from_options",
]

InteractionsOption = Annotated[
    Path | None,
    typer.Option(
        "--interactions",
        help="Your events: CSV/TSV/Parquet (by extension), one row per user-item event. Omit for MovieLens-100K.",
        dir_okay=False,
    ),
]
ItemsOption = Annotated[
    Path | None,
    typer.Option(
        "--items",
        help="Your catalogue: CSV/TSV/Parquet, one row per item; every column but the id becomes metadata.",
        dir_okay=False,
    ),
]
UserColumnOption = Annotated[str, typer.Option("--user-column", help="Column of user ids in --interactions.")]
ItemColumnOption = Annotated[str, typer.Option("--item-column", help="Column of item ids in --interactions.")]
RatingColumnOption = Annotated[
    str | None, typer.Option("--rating-column", help="Column of ratings; omit for implicit feedback.")
]
TimestampColumnOption = Annotated[
    str | None,
    typer.Option(
        "--timestamp-column", help="Column of event times (Unix seconds or dates): enables the temporal split."
    ),
]
WeightColumnOption = Annotated[
    str | None, typer.Option("--weight-column", help="Column of positive event weights (e.g. 5 for a purchase).")
]
ItemIdColumnOption = Annotated[str, typer.Option("--item-id-column", help="Column of item ids in --items.")]
ListColumnsOption = Annotated[
    list[str] | None,
    typer.Option("--list-column", help="An --items column holding '|'-separated lists, e.g. genres (repeatable)."),
]
DropUnknownOption = Annotated[
    bool,
    typer.Option(
        "--drop-unknown-items",
        help="Drop events whose item is not in --items (default: refuse them, saying how many).",
    ),
]


@dataclass(frozen=True)
class OwnData:
    """A user's files and how to read them."""

    interactions: Path
    items: Path
    user_column: str = "user_id"
    item_column: str = "item_id"
    rating_column: str | None = None
    timestamp_column: str | None = None
    weight_column: str | None = None
    item_id_column: str = "item_id"
    list_columns: tuple[str, ...] = ()
    drop_unknown_items: bool = False

    def read(self) -> tuple[Interactions, Catalogue]:
        """Read the catalogue, then the events checked against it.

        Raises:
            InvalidInputError: bad input, named by file, row and column.
            MissingDependencyError: pandas/pyarrow (the ``data`` extra) are not installed.
        """
        from two_stage_rec.datasets.readers import ColumnMapping, read_catalogue, read_interactions

        catalogue = read_catalogue(self.items, item_id_column=self.item_id_column, list_columns=self.list_columns)
        log = read_interactions(
            self.interactions,
            columns=ColumnMapping(
                user=self.user_column,
                item=self.item_column,
                rating=self.rating_column,
                timestamp=self.timestamp_column,
                weight=self.weight_column,
            ),
            catalogue=catalogue,
            on_unknown_items="drop" if self.drop_unknown_items else "raise",
        )
        return log, catalogue


def own_data_from_options(
    interactions: Path | None,
    items: Path | None,
    user_column: str,
    item_column: str,
    rating_column: str | None,
    timestamp_column: str | None,
    weight_column: str | None,
    item_id_column: str,
    list_column: list[str] | None,
    drop_unknown_items: bool,
) -> OwnData | None:
    """The files named by the options, or None when neither --interactions nor --items is given."""
    if interactions is None and items is None:
        return None
    if interactions is None or items is None:
        raise InvalidInputError("own data needs both --interactions FILE and --items FILE")
    return OwnData(
        interactions=interactions,
        items=items,
        user_column=user_column,
        item_column=item_column,
        rating_column=rating_column,
        timestamp_column=timestamp_column,
        weight_column=weight_column,
        item_id_column=item_id_column,
        list_columns=tuple(list_column or ()),
        drop_unknown_items=drop_unknown_items,
    )
