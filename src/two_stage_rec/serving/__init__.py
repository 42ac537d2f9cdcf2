"""Serve a :class:`~two_stage_rec.Recommender` over HTTP: any user id in, recommendations out.

Needs the ``serve`` extra (``pip install "two-stage-rec[serve]"``: FastAPI and
uvicorn); importing this package without it raises
:class:`~two_stage_rec.MissingDependencyError` naming that command.

    from two_stage_rec.serving import create_app, run
    run(create_app(recommender), port=8000)

or from the command line: ``two-stage-rec serve --models models/``.
"""

from two_stage_rec._optional import require

require("fastapi", extra="serve")
require("uvicorn", extra="serve")

from two_stage_rec.serving.app import create_app  # noqa: E402
from two_stage_rec.serving.batching import BatchingSettings  # noqa: E402
from two_stage_rec.serving.server import run, run_workers, serve_in_thread  # noqa: E402

__all__ = ["BatchingSettings", "create_app", "run", "run_workers", "serve_in_thread"]
