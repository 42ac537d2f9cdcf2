"""``two-stage-rec serve``: the recommender as a real-time HTTP service (FastAPI + uvicorn)."""

from __future__ import annotations

import os
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
    batching: Annotated[
        bool,
        typer.Option(
            "--batching/--no-batching",
            help="Answer concurrent GET /recommendations/{user_id} requests together, in one batch.",
        ),
    ] = True,
    batch_wait_ms: Annotated[
        float,
        typer.Option(
            "--batch-wait-ms",
            min=0.0,
            max=1000.0,
            help="Longest a request waits for others to join its batch (only under load), milliseconds.",
        ),
    ] = 2.0,
    max_batch_size: Annotated[
        int, typer.Option("--max-batch-size", min=1, help="Most requests answered by one batch.")
    ] = 128,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Server processes, each with its own copy of the index (more throughput on more cores).",
        ),
    ] = 1,
    admin_token: Annotated[
        str | None,
        typer.Option(
            "--admin-token",
            envvar="TWO_STAGE_REC_ADMIN_TOKEN",
            show_default=False,
            show_envvar=True,
            help="Enable the admin endpoints (POST /admin/reload, PUT/DELETE /admin/items) behind this bearer "
            "token (at least 16 characters). Prefer the environment variable: a command line is visible to "
            "every user of the machine.",
        ),
    ] = None,
    max_body_bytes: Annotated[
        int,
        typer.Option("--max-body-bytes", min=1, help="Largest request body read; a larger one is answered 413."),
    ] = 1024 * 1024,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log one JSON line per request (method, route, status, duration, batch size) to standard "
            "error at --log-level info or debug, in place of uvicorn's access log. Headers (the admin token) "
            "are never logged.",
        ),
    ] = True,
) -> None:
    """Serve recommendations over HTTP from any bundle: user id in, top-k items out.

    Loads the bundle, indexes its catalogue in the store, then runs uvicorn
    until Ctrl-C, serving the bundle's recommended reranker unless --reranker
    says otherwise. Concurrent requests are answered in batches; --workers N
    runs N processes, each with its own index. Endpoints: GET /recommendations/{user_id}, POST
    /recommendations, GET /healthz, /readyz, /stats, /metrics; with an admin token also
    POST /admin/reload and PUT/DELETE /admin/items; interactive docs at /docs.
    """
    from rich.console import Console

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        from two_stage_rec.serving import BatchingSettings, run, run_workers
        from two_stage_rec.serving.admin import AdminToken
        from two_stage_rec.serving.service import ServiceSettings, build_service

        # As uvicorn's: access lines are INFO records, so --log-level warning and above silence them.
        access_log = access_log and log_level in (LogLevelChoice.info, LogLevelChoice.debug)
        settings = ServiceSettings(
            models=models,
            store=store.value,
            store_settings=store_settings(store_setting, pinecone_index=pinecone_index, pinecone_host=pinecone_host),
            backend=backend.value,
            reranker=reranker.value,
            fallback=fallback,
            batching=BatchingSettings(max_wait_ms=batch_wait_ms, max_batch_size=max_batch_size) if batching else None,
            admin_token=AdminToken(admin_token) if admin_token else None,
            workers=workers,
            max_body_bytes=max_body_bytes,
            access_log=access_log,
        )
        if access_log:
            from two_stage_rec.serving.service import enable_access_log

            enable_access_log()
        if workers > 1:
            from two_stage_rec.bundle import read_bundle

            read_bundle(models, backend=backend.value)  # a bad bundle fails here, not in every worker
        else:
            with console.status("loading the bundle and indexing its catalogue"):
                app, served = build_service(settings)
    except TwoStageRecError as exc:
        from rich.markup import escape

        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(code=1) from None
    if workers > 1:
        # The workers are new processes: they read these settings from the environment.
        os.environ.update(settings.to_environment())
        console.print(
            f"serving {models} on http://{host}:{port} with {workers} worker processes, each indexing the "
            f"catalogue in its own {store.value} store (docs: /docs)"
        )
        run_workers(
            "two_stage_rec.serving.service:app_from_environment",
            workers=workers,
            host=host,
            port=port,
            log_level=log_level.value,
            access_log=False,  # ours, or none
        )
        return
    console.print(
        f"indexed {served.indexed:,} items in a {store.value} store ({backend.value} models from {models}, "
        f"reranker {served.reranker_name}); serving on http://{host}:{port} (docs: /docs)"
    )
    # The app owns the store from here: it closes it at shutdown (or when a reload replaces it).
    run(app, host=host, port=port, log_level=log_level.value, access_log=False)  # ours, or none


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to ``app``."""
    app.command("serve")(serve)
