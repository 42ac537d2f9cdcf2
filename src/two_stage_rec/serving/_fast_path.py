"""The plain ``GET /recommendations/{user_id}`` answered without FastAPI's per-request machinery.

Most requests a recommendation service sees are the plain one: a user id in
the path, no query string. Through FastAPI, each pays for routing (a regular
expression per route), solving the endpoint's parameters and dependencies
(ten query parameters, each looked up, defaulted and validated by pydantic),
the exception and exit-stack layers, and a ``Response`` object: together
about three times what the batched recommendation itself cost per request,
all of it on the one event-loop thread, under the GIL (profiled with py-spy
under ``wrk`` load; ``docs/guides/serving.md``).

:class:`PlainRecommendationPath` is a pure ASGI middleware, the innermost of
the service's, that recognises exactly that request (``GET``, the path
``/recommendations/<id>`` with an id the route accepts, no query string) and
answers it itself: it hands the user id to ``answer`` (the micro-batcher, or
a thread-pool call without batching) and sends the ready JSON. Everything
else, including any request with a query parameter, goes to the app
unchanged, so validation, options and errors keep one implementation.

What the outer middlewares see is what the routed endpoint gives them: the
route (``scope["route"]``, the metrics' and the access log's endpoint label),
the batch size (:data:`~two_stage_rec.serving.middleware.BATCH_SIZE_SCOPE_KEY`),
the same status, headers and body. An error is answered by the app's own
exception handler for its class, with the same status and body as the
routed path; an error no handler claims propagates, as it would from the
endpoint (the server-error layer answers 500).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["ExceptionHandler", "PlainAnswer", "PlainRecommendationPath"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PlainAnswer = Callable[[str], Awaitable[tuple[bytes, int | None]]]
"""Answers one user id with the default options: the JSON body and the size of
the batch that answered it (None: not batched). Raises what the request raises."""

ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]

_JSON = b"application/json"


class PlainRecommendationPath:
    """Answer the plain ``GET {prefix}<user_id>`` (no query string) with ``answer``; pass the rest on.

    Args:
        app: the app every other request goes to.
        prefix: the path before the user id, e.g. ``"/recommendations/"``.
        max_id_length: the longest user id the route accepts; a longer one goes
            to the app (which answers 422).
        answer: computes the answer for a user id (see :data:`PlainAnswer`).
        route: the route these requests would have matched, stored in
            ``scope["route"]`` as the router does.
        exception_handlers: the app's handlers by exception class
            (``FastAPI.exception_handlers``); the handler of the most specific
            class in the error's MRO answers it, as Starlette picks. The
            catch-all ``Exception`` handler is left to the server-error layer.
        batch_size_key: the scope key where the batch size is left for the access log.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        prefix: str,
        max_id_length: int,
        answer: PlainAnswer,
        route: object,
        exception_handlers: Mapping[Any, Callable[..., Any]],
        batch_size_key: str,
    ) -> None:
        self.app = app
        self._prefix = prefix
        self._start = len(prefix)
        self._max_id_length = max_id_length
        self._answer = answer
        self._route = route
        self._handlers = exception_handlers
        self._batch_size_key = batch_size_key

    def _user_id(self, scope: Scope) -> str | None:
        """The user id of a plain request this path answers, else None."""
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get("query_string") or scope.get("root_path"):
            return None
        path: str = scope["path"]
        if not path.startswith(self._prefix):
            return None
        user_id = path[self._start :]
        # As the route's `[^/]+` and the id's length bound: anything else is the router's to answer.
        if not user_id or len(user_id) > self._max_id_length or "/" in user_id:
            return None
        return user_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user_id = self._user_id(scope)
        if user_id is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = self._route
        try:
            body, batch_size = await self._answer(user_id)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            response = await handler(Request(scope, receive), exc)
            await response(scope, receive, send)
            return
        if batch_size is not None:
            scope[self._batch_size_key] = batch_size
        # The headers Starlette's Response(body, media_type="application/json") sends, in its order.
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode()), (b"content-type", _JSON)],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _handler(self, exc: Exception) -> ExceptionHandler | None:
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            handler = self._handlers.get(cls)
            if handler is not None:
                return handler
        return None
