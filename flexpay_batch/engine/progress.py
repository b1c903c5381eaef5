"""What the operator sees while a run works: a rich progress bar, plain lines, or JSON lines.

::

    reporter = make_reporter(json_logs=False, stream=sys.stderr)
    reporter.start(total_rows=500, estimate_seconds=300.0, limit_per_second=100 / 60)
    reporter.row_done(RowStatus.CREATED)
    reporter.finish({"created": 494, "rejected": 6})

The engine reports events (counts and statuses only, never a row's content) through the
``Reporter`` protocol; each implementation turns them into one kind of output. Time comes from an
injected clock (monotonic seconds), so throttling and ETAs are tested without sleeping.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from flexpay_batch.core.states import RowStatus

__all__ = [
    "Clock",
    "JsonReporter",
    "PlainReporter",
    "ProgressSnapshot",
    "Reporter",
    "RichReporter",
    "estimate_eta",
    "format_duration",
    "make_reporter",
]

Clock = Callable[[], float]
"""Seconds from an arbitrary origin; only differences matter (``time.monotonic`` by default)."""

_LEVEL_STYLES = {logging.WARNING: "yellow", logging.ERROR: "bold red", logging.CRITICAL: "bold red"}


class Reporter(Protocol):
    """Progress events from the engine; implementations must never raise into the engine.

    Call order: ``start`` once, then any number of the row and rate events and ``message``,
    then ``finish`` once; ``close`` may follow anything (it is how a failed run tidies up).
    """

    def start(
        self, *, total_rows: int | None, estimate_seconds: float | None, limit_per_second: float
    ) -> None:
        """The run begins: rows to do (None if unknown), the limit-based estimate, the limit."""

    def row_done(self, status: RowStatus) -> None:
        """A row reached its status for this invocation (``created``, ``rejected``, ...)."""

    def retrying(self, delta: int) -> None:
        """The number of rows waiting to retry changed by ``delta`` (+1 waits, -1 resumes)."""

    def rate(self, current_per_second: float) -> None:
        """The observed throughput in rows per second."""

    def paused(self, until_epoch: float | None) -> None:
        """The server paused requests until ``until_epoch`` (epoch seconds), or no pause."""

    def message(self, text: str, level: int = logging.INFO) -> None:
        """A sentence for the operator; ``level`` is a ``logging`` level."""

    def finish(self, summary: Mapping[str, int]) -> None:
        """The run ended; ``summary`` maps each final status to its row count."""

    def close(self) -> None:
        """Stop any live display; harmless after ``finish`` or before ``start``."""


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


def estimate_eta(remaining: int | None, rate: float, limit: float) -> float | None:
    """Seconds left for ``remaining`` rows at the observed ``rate``, or the ``limit`` before any
    rate is known; ``None`` when the row count or both speeds are unknown."""
    if remaining is None:
        return None
    speed = rate if rate > 0 else limit
    if speed <= 0:
        return None
    return max(remaining, 0) / speed


def format_duration(seconds: float | None) -> str:
    """``3725`` → ``"1h02m"``, ``232`` → ``"3m52s"``, ``7.4`` → ``"7s"``, ``None`` → ``"?"``."""
    if seconds is None:
        return "?"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


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
        self.by_status: Counter[str] = Counter()

    def start(self, total: int | None, limit: float) -> None:
        self.started_at = self._clock()
        self.total = total
        self.limit = limit

    def snapshot(self) -> ProgressSnapshot:
        done = sum(self.by_status.values())
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
        )


class _CountingReporter:
    """Keeps the tally; subclasses decide when and how to show it."""

    def __init__(self, *, clock: Clock, redact: Callable[[str], str] | None) -> None:
        self._clock = clock
        self._redact = redact or _identity
        self._tally = _Tally(clock)

    def start(
        self, *, total_rows: int | None, estimate_seconds: float | None, limit_per_second: float
    ) -> None:
        self._tally.start(total_rows, limit_per_second)
        self._on_start(total_rows, estimate_seconds, limit_per_second)

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

    def close(self) -> None:
        """Nothing to release by default."""

    def _on_start(self, total: int | None, estimate_seconds: float | None, limit: float) -> None:
        raise NotImplementedError

    def _on_change(self) -> None:
        raise NotImplementedError

    def _on_message(self, text: str, level: int) -> None:
        raise NotImplementedError

    def _on_finish(self, summary: Mapping[str, int], snap: ProgressSnapshot) -> None:
        raise NotImplementedError


def _write_best_effort(stream: TextIO, text: str) -> None:
    # Progress is a courtesy: a closed or broken stderr pipe must not stop a payroll run.
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):
        return


def _start_sentence(total: int | None, estimate_seconds: float | None, limit: float) -> str:
    rows = "an unknown number of rows" if total is None else f"{total} rows"
    return f"{rows}, limit {limit:.2f} rows/s, estimated {format_duration(estimate_seconds)}"


def _stats_text(snap: ProgressSnapshot) -> str:
    total = "?" if snap.total is None else str(snap.total)
    # While the server holds us back an ETA from the rate would be a lie ("eta 0s").
    tail = (
        f"eta {format_duration(snap.eta)}"
        if snap.paused_until is None
        else f"paused by the server until {pause_clock(snap.paused_until)}"
    )
    return (
        f"{snap.done}/{total} · rejected {snap.rejected} · failed {snap.failed} · "
        f"retrying {snap.retrying} · {snap.rate:.2f}/s of {snap.limit:.2f}/s · {tail}"
    )


def pause_clock(epoch_seconds: float) -> str:
    """``HH:MM:SS`` of ``epoch_seconds`` in the operator's local time."""
    return datetime.fromtimestamp(epoch_seconds).strftime("%H:%M:%S")


def _summary_text(summary: Mapping[str, int]) -> str:
    parts = [f"{status} {count}" for status, count in summary.items()]
    return ", ".join(parts) if parts else "no rows"


class _ThrottledReporter(_CountingReporter):
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

    def _on_change(self) -> None:
        # Runs for every row: the snapshot (ETA included) is only built when it is shown.
        now = self._clock()
        tally = self._tally
        all_done = tally.total is not None and sum(tally.by_status.values()) >= tally.total
        if now - self._last_shown >= self._interval or (all_done and not self._shown_all):
            self._last_shown = now
            self._shown_all = all_done
            self._show_progress(tally.snapshot())

    def _show_start(self, total: int | None, estimate_seconds: float | None, limit: float) -> None:
        raise NotImplementedError

    def _show_progress(self, snap: ProgressSnapshot) -> None:
        raise NotImplementedError


class PlainReporter(_ThrottledReporter):
    """One line per event for logs and pipes; progress lines throttled to one per ``interval`` s.

    ::

        start: 500 rows, limit 1.67 rows/s, estimated 5m00s
        progress: 120/500 · rejected 3 · failed 0 · retrying 2 · 1.62/s of 1.67/s · eta 3m52s
        warning: the server asked us to slow down
        finished in 5m02s: created 488, already_existed 6, rejected 6
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        interval: float = 5.0,
        clock: Clock = time.monotonic,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        super().__init__(interval=interval, clock=clock, redact=redact)
        self._stream = stream

    def _line(self, text: str) -> None:
        _write_best_effort(self._stream, text + "\n")

    def _show_start(self, total: int | None, estimate_seconds: float | None, limit: float) -> None:
        self._line("start: " + _start_sentence(total, estimate_seconds, limit))

    def _show_progress(self, snap: ProgressSnapshot) -> None:
        self._line("progress: " + _stats_text(snap))

    def _on_message(self, text: str, level: int) -> None:
        self._line(f"{logging.getLevelName(level).lower()}: {text}")

    def _on_finish(self, summary: Mapping[str, int], snap: ProgressSnapshot) -> None:
        self._line(f"finished in {format_duration(snap.elapsed)}: {_summary_text(summary)}")


def _finite_or_none(value: float | None) -> float | None:
    # JSON has no NaN or Infinity; an unknowable number is null.
    return value if value is not None and math.isfinite(value) else None


def _utc_timestamp(epoch_seconds: float) -> str:
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonReporter(_ThrottledReporter):
    """``--json-logs``: one JSON object per line, each with ``ts`` (UTC ISO 8601) and ``event``.

    Events: ``start`` (total_rows, estimate_seconds, limit_per_second), ``progress`` (done, total,
    rejected, failed, retrying, rate_per_second, limit_per_second, eta_seconds, by_status),
    ``message`` (level, message) and ``finish`` (summary, elapsed_seconds). Progress objects are
    throttled like plain lines. ``wall_clock`` gives the epoch seconds for ``ts``.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        interval: float = 1.0,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        super().__init__(interval=interval, clock=clock, redact=redact)
        self._stream = stream
        self._wall_clock = wall_clock

    def _emit(self, event: str, **fields: object) -> None:
        record = {"ts": _utc_timestamp(self._wall_clock()), "event": event, **fields}
        _write_best_effort(self._stream, json.dumps(record, ensure_ascii=False) + "\n")

    def _show_start(self, total: int | None, estimate_seconds: float | None, limit: float) -> None:
        self._emit(
            "start",
            total_rows=total,
            estimate_seconds=_finite_or_none(estimate_seconds),
            limit_per_second=_finite_or_none(limit),
        )

    def _show_progress(self, snap: ProgressSnapshot) -> None:
        self._emit(
            "progress",
            done=snap.done,
            total=snap.total,
            rejected=snap.rejected,
            failed=snap.failed,
            retrying=snap.retrying,
            rate_per_second=_finite_or_none(round(snap.rate, 3)),
            limit_per_second=_finite_or_none(round(snap.limit, 3)),
            eta_seconds=None if snap.eta is None else round(snap.eta, 1),
            by_status=dict(snap.by_status),
        )

    def _on_message(self, text: str, level: int) -> None:
        self._emit("message", level=logging.getLevelName(level).lower(), message=text)

    def _on_finish(self, summary: Mapping[str, int], snap: ProgressSnapshot) -> None:
        self._emit("finish", summary=dict(summary), elapsed_seconds=round(snap.elapsed, 3))


class RichReporter(_CountingReporter):
    """A live progress bar (done, rejected, failed, retrying, rate against limit, ETA) and a
    summary table at the end, drawn on ``console`` (the CLI gives it one on stderr).

    ``auto_refresh=False`` redraws only on events, which is what tests want.
    """

    def __init__(
        self,
        console: Console,
        *,
        clock: Clock = time.monotonic,
        auto_refresh: bool = True,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        super().__init__(clock=clock, redact=redact)
        self._console = console
        self._auto_refresh = auto_refresh
        # No stdout/stderr redirection: a piped stdout must not end up inside the stderr display.
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[stats]}", markup=False),
            console=console,
            auto_refresh=auto_refresh,
            redirect_stdout=False,
            redirect_stderr=False,
            get_time=clock,
        )
        self._task: TaskID | None = None

    def _on_start(self, total: int | None, estimate_seconds: float | None, limit: float) -> None:
        self._console.print(Text("Starting: " + _start_sentence(total, estimate_seconds, limit)))
        self._task = self._progress.add_task("rows", total=total, stats="")
        self._progress.start()
        self._on_change()

    def _on_change(self) -> None:
        if self._task is None:
            return
        snap = self._tally.snapshot()
        self._progress.update(self._task, completed=snap.done, stats=_stats_text(snap))
        if not self._auto_refresh:
            self._progress.refresh()  # otherwise the refresh thread redraws, ten times a second

    def _on_message(self, text: str, level: int) -> None:
        label = logging.getLevelName(level).lower()
        # Text, not markup: a message like "[REDACTED]" must print as written.
        self._progress.console.print(Text(f"{label}: {text}", style=_LEVEL_STYLES.get(level, "")))

    def _on_finish(self, summary: Mapping[str, int], snap: ProgressSnapshot) -> None:
        self.close()
        self._console.print(_summary_table(summary, snap.elapsed))

    def close(self) -> None:
        """Stop the live display (and its refresh thread)."""
        self._progress.stop()


def _summary_table(summary: Mapping[str, int], elapsed: float) -> Table:
    table = Table(title=f"Summary ({format_duration(elapsed)})")
    table.add_column("status")
    table.add_column("rows", justify="right")
    for status, count in summary.items():
        table.add_row(Text(status), str(count))
    table.add_section()
    table.add_row("total", str(sum(summary.values())))
    return table


def make_reporter(
    json_logs: bool,
    stream: TextIO,
    *,
    clock: Clock = time.monotonic,
    redact: Callable[[str], str] | None = None,
) -> Reporter:
    """The reporter the CLI should use: JSON lines if asked, a rich bar on a terminal, plain
    lines otherwise. ``redact`` scrubs message texts (pass ``Redactor.redact``)."""
    if json_logs:
        return JsonReporter(stream, clock=clock, redact=redact)
    if _is_terminal(stream):
        return RichReporter(Console(file=stream), clock=clock, redact=redact)
    return PlainReporter(stream, clock=clock, redact=redact)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or file-like without isatty
        return False
