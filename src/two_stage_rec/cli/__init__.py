"""The ``two-stage-rec`` command line. Each command group lives in its own module
and adds itself to :data:`app` through a ``register(app)`` function."""

from __future__ import annotations

import typer

from two_stage_rec.cli import data, demo, evaluate, recommend, serve, train

app = typer.Typer(
    name="two-stage-rec",
    help="Two-stage recommendation: retrieve candidates from a vector index, rerank them with a deep model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

for _module in (data, train, recommend, serve, demo, evaluate):
    _module.register(app)


def main() -> None:
    """Console-script entry point."""
    from two_stage_rec.cli._native_logs import quiet_native_logs

    quiet_native_logs()
    app()
