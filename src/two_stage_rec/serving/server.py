"""Run the service with uvicorn: in the foreground (the CLI) or in a background
thread on an ephemeral loopback port (tests, benchmarks, notebooks)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from two_stage_rec._optional import require

require("uvicorn", extra="serve")

import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402

__all__ = ["LogLevel", "run", "run_workers", "serve_in_thread"]

LogLevel = Literal["critical", "error", "warning", "info", "debug"]

_START_TIMEOUT_S = 10.0


def _config(app: FastAPI, host: str, port: int, log_level: LogLevel, access_log: bool) -> uvicorn.Config:
    # No websockets route exists, so don't load a websockets implementation (its
    # import can emit deprecation warnings, which the test suite turns into errors).
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=access_log, ws="none")


def run(
    app: FastAPI, *, host: str = "127.0.0.1", port: int = 8000, log_level: LogLevel = "info", access_log: bool = True
) -> None:
    """Serve ``app`` until interrupted (Ctrl-C / SIGTERM shut it down gracefully).

    The default host is loopback: binding ``0.0.0.0`` exposes the service to the
    network, which must be asked for explicitly.
    """
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
    """
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
