"""The service's HTTP guards and records: a request body size limit and structured access logs.

Both are pure ASGI middlewares (no ``BaseHTTPMiddleware``: that would run
every request through an extra task and buffer streaming bodies).

* :class:`BodySizeLimitMiddleware` answers 413 (``payload_too_large``, the
  service's :class:`~two_stage_rec.serving.schemas.ErrorResponse` shape) to a
  request whose body is larger than the limit, before the app reads it: at
  once from ``Content-Length``, or while reading a chunked body. Without
  it, a client could make the service parse a body of any size into memory.
* :class:`AccessLogMiddleware` writes one JSON object per request on the
  ``two_stage_rec.serving.access`` logger (:data:`ACCESS_LOGGER`), at INFO:

  .. code-block:: json

      {"method": "GET", "route": "/recommendations/{user_id}", "path": "/recommendations/42",
       "status": 200, "duration_ms": 1.93, "response_bytes": 812, "client": "127.0.0.1",
       "batch_size": 12}

  ``route`` is the route's path template (``unmatched`` for a path no route
  serves, and for a body refused before routing), so logs aggregate by endpoint; ``path`` is the path without its
  query string (cut at 200 characters). ``batch_size``, for a micro-batched
  request, is how many requests the same ``recommend_batch`` call answered.
  No header is ever logged, so neither the admin token nor any
  ``Authorization`` value can reach the log; neither is the query string.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from two_stage_rec.serving.schemas import ErrorResponse

__all__ = [
    "ACCESS_LOGGER",
    "BATCH_SIZE_SCOPE_KEY",
    "DEFAULT_MAX_BODY_BYTES",
    "AccessLogMiddleware",
    "BodySizeLimitMiddleware",
    "access_log_handler",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
"""Largest request body the service reads by default: 1 MiB (a 10,000-user ``POST`` is ~100 kB)."""

ACCESS_LOGGER = "two_stage_rec.serving.access"
"""The logger :class:`AccessLogMiddleware` writes to."""

BATCH_SIZE_SCOPE_KEY = "two_stage_rec.batch_size"
"""ASGI scope key where an endpoint leaves the size of the batch that answered the request."""

_MAX_LOGGED_PATH = 200
_DRAIN_FACTOR = 16  # a refused body is read and dropped up to 16 times the limit, then the connection closes


class BodySizeLimitMiddleware:
    """Answer 413 to a request whose body is larger than ``max_bytes``.

    Args:
        app: the ASGI app to guard.
        max_bytes: the largest body accepted, in bytes.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            # The server holds the body to this length, so a declared length within the limit is enough.
            if not declared.isdigit() or int(declared) > self.max_bytes:
                await self._refuse(receive, send)
                return
            await self.app(scope, receive, send)
            return
        if _header(scope, b"transfer-encoding") is None:  # no body at all
            await self.app(scope, receive, send)
            return
        # A chunked body: read it here, up to the limit, and hand it to the app whole. The app
        # reads every body whole anyway, and an error raised while it reads would be its to answer.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = bytes(message.get("body", b""))
            received += len(chunk)
            if received > self.max_bytes:
                await self._refuse(receive if message.get("more_body", False) else None, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # what follows the body: a disconnect
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, unread: Receive | None, send: Send) -> None:
        """Answer 413; first read (and drop) the rest of the body from ``unread`` (None: all read)."""
        # Closing a socket with unread data resets the connection, and the client would see a
        # reset instead of the 413; so what the client is still sending is read, up to a bound.
        drained = 0
        more = unread is not None
        while unread is not None and more and drained <= _DRAIN_FACTOR * self.max_bytes:
            message = await unread()
            if message["type"] != "http.request":
                return  # the client went away: nobody to answer
            drained += len(message.get("body", b""))
            more = bool(message.get("more_body", False))
        body = ErrorResponse(
            error="payload_too_large", detail=f"the request body is larger than {self.max_bytes} bytes"
        ).model_dump_json(exclude_none=True)
        encoded = body.encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(encoded)).encode()),
                    # The unread body is still on the connection: do not reuse it.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": encoded})


class AccessLogMiddleware:
    """Log one JSON line per HTTP request on :data:`ACCESS_LOGGER` (see the module docstring).

    Args:
        app: the ASGI app whose requests are logged.
        logger: where to write; the ``two_stage_rec.serving.access`` logger by default.
    """

    def __init__(self, app: ASGIApp, logger: logging.Logger | None = None) -> None:
        self.app = app
        self.logger = logger if logger is not None else logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app fails before it responds
        sent = 0

        async def recording_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.logger.info(json.dumps(self._record(scope, status, sent, started), separators=(",", ":")))

    @staticmethod
    def _record(scope: Scope, status: int, sent: int, started: float) -> dict[str, Any]:
        route = scope.get("route")
        client = scope.get("client")
        record: dict[str, Any] = {
            "method": str(scope.get("method", "")),
            "route": getattr(route, "path", None) or "unmatched",
            "path": str(scope.get("path", ""))[:_MAX_LOGGED_PATH],
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1e3, 3),
            "response_bytes": sent,
            "client": client[0] if client else None,
        }
        batch_size = scope.get(BATCH_SIZE_SCOPE_KEY)
        if batch_size is not None:
            record["batch_size"] = batch_size
        return record


def access_log_handler(stream: Any = None) -> logging.Handler:
    """A handler writing each access log record's message (one JSON object) alone on its line.

    ``two-stage-rec serve --access-log`` attaches it to :data:`ACCESS_LOGGER`.

    Args:
        stream: where to write; standard error when None.
    """
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1").strip()
    return None
