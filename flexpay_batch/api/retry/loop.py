"""The retry loop: one logical request, attempted until it succeeds or must stop.

The decisions are not made here: whether and after how long to retry is
``RetryPolicy.decide`` (``core.policies``), whether the run can afford the retry is
``RetryBudget.try_spend`` (charged only once the policy said retry). This module only loops,
sleeps and counts. Time, sleeping and randomness come in as arguments so tests run with a
fake clock.

A 429 does not make this worker sleep on its own: the endpoint class's limiter has already been
told (Retry-After, Reset, or an adaptive decrease) and pauses every worker of the class, so the
retry simply queues at the limiter again. Other retryable errors back off with full jitter.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from flexpay_batch.api.client import ApiResponse
from flexpay_batch.api.retry.budget import RetryBudget
from flexpay_batch.core import errors
from flexpay_batch.core.policies import RetryPolicy

Send = Callable[[], Awaitable[ApiResponse]]
OnRetry = Callable[[int, errors.RetryableError, float], None]


@dataclass(slots=True)
class Attempts:
    """What happened while executing one logical request (for the journal and reports)."""

    count: int = 0
    throttled: int = 0
    last_error: errors.RetryableError | None = None
    indeterminate: bool = False
    request_ids: list[str] = field(default_factory=list)
    #: Epoch seconds the first attempt left, when the caller notes it (the journal keeps it).
    sent_at: float | None = None


def _monotonic() -> float:
    # What ``anyio.current_time()`` returns on asyncio (the client is aiohttp, so asyncio),
    # without its per-call back-end lookup: this runs for every row.
    return asyncio.get_running_loop().time()


async def execute(
    send: Send,
    *,
    policy: RetryPolicy,
    budget: RetryBudget,
    attempts: Attempts | None = None,
    clock: Callable[[], float] = _monotonic,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    rng: Callable[[], float] = random.random,
    on_retry: OnRetry | None = None,
) -> ApiResponse:
    """Call ``send`` until it returns, a non-retryable error escapes, or retrying must stop.

    Raises the last ``RetryableError`` when the policy gives up on this request (attempts or
    deadline spent), and ``ServiceUnhealthy`` when the run-wide retry budget is exhausted.
    ``attempts`` (if given) is filled in as it goes, so the caller knows whether an earlier
    attempt may have been applied (``indeterminate``) even when an exception escapes.
    """
    record = attempts if attempts is not None else Attempts()
    started = clock()
    tries = 0  # attempts counted against the policy's max_attempts (a 429 is not)
    while True:
        record.count += 1
        try:
            reply = await send()
        except errors.RetryableError as err:
            _note_failure(record, err)
            decision = policy.decide(err, tries=tries, elapsed=clock() - started, rng=rng)
            if not decision.retry:
                raise
            _charge(budget, err)
            tries = decision.tries
            if on_retry is not None:
                on_retry(record.count, err, decision.delay)
            if decision.delay > 0:
                await sleep(decision.delay)
            continue
        budget.on_success(was_retry=record.count > 1)
        if reply.request_id:
            record.request_ids.append(reply.request_id)
        return reply


def _note_failure(record: Attempts, err: errors.RetryableError) -> None:
    record.last_error = err
    if isinstance(err, errors.RateLimited):
        record.throttled += 1
    if isinstance(err, errors.TransportError) and err.indeterminate:
        record.indeterminate = True
    if err.request_id:
        record.request_ids.append(err.request_id)


def _charge(budget: RetryBudget, err: errors.RetryableError) -> None:
    """Pay for the retry of ``err``, or stop the run (resumably) when the budget is spent."""
    if not budget.try_spend(err):
        raise errors.ServiceUnhealthy(
            "stopping: too many recent requests failed "
            f"(last: {err.status or err.code or 'no response'} {err.message}); "
            "the run-wide retry budget is spent"
        ) from err
