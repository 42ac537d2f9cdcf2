"""``two-stage-rec serve``: the recommender as a real-time HTTP service (FastAPI + uvicorn)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from two_stage_rec.cli._choices import BackendChoice, StoreChoice
from two_stage_rec.errors import TwoStageRecError

__all__ = ["register", "serve"]


class LogLevelChoice(str, Enum):
    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"


def serve(
    models: Annotated[
        Path,
        typer.Option("--models", help="Models directory written by `two-stage-rec train`.", file_okay=False),
    ],
    store: Annotated[
        StoreChoice,
        typer.Option(
            "--store",
            help="Vector store for the movie vectors: exact FAISS flat index, or the numpy reference store.",
        ),
    ] = StoreChoice.faiss,
    backend: Annotated[
        BackendChoice,
        typer.Option(
            "--backend",
            help="numpy: embedding tables + numpy MLP (fast, no TensorFlow); tensorflow: the SavedModels.",
        ),
    ] = BackendChoice.numpy,
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind. 0.0.0.0 exposes the service to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="An existing ml-100k folder. Default: $TWO_STAGE_REC_DATA, else the cache (downloading if needed).",
            file_okay=False,
        ),
    ] = None,
    fallback: Annotated[
        bool,
        typer.Option(
            "--fallback/--no-fallback",
            help="Answer unknown user ids with the most-rated movies (source=fallback) instead of 404.",
        ),
    ] = True,
    log_level: Annotated[
        LogLevelChoice, typer.Option("--log-level", help="uvicorn's log level.")
    ] = LogLevelChoice.info,
) -> None:
    """Serve recommendations over HTTP: any user id in, top-k movies out.

    Loads the models, indexes every MovieLens movie, then runs uvicorn until
    Ctrl-C. Endpoints: GET /recommendations/{user_id}, POST /recommendations,
    GET /healthz, /readyz, /stats; interactive docs at /docs.
    """
    from rich.console import Console

    from two_stage_rec.pipeline import build_recommender

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        from two_stage_rec.serving import create_app, run

        with console.status("loading models and indexing movies"):
            built = build_recommender(
                models,
                store=store.value,
                backend=backend.value,
                data_dir=data_dir,
                fallback=fallback,
            )
        app = create_app(built.recommender, item_titles=built.item_titles, seen_items=built.seen_items)
    except TwoStageRecError as exc:
        from rich.markup import escape

        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(code=1) from None
    console.print(
        f"indexed {built.indexed} movies in a {store.value} store ({backend.value} models from {models}); "
        f"serving on http://{host}:{port} (docs: /docs)"
    )
    run(app, host=host, port=port, log_level=log_level.value)


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to ``app``."""
    app.command("serve")(serve)
