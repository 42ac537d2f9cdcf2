"""``two-stage-rec train``: train the towers and the scoring model on MovieLens-100K and export them."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from two_stage_rec.errors import TwoStageRecError

__all__ = ["register", "train"]


class SplitChoice(str, Enum):
    """``random``: the notebook's random 80/20 of all ratings; ``u1``..``u5``: GroupLens' folds."""

    random = "random"
    u1 = "u1"
    u2 = "u2"
    u3 = "u3"
    u4 = "u4"
    u5 = "u5"


def train(
    out: Annotated[Path, typer.Option("--out", help="Models directory to write (created; same-named files replaced).")],
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="An existing ml-100k folder. Default: $TWO_STAGE_REC_DATA, else the cache (downloading if needed).",
            file_okay=False,
        ),
    ] = None,
    split: Annotated[
        SplitChoice, typer.Option("--split", help="Train/test split: random 80/20 (the notebook's) or u1..u5.")
    ] = SplitChoice.random,
    test_fraction: Annotated[
        float, typer.Option("--test-fraction", min=0.01, max=0.99, help="Share held out by --split random.")
    ] = 0.2,
    epochs: Annotated[
        int,
        typer.Option("--epochs", min=1, help="Maximum epochs of the joint towers + scoring training (early stopping)."),
    ] = 6,
    retrieval_epochs: Annotated[
        int,
        typer.Option("--retrieval-epochs", min=0, help="Retrieval-only epochs before the joint stage (default none)."),
    ] = 0,
    dropout: Annotated[
        float,
        typer.Option("--dropout", min=0.0, max=0.9, help="Dropout after each hidden layer of the scoring MLP."),
    ] = 0.0,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the split, the initialisation and the batches.")] = 42,
    side_features: Annotated[
        bool,
        typer.Option(
            "--side-features/--no-side-features",
            help="Add movie genres and user age/gender/occupation to the towers.",
        ),
    ] = False,
    saved_models: Annotated[
        bool,
        typer.Option(
            "--saved-models/--no-saved-models",
            help="Also write the TensorFlow SavedModels (the numpy files are always written).",
        ),
    ] = True,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a bar per epoch.")] = True,
) -> None:
    """Train on MovieLens-100K, print the test metrics, write the models directory.

    Writes user_model/, item_model/, scoring_model/ (SavedModels called as in the
    notebook), user_embeddings.npz, item_embeddings.npz, scoring_mlp.npz and
    training_report.json.
    """
    from dataclasses import replace

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from two_stage_rec.datasets import canonical_split, movielens_100k, random_split
    from two_stage_rec.training import TrainingConfig, train_models
    from two_stage_rec.training.features import movielens_side_features

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        data = movielens_100k(data_dir, progress=progress)
        if split is SplitChoice.random:
            train_log, test_log = random_split(data.ratings, test_fraction, seed=seed)
        else:
            train_log, test_log = canonical_split(split.value, data.path, progress=progress)
        defaults = TrainingConfig()
        config = TrainingConfig(
            retrieval=replace(defaults.retrieval, epochs=retrieval_epochs, use_side_features=side_features),
            scoring=replace(defaults.scoring, epochs=epochs, dropout=dropout),
            seed=seed,
        )
        user_features, item_features = movielens_side_features(data) if side_features else (None, None)
        console.print(
            f"training on {len(train_log):,} ratings ({split.value} split), testing on {len(test_log):,}; "
            f"{len(data.movies):,} movies in the catalogue"
        )
        models = train_models(
            train_log,
            test=test_log,
            items=data.movies.ids_str(),
            user_features=user_features,
            item_features=item_features,
            config=config,
            progress=progress,
        )
        models.save(out, saved_models=saved_models)
    except TwoStageRecError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(code=1) from None

    report = models.report
    table = Table(title=f"Test metrics ({split.value} split)", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("better")
    for k in config.eval_k:
        accuracy = report.metrics[f"retrieval/test/top_{k}_accuracy"]
        table.add_row(f"retrieval top-{k} accuracy", f"{accuracy:.4f}", "higher")
    table.add_row("scoring RMSE", f"{report.metrics['scoring/test/rmse']:.4f}", "lower")
    Console().print(table)
    console.print(
        f"epochs kept: retrieval {report.epochs['retrieval_best']}/{report.epochs['retrieval']}, "
        f"scoring {report.epochs['scoring_best']}/{report.epochs['scoring']}; wall time: "
        + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in report.wall_time_s.items())
    )
    console.print(f"models written to {out} (report: {out / 'training_report.json'})")


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to ``app``."""
    app.command("train")(train)
