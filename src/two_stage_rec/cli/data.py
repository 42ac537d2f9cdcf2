"""``two-stage-rec data ...``: fetch, verify and describe MovieLens-100K."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from two_stage_rec.errors import TwoStageRecError

__all__ = ["register"]

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="An existing ml-100k folder. Default: $TWO_STAGE_REC_DATA, else the cache (downloading if needed).",
        file_okay=False,
    ),
]
CacheDirOption = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="Where downloads are kept. Default: $TWO_STAGE_REC_CACHE, else the platform's user cache.",
        file_okay=False,
    ),
]


def _fail(error: TwoStageRecError) -> typer.Exit:
    """Print a library error as one clean line on stderr; the caller raises the returned Exit."""
    from rich.console import Console
    from rich.markup import escape

    # escape(): messages may hold brackets (paths, `pip install "pkg[extra]"`) that rich would eat as markup.
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] {escape(str(error))}")
    return typer.Exit(code=1)


def _date(timestamp: int) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc).date().isoformat()


def info(data_dir: DataDirOption = None, cache_dir: CacheDirOption = None) -> None:
    """Print counts for MovieLens-100K: ratings, users, movies, titles, rating histogram, sparsity.

    The files are verified against their published SHA-256 digests before they
    are read (a mismatch is an error), and the output says so.
    """
    from rich.console import Console
    from rich.table import Table

    from two_stage_rec.datasets import checksums, movielens_100k

    try:
        data = movielens_100k(data_dir, cache_dir=cache_dir)
    except TwoStageRecError as exc:
        raise _fail(exc) from None
    summary = data.summary()

    table = Table(title="MovieLens-100K", title_justify="left", show_header=False)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("ratings", f"{summary.n_ratings:,}")
    table.add_row("users", f"{summary.n_users:,}")
    table.add_row("movies", f"{summary.n_movies:,}")
    table.add_row("distinct titles", f"{summary.n_distinct_titles:,}")
    table.add_row("sparsity", f"{summary.sparsity:.2%}  (density {summary.density:.2%})")
    table.add_row("rated between", f"{_date(summary.first_timestamp)} and {_date(summary.last_timestamp)}")
    histogram = Table(title="Ratings by stars", title_justify="left")
    histogram.add_column("stars", justify="right")
    histogram.add_column("ratings", justify="right")
    histogram.add_column("share", justify="right")
    histogram.add_column("")
    for stars, count in summary.rating_counts.items():
        share = count / summary.n_ratings
        histogram.add_row(f"{stars:g}", f"{count:,}", f"{share:.2%}", "█" * round(40 * share))
    console = Console(soft_wrap=True)
    console.print(table)
    console.print(histogram)
    typer.echo(f"folder: {data.path}")
    verified = ", ".join(sorted(checksums.ML_100K_CHECKSUMS.members))
    typer.echo(f"checksums: {verified} match their published SHA-256 digests")


def download(
    cache_dir: CacheDirOption = None,
    force: Annotated[bool, typer.Option("--force", help="Download again even if a verified copy is cached.")] = False,
) -> None:
    """Download the official MovieLens-100K zip into the cache and verify its checksums."""
    from two_stage_rec.datasets import download_movielens_100k

    try:
        folder = download_movielens_100k(cache_dir, progress=True, force=force)
    except TwoStageRecError as exc:
        raise _fail(exc) from None
    typer.echo(f"MovieLens-100K downloaded and verified in {folder}")


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to ``app``."""
    group = typer.Typer(help="Download, verify and describe MovieLens-100K.", no_args_is_help=True)
    group.command("info")(info)
    group.command("download")(download)
    app.add_typer(group, name="data")
