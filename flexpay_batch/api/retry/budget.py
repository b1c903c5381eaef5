"""The run-wide retry budget: stop hammering a server that keeps failing.

    budget = RetryBudget()            # one per run, shared by every worker
    if not budget.try_spend(error):   # charged only for a retry that will really be made
        raise ServiceUnhealthy(...)
    budget.on_success(was_retry=...)

Plain bookkeeping on one event loop (no locking, no clock). Whether a request is worth
retrying at all is ``core.policies.RetryPolicy.decide``; the loop that asks both is
``api.retry.loop``.
"""

from __future__ import annotations

from dataclasses import dataclass

from flexpay_batch.core.errors import ApiError, TransportError


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
