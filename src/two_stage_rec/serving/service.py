"""The service as ``two-stage-rec serve`` runs it: settings, a bundle assembled into an app, a factory.

:class:`ServiceSettings` says everything a service process needs: the bundle,
the store and its settings, the models' backend, the reranker, the fallback
and micro-batching. :func:`build_service` assembles the bundle and wraps it
in :func:`~two_stage_rec.serving.app.create_app`.

Several worker processes (``serve --workers N``) share nothing but the bundle
on disk: each one assembles its own recommender and index. uvicorn starts
them from an import string, so they read their settings from environment
variables (:meth:`ServiceSettings.to_environment`, prefix
``TWO_STAGE_REC_SERVE_``) through the factory :func:`app_from_environment`.
A process manager can use the same factory directly::

    TWO_STAGE_REC_SERVE_MODELS=models/ \\
    gunicorn -w 2 -k uvicorn.workers.UvicornWorker \\
        'two_stage_rec.serving.service:app_from_environment()'
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from fastapi import FastAPI

from two_stage_rec.assembly import AssembledRecommender, assemble
from two_stage_rec.bundle import ModelBackend, RerankerChoice
from two_stage_rec.errors import InvalidInputError
from two_stage_rec.serving.admin import ADMIN_TOKEN_ENV, AdminToken
from two_stage_rec.serving.app import DEFAULT_BATCHING, create_bundle_app
from two_stage_rec.serving.batching import BatchingSettings
from two_stage_rec.serving.middleware import ACCESS_LOGGER, DEFAULT_MAX_BODY_BYTES, access_log_handler
from two_stage_rec.serving.server import freeze_loaded_objects

__all__ = ["ENV_PREFIX", "ServiceSettings", "app_from_environment", "build_service", "enable_access_log"]

ENV_PREFIX = "TWO_STAGE_REC_SERVE_"
"""Prefix of the environment variables :meth:`ServiceSettings.from_environment` reads."""

_BACKENDS: tuple[str, ...] = get_args(ModelBackend)
_RERANKERS: tuple[str, ...] = get_args(RerankerChoice)


@dataclass(frozen=True, kw_only=True)
class ServiceSettings:
    """What one service process serves, and how.

    Attributes:
        models: the bundle directory.
        store: a registered store name (``"faiss"``, ``"memory"``, ``"pinecone"``, ...).
        store_settings: the store's own settings (JSON values).
        backend: ``"numpy"`` or ``"tensorflow"`` models.
        reranker: ``"recommended"``, ``"blend"``, ``"scoring"`` or ``"none"``.
        fallback: answer unknown users with the most popular items instead of 404.
        batching: micro-batching settings; None answers each request alone.
        admin_token: enables the admin endpoints (reload, catalogue updates) behind
            this bearer token; None: they do not exist. Read from
            ``TWO_STAGE_REC_ADMIN_TOKEN`` (not prefixed: the same variable ``serve`` reads).
        workers: processes serving the same port; above 1 the admin endpoints answer 501.
        max_body_bytes: the largest request body read; a larger one is answered 413.
        access_log: write one JSON line per request on the ``two_stage_rec.serving.access`` logger.
    """

    models: Path
    store: str = "faiss"
    store_settings: Mapping[str, Any] = field(default_factory=dict)
    backend: ModelBackend = "numpy"
    reranker: RerankerChoice = "recommended"
    fallback: bool = True
    batching: BatchingSettings | None = DEFAULT_BATCHING
    admin_token: AdminToken | None = field(default=None, repr=False)
    workers: int = 1
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    access_log: bool = False

    def to_environment(self) -> dict[str, str]:
        """These settings as environment variables (``TWO_STAGE_REC_SERVE_*``), for worker processes."""
        batching = self.batching
        secret = {ADMIN_TOKEN_ENV: self.admin_token.reveal()} if self.admin_token is not None else {}
        return {
            **secret,
            f"{ENV_PREFIX}WORKERS": str(self.workers),
            f"{ENV_PREFIX}MAX_BODY_BYTES": str(self.max_body_bytes),
            f"{ENV_PREFIX}ACCESS_LOG": "1" if self.access_log else "0",
            f"{ENV_PREFIX}MODELS": str(self.models),
            f"{ENV_PREFIX}STORE": self.store,
            f"{ENV_PREFIX}STORE_SETTINGS": json.dumps(dict(self.store_settings)),
            f"{ENV_PREFIX}BACKEND": self.backend,
            f"{ENV_PREFIX}RERANKER": self.reranker,
            f"{ENV_PREFIX}FALLBACK": "1" if self.fallback else "0",
            f"{ENV_PREFIX}BATCHING": "1" if batching is not None else "0",
            f"{ENV_PREFIX}BATCH_WAIT_MS": str(batching.max_wait_ms if batching else DEFAULT_BATCHING.max_wait_ms),
            f"{ENV_PREFIX}MAX_BATCH_SIZE": str(
                batching.max_batch_size if batching else DEFAULT_BATCHING.max_batch_size
            ),
        }

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        """Read the settings from ``TWO_STAGE_REC_SERVE_*`` variables; only ``..._MODELS`` is required.

        Raises:
            InvalidInputError: a variable is missing or holds an invalid value (named in the message).
        """
        env = os.environ if environ is None else environ

        def get(name: str, default: str | None = None) -> str:
            value = env.get(ENV_PREFIX + name, default)
            if value is None:
                raise InvalidInputError(f"set {ENV_PREFIX}{name} (the models bundle directory) to serve")
            return value

        def flag(name: str, default: bool) -> bool:
            value = get(name, "1" if default else "0").strip().lower()
            if value not in {"1", "0", "true", "false", "yes", "no"}:
                raise InvalidInputError(f"{ENV_PREFIX}{name} must be 1 or 0, got {value!r}")
            return value in {"1", "true", "yes"}

        def number(name: str, default: float) -> float:
            raw = get(name, str(default))
            try:
                return float(raw)
            except ValueError:
                raise InvalidInputError(f"{ENV_PREFIX}{name} must be a number, got {raw!r}") from None

        backend = get("BACKEND", "numpy")
        if backend not in _BACKENDS:
            raise InvalidInputError(f"{ENV_PREFIX}BACKEND must be one of {_BACKENDS}, got {backend!r}")
        reranker = get("RERANKER", "recommended")
        if reranker not in _RERANKERS:
            raise InvalidInputError(f"{ENV_PREFIX}RERANKER must be one of {_RERANKERS}, got {reranker!r}")
        raw_settings = get("STORE_SETTINGS", "{}")
        try:
            store_settings = json.loads(raw_settings)
        except json.JSONDecodeError:
            store_settings = None
        if not isinstance(store_settings, dict):
            raise InvalidInputError(f"{ENV_PREFIX}STORE_SETTINGS must be a JSON object, got {raw_settings!r}")
        size = number("MAX_BATCH_SIZE", DEFAULT_BATCHING.max_batch_size)
        if not size.is_integer():
            raise InvalidInputError(f"{ENV_PREFIX}MAX_BATCH_SIZE must be an integer, got {size!r}")
        batching = (
            BatchingSettings(
                max_wait_ms=number("BATCH_WAIT_MS", DEFAULT_BATCHING.max_wait_ms),
                max_batch_size=int(size),
            )
            if flag("BATCHING", True)
            else None
        )
        workers = number("WORKERS", 1)
        if not workers.is_integer() or workers < 1:
            raise InvalidInputError(f"{ENV_PREFIX}WORKERS must be a positive integer, got {workers!r}")
        max_body = number("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)
        if not max_body.is_integer() or max_body < 1:
            raise InvalidInputError(f"{ENV_PREFIX}MAX_BODY_BYTES must be a positive integer, got {max_body!r}")
        token = env.get(ADMIN_TOKEN_ENV)
        return cls(
            max_body_bytes=int(max_body),
            access_log=flag("ACCESS_LOG", False),
            admin_token=AdminToken(token) if token else None,
            workers=int(workers),
            models=Path(get("MODELS")),
            store=get("STORE", "faiss"),
            store_settings=store_settings,
            backend=backend,  # type: ignore[arg-type]  # checked above
            reranker=reranker,  # type: ignore[arg-type]  # checked above
            fallback=flag("FALLBACK", True),
            batching=batching,
        )


def build_service(settings: ServiceSettings) -> tuple[FastAPI, AssembledRecommender]:
    """Assemble the bundle (index its catalogue in the store) and build the app around it.

    ``POST /admin/reload`` (with an admin token) assembles bundles the same
    way: same store kind and settings, backend, reranker choice and fallback.

    Returns:
        The app and the assembled recommender it starts with. The app owns it:
        it closes its store when a reload replaces it, or when the app stops.
    """

    def load(path: Path) -> AssembledRecommender:
        return assemble(
            path,
            store=settings.store,
            store_settings=settings.store_settings,
            backend=settings.backend,
            reranker=settings.reranker,
            fallback=settings.fallback,
        )

    served = load(settings.models)
    app = create_bundle_app(
        served,
        path=settings.models,
        loader=load,
        batching=settings.batching,
        admin_token=settings.admin_token,
        workers=settings.workers,
        max_body_bytes=settings.max_body_bytes,
        access_log=settings.access_log,
    )
    return app, served


def app_from_environment() -> FastAPI:
    """The app for the settings in the environment (:meth:`ServiceSettings.from_environment`).

    uvicorn calls it in each worker process (``serve --workers N``; a factory,
    so that importing this module assembles nothing). The worker is a server
    from then on: what it loaded is frozen out of the garbage collector's full
    passes (:func:`~two_stage_rec.serving.server.freeze_loaded_objects`).
    """
    settings = ServiceSettings.from_environment()
    if settings.access_log:
        enable_access_log()
    app, _ = build_service(settings)
    freeze_loaded_objects()
    return app


def enable_access_log() -> None:
    """Send the access log (one JSON object a line) to standard error, at INFO (idempotent)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(getattr(handler, "_two_stage_rec_access", False) for handler in logger.handlers):
        handler = access_log_handler()
        handler._two_stage_rec_access = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # one line per request, not a second copy through the root logger
