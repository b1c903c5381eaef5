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
from typing import TYPE_CHECKING, Protocol, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from flexpay_batch.core.states import RowStatus

# The live bar's classes load with the bar (``RichReporter``): ``status`` and the plain and
# JSON reporters never pay for them.
if TYPE_CHECKING:
    from rich.progress import TaskID

__all__ = [
    "Clock",
    "JsonReporter",
    "PlainReporter",
    "ProgressSnapshot",
    "Reporter",
    "RichReporter",
    "estimate_eta",
    "format_average",
    "format_duration",
    "format_rate",
    "make_reporter",
    "rate_unit",
    "summary_rows",
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
        self,
        *,
        total_rows: int | None,
        estimate_seconds: float | None,
        limit_per_second: float,
        done_rows: int = 0,
    ) -> None:
        """The run begins: rows in the file (None if unknown), the limit-based estimate for
        what is left, the limit, and ``done_rows`` already settled by earlier invocations."""

    def row_done(self, status: RowStatus) -> None:
        """A row reached its status for this invocation (``created``, ``rejected``, ...)."""

    def retrying(self, delta: int) -> None:
        """The number of rows retrying now changed by ``delta`` (+1 at a row's first retry,
        -1 when that row ends)."""

    def rate(self, current_per_second: float) -> None:
        """The observed throughput in rows per second."""

    def paused(self, until_epoch: float | None) -> None:
        """The server paused requests until ``until_epoch`` (epoch seconds), or no pause."""

    def message(self, text: str, level: int = logging.INFO) -> None:
        """A sentence for the operator; ``level`` is a ``logging`` level."""

    def finish(self, summary: Mapping[str, int]) -> None:
        """The run ended; ``summary`` maps each final status to its row count (the job's,
        earlier invocations included)."""

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


class _CountingReporter:
    """Keeps the tally; subclasses decide when and how to show it."""

    def __init__(self, *, clock: Clock, redact: Callable[[str], str] | None) -> None:
        self._clock = clock
        self._redact = redact or _identity
        self._tally = _Tally(clock)

    def start(
        self,
        *,
        total_rows: int | None,
        estimate_seconds: float | None,
        limit_per_second: float,
        done_rows: int = 0,
    ) -> None:
        self._tally.start(total_rows, limit_per_second, done_rows)
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

    def _start_sentence(self, total: int | None, estimate: float | None, limit: float) -> str:
        return _start_sentence(total, estimate, limit, self._tally.earlier)

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


_UNITS = (("s", 1.0), ("min", 60.0), ("h", 3600.0))


def rate_unit(limit_per_second: float) -> tuple[str, float]:
    """The limit's own unit and its factor from per second: the first of s, min, h in which
    the limit is a whole number of at least one (a 100/min limit reads ``100/min``, not
    ``1.67/s``; 100/h reads ``100/h``, not ``0.03/s``), else the first in which it is >= 1."""
    for unit, factor in _UNITS:
        scaled = limit_per_second * factor
        if scaled >= 1.0 and abs(scaled - round(scaled)) < 1e-6 * scaled:
            return unit, factor
    for unit, factor in _UNITS:
        if limit_per_second * factor >= 1.0:
            return unit, factor
    return _UNITS[-1]


def _number(value: float) -> str:
    # Three significant figures at most, no trailing zeros: 1000, 100, 16.7, 1.62, 0.5.
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def format_rate(rate: float, limit: float) -> str:
    """``rate`` against ``limit`` (both per second) in the limit's unit: ``98.4/min of 100/min``."""
    unit, factor = rate_unit(limit)
    return f"{_number(rate * factor)}/{unit} of {_number(limit * factor)}/{unit}"


def format_average(rate: float, limit: float) -> str:
    """An average rate in the limit's unit: ``98.4/min``."""
    unit, factor = rate_unit(limit)
    return f"{_number(rate * factor)}/{unit}"


def _start_sentence(
    total: int | None, estimate_seconds: float | None, limit: float, earlier: int
) -> str:
    rows = "an unknown number of rows" if total is None else f"{total} rows"
    if earlier:
        rows += f" ({earlier} already settled)"
    unit, factor = rate_unit(limit)
    return (
        f"{rows}, limit {_number(limit * factor)} rows/{unit}, "
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


def _stats_text(snap: ProgressSnapshot) -> str:
    total = "?" if snap.total is None else str(snap.total)
    return (
        f"{snap.done}/{total} · rejected {snap.rejected} · failed {snap.failed} · "
        f"retrying {snap.retrying} · {format_rate(snap.rate, snap.limit)} · {_eta_text(snap)}"
    )


def _narrow_stats_text(snap: ProgressSnapshot) -> str:
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


#: The end-of-run order: what took effect (and how), then what did not, then what is open.
SUMMARY_ORDER: tuple[RowStatus, ...] = (
    RowStatus.CREATED,
    RowStatus.ALREADY_EXISTED,
    RowStatus.REPLAYED,
    RowStatus.REJECTED,
    RowStatus.FAILED,
    RowStatus.PENDING,
    RowStatus.IN_FLIGHT,
)
_ALWAYS_SHOWN = frozenset(SUMMARY_ORDER[:5])


def summary_rows(summary: Mapping[str, int]) -> list[tuple[str, int]]:
    """The end-of-run counts as (label, rows): created, already existed, replayed, rejected
    and failed always (a zero says something too), open states only when non-zero."""
    rows = [
        (status.value.replace("_", " "), summary.get(status.value, 0))
        for status in SUMMARY_ORDER
        if status in _ALWAYS_SHOWN or summary.get(status.value, 0)
    ]
    known = {status.value for status in SUMMARY_ORDER}
    rows += [(name, count) for name, count in summary.items() if name not in known and count]
    return rows


def _summary_text(summary: Mapping[str, int]) -> str:
    return ", ".join(f"{label} {count}" for label, count in summary_rows(summary))


def _finish_sentence(summary: Mapping[str, int], snap: ProgressSnapshot) -> str:
    return (
        f"finished in {format_duration(snap.elapsed)} "
        f"(average {format_average(snap.average, snap.limit)}): {_summary_text(summary)}"
    )


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


class PlainReporter(_ThrottledReporter):
    """One line per event for logs and pipes; progress lines throttled to one per ``interval`` s.

    ::

        start: 500 rows, limit 100 rows/min, estimated 5m00s
        progress: 120/500 · rejected 3 · failed 0 · retrying 2 · 97.2/min of 100/min · eta 3m52s
        warning: the server asked us to slow down
        finished in 5m02s (average 99/min): created 488, already existed 6, replayed 0, ...
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
        self._line("start: " + self._start_sentence(total, estimate_seconds, limit))

    def _show_progress(self, snap: ProgressSnapshot) -> None:
        self._line("progress: " + _stats_text(snap))

    def _on_message(self, text: str, level: int) -> None:
        self._line(f"{logging.getLevelName(level).lower()}: {text}")

    def _on_finish(self, summary: Mapping[str, int], snap: ProgressSnapshot) -> None:
        self._line(_finish_sentence(summary, snap))


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
            done_rows=self._tally.earlier,
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
        self._emit(
            "finish",
            summary=dict(summary),
            elapsed_seconds=round(snap.elapsed, 3),
            average_per_second=_finite_or_none(round(snap.average, 3)),
        )


class _QuietOnBrokenPipe(Console):
    """A console that goes quiet when its reader goes away.

    rich's default answer to a ``BrokenPipeError`` is to point stdout at /dev/null and raise
    ``SystemExit(1)``: right for a pager, wrong for a payroll run whose progress is a courtesy
    (and whose ``--json`` summary is on stdout).
    """

    def on_broken_pipe(self) -> None:
        self.quiet = True


#: Below this many columns the bar is dropped and the stats use short words, so the counts
#: and the ETA are never the part cut off.
NARROW_COLUMNS = 80


class RichReporter(_CountingReporter):
    """A live progress bar (done, rejected, failed, retrying, rate against limit, ETA) and a
    summary table at the end, drawn on ``console`` (the CLI gives it one on stderr).

    ``auto_refresh=False`` redraws only on events, which is what tests want. Every drawing is
    best effort: a broken stream never raises into the run.
    """

    def __init__(
        self,
        console: Console,
        *,
        clock: Clock = time.monotonic,
        auto_refresh: bool = True,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        from rich.progress import BarColumn, Progress, TextColumn

        super().__init__(clock=clock, redact=redact)
        self._console = console
        self._auto_refresh = auto_refresh
        self._narrow = console.width < NARROW_COLUMNS
        columns = (
            (TextColumn("{task.fields[stats]}", markup=False),)
            if self._narrow
            else (
                TextColumn("{task.description}"),
                BarColumn(bar_width=None if console.width >= 120 else 20),
                TextColumn("{task.fields[stats]}", markup=False),
            )
        )
        # No stdout/stderr redirection: a piped stdout must not end up inside the stderr display.
        self._progress = Progress(
            *columns,
            console=console,
            auto_refresh=auto_refresh,
            redirect_stdout=False,
            redirect_stderr=False,
            get_time=clock,
        )
        self._task: TaskID | None = None

    def _safely(self, draw: Callable[[], object]) -> None:
        try:
            draw()
        except (OSError, ValueError, SystemExit):
            # SystemExit: an older rich's broken-pipe handling; the run goes on regardless.
            self._console.quiet = True

    def _on_start(self, total: int | None, estimate_seconds: float | None, limit: float) -> None:
        sentence = self._start_sentence(total, estimate_seconds, limit)
        self._safely(lambda: self._console.print(Text("Starting: " + sentence)))
        self._task = self._progress.add_task(
            "rows", total=total, completed=self._tally.earlier, stats=""
        )
        self._safely(self._progress.start)
        self._on_change()

    def _on_change(self) -> None:
        if self._task is None:
            return
        snap = self._tally.snapshot()
        stats = _narrow_stats_text(snap) if self._narrow else _stats_text(snap)
        self._progress.update(self._task, completed=snap.done, stats=stats)
        if not self._auto_refresh:
            self._safely(self._progress.refresh)  # else the refresh thread redraws 10 times/s

    def _on_message(self, text: str, level: int) -> None:
        label = logging.getLevelName(level).lower()
        # Text, not markup: a message like "[REDACTED]" must print as written.
        line = Text(f"{label}: {text}", style=_LEVEL_STYLES.get(level, ""))
        self._safely(lambda: self._progress.console.print(line))

    def _on_finish(self, summary: Mapping[str, int], snap: ProgressSnapshot) -> None:
        self.close()
        self._safely(lambda: self._console.print(_summary_table(summary, snap)))
        self._safely(lambda: self._console.print(Text(_finish_sentence(summary, snap))))

    def close(self) -> None:
        """Stop the live display (and its refresh thread)."""
        self._safely(self._progress.stop)


def _summary_table(summary: Mapping[str, int], snap: ProgressSnapshot) -> Table:
    average = format_average(snap.average, snap.limit)
    table = Table(title=f"Summary ({format_duration(snap.elapsed)}, average {average})")
    table.add_column("status")
    table.add_column("rows", justify="right")
    for label, count in summary_rows(summary):
        table.add_row(Text(label), str(count))
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
        return RichReporter(_QuietOnBrokenPipe(file=stream), clock=clock, redact=redact)
    return PlainReporter(stream, clock=clock, redact=redact)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or file-like without isatty
        return False
