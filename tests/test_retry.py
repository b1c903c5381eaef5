"""Retry policy decisions, exact backoff with injected jitter, and the run-wide budget."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexpay_batch.api.retry.policy import RetryBudget, RetryPolicy, plan_retry
from flexpay_batch.core.errors import (
    ApiError,
    AuthenticationFailed,
    Conflict,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    TransportError,
    ValidationFailed,
)

POLICY = RetryPolicy()


def _one() -> float:
    return 1.0


def _half() -> float:
    return 0.5


def _zero() -> float:
    return 0.0


def _server_error(status: int = 503) -> ServerError:
    return ServerError("server error", status=status)


def _timeout() -> TransportError:
    return TransportError("read timed out", indeterminate=True, timeout=True)


def test_backoff_sequence_with_identity_jitter() -> None:
    """With rng() = 1 the delays are base * 2^(n-1), capped at max_delay."""
    delays = [POLICY.delay(n, retry_after=None, rng=_one) for n in range(1, 10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0, 20.0]


@pytest.mark.parametrize(("rng", "expected"), [(_zero, 0.0), (_half, 2.0)])
def test_backoff_is_full_jitter(rng: object, expected: float) -> None:
    """The jitter multiplies the whole exponential delay (full jitter)."""
    assert POLICY.backoff(4, rng=rng) == expected  # type: ignore[arg-type]


def test_backoff_cap_survives_huge_attempt_numbers() -> None:
    """A very large attempt number stays at max_delay instead of overflowing."""
    assert POLICY.delay(10_000, retry_after=None, rng=_one) == POLICY.max_delay


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(0.6, 0.6), (7.5, 7.5), (0.0, 0.0), (-2.0, 0.0), (10_000.0, 120.0)],
)
def test_retry_after_takes_precedence(retry_after: float, expected: float) -> None:
    """Retry-After replaces the backoff exactly (never less), capped at max_retry_after."""
    assert POLICY.delay(5, retry_after=retry_after, rng=_one) == expected


@given(
    attempt=st.integers(1, 200),
    jitter=st.floats(0, 1),
    retry_after=st.none() | st.floats(-1e6, 1e6),
)
def test_delay_is_always_within_its_caps(
    attempt: int, jitter: float, retry_after: float | None
) -> None:
    """Whatever the inputs, a delay is between 0 and its cap (max_delay or max_retry_after)."""
    delay = POLICY.delay(attempt, retry_after=retry_after, rng=lambda: jitter)
    cap = POLICY.max_delay if retry_after is None else POLICY.max_retry_after
    assert 0.0 <= delay <= cap


@pytest.mark.parametrize(
    "error",
    [
        RateLimited("slow down", status=429),
        _server_error(500),
        _server_error(502),
        _server_error(503),
        _server_error(504),
        TransportError("connection refused", indeterminate=False),
        _timeout(),
    ],
)
def test_retryable_errors(error: ApiError) -> None:
    """429, 500/502/503/504 and transport errors (timeouts included) are retried."""
    assert POLICY.should_retry(error, attempt=1, elapsed=0.0)


@pytest.mark.parametrize(
    "error",
    [
        ValidationFailed("bad field", status=422, field="email"),
        Conflict("exists", status=409, code="employee_exists"),
        NotFound("no such pay group", status=404),
        ApiError("teapot", status=418),
        _server_error(501),
    ],
)
def test_non_retryable_errors(error: ApiError) -> None:
    """4xx other than 429, and 5xx outside the set, are not retried."""
    assert not POLICY.should_retry(error, attempt=1, elapsed=0.0)


@pytest.mark.parametrize(
    "error",
    [AuthenticationFailed("bad token", status=401), PermissionDenied("no scope", status=403)],
)
def test_401_and_403_never_retried_even_if_configured(error: ApiError) -> None:
    """401/403 abort the run; listing them as retryable statuses does not change that."""
    permissive = RetryPolicy(retryable_statuses=frozenset({401, 403, 429}))
    assert not permissive.should_retry(error, attempt=1, elapsed=0.0)
    assert not POLICY.should_retry(error, attempt=1, elapsed=0.0)


def test_max_attempts_counts_the_first_attempt() -> None:
    """With max_attempts=8 the 7th failure may retry, the 8th may not."""
    assert POLICY.should_retry(_server_error(), attempt=7, elapsed=0.0)
    assert not POLICY.should_retry(_server_error(), attempt=8, elapsed=0.0)


def test_deadline_stops_retries() -> None:
    """No retry once a row has spent its deadline."""
    assert POLICY.should_retry(_server_error(), attempt=1, elapsed=299.9)
    assert not POLICY.should_retry(_server_error(), attempt=1, elapsed=300.0)


def test_policy_validates_its_numbers() -> None:
    """Nonsense configuration is refused at construction."""
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(base_delay=-1.0)


# -- plan_retry: the loop's one-call helper -------------------------------------------------


def test_plan_retry_uses_retry_after_from_the_error() -> None:
    """A RateLimited error's retry_after is the wait, and the budget is charged."""
    budget = RetryBudget()
    error = RateLimited("slow down", status=429, retry_after=0.6)
    decision = plan_retry(error, attempt=3, elapsed=1.0, policy=POLICY, budget=budget, rng=_one)
    assert (decision.retry, decision.delay, decision.reason) == (True, 0.6, "retry")
    assert budget.available == 495


@pytest.mark.parametrize(
    ("error", "attempt", "elapsed", "reason"),
    [
        (ValidationFailed("bad", status=422), 1, 0.0, "not_retryable"),
        (AuthenticationFailed("bad token", status=401), 1, 0.0, "not_retryable"),
        (_server_error(), 8, 0.0, "attempts_exhausted"),
        (_server_error(), 1, 300.0, "deadline"),
        (_server_error(), 6, 290.0, "deadline"),  # a 16 s wait would end past 300 s
    ],
)
def test_plan_retry_stops_without_charging(
    error: ApiError, attempt: int, elapsed: float, reason: str
) -> None:
    """Stopping for any reason but the budget leaves the budget untouched."""
    budget = RetryBudget()
    decision = plan_retry(
        error, attempt=attempt, elapsed=elapsed, policy=POLICY, budget=budget, rng=_one
    )
    assert (decision.retry, decision.reason) == (False, reason)
    assert budget.available == budget.capacity


def test_plan_retry_reports_budget_exhaustion() -> None:
    """An empty budget turns a retryable error into budget_exhausted (→ ServiceUnhealthy)."""
    budget = RetryBudget(capacity=5)
    first = plan_retry(
        _server_error(), attempt=1, elapsed=0, policy=POLICY, budget=budget, rng=_one
    )
    second = plan_retry(
        _server_error(), attempt=1, elapsed=0, policy=POLICY, budget=budget, rng=_one
    )
    assert first.retry
    assert (second.retry, second.budget_exhausted) == (False, True)


# -- the budget ---------------------------------------------------------------------------


def test_budget_allows_capacity_over_cost_retries() -> None:
    """500 tokens at 5 per retry: exactly 100 retries, then refusals."""
    budget = RetryBudget()
    granted = sum(budget.try_spend(_server_error()) for _ in range(150))
    assert granted == 100
    stats = budget.statistics()
    assert (stats.available, stats.retries_granted, stats.retries_denied) == (0, 100, 50)


def test_timeouts_cost_double() -> None:
    """A timeout retry costs 10 tokens, other retries 5."""
    budget = RetryBudget()
    assert budget.try_spend(_timeout())
    assert budget.try_spend(_server_error())
    assert budget.available == 485
    assert budget.cost_of(TransportError("refused", indeterminate=False)) == 5


def test_refunds() -> None:
    """A first-try success refunds 1, a successful retry its cost; never above capacity."""
    budget = RetryBudget()
    budget.on_success(was_retry=False)
    assert budget.available == 500
    for _ in range(3):
        budget.try_spend(_server_error())
    budget.try_spend(_timeout())
    assert budget.available == 475
    budget.on_success(was_retry=True)
    budget.on_success(was_retry=False)
    budget.on_success(was_retry=True, refund=budget.cost_of(_timeout()))
    assert budget.available == 491
    assert budget.statistics().refunded == 16


def test_budget_recovers_after_an_outage() -> None:
    """After exhaustion, first-attempt successes refill the budget so retries resume."""
    budget = RetryBudget()
    while budget.try_spend(_server_error()):
        pass
    assert not budget.try_spend(_server_error())
    for _ in range(5):
        budget.on_success(was_retry=False)
    assert budget.try_spend(_server_error())
