"""``two-stage-rec serve``: the recommender as a real-time HTTP service (FastAPI + uvicorn)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from two_stage_rec.cli._choices import (
    BackendChoice,
    BackendOption,
    ModelsOption,
    PineconeHostOption,
    PineconeIndexOption,
    RerankerChoice,
    RerankerOption,
    StoreChoice,
    StoreOption,
    StoreSettingOption,
    store_settings,
)
from two_stage_rec.errors import TwoStageRecError

__all__ = ["register", "serve"]


class LogLevelChoice(str, Enum):
    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"


def serve(
    models: ModelsOption = Path("models"),
    store: StoreOption = StoreChoice.faiss,  # type: ignore[attr-defined]
    store_setting: StoreSettingOption = None,
    pinecone_index: PineconeIndexOption = None,
    pinecone_host: PineconeHostOption = None,
    backend: BackendOption = BackendChoice.numpy,
    reranker: RerankerOption = RerankerChoice.recommended,
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind. 0.0.0.0 exposes the service to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    fallback: Annotated[
        bool,
        typer.Option(
            "--fallback/--no-fallback",
            help="Answer unknown user ids with the most popular items (source=fallback) instead of 404.",
        ),
    ] = True,
    log_level: Annotated[
        LogLevelChoice, typer.Option("--log-level", help="uvicorn's log level.")
    ] = LogLevelChoice.info,
) -> None:
    """Serve recommendations over HTTP from any bundle: user id in, top-k items out.

    Loads the bundle, indexes its catalogue in the store, then runs uvicorn
    until Ctrl-C, serving the bundle's recommended reranker unless --reranker
    says otherwise. Endpoints: GET /recommendations/{user_id}, POST
    /recommendations, GET /healthz, /readyz, /stats; interactive docs at /docs.
    """
    from rich.console import Console

    from two_stage_rec.assembly import assemble

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        from two_stage_rec.serving import create_app, run

        settings = store_settings(store_setting, pinecone_index=pinecone_index, pinecone_host=pinecone_host)
        with console.status("loading the bundle and indexing its catalogue"):
            served = assemble(
                models,
                store=store.value,
                store_settings=settings,
                backend=backend.value,
                reranker=reranker.value,
                fallback=fallback,
            )
        catalogue = served.bundle.catalogue
        app = create_app(
            served.recommender,
            item_titles={item: catalogue.label(item) for item in catalogue.item_ids},
            seen_items=served.bundle.seen_items,
        )
    except TwoStageRecError as exc:
        from rich.markup import escape

        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(code=1) from None
    console.print(
        f"indexed {served.indexed:,} items in a {store.value} store ({backend.value} models from {models}, "
        f"reranker {served.reranker_name}); serving on http://{host}:{port} (docs: /docs)"
    )
    try:
        run(app, host=host, port=port, log_level=log_level.value)
    finally:
        served.close()


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to ``app``."""
    app.command("serve")(serve)
