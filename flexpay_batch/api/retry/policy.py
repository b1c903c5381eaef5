"""When to retry a failed request, how long to wait, and the run-wide retry budget.

    decision = plan_retry(error, attempt=n, elapsed=t, policy=policy, budget=budget,
                          rng=random.random)
    if decision.budget_exhausted:
        raise ServiceUnhealthy(...) from error
    if not decision.retry:
        raise error
    await sleep(decision.delay)

Everything here is pure or plain bookkeeping: no sleeping, no clock, no randomness of its own
(the jitter source ``rng`` is passed in, so tests use ``lambda: 1.0`` and assert exact
delays). The loop that sleeps and re-sends lives in ``executor.py``.

Retryable: ``TransportError`` (connect failure, reset, timeout — always with the same
idempotency key) and any error whose status is in ``retryable_statuses`` (429, 500, 502,
503, 504). Never retried: ``RunAborted`` (401, 403: the run stops) and every other 4xx (the
row is rejected with the server's code and message).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flexpay_batch.core.errors import (
    ApiError,
    KeyInProgress,
    RetryableError,
    RunAborted,
    TransportError,
)

#: The largest exponent used in the backoff; 2**62 seconds already exceeds any ``max_delay``.
_MAX_EXPONENT = 62

DEFAULT_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry configuration as a value; every method is pure. Times are seconds.

    - ``max_attempts``: attempts per request including the first (8: at most 7 retries).
    - ``base_delay``/``max_delay``: backoff of retry *n* is ``rng() * min(max_delay,
      base_delay * 2 ** (n - 1))`` (full jitter).
    - ``deadline``: no retry once a row has spent this long, or would by the end of the wait.
    - ``retryable_statuses``: HTTP statuses worth another try (transport errors always are).
    - ``max_retry_after``: a server's ``Retry-After`` is honoured up to this many seconds.
    """

    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 20.0
    deadline: float = 300.0
    retryable_statuses: frozenset[int] = DEFAULT_RETRYABLE_STATUSES
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.base_delay, self.max_delay, self.deadline, self.max_retry_after) < 0:
            raise ValueError("retry delays and the deadline cannot be negative")

    def is_retryable(self, error: ApiError) -> bool:
        """Whether this kind of failure can succeed on another try (ignoring counts)."""
        if isinstance(error, RunAborted):
            return False  # 401/403: a bad token must never become hundreds of retries
        if isinstance(error, TransportError | KeyInProgress):
            return True  # 409 idempotency_in_progress: our own earlier attempt still runs
        return error.status is not None and error.status in self.retryable_statuses

    def should_retry(self, error: ApiError, attempt: int, elapsed: float) -> bool:
        """Retry after attempt number ``attempt`` (1-based) failed, ``elapsed`` s into the row?"""
        return self.is_retryable(error) and attempt < self.max_attempts and elapsed < self.deadline

    def backoff(self, attempt: int, *, rng: Callable[[], float]) -> float:
        """Full-jitter backoff after attempt ``attempt``: ``rng() * min(cap, base * 2^(n-1))``.

        ``rng`` returns a float in ``[0, 1]`` (``random.random``; ``lambda: 1.0`` in tests).
        """
        exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
        return rng() * min(self.max_delay, self.base_delay * 2.0**exponent)

    def delay(self, attempt: int, *, retry_after: float | None, rng: Callable[[], float]) -> float:
        """Seconds to wait before the retry that follows attempt ``attempt``.

        A server's ``Retry-After`` takes precedence over the backoff: we wait exactly that
        long (never less, which would only earn another 429), capped at
        ``max_retry_after``. Without one, the full-jitter ``backoff``.
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        return self.backoff(attempt, rng=rng)


@dataclass(frozen=True, slots=True)
class BudgetStatistics:
    """A snapshot of the retry budget: tokens available of ``capacity``, and the history."""

    capacity: int
    available: int
    retries_granted: int
    retries_denied: int
    refunded: int


class RetryBudget:
    """The run-wide retry quota of the AWS SDKs' "standard" mode (botocore ``quota.py``).

    The budget starts with ``capacity`` tokens. A retry costs ``retry_cost`` (a timeout
    ``timeout_cost``: a slow server is the sickest kind). A success refunds ``success_refund``
    if it came at the first attempt, or ``retry_cost`` if it was a retry that worked, never
    above ``capacity``. When most recent requests fail the budget drains and ``try_spend``
    says no: the caller then raises ``errors.ServiceUnhealthy`` and the run stops,
    resumable, instead of hammering a sick server for hours. First attempts never need
    budget, so once the server recovers their successes refill it.

    One instance is shared by every worker of a run, on one event loop (no locking needed).
    """

    __slots__ = (
        "_available",
        "_denied",
        "_granted",
        "_refunded",
        "capacity",
        "retry_cost",
        "success_refund",
        "timeout_cost",
    )

    def __init__(
        self,
        capacity: int = 500,
        retry_cost: int = 5,
        timeout_cost: int = 10,
        success_refund: int = 1,
    ) -> None:
        if min(capacity, retry_cost, timeout_cost, success_refund) < 0:
            raise ValueError("retry budget numbers cannot be negative")
        self.capacity = capacity
        self.retry_cost = retry_cost
        self.timeout_cost = timeout_cost
        self.success_refund = success_refund
        self._available = capacity
        self._granted = 0
        self._denied = 0
        self._refunded = 0

    def cost_of(self, error: ApiError) -> int:
        """Tokens one retry of ``error`` costs: ``timeout_cost`` for timeouts, else
        ``retry_cost``."""
        if isinstance(error, TransportError) and error.timeout:
            return self.timeout_cost
        return self.retry_cost

    def try_spend(self, error: ApiError) -> bool:
        """Take the cost of retrying ``error`` if the budget holds it; False means "stop"."""
        cost = self.cost_of(error)
        if cost > self._available:
            self._denied += 1
            return False
        self._available -= cost
        self._granted += 1
        return True

    def on_success(self, was_retry: bool, *, refund: int | None = None) -> None:
        """Credit a successful request: ``refund`` tokens if given (e.g. ``cost_of`` the
        error that was retried), else ``retry_cost`` for a retry, ``success_refund`` for a
        first-attempt success."""
        if refund is None:
            refund = self.retry_cost if was_retry else self.success_refund
        credited = min(refund, self.capacity - self._available)
        self._available += credited
        self._refunded += credited

    @property
    def available(self) -> int:
        return self._available

    def statistics(self) -> BudgetStatistics:
        """An immutable snapshot of the budget."""
        return BudgetStatistics(
            capacity=self.capacity,
            available=self._available,
            retries_granted=self._granted,
            retries_denied=self._denied,
            refunded=self._refunded,
        )


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """What to do after a failed attempt: ``retry`` after ``delay`` seconds, or stop.

    ``reason`` is one of ``"retry"``, ``"not_retryable"``, ``"attempts_exhausted"``,
    ``"deadline"``, ``"budget_exhausted"``; on the last one the caller raises
    ``errors.ServiceUnhealthy``, on the others it re-raises the error (rejecting the row
    or failing it).
    """

    retry: bool
    delay: float
    reason: str

    @property
    def budget_exhausted(self) -> bool:
        return self.reason == "budget_exhausted"


def plan_retry(
    error: ApiError,
    *,
    attempt: int,
    elapsed: float,
    policy: RetryPolicy,
    budget: RetryBudget,
    rng: Callable[[], float],
) -> RetryDecision:
    """Decide the next step after attempt ``attempt`` (1-based) failed with ``error``.

    ``elapsed`` is the seconds the row has spent since its first attempt. The budget is
    charged only when everything else allows the retry, so rejected rows cost nothing. A
    retry whose wait would end past the deadline is not made.
    """
    if not policy.is_retryable(error):
        return RetryDecision(False, 0.0, "not_retryable")
    if attempt >= policy.max_attempts:
        return RetryDecision(False, 0.0, "attempts_exhausted")
    retry_after = error.retry_after if isinstance(error, RetryableError) else None
    delay = policy.delay(attempt, retry_after=retry_after, rng=rng)
    if not policy.should_retry(error, attempt, elapsed) or elapsed + delay > policy.deadline:
        return RetryDecision(False, 0.0, "deadline")
    if not budget.try_spend(error):
        return RetryDecision(False, 0.0, "budget_exhausted")
    return RetryDecision(True, delay, "retry")
