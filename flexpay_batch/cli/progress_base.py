"""What every progress reporter shares: the tally of row outcomes, its snapshot, the
sentences the reporters print, and the throttle of the line-based ones.

Counts and statuses only, never a row's content. Time comes from an injected clock (monotonic
seconds), so throttling and ETAs are tested without sleeping. The reporters themselves are in
``cli.progress``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TextIO

from flexpay_batch.core.formatting import (
    format_average,
    format_duration,
    format_number,
    format_rate,
    rate_unit,
    summary_rows,
)
from flexpay_batch.core.states import RowStatus
from flexpay_batch.engine.progress import RunStart, SilentReporter

Clock = Callable[[], float]
"""Seconds from an arbitrary origin; only differences matter (``time.monotonic`` by default)."""


@dataclass(frozen=True, slots=True)
class ProgressSnapshot:
    """The counts at one moment. Rates are rows per second; times are seconds."""

    total: int | None
    done: int
    rejected: int
    failed: int
    retrying: int
    rate: float
    limit: float
    elapsed: float
    eta: float | None
    by_status: Mapping[str, int] = field(default_factory=dict)
    #: Epoch seconds until which the server paused requests (Retry-After, Reset), or None.
    paused_until: float | None = None
    #: Rows settled before this invocation (a resume), counted in ``done``.
    earlier: int = 0

    @property
    def average(self) -> float:
        """Rows per second over this invocation so far (what the final line shows)."""
        this_run = self.done - self.earlier
        return this_run / self.elapsed if self.elapsed > 0 else 0.0


def estimate_eta(remaining: int | None, rate: float, limit: float) -> float | None:
    """Seconds left for ``remaining`` rows at the observed ``rate``, or the ``limit`` before any
    rate is known; ``None`` when the row count or both speeds are unknown."""
    if remaining is None:
        return None
    speed = rate if rate > 0 else limit
    if speed <= 0:
        return None
    return max(remaining, 0) / speed


def _identity(text: str) -> str:
    return text


class _Tally:
    """The mutable counts behind every reporter."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.started_at = clock()
        self.total: int | None = None
        self.limit = 0.0
        self.rate = 0.0
        self.retrying = 0
        self.paused_until: float | None = None
        self.earlier = 0
        self.by_status: Counter[str] = Counter()

    def start(self, total: int | None, limit: float, earlier: int) -> None:
        self.started_at = self._clock()
        self.total = total
        self.limit = limit
        self.earlier = earlier

    def done(self) -> int:
        return self.earlier + sum(self.by_status.values())

    def snapshot(self) -> ProgressSnapshot:
        done = self.done()
        remaining = None if self.total is None else self.total - done
        return ProgressSnapshot(
            total=self.total,
            done=done,
            rejected=self.by_status[RowStatus.REJECTED],
            failed=self.by_status[RowStatus.FAILED],
            retrying=self.retrying,
            rate=self.rate,
            limit=self.limit,
            elapsed=self._clock() - self.started_at,
            eta=estimate_eta(remaining, self.rate, self.limit),
            by_status=dict(self.by_status),
            paused_until=self.paused_until,
            earlier=self.earlier,
        )


class CountingReporter(SilentReporter):
    """Keeps the tally; subclasses decide when and how to show it (nothing to ``close`` unless
    they say so)."""

    def __init__(self, *, clock: Clock, redact: Callable[[str], str] | None) -> None:
        self._clock = clock
        self._redact = redact or _identity
        self._tally = _Tally(clock)

    def start(self, run: RunStart) -> None:
        self._tally.start(run.total_rows, run.limit_per_second, run.done_rows)
        self._on_start(run.total_rows, run.estimate_seconds, run.limit_per_second)

    def row_done(self, status: RowStatus) -> None:
        self._tally.by_status[status] += 1
        self._on_change()

    def retrying(self, delta: int) -> None:
        self._tally.retrying = max(0, self._tally.retrying + delta)
        self._on_change()

    def rate(self, current_per_second: float) -> None:
        self._tally.rate = max(0.0, current_per_second)
        self._on_change()

    def paused(self, until_epoch: float | None) -> None:
        if until_epoch == self._tally.paused_until:
            return
        self._tally.paused_until = until_epoch
        self._on_change()

    def message(self, text: str, level: int = logging.INFO) -> None:
        # Messages are the one free-text channel; scrub them like log records.
        self._on_message(self._redact(text), level)

    def finish(self, summary: Mapping[str, int]) -> None:
        self._on_finish(summary, self._tally.snapshot())

    def _on_start(self, total: int | None, estimate_seconds: float | None, limit: float) -> None:
        raise NotImplementedError

    def _start_sentence(self, total: int | None, estimate: float | None, limit: float) -> str:
        return _start_sentence(total, estimate, limit, self._tally.earlier)

    def _on_change(self) -> None:
        raise NotImplementedError

    def _on_message(self, text: str, level: int) -> None:
        raise NotImplementedError

    def _on_finish(self, summary: Mapping[str, int], snap: ProgressSnapshot) -> None:
        raise NotImplementedError


def write_best_effort(stream: TextIO, text: str) -> None:
    # Progress is a courtesy: a closed or broken stderr pipe must not stop a run (nor a
    # bureau's runs).
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):
        return


def _start_sentence(
    total: int | None, estimate_seconds: float | None, limit: float, earlier: int
) -> str:
    rows = "an unknown number of rows" if total is None else f"{total} rows"
    if earlier:
        rows += f" ({earlier} already settled)"
    unit, factor = rate_unit(limit)
    return (
        f"{rows}, limit {format_number(limit * factor)} rows/{unit}, "
        f"estimated {format_duration(estimate_seconds)}"
    )


def _eta_text(snap: ProgressSnapshot) -> str:
    if snap.paused_until is not None:
        # While the server holds us back an ETA from the rate would be a lie ("eta 0s").
        return f"paused by the server until {pause_clock(snap.paused_until)}"
    remaining = None if snap.total is None else snap.total - snap.done
    if remaining is not None and remaining <= 0:
        return "done"
    if remaining is not None and snap.eta is not None and snap.eta < 1.0:
        # The last rows are in flight or waiting to retry: "eta 0s" for seconds misleads.
        return f"finishing {remaining}"
    return f"eta {format_duration(snap.eta)}"


def stats_text(snap: ProgressSnapshot) -> str:
    total = "?" if snap.total is None else str(snap.total)
    return (
        f"{snap.done}/{total} · rejected {snap.rejected} · failed {snap.failed} · "
        f"retrying {snap.retrying} · {format_rate(snap.rate, snap.limit)} · {_eta_text(snap)}"
    )


def narrow_stats_text(snap: ProgressSnapshot) -> str:
    """The stats for a narrow terminal: counts that are zero left out, short words."""
    total = "?" if snap.total is None else str(snap.total)
    parts = [f"{snap.done}/{total}"]
    for label, count in (("rej", snap.rejected), ("fail", snap.failed), ("retry", snap.retrying)):
        if count:
            parts.append(f"{label} {count}")
    parts.append(format_rate(snap.rate, snap.limit).replace(" of ", "/"))
    parts.append(_eta_text(snap))
    return " ".join(parts)


def pause_clock(epoch_seconds: float) -> str:
    """``HH:MM:SS`` of ``epoch_seconds`` in the operator's local time."""
    return datetime.fromtimestamp(epoch_seconds).strftime("%H:%M:%S")


def _summary_text(summary: Mapping[str, int]) -> str:
    return ", ".join(f"{label} {count}" for label, count in summary_rows(summary))


def finish_sentence(summary: Mapping[str, int], snap: ProgressSnapshot) -> str:
    return (
        f"finished in {format_duration(snap.elapsed)} "
        f"(average {format_average(snap.average, snap.limit)}): {_summary_text(summary)}"
    )


class ThrottledReporter(CountingReporter):
    """Shows progress at most once per ``interval`` seconds, and once more when all rows are done.

    Start, messages and the finish are always shown at once.
    """

    def __init__(
        self, *, interval: float, clock: Clock, redact: Callable[[str], str] | None
    ) -> None:
        super().__init__(clock=clock, redact=redact)
        self._interval = interval
        self._last_shown = clock()
        self._shown_all = False

    def _on_start(self, total: int | None, estimate_seconds: float | None, limit: float) -> None:
        self._last_shown = self._clock()
        self._show_start(total, estimate_seconds, limit)
        self._shown_all = total is not None and self._tally.done() >= total

    def _on_change(self) -> None:
        # Runs for every row: the snapshot (ETA included) is only built when it is shown.
        now = self._clock()
        tally = self._tally
        all_done = tally.total is not None and tally.done() >= tally.total
        if now - self._last_shown >= self._interval or (all_done and not self._shown_all):
            self._last_shown = now
            self._shown_all = all_done
            self._show_progress(tally.snapshot())

    def _show_start(self, total: int | None, estimate_seconds: float | None, limit: float) -> None:
        raise NotImplementedError

    def _show_progress(self, snap: ProgressSnapshot) -> None:
        raise NotImplementedError
