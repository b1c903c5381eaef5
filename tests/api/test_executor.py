"""``api.retry.loop.execute``, the retry loop, with a fake clock and a recording fake sleep.

First with a scripted ``send``: each test scripts what successive attempts return or raise
and checks the loop's decisions — how many attempts, which sleeps, what the run-wide budget
is charged, what ``Attempts`` records and what finally escapes. Then driving the real
``FlexPayClient`` against aioresponses, for what the loop promises about real replies
(Retry-After from header or envelope, 429s paused by the limiter, the same idempotency key on
every attempt). ``rng = lambda: 1.0`` throughout, so delays are exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from flexpay_batch.api.client import ApiResponse, FlexPayClient
from flexpay_batch.api.ratelimit.limiter import LimiterSet
from flexpay_batch.api.retry.budget import RetryBudget
from flexpay_batch.api.retry.loop import Attempts, execute
from flexpay_batch.core import errors
from flexpay_batch.core.limitspec import EndpointClass
from flexpay_batch.core.policies import RetryPolicy
from tests.conftest import FakeTime
from tests.fake_api import (
    BASE,
    CREATED,
    EMPLOYEES,
    NGINX_503,
    NO_LIMITS,
    TOKEN,
    envelope,
    post,
    sent_headers,
)

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
    script: Callable[[], Awaitable[ApiResponse]],
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
    """A 503 asking for 60 s on a row with a 30 s deadline fails the row now, unslept, and
    the retry that is not made costs the run's budget nothing."""
    time = FakeTime()
    budget = RetryBudget()
    script = Script([server_error(retry_after=60.0), OK])
    with pytest.raises(errors.ServerError):
        await run(script, policy=RetryPolicy(deadline=30.0), budget=budget, time=time)
    assert time.sleeps == []
    assert script.calls == 1
    assert budget.available == budget.capacity


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


# ── the loop driving the real client (aioresponses) ─────────────────────────────────────


@pytest.mark.parametrize(
    ("status", "expected", "text"),
    [
        (401, errors.AuthenticationFailed, "rejected the token"),
        (403, errors.PermissionDenied, "needs scope write:employees"),
    ],
)
async def test_401_and_403_abort_the_run_and_are_never_retried(
    client: FlexPayClient,
    mocked: aioresponses,
    status: int,
    expected: type[errors.RunAborted],
    text: str,
) -> None:
    """401/403 raise AuthenticationFailed/PermissionDenied at the first attempt, with no sleep."""
    body = envelope(status, "token_revoked", required_scope="write:employees")
    mocked.post(EMPLOYEES, status=status, payload=body, repeat=True)
    time = FakeTime()
    attempts = Attempts()
    budget = RetryBudget()
    with pytest.raises(expected) as caught:
        await run(post(client), policy=RetryPolicy(), budget=budget, attempts=attempts, time=time)
    assert isinstance(caught.value, errors.RunAborted)
    assert caught.value.exit_code == 3
    assert text in str(caught.value)
    assert attempts.count == 1
    assert time.sleeps == []
    assert len(mocked.requests[("POST", URL(EMPLOYEES))]) == 1
    assert budget.available == budget.capacity


async def test_backoff_sequence_is_exact_with_identity_jitter(
    client: FlexPayClient, mocked: aioresponses
) -> None:
    """Five 500s then a 201: sleeps are base·2^n capped (0.5, 1, 2, 4, 4) with rng() = 1."""
    for _ in range(5):
        mocked.post(EMPLOYEES, status=500, payload=envelope(500, "internal_error"))
    mocked.post(EMPLOYEES, status=201, payload=CREATED)
    time = FakeTime()
    attempts = Attempts()
    policy = RetryPolicy(max_attempts=8, base_delay=0.5, max_delay=4.0, deadline=300.0)
    reply = await run(post(client), policy=policy, attempts=attempts, time=time)
    assert reply.status == 201
    assert time.sleeps == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert attempts.count == 6
    assert attempts.request_ids == [*(["req_500_internal_error"] * 5)]


async def test_jitter_scales_every_delay(client: FlexPayClient, mocked: aioresponses) -> None:
    """Full jitter: each delay is rng() times the capped exponential."""
    for _ in range(3):
        mocked.post(EMPLOYEES, status=502, payload=envelope(502, "bad_gateway"))
    mocked.post(EMPLOYEES, status=201, payload=CREATED)
    time = FakeTime()
    draws = iter([0.25, 0.5, 0.0])
    await execute(
        post(client),
        policy=RetryPolicy(base_delay=1.0, max_delay=20.0),
        budget=RetryBudget(),
        clock=time.clock,
        sleep=time.sleep,
        rng=lambda: next(draws),
    )
    assert time.sleeps == [0.25, 1.0]  # the third delay is 0: no sleep call at all


async def _against_503_forever(
    client: FlexPayClient, mocked: aioresponses, policy: RetryPolicy
) -> FakeTime:
    """Run the retry loop under ``policy`` against a server answering 503 forever; it must end
    in ServerError. Returns the fake time, with the sleeps the loop made."""
    mocked.post(EMPLOYEES, status=503, payload=envelope(503, "unavailable"), repeat=True)
    time = FakeTime()
    with pytest.raises(errors.ServerError):
        await run(post(client), policy=policy, time=time)
    return time


async def test_attempts_are_bounded_and_the_last_error_escapes(
    client: FlexPayClient, mocked: aioresponses
) -> None:
    """A server answering 503 forever gets exactly max_attempts requests, then ServerError."""
    policy = RetryPolicy(max_attempts=3, base_delay=1.0)
    time = await _against_503_forever(client, mocked, policy)
    assert len(mocked.requests[("POST", URL(EMPLOYEES))]) == 3
    assert time.sleeps == [1.0, 2.0]


async def test_no_retry_sleeps_past_the_row_deadline(
    client: FlexPayClient, mocked: aioresponses
) -> None:
    """A retry whose wait would end past the row's deadline is not made (no pointless sleep)."""
    policy = RetryPolicy(max_attempts=20, base_delay=1.0, max_delay=100.0, deadline=10.0)
    time = await _against_503_forever(client, mocked, policy)
    assert time.sleeps == [1.0, 2.0, 4.0]  # 7 s spent; the next 8 s wait would end at 15 s
    assert time.now <= 10.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("0.25", 0.25), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
async def test_retry_after_on_503_is_honoured(
    client: FlexPayClient, mocked: aioresponses, header: str, expected: float
) -> None:
    """A 503's Retry-After (seconds, fractional or a past HTTP-date) replaces the backoff."""
    mocked.post(
        EMPLOYEES,
        status=503,
        payload=envelope(503, "service_unavailable"),
        headers={"Retry-After": header},
    )
    mocked.post(EMPLOYEES, status=201, payload=CREATED)
    time = FakeTime()
    await run(post(client), policy=RetryPolicy(base_delay=3.0), time=time)
    assert time.sleeps == ([expected] if expected else [])


async def test_retry_after_from_the_envelope_is_used_without_the_header(
    client: FlexPayClient, mocked: aioresponses
) -> None:
    """The envelope's retry_after stands in when the header is missing."""
    mocked.post(EMPLOYEES, status=503, payload=envelope(503, "unavailable", retry_after=1.5))
    mocked.post(EMPLOYEES, status=201, payload=CREATED)
    time = FakeTime()
    await run(post(client), policy=RetryPolicy(base_delay=3.0), time=time)
    assert time.sleeps == [1.5]


@pytest.mark.looptime
async def test_429_is_fed_to_the_limiter_and_the_worker_does_not_sleep(
    mocked: aioresponses,
) -> None:
    """A 429 with Retry-After 5 pauses the write class in the limiter: the executor never
    sleeps itself, and the retry is sent only when the shared pause is over (loop time)."""
    loop = asyncio.get_running_loop()
    sent_at: list[float] = []

    def answer(status: int, payload: dict[str, Any], headers: dict[str, str]) -> Any:
        def callback(url: URL, **kwargs: Any) -> CallbackResult:
            sent_at.append(loop.time())
            return CallbackResult(status=status, payload=payload, headers=headers)

        return callback

    mocked.post(
        EMPLOYEES,
        callback=answer(429, envelope(429, "rate_limited", retry_after=5), {"Retry-After": "5"}),
    )
    mocked.post(EMPLOYEES, callback=answer(201, CREATED, {}))
    limiters = LimiterSet(NO_LIMITS, start="full")
    time = FakeTime()
    attempts = Attempts()
    budget = RetryBudget()
    async with FlexPayClient(BASE, TOKEN, limiters=limiters) as client:
        reply = await run(
            post(client), policy=RetryPolicy(), budget=budget, attempts=attempts, time=time
        )
    assert reply.status == 201
    assert time.sleeps == []
    assert (attempts.count, attempts.throttled) == (2, 1)
    stats = limiters.for_class(EndpointClass.WRITE).statistics()
    assert (stats.throttled, stats.decreases) == (1, 1)
    assert len(sent_at) == 2
    assert sent_at[1] - sent_at[0] >= 5.0


async def test_bare_nginx_503_is_retried_as_throttling(
    client: FlexPayClient, mocked: aioresponses
) -> None:
    """An HTML 503 (nginx's default refusal) is a ServerError the limiter counts as a throttle,
    and execute retries it with backoff until it succeeds."""
    mocked.post(EMPLOYEES, status=503, body=NGINX_503, content_type="text/html")
    mocked.post(EMPLOYEES, status=201, payload=CREATED)
    time = FakeTime()
    reply = await run(post(client), policy=RetryPolicy(base_delay=0.5), time=time)
    assert reply.status == 201
    assert time.sleeps == [0.5]
    assert client.limiters.for_class(EndpointClass.WRITE).statistics().throttled == 1


async def test_idempotency_in_progress_409_is_retried(
    client: FlexPayClient, mocked: aioresponses
) -> None:
    """409 idempotency_in_progress (our earlier attempt still runs) is retried, not rejected."""
    mocked.post(EMPLOYEES, status=409, payload=envelope(409, "idempotency_in_progress"))
    mocked.post(EMPLOYEES, status=409, payload=envelope(409, "idempotency_in_progress"))
    mocked.post(EMPLOYEES, status=201, payload=CREATED, headers={"Idempotent-Replayed": "true"})
    time = FakeTime()
    reply = await run(post(client), policy=RetryPolicy(base_delay=0.5), time=time)
    assert reply.replayed
    assert time.sleeps == [0.5, 1.0]


async def test_idempotency_key_is_identical_on_every_retry(
    client: FlexPayClient, mocked: aioresponses
) -> None:
    """The same Idempotency-Key goes out on every attempt, across 500, reset, 429 and 409."""
    mocked.post(EMPLOYEES, status=500, payload=envelope(500, "internal_error"))
    mocked.post(EMPLOYEES, exception=aiohttp.ServerDisconnectedError())
    mocked.post(EMPLOYEES, status=429, payload=envelope(429, "rate_limited"))
    mocked.post(EMPLOYEES, status=409, payload=envelope(409, "idempotency_in_progress"))
    mocked.post(EMPLOYEES, status=201, payload=CREATED)
    time = FakeTime()
    attempts = Attempts()
    await run(
        post(client, key="fpb_stable_key"),
        policy=RetryPolicy(base_delay=0.01),
        attempts=attempts,
        time=time,
    )
    keys = [headers.get("Idempotency-Key") for headers in sent_headers(mocked)]
    assert keys == ["fpb_stable_key"] * 5
    assert attempts.indeterminate  # the reset came after sending: its effect was unknown
