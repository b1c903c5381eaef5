"""``flexpay-batch bench``: how close does this token get to its limits?

Sends a bounded synthetic workload through the engine's own client (limiters, feedback,
retries) and prints achieved against allowed rates, 429s and latency percentiles. Against the
sandbox (the default) reads and writes are used; against a real base URL only reads are sent
unless ``--kind write`` or ``mixed`` is asked for explicitly, because writes create objects.

Achieved rate is measured after the burst: ``(requests - burst) / (time of last start - time
of first start)``, the same measure the benchmarks use, so 1.0 means "exactly at the limit".
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from flexpay_batch.api.client import ApiResponse, FlexPayClient
from flexpay_batch.api.retry.budget import RetryBudget
from flexpay_batch.api.retry.loop import execute
from flexpay_batch.core import errors
from flexpay_batch.core.limitspec import EndpointClass
from flexpay_batch.core.policies import RetryPolicy
from flexpay_batch.core.settings import Settings, environment, load_token
from flexpay_batch.engine.limiting import limiter_store, shared_limiters

MAX_REQUESTS = 100_000


@dataclass
class ClassResult:
    """Measurements for one endpoint class."""

    #: Completion times of successful requests (perf_counter seconds).
    starts: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    #: Requests that ended (succeeded or gave up), for the progress line.
    finished: int = 0


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def achieved_rate(starts: list[float], burst: int) -> float:
    """Requests per second after the burst, from the start times of the requests."""
    if len(starts) <= burst + 1:
        return 0.0
    ordered = sorted(starts)
    span = ordered[-1] - ordered[0]
    return (len(ordered) - burst) / span if span > 0 else 0.0


def run_bench(settings: Settings, *, requests: int, kind: str, use_sandbox: bool) -> int:
    """Run the workload and print the table; returns the exit code."""
    if not 1 <= requests <= MAX_REQUESTS:
        raise errors.UsageError(f"--requests must be between 1 and {MAX_REQUESTS}")
    if kind not in {"read", "write", "mixed"}:
        raise errors.UsageError("--kind must be read, write or mixed")
    token = None if use_sandbox else load_token(settings.token_file, environment())
    results = anyio.run(_bench, settings, token, requests, kind, use_sandbox)
    _print(results, settings)
    return 0


@asynccontextmanager
async def _endpoint(
    settings: Settings, token: str | None, use_sandbox: bool
) -> AsyncIterator[tuple[str, Path | None, str]]:
    if not use_sandbox:
        assert token is not None
        yield settings.base_url, settings.ca_bundle, token
        return
    from flexpay_batch.sim import SimConfig, Simulator

    async with Simulator(SimConfig(limits=settings.limits)) as sim:
        print(
            f"*** SANDBOX: benchmarking an embedded simulator at {sim.base_url} ***",
            file=sys.stderr,
        )
        yield sim.base_url, sim.ca_path, sim.tokens["admin"]


async def _bench(
    settings: Settings, token: str | None, requests: int, kind: str, use_sandbox: bool
) -> dict[EndpointClass, ClassResult]:
    results = {c: ClassResult() for c in EndpointClass}
    async with (
        limiter_store(settings) as store,
        _endpoint(settings, token, use_sandbox) as (base_url, ca, api_token),
    ):
        limiters = shared_limiters(settings.limits, api_token, store, start="full")
        async with FlexPayClient(
            base_url, api_token, ca_bundle=ca, limiters=limiters, max_in_flight=settings.workers
        ) as client:
            plan = _plan(requests, kind)
            budget = RetryBudget()
            async with anyio.create_task_group() as progress:
                progress.start_soon(_show_progress, results, requests)
                async with anyio.create_task_group() as tg:
                    for worker in range(settings.workers):
                        tg.start_soon(
                            _worker, client, plan[worker :: settings.workers], results, budget
                        )
                progress.cancel_scope.cancel()
    return results


#: Seconds between bench progress lines on stderr (a default bench takes half a minute).
PROGRESS_INTERVAL = 2.0


async def _show_progress(results: dict[EndpointClass, ClassResult], requests: int) -> None:
    """``bench: 120/300 requests done, 3 throttled`` on stderr every ``PROGRESS_INTERVAL``."""
    while True:
        await anyio.sleep(PROGRESS_INTERVAL)
        done = sum(r.finished for r in results.values())
        throttled = sum(r.statuses.get("429", 0) for r in results.values())
        print(f"bench: {done}/{requests} requests done, {throttled} throttled", file=sys.stderr)


def _plan(requests: int, kind: str) -> list[EndpointClass]:
    if kind == "read":
        return [EndpointClass.READ] * requests
    if kind == "write":
        return [EndpointClass.WRITE] * requests
    return [EndpointClass.WRITE if i % 4 == 0 else EndpointClass.READ for i in range(requests)]


async def _worker(
    client: FlexPayClient,
    plan: list[EndpointClass],
    results: dict[EndpointClass, ClassResult],
    budget: RetryBudget,
) -> None:
    policy = RetryPolicy(max_attempts=5, deadline=60.0)
    for number, endpoint_class in enumerate(plan):
        await _measure(client, endpoint_class, number, results[endpoint_class], policy, budget)


async def _measure(
    client: FlexPayClient,
    endpoint_class: EndpointClass,
    number: int,
    result: ClassResult,
    policy: RetryPolicy,
    budget: RetryBudget,
) -> None:
    def on_retry(_attempt: int, err: errors.RetryableError, _delay: float) -> None:
        result.statuses[str(err.status or err.code)] += 1

    try:
        await execute(
            lambda: _one(client, endpoint_class, number, result),
            policy=policy,
            budget=budget,
            on_retry=on_retry,
        )
        result.statuses["ok"] += 1
    except errors.ApiError as err:
        result.statuses[str(err.status or err.code)] += 1
    finally:
        result.finished += 1


async def _one(
    client: FlexPayClient, endpoint_class: EndpointClass, number: int, result: ClassResult
) -> ApiResponse:
    """One request; completion time for the rate, send-to-reply time for the latency."""
    method, path, body, key = _request_for(endpoint_class, number)
    reply = await client.request(method, path, json_body=body, idempotency_key=key)
    result.starts.append(time.perf_counter())
    result.latencies.append(reply.elapsed)
    return reply


def _request_for(
    endpoint_class: EndpointClass, number: int
) -> tuple[str, str, dict[str, str] | None, str | None]:
    if endpoint_class is EndpointClass.READ:
        return "GET", "pay_groups", None, None
    body = {
        "pay_group_id": "pg_weekly",
        "period_start": "2026-01-05",
        "period_end": "2026-01-11",
        "pay_date": "2026-01-16",
    }
    return "POST", "payroll_runs", body, f"fpb_bench_{time.time_ns()}_{number}"


def _print(results: dict[EndpointClass, ClassResult], settings: Settings) -> None:
    print(
        f"{'class':<6} {'sent':>6} {'allowed/s':>10} {'achieved/s':>11} {'ratio':>6} "
        f"{'429s':>5} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7}"
    )
    for endpoint_class, result in results.items():
        if not result.starts:
            continue
        limits = settings.limits.for_class(endpoint_class)
        allowed = limits.rate.per_second
        achieved = achieved_rate(result.starts, limits.burst)
        print(
            f"{endpoint_class.value:<6} {len(result.starts):>6} {allowed:>10.2f} "
            f"{achieved:>11.2f} {achieved / allowed:>6.2f} {result.statuses.get('429', 0):>5} "
            f"{1000 * percentile(result.latencies, 0.5):>7.1f} "
            f"{1000 * percentile(result.latencies, 0.9):>7.1f} "
            f"{1000 * percentile(result.latencies, 0.99):>7.1f}"
        )
