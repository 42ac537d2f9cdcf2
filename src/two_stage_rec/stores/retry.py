"""Retrying remote calls: jittered exponential backoff inside a bounded total time.

Used by remote stores (Pinecone). The policy is data; :func:`call_with_retry`
runs one operation under it, and the store decides which errors are worth a
retry (rate limits, 5xx, timeouts, dropped connections) and translates the rest.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from two_stage_rec.errors import InvalidInputError, StoreUnavailableError

__all__ = ["RetryPolicy", "Transient", "call_with_retry"]

T = TypeVar("T")

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How a remote store retries a failed request.

    Attempt ``n`` (1-based) that fails with a transient error waits
    ``min(max_delay, initial_delay * multiplier ** (n - 1))``, scaled by a random
    factor in ``[1 - jitter, 1]`` so that many clients do not retry in step.
    A server's ``Retry-After`` is honoured (waited in full) instead. No
    attempt starts, and no wait is begun, that would end after
    ``total_timeout`` seconds from the first attempt; each attempt's own
    timeout is cut to what remains of it.

    Attributes:
        max_attempts: attempts per request, the first one included (>= 1).
        initial_delay: seconds before the first retry.
        multiplier: growth of the delay per attempt (>= 1).
        max_delay: cap on one computed delay, in seconds.
        jitter: fraction of the delay that is random, in [0, 1].
        request_timeout: timeout of one attempt, in seconds.
        total_timeout: bound on the whole call, waits included, in seconds.
    """

    max_attempts: int = 6
    initial_delay: float = 0.25
    multiplier: float = 2.0
    max_delay: float = 8.0
    jitter: float = 0.5
    request_timeout: float = 30.0
    total_timeout: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise InvalidInputError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise InvalidInputError("delays must be >= 0 and multiplier >= 1")
        if not 0.0 <= self.jitter <= 1.0:
            raise InvalidInputError(f"jitter must be in [0, 1], got {self.jitter}")
        if self.request_timeout <= 0 or self.total_timeout <= 0:
            raise InvalidInputError("request_timeout and total_timeout must be positive")

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based), jitter applied."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        draw = (rng or random).random()
        return base * (1.0 - self.jitter * draw)


class Transient(Exception):
    """Raised by an operation to ask :func:`call_with_retry` for another attempt.

    Args:
        message: what went wrong (must not contain secrets).
        retry_after: seconds the server asked to wait, if it said.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def call_with_retry(
    operation: Callable[[float], T],
    policy: RetryPolicy,
    *,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run ``operation(timeout)`` until it succeeds, retrying on :class:`Transient`.

    Args:
        operation: takes the timeout (seconds) for this attempt; raises
            :class:`Transient` for retryable failures, anything else to stop.
        policy: the retry policy.
        what: a short description for messages (e.g. ``"upsert of 1000 vectors"``).
        sleep: how to wait (replaced in tests).
        clock: a monotonic clock in seconds (replaced in tests).

    Returns:
        The operation's result.

    Raises:
        StoreUnavailableError: attempts or total time ran out; the last
            :class:`Transient` is chained.
    """
    deadline = clock() + policy.total_timeout
    attempt = 0
    while True:
        attempt += 1
        remaining = deadline - clock()
        try:
            return operation(max(min(policy.request_timeout, remaining), 0.001))
        except Transient as exc:
            delay = exc.retry_after if exc.retry_after is not None else policy.backoff(attempt)
            remaining = deadline - clock()
            if attempt >= policy.max_attempts:
                raise StoreUnavailableError(f"{what} failed after {attempt} attempts: {exc}") from exc
            if delay >= remaining:
                raise StoreUnavailableError(
                    f"{what} failed after {attempt} attempts; the next wait ({delay:.3g} s) would pass the "
                    f"{policy.total_timeout:g} s total timeout: {exc}"
                ) from exc
            logger.info("%s: attempt %d failed (%s); retrying in %.3f s", what, attempt, exc, delay)
            sleep(delay)
