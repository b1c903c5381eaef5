"""The run's speed as the operator sees it: the up-front estimate and the observed rate.

::

    reporter.start(RunStart(total_rows=n, estimate_seconds=estimate_seconds(n, settings), ...))
    tg.start_soon(report_rate, summary, reporter)   # until cancelled

Time is the event loop's (``anyio.current_time``), so the rate is testable with a fake clock.
"""

from __future__ import annotations

import time

import anyio

from flexpay_batch.api.ratelimit.limiter import LimiterSet
from flexpay_batch.core.limitspec import EndpointClass
from flexpay_batch.core.settings import Settings
from flexpay_batch.core.states import RowStatus
from flexpay_batch.engine.progress import Reporter
from flexpay_batch.engine.request import RunSummary


def estimate_seconds(rows: int, settings: Settings) -> float:
    """Seconds ``rows`` writes take at the configured write limit, the burst going at once."""
    limits = settings.limits.write
    return max(0.0, rows - limits.burst) / limits.rate.per_second


async def report_rate(
    summary: RunSummary,
    reporter: Reporter,
    limiters: LimiterSet | None = None,
    window: float = 5.0,
) -> None:
    """Tell the reporter, every second, the rows-per-second over the last ``window`` seconds
    and until when (wall clock) the server paused the write class, if it did."""
    history: list[tuple[float, int]] = []
    while True:
        await anyio.sleep(1.0)
        now = anyio.current_time()
        if limiters is not None:
            reporter.paused(server_pause_until(limiters, now=now, wall=time.time()))
        sent = sum(n for status, n in summary.counts.items() if status is not RowStatus.REJECTED)
        history = [(t, n) for t, n in history if now - t <= window] + [(now, sent)]
        (t0, n0), (t1, n1) = history[0], history[-1]
        if t1 > t0:
            reporter.rate((n1 - n0) / (t1 - t0))


def server_pause_until(limiters: LimiterSet, *, now: float, wall: float) -> float | None:
    """The epoch second at which the latest server-imposed class pause ends, or None.

    ``now`` is loop time (the limiters' clock), ``wall`` the epoch at the same moment.
    """
    ends = [
        limiter.paused_until
        for limiter in (limiters.for_class(c) for c in EndpointClass)
        if limiter.paused_until is not None
    ]
    latest = max(ends, default=None)
    return None if latest is None or latest <= now else wall + (latest - now)


__all__ = ["estimate_seconds", "report_rate", "server_pause_until"]
