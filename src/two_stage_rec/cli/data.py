"""``two-stage-rec data ...``: fetch and describe MovieLens-100K."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to ``app``."""
    group = typer.Typer(help="Download, verify and describe MovieLens-100K.", no_args_is_help=True)
    app.add_typer(group, name="data")

    @group.command("info")
    def info() -> None:
        """Print counts for the data set (placeholder until the datasets module lands)."""
        raise typer.Exit(code=1)
