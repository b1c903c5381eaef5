"""The frozen policies a run is configured with: timeouts, and when to retry a failed request.

    decision = policy.decide(error, tries=tries, elapsed=elapsed, rng=random.random)
    tries = decision.tries
    if not decision.retry:
        raise error
    # charge the run's retry budget, then wait decision.delay seconds and send again

Everything here is a value or a pure function: no sleeping, no clock, no randomness of its own
(the jitter source ``rng`` is passed in, so tests use ``lambda: 1.0`` and assert exact
delays). The loop that sleeps and re-sends is ``api.retry.loop``; the run-wide retry budget,
charged by that loop only for a retry it will really make, is ``api.retry.budget``.

What is retryable is defined once, here (``is_retryable``): ``TransportError`` (connect
failure, reset, timeout, always re-sent with the same idempotency key), ``KeyInProgress``
(409 ``idempotency_in_progress``) and any error whose status is in ``RETRYABLE_STATUSES``.
Never retried: ``RunAborted`` (401, 403: the run stops) and every other status (a 4xx
rejects the row; a 5xx outside the set fails it, to be tried again by ``resume``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from flexpay_batch.core.errors import (
    ApiError,
    KeyInProgress,
    RateLimited,
    RetryableError,
    RunAborted,
    TransportError,
)

#: HTTP statuses worth another try. The client maps them to ``RateLimited`` (429) and
#: ``ServerError`` (the 5xx); ``is_retryable`` is the one judge.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

#: The largest exponent used in the backoff; 2**62 seconds already exceeds any ``max_delay``.
_MAX_EXPONENT = 62

RetryReason = Literal["retry", "not_retryable", "attempts_exhausted", "deadline"]


def is_retryable(error: ApiError) -> bool:
    """Whether this kind of failure can succeed on another try (ignoring counts and time)."""
    if isinstance(error, RunAborted):
        return False  # 401/403: a bad token must never become hundreds of retries
    if isinstance(error, TransportError | KeyInProgress):
        return True  # KeyInProgress: our own earlier attempt with this key still runs
    return error.status is not None and error.status in RETRYABLE_STATUSES


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds allowed to connect, to wait for each read, and for a whole attempt."""

    connect: float = 10.0
    read: float = 30.0
    total: float = 60.0


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """What to do after a failed attempt: ``retry`` after ``delay`` seconds, or stop.

    ``tries`` is the number of attempts counted against ``max_attempts`` once this failure is
    counted (a 429 is not); the caller passes it to the next ``decide``. When ``retry`` is
    False the caller re-raises the error (rejecting or failing the row) and ``reason`` says
    why: ``"not_retryable"``, ``"attempts_exhausted"`` or ``"deadline"``.
    """

    retry: bool
    delay: float
    reason: RetryReason
    tries: int


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry configuration as a value; every method is pure. Times are seconds.

    - ``max_attempts``: counted attempts per request including the first (8: at most 7
      retries). A 429 is not counted: the server said "later", not "failed".
    - ``base_delay``/``max_delay``: backoff after counted attempt *n* is ``rng() *
      min(max_delay, base_delay * 2 ** (n - 1))`` (full jitter).
    - ``deadline``: no retry once a row has spent this long, or would by the end of the wait.
    - ``max_retry_after``: the longest pause a server can impose, seconds (the setting
      ``max_server_pause``): a ``Retry-After`` or ``X-RateLimit-Reset`` is honoured up to
      this, by this loop and by the endpoint class's limiter (``engine.run``). One hostile
      header (``Retry-After: 999999999``) must not stall a run.
    """

    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 20.0
    deadline: float = 300.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.base_delay, self.max_delay, self.deadline, self.max_retry_after) < 0:
            raise ValueError("retry delays and the deadline cannot be negative")

    def decide(
        self, error: ApiError, *, tries: int, elapsed: float, rng: Callable[[], float]
    ) -> RetryDecision:
        """Decide the next step after an attempt failed with ``error``.

        ``tries``: attempts counted before this one (0 after the first attempt fails);
        ``elapsed``: seconds the row has spent since its first attempt. In order:

        1. not retryable (``is_retryable``) → stop, ``"not_retryable"``;
        2. this failure counted (all but 429) and ``max_attempts`` reached → stop;
        3. ``elapsed`` at or past ``deadline`` → stop, ``"deadline"``;
        4. the wait: 0 for a 429 (the endpoint class's limiter was told the server's wait and
           gates every worker of the class; that pause, capped at ``max_retry_after``, still
           counts against the deadline in step 5), else ``delay`` (Retry-After, or the
           full-jitter backoff of the counted attempt);
        5. a wait ending past ``deadline`` → stop, ``"deadline"``; else retry after it.

        The run-wide budget is not consulted: the caller charges it only when this says retry.
        """
        counted = tries if isinstance(error, RateLimited) else tries + 1
        if not is_retryable(error):
            return RetryDecision(False, 0.0, "not_retryable", counted)
        if counted >= self.max_attempts:
            return RetryDecision(False, 0.0, "attempts_exhausted", counted)
        if elapsed >= self.deadline:
            return RetryDecision(False, 0.0, "deadline", counted)
        if isinstance(error, RateLimited):
            pause = min(max(error.retry_after or 0.0, 0.0), self.max_retry_after)
            if elapsed + pause > self.deadline:
                return RetryDecision(False, 0.0, "deadline", counted)
            return RetryDecision(True, 0.0, "retry", counted)
        retry_after = error.retry_after if isinstance(error, RetryableError) else None
        delay = self.delay(counted, retry_after=retry_after, rng=rng)
        if elapsed + delay > self.deadline:
            return RetryDecision(False, 0.0, "deadline", counted)
        return RetryDecision(True, delay, "retry", counted)

    def backoff(self, attempt: int, *, rng: Callable[[], float]) -> float:
        """Full-jitter backoff after counted attempt ``attempt``: ``rng() * min(cap, base *
        2^(n-1))``. ``rng`` returns a float in ``[0, 1]`` (``random.random``)."""
        exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
        return rng() * min(self.max_delay, self.base_delay * 2.0**exponent)

    def delay(self, attempt: int, *, retry_after: float | None, rng: Callable[[], float]) -> float:
        """Seconds to wait before the retry that follows counted attempt ``attempt``.

        A server's ``Retry-After`` takes precedence over the backoff: we wait exactly that
        long (never less, which would only earn another refusal), capped at
        ``max_retry_after``. Without one, the full-jitter ``backoff``.
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        return self.backoff(attempt, rng=rng)
