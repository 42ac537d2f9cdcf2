"""``two-stage-rec train``: the recommended pipeline on MovieLens-100K or on your own files, written as a bundle."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from two_stage_rec.cli._choices import DataDirOption
from two_stage_rec.cli._own_data import (
    DropUnknownOption,
    InteractionsOption,
    ItemColumnOption,
    ItemIdColumnOption,
    ItemsOption,
    ListColumnsOption,
    OwnData,
    RatingColumnOption,
    TimestampColumnOption,
    UserColumnOption,
    WeightColumnOption,
    own_data_from_options,
)
from two_stage_rec.errors import TwoStageRecError

if TYPE_CHECKING:
    from two_stage_rec.workflow import TrainedBundle

__all__ = ["register", "train"]


class SplitChoice(str, Enum):
    """How the held-out part is chosen."""

    auto = "auto"
    temporal = "temporal"
    stratified = "stratified"
    random = "random"
    none = "none"


class ProtocolChoice(str, Enum):
    """MovieLens-100K's named protocols."""

    random = "random"
    stratified = "stratified"
    temporal = "temporal"
    u1 = "u1"


def train(
    out: Annotated[
        Path, typer.Option("--out", help="Bundle directory to write (an earlier bundle there is replaced whole).")
    ] = Path("models"),
    interactions: InteractionsOption = None,
    items: ItemsOption = None,
    user_column: UserColumnOption = "user_id",
    item_column: ItemColumnOption = "item_id",
    rating_column: RatingColumnOption = None,
    timestamp_column: TimestampColumnOption = None,
    weight_column: WeightColumnOption = None,
    item_id_column: ItemIdColumnOption = "item_id",
    list_column: ListColumnsOption = None,
    drop_unknown_items: DropUnknownOption = False,
    split: Annotated[
        SplitChoice,
        typer.Option(
            "--split",
            help="Own data: the hold-out measured after training. auto = each user's latest 20% when there are "
            "timestamps, else a random 20% per user; none = train on everything (nothing is measured).",
        ),
    ] = SplitChoice.auto,
    test_fraction: Annotated[
        float, typer.Option("--test-fraction", min=0.01, max=0.99, help="Own data: share held out by --split.")
    ] = 0.2,
    protocol: Annotated[
        ProtocolChoice,
        typer.Option("--protocol", help="MovieLens-100K: the split (random = the notebook's 80/20)."),
    ] = ProtocolChoice.random,
    implicit: Annotated[
        bool, typer.Option("--implicit", help="MovieLens-100K: drop the ratings and train on events alone.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random splits.")] = 42,
    saved_models: Annotated[
        bool,
        typer.Option(
            "--saved-models/--no-saved-models", help="Also write TF SavedModels of the notebook's shape (slower)."
        ),
    ] = False,
    data_dir: DataDirOption = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a bar per epoch.")] = True,
) -> None:
    """Train the recommended two-stage pipeline and write one complete models bundle.

    Without --interactions it trains on MovieLens-100K. With --interactions
    and --items it trains on your files. Either way it holds out a split,
    trains the towers, the scoring model and the blend, picks the reranker
    measured best on held-out training data, reports the held-out metrics and
    writes the bundle that serve, recommend, evaluate and demo read.
    """
    from rich.console import Console
    from rich.markup import escape

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        trained = _train(
            out,
            own=own_data_from_options(
                interactions,
                items,
                user_column,
                item_column,
                rating_column,
                timestamp_column,
                weight_column,
                item_id_column,
                list_column,
                drop_unknown_items,
            ),
            split=split,
            test_fraction=test_fraction,
            protocol=protocol,
            implicit=implicit,
            seed=seed,
            saved_models=saved_models,
            data_dir=data_dir,
            progress=progress,
        )
    except TwoStageRecError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(code=1) from None
    print_trained(trained)


def _train(
    out: Path,
    *,
    own: OwnData | None,
    split: SplitChoice,
    test_fraction: float,
    protocol: ProtocolChoice,
    implicit: bool,
    seed: int,
    saved_models: bool,
    data_dir: Path | None,
    progress: bool,
) -> TrainedBundle:
    from two_stage_rec.datasets.splits import SplitSpec
    from two_stage_rec.workflow import default_split, train_bundle, train_movielens_bundle

    if own is None:
        return train_movielens_bundle(
            out,
            protocol=protocol.value,
            implicit=implicit,
            data_dir=data_dir,
            saved_models=saved_models,
            progress=progress,
        )
    log, catalogue = own.read()
    if split is SplitChoice.none:
        spec = None
    elif split is SplitChoice.auto:
        chosen = default_split(log)
        spec = SplitSpec(chosen.kind, test_fraction, seed)
    else:
        spec = SplitSpec(split.value, test_fraction, seed)
    return train_bundle(
        log,
        catalogue,
        out,
        split_spec=spec,
        dataset=own.interactions.name,
        saved_models=saved_models,
        progress=progress,
    )


def print_trained(trained: TrainedBundle) -> None:
    """The held-out metrics and where the bundle went."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    manifest = trained.manifest
    split = manifest.split or {"kind": "none"}
    console.print(
        f"trained on {manifest.train_interactions:,} {manifest.feedback} events "
        f"({manifest.users:,} users, {manifest.items:,} items; split {split.get('protocol', split['kind'])})"
    )
    choice = manifest.training.get("validation_ndcg@10", {})
    if choice:
        measured = ", ".join(f"{name} {value:.4f}" for name, value in choice.items())
        console.print(f"validation NDCG@10 (a part of the training events): {measured}")
    console.print(f"recommended reranker: [bold]{manifest.recommended}[/]")
    if trained.held_out is not None:
        result = trained.held_out
        table = Table(title=f"Held-out top-{result.k} metrics over {result.n_users:,} users", title_justify="left")
        table.add_column("ranking")
        metrics = [f"ndcg@{result.k}", f"recall@{result.k}", f"precision@{result.k}"]
        for metric in metrics:
            table.add_column(metric, justify="right")
        for name, ranker in result.rankers.items():
            label = name + (" (served)" if name == _served_name(manifest.recommended) else "")
            table.add_row(label, *(f"{ranker.metrics[metric]:.4f}" for metric in metrics))
        console.print(table)
        if result.rating_errors:
            console.print(f"scoring model RMSE on held-out ratings: {result.rating_errors['rmse']:.4f}")
    console.print(f"wrote the bundle to {trained.path}")


def _served_name(recommended: str) -> str:
    """Evaluation calls retrieval order "retrieval"; the bundle calls it "none"."""
    return "retrieval" if recommended == "none" else recommended


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to ``app``."""
    app.command("train")(train)
