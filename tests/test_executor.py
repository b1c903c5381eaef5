"""``executor.execute``, the retry loop, with a scripted ``send``, a fake clock and fake sleep.

No HTTP here (tests/test_client.py covers the client): each test scripts what successive
attempts return or raise and checks the loop's decisions — how many attempts, which sleeps,
what the run-wide budget is charged, what ``Attempts`` records and what finally escapes.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from flexpay_batch.api.client import ApiResponse
from flexpay_batch.api.retry.loop import Attempts, execute
from flexpay_batch.api.retry.policy import RetryBudget, RetryPolicy
from flexpay_batch.core import errors

OK = ApiResponse(status=201, body={"employee_id": "emp_1"}, request_id="req_ok")
Outcome = ApiResponse | BaseException


class Script:
    """A fake ``send``: returns or raises the scripted outcomes in order (the last repeats)."""

    def __init__(self, outcomes: Iterable[Outcome]) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def __call__(self) -> ApiResponse:
        outcome = self.outcomes[min(self.calls, len(self.outcomes) - 1)]
        self.calls += 1
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class FakeTime:
    """A clock moved only by the fake sleep (and by ``tick`` per attempt, if set)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def server_error(status: int = 503, retry_after: float | None = None) -> errors.ServerError:
    """A retryable 5xx."""
    return errors.ServerError(
        "unavailable",
        status=status,
        code="unavailable",
        request_id=f"req_{status}",
        retry_after=retry_after,
    )


def rate_limited(retry_after: float | None = None) -> errors.RateLimited:
    """A 429."""
    return errors.RateLimited("slow down", status=429, code="rate_limited", retry_after=retry_after)


async def run(
    script: Script,
    *,
    policy: RetryPolicy | None = None,
    budget: RetryBudget | None = None,
    attempts: Attempts | None = None,
    time: FakeTime | None = None,
    retries: list[tuple[int, str, float]] | None = None,
) -> ApiResponse:
    """``execute(script)`` with identity jitter and the fake clock."""
    clock = time or FakeTime()
    return await execute(
        script,
        policy=policy or RetryPolicy(),
        budget=budget or RetryBudget(),
        attempts=attempts,
        clock=clock.clock,
        sleep=clock.sleep,
        rng=lambda: 1.0,
        on_retry=(
            None
            if retries is None
            else lambda n, err, delay: retries.append((n, type(err).__name__, delay))
        ),
    )


async def test_first_success_needs_no_retry_and_refunds_the_budget() -> None:
    """A first-attempt success returns at once and refunds one token to a drained budget."""
    budget = RetryBudget(capacity=10)
    assert budget.try_spend(server_error())
    attempts = Attempts()
    assert await run(Script([OK]), budget=budget, attempts=attempts) is OK
    assert (attempts.count, attempts.request_ids) == (1, ["req_ok"])
    assert budget.available == 6


async def test_on_retry_sees_each_failed_attempt_and_its_delay() -> None:
    """``on_retry`` is told the attempt number, the error and the delay before each retry."""
    retries: list[tuple[int, str, float]] = []
    time = FakeTime()
    policy = RetryPolicy(base_delay=1.0, max_delay=3.0)
    script = Script([server_error(), errors.TransportError("x", indeterminate=False), OK])
    await run(script, policy=policy, time=time, retries=retries)
    assert retries == [(1, "ServerError", 1.0), (2, "TransportError", 2.0)]
    assert time.sleeps == [1.0, 2.0]


async def test_row_rejections_escape_at_once() -> None:
    """A RowRejected (422, 404, 409) is never retried and costs no budget."""
    budget = RetryBudget()
    err = errors.ValidationFailed("bad email", status=422, code="invalid_field", field="email")
    script = Script([err, OK])
    with pytest.raises(errors.ValidationFailed):
        await run(script, budget=budget)
    assert script.calls == 1
    assert budget.available == budget.capacity


@pytest.mark.parametrize(
    "err",
    [
        errors.AuthenticationFailed("the server rejected the token", status=401),
        errors.PermissionDenied("needs scope", status=403),
        errors.UnexpectedResponse("redirect", status=302),
    ],
)
async def test_run_aborting_errors_escape_at_once(err: errors.FlexPayBatchError) -> None:
    """401, 403 and unexpected replies escape on the first attempt, with no sleep."""
    time = FakeTime()
    script = Script([err, OK])
    with pytest.raises(type(err)):
        await run(script, time=time)
    assert script.calls == 1
    assert time.sleeps == []


async def test_indeterminate_attempt_is_remembered_after_a_later_failure() -> None:
    """Once an attempt may have reached the server, ``indeterminate`` stays set, even when a
    later attempt fails determinately and the row finally gives up."""
    attempts = Attempts()
    script = Script(
        [
            errors.TransportError("timed out", indeterminate=True, timeout=True),
            errors.TransportError("refused", indeterminate=False),
        ]
    )
    with pytest.raises(errors.TransportError):
        await run(script, policy=RetryPolicy(max_attempts=3, base_delay=0.1), attempts=attempts)
    assert attempts.indeterminate
    assert attempts.count == 3
    assert isinstance(attempts.last_error, errors.TransportError)
    assert not attempts.last_error.indeterminate


async def test_429s_do_not_use_up_attempts_but_cost_budget_and_never_sleep() -> None:
    """Ten 429s then a 500 then success: the 429s do not count against max_attempts=3, the
    worker never sleeps for them, and each one's retry is paid from the budget."""
    time = FakeTime()
    budget = RetryBudget(capacity=500)
    attempts = Attempts()
    script = Script([*[rate_limited(retry_after=2.0)] * 10, server_error(500), OK])
    reply = await run(
        script, policy=RetryPolicy(max_attempts=3), budget=budget, attempts=attempts, time=time
    )
    assert reply is OK
    assert (attempts.count, attempts.throttled) == (12, 10)
    assert time.sleeps == [0.5]  # only the 500 backs off in the worker
    assert budget.statistics().retries_granted == 11


async def test_a_429_storm_is_stopped_by_the_budget_not_by_a_hot_loop() -> None:
    """A server that answers 429 forever ends the run as ServiceUnhealthy (exit 4, resumable),
    after a bounded number of attempts."""
    budget = RetryBudget(capacity=50, retry_cost=5)
    script = Script([rate_limited()])
    with pytest.raises(errors.ServiceUnhealthy) as caught:
        await run(script, budget=budget)
    assert script.calls == 11  # ten paid retries, then the budget says no
    assert caught.value.exit_code == 4
    assert "retry budget" in str(caught.value)
    assert isinstance(caught.value.__cause__, errors.RateLimited)


async def test_budget_exhaustion_stops_the_run_resumably() -> None:
    """503 forever with a small budget: ServiceUnhealthy once retries are unaffordable."""
    budget = RetryBudget(capacity=12, retry_cost=5)
    time = FakeTime()
    script = Script([server_error()])
    with pytest.raises(errors.ServiceUnhealthy):
        await run(script, policy=RetryPolicy(max_attempts=10), budget=budget, time=time)
    assert script.calls == 3
    assert budget.available == 2


async def test_timeouts_cost_more_budget_than_other_failures() -> None:
    """A timed-out attempt's retry costs ``timeout_cost``; a success after a retry refunds."""
    budget = RetryBudget(capacity=100, retry_cost=5, timeout_cost=10)
    timeout = errors.TransportError("timed out", indeterminate=True, timeout=True)
    await run(Script([timeout, OK]), budget=budget)
    assert budget.available == 95  # -10 for the retry, +5 back for the retry that worked


async def test_retry_after_longer_than_the_deadline_gives_up_without_sleeping() -> None:
    """A 503 asking for 60 s on a row with a 30 s deadline fails the row now, unslept."""
    time = FakeTime()
    script = Script([server_error(retry_after=60.0), OK])
    with pytest.raises(errors.ServerError):
        await run(script, policy=RetryPolicy(deadline=30.0), time=time)
    assert time.sleeps == []
    assert script.calls == 1


async def test_retry_after_is_capped_by_the_policy() -> None:
    """A server's Retry-After is honoured up to ``max_retry_after``."""
    time = FakeTime()
    script = Script([server_error(retry_after=500.0), OK])
    await run(script, policy=RetryPolicy(max_retry_after=45.0, deadline=300.0), time=time)
    assert time.sleeps == [45.0]


async def test_key_in_progress_backs_off_then_replays() -> None:
    """409 idempotency_in_progress is retried with backoff until the first attempt's answer
    is replayed."""
    busy = errors.KeyInProgress("in progress", status=409, code="idempotency_in_progress")
    replay = ApiResponse(status=201, body={"employee_id": "e"}, replayed=True)
    time = FakeTime()
    reply = await run(Script([busy, busy, busy, replay]), time=time)
    assert reply.replayed
    assert time.sleeps == [0.5, 1.0, 2.0]


async def test_deadline_ends_retries_even_with_attempts_left() -> None:
    """Once a row has spent its deadline, the last error escapes whatever attempts remain."""
    time = FakeTime()
    script = Script([server_error()])
    policy = RetryPolicy(max_attempts=100, base_delay=4.0, max_delay=4.0, deadline=10.0)
    with pytest.raises(errors.ServerError):
        await run(script, policy=policy, time=time)
    assert time.sleeps == [4.0, 4.0]
    assert script.calls == 3
