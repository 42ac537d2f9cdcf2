"""Micro-batching: concurrent single-user requests answered by one ``recommend_batch`` call.

``recommend_batch`` answers 943 users in about the time 10 single
``recommend`` calls take, because the per-call Python path (embedding lookup,
store query, reranker call, result assembly) is paid once per batch. A
service answering one request per call pays it per request, so under
concurrency its throughput *falls*. :class:`MicroBatcher` turns concurrency
into batching:

* Requests are queued by the event loop (``await batcher.submit(key, item)``)
  and taken by one dedicated worker thread, so the event loop never runs the
  numpy work and keeps accepting connections (and answering ``/healthz``)
  while a batch computes.
* The worker takes everything queued, up to ``max_batch_size``, splits it into
  groups of the same key (same ``k``, ``candidates``, ``rerank`` and filter:
  what one ``recommend_batch`` call must share; exclusions are per user) and
  makes one call per group. While it computes, new requests queue up and form
  the next batch, so batches grow with the load by themselves.
* It waits for more requests only under load: when the previous batch held
  several requests and ended less than ``max_wait_ms`` before this one
  arrived. It then waits until as many requests are queued as the previous
  batch held (the concurrency it has seen), and never longer than
  ``max_wait_ms`` after the first one arrived. A request on an idle server, or
  a lone sequential client, is answered at once.
* The worker computes on one core by default (``compute_threads=1``): the
  libraries' own thread pools (FAISS's OpenMP, numpy's BLAS) would otherwise
  spin-wait against the event loop for the same cores. Measured on 2 CPUs
  under load, a 10-user FAISS batch took 55 ms at the median with OpenMP's two
  threads and 2 ms with one; 100 users, 112 ms against 12 ms.
* A batch can be answered by one version of the model throughout
  (:meth:`MicroBatcher.per_batch`): the answer function is chosen once when
  the batch starts, so a live model swap never splits a batch.
* Answers are handed back to each request's own future, one event-loop wake-up
  per batch. A failure of one request (an unknown user without a fallback, say)
  is that request's alone: :func:`recommend_each` isolates it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeVar

from two_stage_rec._optional import require
from two_stage_rec.errors import InvalidInputError, StoreError, UnknownUserError
from two_stage_rec.policies.base import Policy
from two_stage_rec.recommender import History, Recommendation, Recommender
from two_stage_rec.types import Filter

__all__ = ["BatchingSettings", "MicroBatcher", "recommend_each"]

K = TypeVar("K")
T = TypeVar("T")
R = TypeVar("R")

Answer: TypeAlias = Callable[[K, list[T]], Sequence[R | Exception]]

MAX_WAIT_MS = 1000.0
"""Largest ``max_wait_ms`` accepted: a wait longer than a second is a mistake, not a setting."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchingSettings:
    """How the service gathers concurrent requests into batches.

    Attributes:
        max_wait_ms: longest a request waits for others to join its batch, in
            milliseconds (0 never waits: each batch is what was queued when
            the worker became free). The wait applies only under load.
        max_batch_size: most requests answered by one batch.
        compute_threads: threads the worker lets OpenMP (FAISS) and BLAS (numpy)
            use while it computes, set with ``threadpoolctl`` (the OpenMP limit
            holds for the worker thread; BLAS's is process-wide, restored when
            the worker stops). None leaves the libraries' defaults.

    Raises:
        InvalidInputError: ``max_wait_ms`` outside [0, 1000], ``max_batch_size``
            or ``compute_threads`` < 1.
    """

    max_wait_ms: float = 2.0
    max_batch_size: int = 128
    compute_threads: int | None = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_wait_ms <= MAX_WAIT_MS:
            raise InvalidInputError(f"max_wait_ms must be in [0, {MAX_WAIT_MS:g}], got {self.max_wait_ms!r}")
        if isinstance(self.max_batch_size, bool) or not isinstance(self.max_batch_size, int) or self.max_batch_size < 1:
            raise InvalidInputError(f"max_batch_size must be a positive integer, got {self.max_batch_size!r}")
        threads = self.compute_threads
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise InvalidInputError(f"compute_threads must be a positive integer or None, got {threads!r}")


@dataclass(slots=True)
class _Queued(Generic[K, T, R]):
    key: K
    item: T
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[R]
    arrived: float


def _settle(settled: list[tuple[asyncio.Future[R], R | Exception]]) -> None:
    """Runs on the requests' event loop: hand each answer to its future."""
    for future, outcome in settled:
        if future.done():  # the request was cancelled (client gone)
            continue
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class MicroBatcher(Generic[K, T, R]):
    """Gathers items submitted concurrently and answers them in batches on one worker thread.

    Args:
        answer: called on the worker thread with a key and the items queued
            under it (in arrival order); returns one outcome per item, in the
            same order: the answer, or the exception that request raises. If
            it raises, every item of the group gets that exception.
        settings: the wait and size bounds.
        name: the worker thread's name.

    The worker starts with the first :meth:`submit` and stops at :meth:`close`,
    which first answers everything already queued.
    """

    def __init__(
        self,
        answer: Callable[[K, list[T]], Sequence[R | Exception]],
        settings: BatchingSettings | None = None,
        *,
        name: str = "micro-batcher",
    ) -> None:
        self._begin: Callable[[], AbstractContextManager[Answer[K, T, R]]] = lambda: nullcontext(answer)
        self.observe_batch: Callable[[int, float], None] | None = None
        """Called on the worker thread after each batch with its size and duration in seconds (metrics)."""
        self.settings = settings or BatchingSettings()
        if self.settings.compute_threads is not None:
            require("threadpoolctl", extra="serve")
        self._wait_s = self.settings.max_wait_ms / 1e3
        self._name = name
        self._queue: deque[_Queued[K, T, R]] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._closing = False
        self._last_size = 0
        self._last_end = float("-inf")
        self._target = 1  # queued items worth waking the worker for
        self.batches = 0
        """Batches answered so far (one or more ``answer`` calls each)."""
        self.items = 0
        """Items answered so far."""

    @classmethod
    def per_batch(
        cls,
        begin: Callable[[], AbstractContextManager[Answer[K, T, R]]],
        settings: BatchingSettings | None = None,
        *,
        name: str = "micro-batcher",
    ) -> MicroBatcher[K, T, R]:
        """A batcher whose answer function is chosen once per batch.

        Args:
            begin: called on the worker thread when a batch starts; the context
                manager it returns yields the function that answers every group
                of that batch, and is exited when they are all answered (before
                the answers are handed back). The service uses it to answer a
                batch wholly with the model version current when it started.
            settings: the wait and size bounds.
            name: the worker thread's name.
        """

        def unused(key: K, items: list[T]) -> Sequence[R | Exception]:
            raise AssertionError("per_batch answers through begin()")

        batcher = cls(unused, settings, name=name)
        batcher._begin = begin
        return batcher

    def __repr__(self) -> str:
        return f"MicroBatcher({self.settings!r}, batches={self.batches}, items={self.items})"

    async def submit(self, key: K, item: T) -> R:
        """Queue ``item`` under ``key`` and wait for its answer.

        Raises:
            Exception: whatever the answer for this item is, when it is an exception.
            RuntimeError: the batcher is closed.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        with self._ready:
            if self._closing:
                raise RuntimeError("the micro-batcher is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()
            self._queue.append(_Queued(key, item, loop, future, time.monotonic()))
            # Wake the worker only when it can act: it waits for a first item, or for its target.
            if len(self._queue) == 1 or len(self._queue) == self._target:
                self._ready.notify()
        return await future

    def close(self, timeout: float = 10.0) -> None:
        """Answer what is queued, then stop the worker thread (idempotent)."""
        with self._ready:
            self._closing = True
            self._ready.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # ------------------------------------------------------------ worker thread

    def _work(self) -> None:
        limits: AbstractContextManager[object] = nullcontext()
        if self.settings.compute_threads is not None:
            from threadpoolctl import threadpool_limits

            limits = threadpool_limits(limits=self.settings.compute_threads)
        with limits:
            while True:
                batch = self._next_batch()
                if not batch:
                    return
                self._run(batch)

    def _next_batch(self) -> list[_Queued[K, T, R]]:
        """Block until items are queued; take up to max_batch_size of them (empty: stop)."""
        limit = self.settings.max_batch_size
        with self._ready:
            while not self._queue and not self._closing:
                self._ready.wait()
            if not self._queue:
                return []
            first = self._queue[0].arrived
            if self._last_size > 1 and first - self._last_end < self._wait_s:
                self._target = min(self._last_size, limit)
                deadline = first + self._wait_s
                while len(self._queue) < self._target and not self._closing:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._ready.wait(remaining)
                self._target = 1
            return [self._queue.popleft() for _ in range(min(limit, len(self._queue)))]

    def _run(self, batch: list[_Queued[K, T, R]]) -> None:
        started = time.perf_counter()
        groups: dict[K, list[_Queued[K, T, R]]] = {}
        for queued in batch:
            groups.setdefault(queued.key, []).append(queued)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[R], R | Exception]]] = {}
        try:
            with self._begin() as answer:
                for key, members in groups.items():
                    outcomes: Sequence[R | Exception]
                    try:
                        outcomes = answer(key, [member.item for member in members])
                        if len(outcomes) != len(members):
                            raise RuntimeError(f"the batch answered {len(outcomes)} of {len(members)} items")
                    except Exception as exc:
                        outcomes = [exc] * len(members)
                    for member, outcome in zip(members, outcomes, strict=True):
                        by_loop.setdefault(member.loop, []).append((member.future, outcome))
        except Exception as exc:  # begin() itself failed: every request of the batch gets its error
            by_loop = {}
            for member in batch:
                by_loop.setdefault(member.loop, []).append((member.future, exc))
        if self.observe_batch is not None:
            self.observe_batch(len(batch), time.perf_counter() - started)
        self.batches += 1
        self.items += len(batch)
        self._last_size = len(batch)
        self._last_end = time.monotonic()
        for loop, settled in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, settled)
            except RuntimeError:  # that loop is closed: nobody waits for these answers any more
                continue


def recommend_each(
    recommender: Recommender,
    user_ids: Sequence[str],
    excludes: Sequence[Collection[str]],
    *,
    k: int,
    candidates: int,
    filter: Filter | None = None,
    rerank: bool = True,
    history: Sequence[History | None] | None = None,
    policies: Sequence[Policy] = (),
    explain: bool = False,
) -> list[list[Recommendation] | Exception]:
    """``recommend_batch`` for many independent requests: one request's error is its own.

    One call answers everyone when it can. When it raises
    :class:`~two_stage_rec.errors.UnknownUserError` (no fallback), each unknown
    user gets its own error and the others are answered by one more call. A
    :class:`~two_stage_rec.errors.StoreError` is everyone's (the store failed,
    and asking it again once per user would only add load). Any other error is
    isolated by answering each request alone.

    Args:
        recommender: answers the requests.
        user_ids: n user ids, one per request.
        excludes: n collections of item ids to leave out.
        k: as in :meth:`~two_stage_rec.recommender.Recommender.recommend_batch`.
        candidates: likewise.
        filter: likewise, shared by every request.
        rerank: likewise.
        history: n histories (None for a request without one), or None: none has one.
        policies: shared by every request, as in ``recommend_batch``.
        explain: likewise.

    Returns:
        One entry per user, in order: the recommendations, or the exception
        that user's request raises.
    """
    requests = _Requests(
        list(user_ids),
        list(excludes),
        None if history is None else list(history),
        _Shared(k, candidates, filter, rerank, tuple(policies), explain),
    )
    return _answer(recommender, requests)


@dataclass(frozen=True, slots=True)
class _Shared:
    """What every request of one ``recommend_batch`` call shares."""

    k: int
    candidates: int
    filter: Filter | None
    rerank: bool
    policies: tuple[Policy, ...]
    explain: bool


@dataclass(frozen=True, slots=True)
class _Requests:
    users: list[str]
    exclusions: list[Collection[str]]
    histories: list[History | None] | None
    shared: _Shared

    def subset(self, rows: list[int]) -> _Requests:
        histories = None if self.histories is None else [self.histories[row] for row in rows]
        return _Requests(
            [self.users[row] for row in rows], [self.exclusions[row] for row in rows], histories, self.shared
        )

    def call(self, recommender: Recommender) -> list[list[Recommendation]]:
        shared = self.shared
        return recommender.recommend_batch(
            self.users,
            k=shared.k,
            candidates=shared.candidates,
            exclude=self.exclusions,
            filter=shared.filter,
            rerank=shared.rerank,
            history=self.histories,
            policies=shared.policies,
            explain=shared.explain,
        )


def _answer(recommender: Recommender, requests: _Requests) -> list[list[Recommendation] | Exception]:
    users = requests.users
    try:
        answered: list[list[Recommendation] | Exception] = list(requests.call(recommender))
        return answered
    except UnknownUserError as exc:
        unknown = set(exc.keys) & set(users)
        if not unknown:
            return _one_by_one(recommender, requests, exc)
        outcomes: list[list[Recommendation] | Exception] = [
            UnknownUserError([user]) if user in unknown else [] for user in users
        ]
        rest = [row for row, user in enumerate(users) if user not in unknown]
        if rest:
            for row, answer in zip(rest, _answer(recommender, requests.subset(rest)), strict=True):
                outcomes[row] = answer
        return outcomes
    except StoreError as exc:
        return [exc] * len(users)
    except Exception as exc:
        return _one_by_one(recommender, requests, exc)


def _one_by_one(
    recommender: Recommender, requests: _Requests, error: Exception
) -> list[list[Recommendation] | Exception]:
    if len(requests.users) == 1:
        return [error]
    outcomes: list[list[Recommendation] | Exception] = []
    for row in range(len(requests.users)):
        try:
            outcomes.append(requests.subset([row]).call(recommender)[0])
        except Exception as exc:
            outcomes.append(exc)
    return outcomes
