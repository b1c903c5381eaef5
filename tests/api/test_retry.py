"""``RetryPolicy.decide`` and its backoff with injected jitter, and the run-wide retry budget."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexpay_batch.api.client import error_for
from flexpay_batch.api.retry.budget import RetryBudget
from flexpay_batch.core.errors import (
    ApiError,
    AuthenticationFailed,
    Conflict,
    KeyInProgress,
    NotFound,
    PermissionDenied,
    RateLimited,
    RetryableError,
    ServerError,
    TransportError,
    ValidationFailed,
)
from flexpay_batch.core.policies import (
    RETRYABLE_STATUSES,
    RetryDecision,
    RetryPolicy,
    is_retryable,
)

POLICY = RetryPolicy()


def _one() -> float:
    return 1.0


def _half() -> float:
    return 0.5


def _zero() -> float:
    return 0.0


def _server_error(status: int = 503, retry_after: float | None = None) -> ServerError:
    return ServerError("server error", status=status, retry_after=retry_after)


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
    [(0.6, 0.6), (7.5, 7.5), (0.0, 0.0), (-2.0, 0.0), (10_000.0, 60.0)],
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


def _decide(
    error: ApiError, *, tries: int = 0, elapsed: float = 0.0, policy: RetryPolicy = POLICY
) -> RetryDecision:
    return policy.decide(error, tries=tries, elapsed=elapsed, rng=_one)


@pytest.mark.parametrize(
    "error",
    [
        RateLimited("slow down", status=429),
        _server_error(500),
        _server_error(502),
        _server_error(503),
        _server_error(504),
        KeyInProgress("in progress", status=409, code="idempotency_in_progress"),
        TransportError("connection refused", indeterminate=False),
        _timeout(),
    ],
)
def test_retryable_errors(error: ApiError) -> None:
    """429, 500/502/503/504, 409 idempotency_in_progress and transport errors are retried."""
    assert is_retryable(error)
    assert _decide(error).retry


@pytest.mark.parametrize(
    "error",
    [
        ValidationFailed("bad field", status=422, field="email"),
        Conflict("exists", status=409, code="employee_exists"),
        NotFound("no such pay group", status=404),
        ApiError("teapot", status=418),
        _server_error(501),
        AuthenticationFailed("bad token", status=401),
        PermissionDenied("no scope", status=403),
    ],
)
def test_non_retryable_errors(error: ApiError) -> None:
    """4xx other than 429 (401/403 included), and 5xx outside the set, are not retried."""
    assert not is_retryable(error)
    assert _decide(error) == RetryDecision(False, 0.0, "not_retryable", 1)


@pytest.mark.parametrize("status", sorted(RETRYABLE_STATUSES))
def test_the_client_maps_every_retryable_status_to_a_retryable_error(status: int) -> None:
    """The client's error mapping and the policy agree: each retryable status becomes a
    RetryableError that ``is_retryable`` accepts (one definition, no drift)."""
    error = error_for(status, None, request_id=None, retry_after=None)
    assert isinstance(error, RetryableError)
    assert is_retryable(error)


def test_max_attempts_counts_the_first_attempt() -> None:
    """With max_attempts=8 the 7th counted failure may retry, the 8th may not."""
    assert _decide(_server_error(), tries=6) == RetryDecision(True, 20.0, "retry", 7)
    assert _decide(_server_error(), tries=7) == RetryDecision(False, 0.0, "attempts_exhausted", 8)


def test_a_429_uses_no_attempt_and_no_wait() -> None:
    """A 429 is retried after any number of counted attempts short of the limit (even with
    max_attempts=1), without counting, and with delay 0 whatever its Retry-After: the
    class limiter owns that wait."""
    throttled = RateLimited("slow down", status=429, retry_after=30.0)
    assert _decide(throttled, tries=7) == RetryDecision(True, 0.0, "retry", 7)
    once = RetryPolicy(max_attempts=1)
    assert _decide(throttled, policy=once) == RetryDecision(True, 0.0, "retry", 0)
    assert not _decide(_server_error(), policy=once).retry


def test_backoff_follows_counted_attempts_only() -> None:
    """The backoff exponent is the number of counted attempts: 429s in between do not grow it."""
    assert _decide(_server_error(), tries=0).delay == 0.5
    assert _decide(_server_error(), tries=2).delay == 2.0


def test_retry_after_replaces_the_backoff() -> None:
    """A 503's Retry-After is the wait (capped by max_retry_after), not the backoff."""
    assert _decide(_server_error(retry_after=7.5), tries=3).delay == 7.5
    assert _decide(_server_error(retry_after=1e6)).delay == POLICY.max_retry_after


@pytest.mark.parametrize(
    ("error", "tries", "elapsed", "retry"),
    [
        (_server_error(), 0, 299.5, True),  # the 0.5 s wait ends exactly at the deadline
        (_server_error(), 0, 299.6, False),  # ... or just past it
        (_server_error(), 5, 290.0, False),  # a 16 s wait would end past 300 s
        (_server_error(retry_after=60.0), 0, 250.0, False),
        (_server_error(), 0, 300.0, False),
        (RateLimited("slow down", status=429), 0, 299.9, True),
        (RateLimited("slow down", status=429), 0, 300.0, False),
    ],
)
def test_deadline_stops_retries(error: ApiError, tries: int, elapsed: float, retry: bool) -> None:
    """No retry once a row has spent its deadline, nor one whose wait would end past it."""
    decision = _decide(error, tries=tries, elapsed=elapsed)
    assert decision.retry is retry
    assert decision.reason == ("retry" if retry else "deadline")


@given(
    error=st.sampled_from(
        [
            _server_error(),
            _server_error(retry_after=3.0),
            RateLimited("slow down", status=429, retry_after=9.0),
            _timeout(),
            ValidationFailed("bad", status=422),
        ]
    ),
    tries=st.integers(0, 20),
    elapsed=st.floats(0, 400),
    jitter=st.floats(0, 1),
)
def test_decisions_keep_their_promises(
    error: ApiError, tries: int, elapsed: float, jitter: float
) -> None:
    """Whatever the inputs: a retry never waits past the deadline nor beyond max_attempts
    counted attempts, a 429 never waits or counts, and a stop never waits."""
    decision = POLICY.decide(error, tries=tries, elapsed=elapsed, rng=lambda: jitter)
    throttled = isinstance(error, RateLimited)
    assert decision.tries == tries + (0 if throttled else 1)
    assert decision.delay >= 0.0
    if decision.retry:
        assert elapsed + decision.delay <= POLICY.deadline
        assert decision.tries < POLICY.max_attempts
        assert not throttled or decision.delay == 0.0
    else:
        assert decision.delay == 0.0


def test_policy_validates_its_numbers() -> None:
    """Nonsense configuration is refused at construction."""
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(base_delay=-1.0)


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
