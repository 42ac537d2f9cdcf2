"""Run the service with uvicorn: in the foreground (the CLI) or in a background
thread on an ephemeral loopback port (tests, benchmarks, notebooks)."""

from __future__ import annotations

import gc
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from two_stage_rec._optional import require

require("uvicorn", extra="serve")

import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402

__all__ = ["LogLevel", "freeze_loaded_objects", "run", "run_workers", "serve_in_thread"]

LogLevel = Literal["critical", "error", "warning", "info", "debug"]

_START_TIMEOUT_S = 10.0


def _config(app: FastAPI, host: str, port: int, log_level: LogLevel, access_log: bool) -> uvicorn.Config:
    # No websockets route exists, so don't load a websockets implementation (its
    # import can emit deprecation warnings, which the test suite turns into errors).
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=access_log, ws="none")


def freeze_loaded_objects() -> None:
    """Take everything loaded so far out of the cyclic garbage collector's full passes.

    A serving process loads a bundle once (catalogue, metadata, seen items: about
    90,000 Python objects for MovieLens-100K) and then allocates only short-lived
    objects per request. Yet under load the in-flight requests' objects survive the
    young collections, and every few seconds a full collection walks the whole
    heap: measured on the serve_load bundle, one every ~4 s under ``wrk``, each
    75 to 415 ms on 2 busy cores, during which the process answers nothing. After
    :func:`gc.freeze` those walks skip the loaded objects (measured: 3 to 20 ms).
    Frozen objects are still freed by reference counting; only a reference cycle
    among them would outlive its last use, which loaded models do not form.

    ``run`` calls it, and so does every ``serve --workers`` process once its app
    is built; call it yourself before serving an app some other way.
    """
    gc.collect()  # what is already garbage is freed, not frozen
    gc.freeze()


def run(
    app: FastAPI, *, host: str = "127.0.0.1", port: int = 8000, log_level: LogLevel = "info", access_log: bool = True
) -> None:
    """Serve ``app`` until interrupted (Ctrl-C / SIGTERM shut it down gracefully).

    The default host is loopback: binding ``0.0.0.0`` exposes the service to the
    network, which must be asked for explicitly. The process is taken to be a
    server from now on: the objects loaded so far are frozen out of the garbage
    collector's full passes (:func:`freeze_loaded_objects`).
    """
    freeze_loaded_objects()
    uvicorn.Server(_config(app, host, port, log_level, access_log)).run()


def run_workers(
    factory: str,
    *,
    workers: int,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: LogLevel = "info",
    access_log: bool = True,
) -> None:
    """Serve the app that ``factory`` builds in ``workers`` processes until interrupted.

    Each process imports ``factory`` (``"package.module:function"``, e.g.
    :func:`two_stage_rec.serving.service.app_from_environment`) and calls it, so
    the processes share nothing but what the factory reads; they accept
    connections on one shared socket, and uvicorn restarts a worker that dies.

    The workers keep their Prometheus metrics in one directory, so that
    ``/metrics`` adds up all of them (:mod:`two_stage_rec.serving.metrics`): the
    directory in ``PROMETHEUS_MULTIPROC_DIR`` when it is set (start each run
    with it empty: prometheus-client adds up every file it holds), else a new
    temporary one, removed when the workers have stopped.
    """
    from two_stage_rec.serving.metrics import MULTIPROCESS_DIR_ENV

    created = None
    if not os.environ.get(MULTIPROCESS_DIR_ENV):
        created = tempfile.mkdtemp(prefix="two-stage-rec-metrics-")
        os.environ[MULTIPROCESS_DIR_ENV] = created  # the workers are new processes: they inherit it
    try:
        _run_workers(factory, workers=workers, host=host, port=port, log_level=log_level, access_log=access_log)
    finally:
        if created is not None:
            del os.environ[MULTIPROCESS_DIR_ENV]
            shutil.rmtree(created, ignore_errors=True)


def _run_workers(factory: str, *, workers: int, host: str, port: int, log_level: LogLevel, access_log: bool) -> None:
    config = uvicorn.Config(
        factory,
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        ws="none",
    )
    from uvicorn.supervisors import Multiprocess

    Multiprocess(config, sockets=[_tcp_listener(host, port)]).run()


def _tcp_listener(host: str, port: int) -> socket.socket:
    """A listening socket created as TCP explicitly (``proto=IPPROTO_TCP``).

    asyncio turns Nagle's algorithm off (``TCP_NODELAY``) only on connections
    accepted from a socket whose ``proto`` says TCP; uvicorn's own shared socket
    leaves it 0, and on keep-alive connections Nagle and delayed ACKs then add
    ~40 ms to every response (measured: 22 requests/s on one connection with
    ``--workers 2``).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.set_inheritable(True)
    return listener


@contextmanager
def serve_in_thread(app: FastAPI, *, host: str = "127.0.0.1", log_level: LogLevel = "warning") -> Iterator[str]:
    """Serve ``app`` on a free port in a background thread; yield its base URL.

    The socket is bound here (port 0: the OS picks a free port) before the
    server starts, so there is no race for the port. On exit the server is
    asked to stop and the thread is joined, so nothing keeps running.

    Yields:
        The base URL, e.g. ``"http://127.0.0.1:53127"``.

    Raises:
        RuntimeError: the server did not start within 10 s.
    """
    listener = _tcp_listener(host, 0)
    port = int(listener.getsockname()[1])
    server = uvicorn.Server(_config(app, host, port, log_level, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {host}:{port}")
            time.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=_START_TIMEOUT_S)
        listener.close()
